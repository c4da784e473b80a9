//! The transcoding handler: the innermost stage of a REST route. It reads the
//! body (bounded), builds the request message, calls the upstream and renders
//! the answer — or the error — as JSON. gRPC clients' calls (matched by
//! `grpc::GrpcMethods`) go to `grpc::passthrough` instead, WebSocket
//! upgrades at the same paths to `websocket`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::{
    BoxFuture, HttpService, PathRewritten, Request, Response, full_body, read_body_limited,
};

use prost_reflect::DynamicMessage;

use super::binding::Binding;
use super::{request, response};
use crate::events::Occurrence;
use crate::observability::trace;
use crate::routing::split::Chosen;
use crate::routing::{HeaderForwarding, Matched, Rematch, RouteCtx};
use crate::upstream::grpc::Reply;
use crate::upstream::{Call, Upstream, UpstreamError};

/// The handler service shared by every REST route.
pub fn service() -> HttpService {
    HttpService::new(tower::service_fn(
        |req: Request| -> BoxFuture<Result<Response, Infallible>> {
            // Boxed with an explicit `Send` bound: rustc cannot prove `Send` for the
            // un-erased future through the boxed-error body type (rust-lang/rust#102211).
            Box::pin(async move {
                Ok(handle(req)
                    .await
                    .unwrap_or_else(ErrorResponse::into_response))
            })
        },
    ))
}

async fn handle(mut req: Request) -> Result<Response, ErrorResponse> {
    if let Some(grpc) = req.extensions_mut().remove::<crate::grpc::GrpcMatched>() {
        // Boxed: its future is not part of every REST call's.
        return Ok(Box::pin(crate::grpc::passthrough::handle(req, grpc)).await);
    }
    if let Some(ws) = req.extensions_mut().remove::<super::websocket::WsMatched>() {
        return super::websocket::accept(req, ws);
    }
    let Some(Matched {
        binding,
        captures,
        options_allow,
    }) = req.extensions_mut().remove::<Matched>()
    else {
        return Err(ErrorResponse::new(
            Code::Internal,
            "request reached the transcoder without a route",
        ));
    };
    let (binding, captures) = match req.extensions_mut().remove::<PathRewritten>() {
        Some(PathRewritten) => rematch(&mut req, &binding)?,
        None => (binding, captures),
    };
    if let Some(allow) = options_allow {
        // OPTIONS that no plugin (CORS) answered: say what the path supports.
        let mut res = http::Response::new(switchyard_plugins::stage::empty_body());
        *res.status_mut() = StatusCode::NO_CONTENT;
        res.headers_mut().insert(header::ALLOW, allow);
        return Ok(res);
    }
    let (parts, body) = req.into_parts();
    let route = &binding.route;
    let unary_get = binding.http_method == http::Method::GET && !binding.rpc.is_server_streaming();
    if unary_get && let Some(cache) = &route.cache {
        // Boxed: its future is not part of every REST call's.
        let serve = super::cached::serve(cache, binding.clone(), captures, parts);
        return Box::pin(serve).await;
    }
    let bytes =
        read_body_limited(&parts.headers, body, route.max_body, "the route's limit").await?;
    let chosen = route.choose_for(&parts.headers, &parts.extensions);
    if binding.rpc.is_server_streaming() {
        let message = request::build_message(
            &binding,
            &captures,
            parts.uri.query(),
            &parts.headers,
            &bytes,
        )?;
        let upstream = chosen.upstream.clone();
        return super::stream::serve(binding, upstream, message, &parts.headers).await;
    }
    let rendered = unary(&binding, &captures, &parts, &bytes, chosen).await?;
    Ok(ok_response(&binding, rendered.json, rendered.metadata))
}

