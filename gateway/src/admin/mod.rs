//! The admin listener (loopback by default; `admin.token` asks for a bearer
//! token on everything but the probes):
//!
//! - `GET /metrics` (Prometheus), `/healthz` (the process is up), `/readyz`
//!   (listeners bound and not draining, critical upstreams serving, the
//!   outbox committing);
//! - `GET /admin/config` (the running config, secrets redacted, its version
//!   and the reload history), `POST /admin/reload`, `GET /admin/routes`
//!   (the compiled route table), `GET /admin/upstreams` (endpoints, health,
//!   ejections);
//! - `GET /console`: the admin console, a page over the API above;
//! - `GET /admin/events` (the event outbox per sink),
//!   `/admin/events/dead/<sink>?limit=N` (a sink's newest dead letters);
//! - `GET /admin/cache` (the response cache's size), `POST
//!   /admin/cache/purge?prefix=P&route=R` (remove entries).

use std::convert::Infallible;
use std::sync::Arc;

use http::{HeaderMap, Method, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use subtle::ConstantTimeEq;
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::{Response, full_body};
use tokio::net::TcpListener;

use crate::edge::Shutdown;
use crate::reload::Reloader;

mod cache;
mod config;
mod console;
mod events;
mod health;

pub use health::not_ready;

/// Serves the admin endpoints until shutdown.
pub async fn serve(listener: TcpListener, reloader: Arc<Reloader>, shutdown: Shutdown) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let reloader = reloader.clone();
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let reloader = reloader.clone();
                    async move { Ok::<_, Infallible>(answer(&reloader, &req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            () = &mut stop => break,
        }
    }
}

async fn answer(reloader: &Reloader, req: &hyper::Request<Incoming>) -> Response {
    let gateway = &reloader.gateway;
    let (method, path) = (req.method(), req.uri().path());
    // The console's files hold no data: no token asked (its API calls are).
    if method == Method::GET
        && let Some(page) = console::serve(path)
    {
        return page;
    }
    match path {
        "/healthz" | "/readyz" => {}
        _ => {
            if let Some(refused) = authorize(reloader, req.headers()) {
                return refused;
            }
        }
    }
    if path == "/admin/cache/purge" {
        return match *method {
            Method::POST => cache::purge(gateway, req.uri()),
            _ => not_allowed("POST"),
        };
    }
    if path == "/admin/reload" {
        return match *method {
            Method::POST => config::reload(reloader).await,
            _ => not_allowed("POST"),
        };
    }
    if method != Method::GET && method != Method::HEAD {
        return not_allowed("GET");
    }
    match path {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            gateway.metrics.render(),
        ),
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" => health::readyz(gateway),
        "/admin/upstreams" => health::upstreams(gateway),
        "/admin/config" => config::config(reloader),
        "/admin/routes" => config::routes(reloader),
        "/admin/events" => events::status(gateway),
        "/admin/cache" => cache::status(gateway),
        _ if path.starts_with(events::DEAD_LETTERS) => events::dead_letters(gateway, req.uri()),
        _ => {
            ErrorResponse::new(Code::NotFound, format!("no admin endpoint {path}")).into_response()
        }
    }
}

/// `None` when the request may go on: no `admin.token`, or the right one
/// as a bearer token (compared in constant time).
fn authorize(reloader: &Reloader, headers: &HeaderMap) -> Option<Response> {
    let runtime = reloader.gateway.runtime();
    let expected = runtime.loaded.config.admin.token.as_deref()?;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        return None;
    }
    let message = if given.is_empty() {
        "the admin API asks for `Authorization: Bearer <admin.token>`"
    } else {
        "the bearer token is not the admin token"
    };
    let mut res = ErrorResponse::new(Code::Unauthenticated, message).into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"switchyard-admin\""),
    );
    Some(res)
}

fn not_allowed(allowed: &'static str) -> Response {
    let mut res = ErrorResponse::with_status(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::Unimplemented,
        format!("this admin endpoint answers {allowed}"),
    )
    .into_response();
    res.headers_mut()
        .insert(header::ALLOW, http::HeaderValue::from_static(allowed));
    res
}

/// The `name=value` pairs of a request's query string (as sent).
fn query_pairs(uri: &http::Uri) -> impl Iterator<Item = (&str, &str)> {
    uri.query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| pair.split_once('='))
}

fn json(status: StatusCode, body: String) -> Response {
    text(status, "application/json", body)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut res = http::Response::new(full_body(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    res
}
