//! `/admin/config` (the running config, redacted, and the reload history),
//! `POST /admin/reload`, and `/admin/routes` (the compiled route table).

use http::StatusCode;
use serde_json::json;
use switchyard_plugins::registry::with_defaults;
use switchyard_plugins::stage::Response;

use super::json;
use crate::reload::exposed::exposures;
use crate::reload::redact::redact;
use crate::reload::{Failure, Reloader, Trigger};

/// `GET /admin/config`: the running version (hash, when loaded, the file),
/// its values with secrets redacted, the last reload error and the
/// history.
pub(super) fn config(reloader: &Reloader) -> Response {
    let runtime = reloader.gateway.runtime();
    let status = reloader.status();
    let body = json!({
        "file": status.file,
        "version": status.version,
        "loaded_at": status.loaded_at,
        "strict": status.strict,
        "last_error": status.last_error,
        "history": status.history,
        "config": redact(runtime.loaded.source.values()),
    });
    json(StatusCode::OK, body.to_string())
}

/// `POST /admin/reload`: 200 with the version now serving, or 422 with
/// where the file is wrong (the running version keeps serving).
pub(super) async fn reload(reloader: &Reloader) -> Response {
    match reloader.reload(Trigger::Admin).await {
        Ok(version) => json(
            StatusCode::OK,
            json!({ "result": "ok", "version": version }).to_string(),
        ),
        Err(e) => json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({
                "result": "error",
                "version": reloader.status().version,
                "error": Failure::from(&e),
                "message": e.to_string(),
            })
            .to_string(),
        ),
    }
}

/// `GET /admin/routes`: every way a client reaches a method (protocol,
/// HTTP method, path, rpc, route) and each route's plugins in the order
/// they run.
pub(super) fn routes(reloader: &Reloader) -> Response {
    let runtime = reloader.gateway.runtime();
    let config = &runtime.loaded.config;
    let routes: Vec<_> = config
        .routes
        .iter()
        .map(|route| {
            let plugins: Vec<&str> = with_defaults(&config.plugins, &route.plugins)
                .iter()
                .map(|p| p.name())
                .collect();
            json!({
                "name": route.display_name(),
                "service": route.service,
                "upstream": route.upstream,
                "plugins": plugins,
            })
        })
        .collect();
    let proxies = runtime.proxies.describe(|name| {
        let own = config.proxies.iter().find(|p| p.name == name);
        with_defaults(&config.plugins, own.map_or(&[][..], |p| &p.plugins[..]))
            .iter()
            .map(|p| p.name().to_owned())
            .collect()
    });
    let body = json!({
        "routes": routes,
        "bindings": exposures(&runtime),
        "proxies": proxies,
    });
    json(StatusCode::OK, body.to_string())
}