/// The method of the route that serves the path a plugin rewrote the
/// request to; a path the route does not serve is 404 (a plugin cannot
/// send a request past another route's plugins).
fn rematch(
    req: &mut Request,
    matched: &Binding,
) -> Result<(Arc<Binding>, Vec<String>), ErrorResponse> {
    let Some(Rematch(table)) = req.extensions_mut().remove::<Rematch>() else {
        return Err(ErrorResponse::new(
            Code::Internal,
            "a plugin rewrote the path of a route that cannot match it again",
        ));
    };
    let host = crate::routing::hosts::request_host(req);
    let found = table.lookup(
        req.method(),
        host.as_deref(),
        req.uri().path(),
        req.headers(),
    )?;
    if found.binding.route.index != matched.route.index {
        return Err(ErrorResponse::new(
            Code::NotFound,
            format!(
                "a plugin of route `{}` rewrote the path to {}, which the route does not serve",
                matched.route.name,
                req.uri().path()
            ),
        ));
    }
    Ok((found.binding, found.captures))
}

/// A unary call's answer: the reply rendered as the JSON body, and the
/// upstream's response metadata.
pub(crate) struct Rendered {
    pub json: Bytes,
    pub metadata: HeaderMap,
}

/// One unary REST call of `binding` through `chosen`: the request message
/// from the path, query and `body`, the mirror's copy, the call, the
/// route's events, the reply rendered (or the error to answer).
pub(crate) async fn unary(
    binding: &Arc<Binding>,
    captures: &[String],
    parts: &http::request::Parts,
    body: &Bytes,
    chosen: Chosen<'_>,
) -> Result<Rendered, ErrorResponse> {
    let message =
        request::build_message(binding, captures, parts.uri.query(), &parts.headers, body)?;
    let route = &binding.route;
    route.events.admit(binding.rpc.name())?;
    let metadata = forward_metadata(&parts.headers, &route.headers);
    if let Some(mirror) = &route.mirror {
        mirror.copy(binding, &metadata, &message);
    }
    let call = Call {
        path: &binding.grpc_path,
        output: &binding.output,
        metadata,
        timeout: route.timeout,
        idempotent: binding.http_method == http::Method::GET
            || binding.http_method == http::Method::HEAD,
    };
    // The reply is rendered before the events, which reuse the JSON when
    // their data is the whole response.
    let outcome = call_upstream(route, chosen.upstream, call, &message)
        .await
        .map(|reply| {
            let json = response::render(binding, &reply.message);
            (reply, json)
        });
    let method = binding.rpc.name();
    if route.events.any(method) || route.invalidations.any(method) {
        let reply = outcome.as_ref().map(|(reply, _)| &reply.message);
        let mut call = Occurrence::for_request(&message, reply, parts, &route.serialize);
        call.variant = chosen.variant.map(|v| &**v);
        if let Ok((_, Ok(json))) = &outcome
            && binding.response_body.is_none()
        {
            call.response_json = Some(json);
        }
        route.events.emit(method, &call);
        route.invalidations.apply(method, &call);
    }
    let (reply, json) = outcome?;
    Ok(Rendered {
        json: json?,
        metadata: reply.metadata,
    })
}

/// One unary call of `route` through `upstream` (the route's, or its
/// split's choice), recorded in the upstream metrics; a failure becomes the
/// error to answer (REST) or to report (GraphQL): the upstream's status
/// with its details, or a 502.
pub(crate) async fn call_upstream(
    route: &RouteCtx,
    upstream: &Upstream,
    call: Call<'_>,
    message: &DynamicMessage,
) -> Result<Reply, ErrorResponse> {
    let started = Instant::now();
    let result = upstream.unary(call, message).await;
    observe_upstream(route, upstream, started, &result);
    result.map_err(|error| upstream_error(route, error))
}

/// Records a call's outcome (its gRPC code) and duration in the upstream
/// metrics; unary calls and the opening of server streams alike.
pub(crate) fn observe_upstream<T>(
    route: &RouteCtx,
    upstream: &Upstream,
    started: Instant,
    result: &Result<T, UpstreamError>,
) {
    observe_outcome(route, upstream, started, result.as_ref().err());
}

