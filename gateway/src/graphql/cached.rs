//! Query fields resolved through a route with `cache:`: the upstream's
//! reply is kept in the route's store (`crate::cache`) as protobuf bytes,
//! keyed on the route, the split variant, the gRPC method, the request
//! message (the read mask the selection filled included), the `vary`
//! headers and, unless the route is `public`, the consumer. A fresh entry
//! answers without a call; a stale one within its `stale_while_revalidate`
//! window answers too while one refresh per key runs in the background;
//! misses of one key wait for the one call in flight. Mutations are never
//! cached.

use std::sync::Arc;

use http::uri::PathAndQuery;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use switchyard_plugins::error::{Code, ErrorResponse};

use crate::cache::control::{RequestDirectives, ResponseDirectives};
use crate::cache::{Entry, Flight, LeadGuard, Lookup, RouteCache};
use crate::routing::RouteCtx;
use crate::routing::split::{Caller, Chosen};
use crate::transcode::handler;
use crate::upstream::grpc::Reply;
use crate::upstream::{Call, Upstream};

/// The call of a Query field through `cache`.
pub async fn call(
    cache: &RouteCache,
    route: &Arc<RouteCtx>,
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
    if !asks.no_cache {
        match cache.store.lookup(&key).await {
            Lookup::Fresh(entry) => {
                if let Ok(reply) = decode(&entry, &output) {
                    count("hit");
                    return Ok(reply);
                }
            }
            Lookup::Stale(entry) => {
                if let Ok(reply) = decode(&entry, &output) {
                    count("stale");
                    if let Flight::Lead(guard) = cache.store.flight(&key) {
                        let refresh = Refresh {
                            route: route.clone(),
                            upstream: chosen.upstream.clone(),
                            path,
                            output,
                            metadata: call.metadata,
                            message: message.clone(),
                            key,
                        };
                        refresh.spawn(guard);
                    }
                    return Ok(reply);
                }
            }
            Lookup::Miss => {}
        }
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
        store(cache, route, &path, key, reply);
    }
    drop(guard);
    result
}

/// Keeps `reply` under `key` unless the upstream forbids it.
fn store(cache: &RouteCache, route: &RouteCtx, path: &PathAndQuery, key: Arc<str>, reply: &Reply) {
    let says = ResponseDirectives::of(&reply.metadata);
    if says.uncacheable {
        return;
    }
    let body = reply.message.encode_to_vec().into();
    let entry = cache.entry(
        &route.name,
        path.as_str(),
        body,
        reply.metadata.clone(),
        &says,
    );
    cache.store.put(key, entry);
}

/// The background refresh of a stale field: the same call, owned.
struct Refresh {
    route: Arc<RouteCtx>,
    upstream: Upstream,
    path: PathAndQuery,
    output: MessageDescriptor,
    metadata: http::HeaderMap,
    message: DynamicMessage,
    key: Arc<str>,
}

impl Refresh {
    /// Runs the call with the route's timeout; `guard` keeps other
    /// refreshes of the key away until it ends.
    fn spawn(self, guard: LeadGuard) {
        tokio::spawn(async move {
            let Some(cache) = self.route.cache.as_ref() else {
                return;
            };
            let call = Call {
                path: &self.path,
                output: &self.output,
                metadata: self.metadata.clone(),
                timeout: self.route.timeout,
                idempotent: true,
            };
            match handler::call_upstream(&self.route, &self.upstream, call, &self.message).await {
                Ok(reply) => store(cache, &self.route, &self.path, self.key.clone(), &reply),
                Err(error) => tracing::debug!(
                    route = %self.route.name,
                    error = %error.message,
                    "cache refresh of a GraphQL field failed; the stale answer stays until it expires"
                ),
            }
            drop(guard);
        });
    }
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
