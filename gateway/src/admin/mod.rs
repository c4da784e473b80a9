//! The admin listener: `/metrics` (Prometheus), `/healthz` (the process is
//! up), `/readyz` (listeners bound and not draining), `/admin/events` (the
//! event outbox per sink), `/admin/events/dead/<sink>?limit=N` (a sink's
//! newest dead letters, default 100).

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::{Response, full_body};
use tokio::net::TcpListener;

use crate::edge::{Gateway, Shutdown};

/// Serves the admin endpoints until shutdown.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>, shutdown: Shutdown) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let gateway = gateway.clone();
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(answer(&gateway, req.method(), req.uri())) }
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

fn answer(gateway: &Gateway, method: &Method, uri: &http::Uri) -> Response {
    let path = uri.path();
    if method != Method::GET && method != Method::HEAD {
        return ErrorResponse::with_status(
            StatusCode::METHOD_NOT_ALLOWED,
            Code::Unimplemented,
            "admin endpoints answer GET",
        )
        .into_response();
    }
    match path {
        "/metrics" => text(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            gateway.metrics.render(),
        ),
        "/healthz" => text(StatusCode::OK, "text/plain", "ok\n".into()),
        "/readyz" if gateway.is_ready() => text(StatusCode::OK, "text/plain", "ready\n".into()),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".into(),
        ),
        "/admin/events" => match &gateway.runtime().events {
            Some(events) => text(
                StatusCode::OK,
                "application/json",
                events.status().to_string(),
            ),
            None => ErrorResponse::new(
                Code::NotFound,
                "events are not configured (no `events:` section)",
            )
            .into_response(),
        },
        _ if path.starts_with(DEAD_LETTERS) => dead_letters(gateway, uri),
        _ => {
            ErrorResponse::new(Code::NotFound, format!("no admin endpoint {path}")).into_response()
        }
    }
}

const DEAD_LETTERS: &str = "/admin/events/dead/";

/// `/admin/events/dead/<sink>?limit=N`: the sink's newest dead letters
/// (reason, times, the stored CloudEvent), newest first.
fn dead_letters(gateway: &Gateway, uri: &http::Uri) -> Response {
    let sink = &uri.path()[DEAD_LETTERS.len()..];
    let limit = uri
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("limit="))
        .map(str::parse::<usize>);
    let limit = match limit {
        None => 100,
        Some(Ok(n)) => n.min(10_000),
        Some(Err(_)) => {
            return ErrorResponse::new(Code::InvalidArgument, "`limit` must be a number")
                .into_response();
        }
    };
    let runtime = gateway.runtime();
    let Some(events) = &runtime.events else {
        return ErrorResponse::new(
            Code::NotFound,
            "events are not configured (no `events:` section)",
        )
        .into_response();
    };
    match events.dead_letters(sink, limit) {
        Some(Ok(dead)) => text(
            StatusCode::OK,
            "application/json",
            serde_json::json!({ "sink": sink, "dead_letters": dead }).to_string(),
        ),
        Some(Err(e)) => ErrorResponse::new(Code::Internal, format!("cannot read the outbox: {e}"))
            .into_response(),
        None => {
            let known: Vec<&str> = events.sink_names().collect();
            ErrorResponse::new(
                Code::NotFound,
                format!("no sink {sink:?}; events.sinks has [{}]", known.join(", ")),
            )
            .into_response()
        }
    }
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
