//! Query fields resolved through a route with `cache:`: the upstream's
//! reply is kept in the route's store (`crate::cache`) as protobuf bytes,
//! keyed on the route, the split variant, the gRPC method, the request
//! message (the read mask the selection filled included), the `vary`
//! headers and, unless the route is `public`, the consumer. A fresh entry
//! answers without a call; misses of one key wait for the one call in
//! flight. Stale entries are not served to GraphQL (a miss): a field has no
//! response header to say so. Mutations are never cached.

use std::time::Instant;

use http::uri::PathAndQuery;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use switchyard_plugins::error::{Code, ErrorResponse};

use crate::cache::control::{RequestDirectives, ResponseDirectives};
use crate::cache::{Entry, Flight, Lookup, RouteCache};
use crate::routing::RouteCtx;
use crate::routing::split::{Caller, Chosen};
use crate::transcode::handler;
use crate::upstream::Call;
use crate::upstream::grpc::Reply;

/// The call of a Query field through `cache`.
pub async fn call(
    cache: &RouteCache,
    route: &RouteCtx,
    chosen: Chosen<'_>,
    call: Call<'_>,
    message: &DynamicMessage,
    caller: &Caller<'_>,
) -> Result<Reply, ErrorResponse> {
    let count = |status: &str| cache.count(&route.name, status);
    let asks = RequestDirectives::of(caller.headers);
    if asks.no_store {
        count("bypass");
        return handler::call_upstream(route, chosen.upstream, call, message).await;
    }
    let path: PathAndQuery = call.path.clone();
    let output: MessageDescriptor = call.output.clone();
    // The request's bytes as key text (hex: no `&`, no line feed).
    let hex = switchyard_plugins::hex::encode(&message.encode_to_vec());
    let key = cache.key(
        &route.name,
        chosen.variant.map(|v| &**v),
        path.as_str(),
        Some(&hex),
        caller.headers,
        caller.consumer,
    );
    if !asks.no_cache
        && let Lookup::Fresh(entry) = cache.store.lookup(&key).await
        && let Ok(reply) = decode(&entry, &output)
    {
        count("hit");
        return Ok(reply);
    }
    let guard = match cache.store.flight(&key) {
        Flight::Lead(guard) => Some(guard),
        Flight::Follow(mut waiting) => {
            let _ = waiting.changed().await;
            if let Lookup::Fresh(entry) = cache.store.get(&key)
                && let Ok(reply) = decode(&entry, &output)
            {
                count("hit");
                return Ok(reply);
            }
            None
        }
    };
    count(if asks.no_cache { "refresh" } else { "miss" });
    let result = handler::call_upstream(route, chosen.upstream, call, message).await;
    if let Ok(reply) = &result {
        let says = ResponseDirectives::of(&reply.metadata);
        if !says.uncacheable {
            cache.store.put(
                key,
                Entry {
                    route: route.name.as_str().into(),
                    path: path.as_str().to_owned(),
                    body: reply.message.encode_to_vec().into(),
                    headers: reply.metadata.clone(),
                    stored: Instant::now(),
                    fresh: says.max_age.unwrap_or(cache.ttl),
                    // GraphQL serves no stale answer; keep none.
                    stale: std::time::Duration::ZERO,
                },
            );
        }
    }
    drop(guard);
    result
}

fn decode(entry: &Entry, output: &MessageDescriptor) -> Result<Reply, ErrorResponse> {
    let message = DynamicMessage::decode(output.clone(), entry.body.clone()).map_err(|e| {
        ErrorResponse::new(
            Code::Internal,
            format!("a cached reply does not decode: {e}"),
        )
    })?;
    Ok(Reply {
        metadata: entry.headers.clone(),
        message,
    })
}
