//! `/admin/cache` (the response cache's size) and `POST
//! /admin/cache/purge?route=R&prefix=P` or `?path=P` (remove entries).

use http::StatusCode;
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::Response;

use super::{json, query_pairs};
use crate::cache::Paths;
use crate::edge::Gateway;

/// `GET /admin/cache`: entries and bytes held, and the bounds.
pub(super) fn status(gateway: &Gateway) -> Response {
    let runtime = gateway.runtime();
    let Some(store) = &runtime.cache else {
        return not_configured();
    };
    let body = serde_json::json!({
        "entries": store.len(),
        "bytes": store.metrics.bytes.get(),
        "max_bytes": store.max_bytes,
        "max_entry_bytes": store.max_entry,
    });
    json(StatusCode::OK, body.to_string())
}

/// `POST /admin/cache/purge?prefix=/v1/users/&route=users`: removes the
/// entries whose path starts with `prefix` (of `route` only, when given;
/// `/` purges everything), or with `path=/v1/users/1` those of that path
/// only (every query, variant and consumer of it). One of `prefix` and
/// `path` is required. Query values are percent-decoded.
pub(super) fn purge(gateway: &Gateway, uri: &http::Uri) -> Response {
    let runtime = gateway.runtime();
    let Some(store) = &runtime.cache else {
        return not_configured();
    };
    let mut route = None;
    let mut prefix = None;
    let mut path = None;
    for (name, value) in query_pairs(uri) {
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned();
        match name {
            "route" => route = Some(value),
            "prefix" => prefix = Some(value),
            "path" => path = Some(value),
            _ => {
                return ErrorResponse::new(
                    Code::InvalidArgument,
                    format!(
                        "unknown parameter `{name}`: give `prefix` or `path`, and optionally `route`"
                    ),
                )
                .into_response();
            }
        }
    }
    let paths = match (&prefix, &path) {
        (Some(prefix), None) if prefix.starts_with('/') => Paths::Prefix(prefix),
        (None, Some(path)) if path.starts_with('/') => Paths::Exact(path),
        _ => {
            return ErrorResponse::new(
                Code::InvalidArgument,
                "give one of `prefix` (a path prefix starting with `/`; `/` purges everything) and `path` (one path)",
            )
            .into_response();
        }
    };
    let purged = store.purge(route.as_deref(), paths);
    json(
        StatusCode::OK,
        serde_json::json!({ "purged": purged, "route": route, "prefix": prefix, "path": path })
            .to_string(),
    )
}

fn not_configured() -> Response {
    ErrorResponse::with_status(
        StatusCode::NOT_FOUND,
        Code::NotFound,
        "no route has `cache:` in the running config",
    )
    .into_response()
}
