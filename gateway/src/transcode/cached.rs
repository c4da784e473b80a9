//! Unary GET calls of a route with `cache:` (see `crate::cache`): answered
//! from the store when it holds a fresh answer, or a stale one within its
//! `stale_while_revalidate` window (then refreshed in the background, once
//! per key); otherwise fetched once per key, however many requests wait for
//! it, and stored when the upstream allows. Every answer says what happened
//! in `Cache-Status` (RFC 9211), hits their `Age`.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, header};
use switchyard_plugins::error::ErrorResponse;
use switchyard_plugins::stage::{Consumer, Response, full_body};

use super::binding::Binding;
use super::handler::{Rendered, ok_response, unary};
use crate::cache::control::{RequestDirectives, ResponseDirectives};
use crate::cache::{Entry, Flight, LeadGuard, Lookup, RouteCache};

/// The `Cache-Status` cache name.
const NAME: &str = "switchyard";

/// Serves a GET of a route whose cache is `cache`.
pub(super) async fn serve(
    cache: &RouteCache,
    binding: Arc<Binding>,
    captures: Vec<String>,
    parts: http::request::Parts,
) -> Result<Response, ErrorResponse> {
    let route = &binding.route;
    let count = |status: &str| cache.count(&route.name, status);
    let asks = RequestDirectives::of(&parts.headers);
    if asks.no_store {
        count("bypass");
        let (response, ..) = fetch(&binding, &captures, &parts, None).await?;
        return Ok(with_status(response, "fwd=bypass"));
    }
    let chosen = route.choose_for(&parts.headers, &parts.extensions);
    let variant = chosen.variant.cloned();
    let consumer = parts.extensions.get::<Consumer>().map(|c| c.0.as_str());
    let key = cache.key(
        &route.name,
        variant.as_deref(),
        parts.uri.path(),
        parts.uri.query(),
        &parts.headers,
        consumer,
    );
    if asks.no_cache {
        count("refresh");
        let (response, stored) =
            fetch_and_store(&binding, &captures, &parts, cache, &key, variant.as_deref()).await?;
        return Ok(with_status(
            response,
            if stored {
                "fwd=request; stored"
            } else {
                "fwd=request"
            },
        ));
    }
    match cache.store.lookup(&key).await {
        Lookup::Fresh(entry) => {
            count("hit");
            return Ok(from_entry(&entry, false));
        }
        Lookup::Stale(entry) => {
            count("stale");
            if let Flight::Lead(guard) = cache.store.flight(&key) {
                refresh(binding.clone(), captures, parts, key, variant, guard);
            }
            return Ok(from_entry(&entry, true));
        }
        Lookup::Miss => {}
    }
    let guard = match cache.store.flight(&key) {
        Flight::Lead(guard) => Some(guard),
        Flight::Follow(mut waiting) => {
            // The fetch in flight is bounded by the route's deadline.
            let _ = waiting.changed().await;
            if let Lookup::Fresh(entry) | Lookup::Stale(entry) = cache.store.get(&key) {
                count("hit");
                return Ok(from_entry(&entry, false));
            }
            // Not stored (an error, or the upstream said no-store): this
            // request fetches on its own.
            None
        }
    };
    count("miss");
    let result =
        fetch_and_store(&binding, &captures, &parts, cache, &key, variant.as_deref()).await;
    drop(guard);
    let (response, stored) = result?;
    Ok(miss_status(response, stored))
}

/// The call (through `variant`, or the route's choice when `None`), as the
/// response to send, its body, and what the upstream said of caching it.
async fn fetch(
    binding: &Arc<Binding>,
    captures: &[String],
    parts: &http::request::Parts,
    variant: Option<&str>,
) -> Result<(Response, Bytes, ResponseDirectives), ErrorResponse> {
    let route = &binding.route;
    let chosen = match variant {
        Some(name) => route.variant_named(name),
        None => route.choose_for(&parts.headers, &parts.extensions),
    };
    let Rendered { json, metadata } =
        unary(binding, captures, parts, &Bytes::new(), chosen).await?;
    let says = ResponseDirectives::of(&metadata);
    let response = ok_response(binding, json.clone(), metadata);
    Ok((response, json, says))
}

/// Fetches and stores the answer unless the upstream forbids it; whether
/// it was stored.
async fn fetch_and_store(
    binding: &Arc<Binding>,
    captures: &[String],
    parts: &http::request::Parts,
    cache: &RouteCache,
    key: &Arc<str>,
    variant: Option<&str>,
) -> Result<(Response, bool), ErrorResponse> {
    let (response, body, says) = fetch(binding, captures, parts, variant).await?;
    if says.uncacheable {
        return Ok((response, false));
    }
    let headers = response.headers().clone();
    let entry = cache.entry(&binding.route.name, parts.uri.path(), body, headers, &says);
    let stored = cache.store.put(key.clone(), entry);
    Ok((response, stored))
}

/// Refreshes a stale entry in the background; `guard` keeps other
/// refreshes of the key away until it ends.
fn refresh(
    binding: Arc<Binding>,
    captures: Vec<String>,
    parts: http::request::Parts,
    key: Arc<str>,
    variant: Option<Arc<str>>,
    guard: LeadGuard,
) {
    tokio::spawn(async move {
        if let Some(cache) = binding.route.cache.as_ref() {
            let refreshed =
                fetch_and_store(&binding, &captures, &parts, cache, &key, variant.as_deref()).await;
            if let Err(error) = refreshed {
                tracing::debug!(route = %binding.route.name, error = %error.message, "cache refresh failed; the stale answer stays until it expires");
            }
        }
        drop(guard);
    });
}

/// A stored answer, with its `Age` and `Cache-Status`.
fn from_entry(entry: &Entry, stale: bool) -> Response {
    let mut response = http::Response::new(full_body(entry.body.clone()));
    *response.headers_mut() = entry.headers.clone();
    let age = entry.stored.elapsed();
    response
        .headers_mut()
        .insert(header::AGE, HeaderValue::from(age.as_secs()));
    let status = if stale {
        let past = age.saturating_sub(entry.fresh).as_secs();
        format!("hit; ttl=-{past}; detail=stale-while-revalidate")
    } else {
        let left = entry.fresh.saturating_sub(age).as_secs();
        format!("hit; ttl={left}")
    };
    with_status(response, &status)
}

fn miss_status(response: Response, stored: bool) -> Response {
    with_status(
        response,
        if stored {
            "fwd=miss; stored"
        } else {
            "fwd=miss"
        },
    )
}

fn with_status(mut response: Response, params: &str) -> Response {
    if let Ok(value) = HeaderValue::try_from(format!("{NAME}; {params}")) {
        response
            .headers_mut()
            .insert(http::HeaderName::from_static("cache-status"), value);
    }
    response
}