/// [`observe_upstream`] for a call that succeeded (`None`) or failed.
pub(crate) fn observe_outcome(
    route: &RouteCtx,
    upstream: &Upstream,
    started: Instant,
    error: Option<&UpstreamError>,
) {
    let code = match error {
        None => Code::Ok,
        Some(UpstreamError::Status(status) | UpstreamError::Transport { status, .. }) => {
            Code::from_i32(status.code() as i32)
        }
        Some(_) => Code::Internal,
    };
    route
        .metrics
        .observe_upstream(&upstream.name, code, started.elapsed());
}

/// A failed call as the error to answer: the upstream's status with its
/// details, or a 502 when the upstream broke the protocol.
pub(crate) fn upstream_error(route: &RouteCtx, error: UpstreamError) -> ErrorResponse {
    match error {
        UpstreamError::Status(status) | UpstreamError::Transport { status, .. } => {
            response::status_to_error(route.rpc_status.as_ref(), &status, &route.serialize)
        }
        UpstreamError::ReplyTooLarge { limit } => bad_gateway(format!(
            "the upstream's reply is larger than limits.max_upstream_message ({limit} bytes)"
        )),
        UpstreamError::Protocol(message) => bad_gateway(message),
    }
}

/// The upstream, not the client, is at fault: 502.
fn bad_gateway(message: String) -> ErrorResponse {
    ErrorResponse::with_status(StatusCode::BAD_GATEWAY, Code::Internal, message)
}

pub(crate) fn ok_response(binding: &Binding, json: Bytes, metadata: HeaderMap) -> Response {
    let mut res = http::Response::new(full_body(json));
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    copy_response_metadata(metadata, &binding.route.headers, headers);
    res
}

/// Only allowed headers become metadata: hop-by-hop and internal headers must
/// not reach upstreams.
///
/// Forwarded values are marked sensitive, so HPACK sends them as never-indexed
/// literals: the upstream connection is shared by every client, and one
/// client's `authorization` must not sit in (or churn) the shared table.
pub(crate) fn forward_metadata(headers: &HeaderMap, rules: &HeaderForwarding) -> HeaderMap {
    let mut out = HeaderMap::new();
    let sensitive = |value: &HeaderValue| {
        let mut value = value.clone();
        value.set_sensitive(true);
        value
    };
    for name in &rules.forward {
        for value in headers.get_all(name) {
            out.append(name.clone(), sensitive(value));
        }
    }
    // The trace context always goes along (the edge made sure of a valid
    // `traceparent`), so the upstream's spans join the client's trace.
    for name in [trace::TRACEPARENT, trace::TRACESTATE] {
        if let Some(value) = headers.get(name)
            && !rules.forward.iter().any(|f| f == name)
        {
            out.insert(name, value.clone());
        }
    }
    if !rules.forward_prefixes.is_empty() {
        for (name, value) in headers {
            let forwarded = rules
                .forward_prefixes
                .iter()
                .any(|p| name.as_str().starts_with(p.as_str()));
            if forwarded
                && !HeaderForwarding::is_reserved(name.as_str())
                && !rules.forward.contains(name)
                && name != trace::TRACEPARENT
                && name != trace::TRACESTATE
            {
                out.append(name.clone(), sensitive(value));
            }
        }
    }
    out
}

/// Response metadata comes back as `{prefix}{key}` headers (binary `-bin`
/// metadata included, still base64 as on the wire).
fn copy_response_metadata(metadata: HeaderMap, rules: &HeaderForwarding, out: &mut HeaderMap) {
    let mut last = None;
    for (name, value) in metadata {
        // `into_iter` names only the first of repeated values.
        if name.is_some() {
            last = name;
        }
        let Some(name) = &last else { continue };
        if HeaderForwarding::is_reserved(name.as_str()) || name == header::DATE {
            continue;
        }
        if let Ok(prefixed) =
            HeaderName::try_from(format!("{}{}", rules.response_prefix, name.as_str()))
        {
            out.append(prefixed, value);
        }
    }
}
