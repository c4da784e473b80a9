//! One request through a filter: the request callbacks, the next stage, the
//! response callbacks, then `proxy_on_log` and the context's end.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::BodyExt;

use super::stream::{self, LocalResponse, Properties, StreamState};
use super::vm::{Callback, Exported, Failure, Pool, Ticket};
use crate::error::{Code, ErrorResponse};
use crate::metrics::WasmCounters;
use crate::stage::{
    BoxFuture, ClientAddr, Consumer, HttpService, PathRewritten, Request, Response, full_body,
    read_body_limited,
};

/// A built filter, shared by every request of the route.
pub struct Filter {
    pool: Pool,
    exported: Exported,
    name: String,
    on_error: StatusCode,
    max_body: usize,
    counters: WasmCounters,
}

impl Filter {
    pub fn new(
        pool: Pool,
        name: String,
        on_error: StatusCode,
        max_body: usize,
        counters: WasmCounters,
    ) -> Filter {
        let exported = pool.exported();
        Filter {
            pool,
            exported,
            name,
            on_error,
            max_body,
            counters,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn failed(&self, failure: Failure) -> Response {
        self.counters.failure(failure.kind);
        tracing::warn!(plugin = %self.name, kind = failure.kind, "wasm filter failed: {}", failure.message);
        ErrorResponse::with_status(
            self.on_error,
            Code::Internal,
            format!(
                "the `{}` plugin failed on this request ({})",
                self.name, failure.kind
            ),
        )
        .into_response()
    }
}

pub fn wrap(filter: Arc<Filter>, inner: HttpService) -> HttpService {
    HttpService::new(tower::service_fn(move |req: Request| -> BoxFuture<_> {
        let (filter, inner) = (filter.clone(), inner.clone());
        Box::pin(async move {
            let mut run = Run {
                filter: &filter,
                ticket: None,
                stream: StreamState::default(),
            };
            let response = match run.request(req, inner).await {
                Ok(response) => response,
                Err(Stop::Answer(response)) => response,
                Err(Stop::Failed(failure)) => return Ok(filter.failed(failure)),
            };
            Ok(run.log(response))
        })
    }))
}

/// A request's walk through the filter; ends the filter's context when
/// dropped, answered or not (a client gone mid-request included).
struct Run<'a> {
    filter: &'a Filter,
    ticket: Option<Ticket>,
    stream: StreamState,
}

enum Stop {
    /// The filter answered (a local response): no later stage runs.
    Answer(Response),
    Failed(Failure),
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Stop {
        Stop::Failed(failure)
    }
}

impl Run<'_> {
    fn call(&mut self, callback: Callback) -> Result<i32, Failure> {
        self.filter
            .pool
            .call(&mut self.ticket, &mut self.stream, callback)
    }

    /// Runs `callback`, then the HTTP callouts it asked for, each answer
    /// handed to `proxy_on_http_call_response` (which may ask for more,
    /// within the stream's bound); the local answer, if one was sent.
    async fn step(&mut self, callback: Callback) -> Result<Option<Response>, Failure> {
        self.call(callback)?;
        loop {
            if let Some(answer) = self.answered() {
                return Ok(Some(answer));
            }
            let pending = std::mem::take(&mut self.stream.callouts);
            let Some(callouts) = self.filter.pool.callouts().filter(|_| !pending.is_empty()) else {
                return Ok(None);
            };
            for answer in callouts.run(pending).await {
                let callback = Callback::HttpCallResponse {
                    token: answer.token,
                    headers: answer.headers.len(),
                    body: answer.body.len(),
                    trailers: answer.trailers.len(),
                };
                self.stream.callout_answer = Some(answer);
                let called = self.call(callback);
                self.stream.callout_answer = None;
                called?;
                if self.stream.local.is_some() || self.stream.closed {
                    break;
                }
            }
        }
    }

    /// A local response or a closed stream, if a callback left one.
    fn answered(&mut self) -> Option<Response> {
        if let Some(local) = self.stream.local.take() {
            self.filter.counters.local_response.inc();
            return Some(local_response(local));
        }
        if std::mem::take(&mut self.stream.closed) {
            self.filter.counters.local_response.inc();
            return Some(
                ErrorResponse::with_status(
                    StatusCode::FORBIDDEN,
                    Code::PermissionDenied,
                    format!("the `{}` plugin closed the request", self.filter.name),
                )
                .into_response(),
            );
        }
        None
    }

    async fn request(&mut self, req: Request, mut inner: HttpService) -> Result<Response, Stop> {
        use tower::{Service as _, ServiceExt as _};
        let (mut parts, body) = req.into_parts();
        self.stream.request_headers = stream::request_pairs(&parts);
        self.stream.properties = Properties {
            source_address: parts
                .extensions
                .get::<ClientAddr>()
                .map(|a| a.0.to_string()),
            consumer: parts.extensions.get::<Consumer>().map(|c| c.0.clone()),
            custom: Vec::new(),
        };
        let with_body = self.filter.exported.request_body && !http_body::Body::is_end_stream(&body);
        let count = self.stream.request_headers.len();
        let step = self.step(Callback::RequestHeaders {
            count,
            end: !with_body,
        });
        if let Some(answer) = step.await? {
            return Err(Stop::Answer(answer));
        }
        // Ok: the body as it came; Err: the bytes the filter saw (and maybe changed).
        let body = if with_body {
            let limit = self.filter.max_body;
            let bytes =
                read_body_limited(&parts.headers, body, limit, "the wasm plugin's `max_body`")
                    .await
                    .map_err(|e| Stop::Answer(e.into_response()))?;
            let size = bytes.len();
            self.stream.request_body = Some(bytes);
            if let Some(answer) = self.step(Callback::RequestBody { size, end: true }).await? {
                return Err(Stop::Answer(answer));
            }
            Err(self.stream.request_body.take().unwrap_or_default())
        } else {
            Ok(body)
        };
        if std::mem::take(&mut self.stream.request_edited) {
            apply_request_edits(&mut parts, &self.stream.request_headers).map_err(Failure::abi)?;
        }
        let body = match body {
            Ok(body) => body,
            Err(bytes) => {
                if std::mem::take(&mut self.stream.request_body_edited) {
                    parts
                        .headers
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                }
                full_body(bytes)
            }
        };
        self.filter.counters.continued.inc();
        let Ok(_) = inner.ready().await;
        let Ok(response) = inner.call(http::Request::from_parts(parts, body)).await;
        self.response(response).await
    }

    async fn response(&mut self, response: Response) -> Result<Response, Stop> {
        let exported = self.filter.exported;
        if !exported.response_headers && !exported.response_body {
            return Ok(response);
        }
        let (mut parts, body) = response.into_parts();
        self.stream.response_headers = stream::response_pairs(parts.status, &parts.headers);
        // The body is read whole only for a filter with body callbacks.
        let mut held = if exported.response_body {
            let collected = collect_limited(body, self.filter.max_body)
                .await
                .map_err(|message| Stop::Failed(Failure::abi(message)))?;
            Held::Collected(collected)
        } else {
            Held::Streaming(body)
        };
        let empty = matches!(&held, Held::Collected(c) if c.data.is_empty());
        let count = self.stream.response_headers.len();
        let step = self.step(Callback::ResponseHeaders { count, end: empty });
        if let Some(answer) = step.await? {
            return Err(Stop::Answer(answer));
        }
        if let Held::Collected(collected) = &mut held
            && !empty
        {
            let size = collected.data.len();
            self.stream.response_body = Some(std::mem::take(&mut collected.data));
            let step = self.step(Callback::ResponseBody { size, end: true });
            if let Some(answer) = step.await? {
                return Err(Stop::Answer(answer));
            }
            collected.data = self.stream.response_body.take().unwrap_or_default();
        }
        if std::mem::take(&mut self.stream.response_edited) {
            apply_response_edits(&mut parts, &self.stream.response_headers)
                .map_err(Failure::abi)?;
        }
        let body = match held {
            Held::Streaming(body) => body,
            Held::Collected(collected) => {
                if std::mem::take(&mut self.stream.response_body_edited) {
                    let length = HeaderValue::from(collected.data.len());
                    parts.headers.insert(header::CONTENT_LENGTH, length);
                }
                collected.into_body()
            }
        };
        Ok(http::Response::from_parts(parts, body))
    }

    /// `proxy_on_log`, once the answer is known (a failure there is logged,
    /// the answer stands).
    fn log(&mut self, response: Response) -> Response {
        if self.ticket.is_some() && self.filter.exported.log {
            self.stream.response_headers =
                stream::response_pairs(response.status(), response.headers());
            if let Err(failure) = self.call(Callback::Log) {
                self.filter.counters.failure(failure.kind);
                tracing::warn!(plugin = %self.filter.name, "wasm filter failed in proxy_on_log: {}", failure.message);
            }
        }
        response
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        // Not while unwinding: a second panic would abort the process.
        if self.ticket.is_some() && !std::thread::panicking() {
            let _ = self.call(Callback::Done);
        }
    }
}

fn local_response(local: LocalResponse) -> Response {
    let mut response = http::Response::new(full_body(local.body));
    *response.status_mut() =
        StatusCode::from_u16(local.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in local.headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(&name),
            HeaderValue::from_bytes(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    if !local.details.is_empty() {
        tracing::debug!(details = %local.details, "wasm filter answered the request");
    }
    response
}

/// The request as the filter left it: its headers, and its path and query
/// (`:path`) and host (`:authority`); a new path is marked
/// [`PathRewritten`] for the route to match again.
fn apply_request_edits(
    parts: &mut http::request::Parts,
    pairs: &stream::Pairs,
) -> Result<(), String> {
    let mut headers = stream::header_map(pairs)?;
    if let Some(authority) = stream::get(pairs, b":authority")
        && !authority.is_empty()
    {
        let host =
            HeaderValue::from_bytes(authority).map_err(|_| "invalid :authority".to_owned())?;
        // An absolute-form or HTTP/2 request carries it in its URI too.
        if parts
            .uri
            .authority()
            .is_some_and(|a| a.as_str().as_bytes() != authority)
        {
            let mut uri = std::mem::take(&mut parts.uri).into_parts();
            uri.authority = Some(
                http::uri::Authority::try_from(authority)
                    .map_err(|_| "invalid :authority".to_owned())?,
            );
            parts.uri =
                http::Uri::from_parts(uri).map_err(|e| format!("the filter's :authority: {e}"))?;
        }
        headers.insert(header::HOST, host);
    }
    if let Some(path) = stream::get(pairs, b":path") {
        let old = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        if path != old.as_bytes() {
            let new = http::uri::PathAndQuery::try_from(path)
                .ok()
                .filter(|p| p.as_str().starts_with('/'))
                .ok_or_else(|| {
                    format!(
                        "the filter set an invalid :path {:?}",
                        String::from_utf8_lossy(path)
                    )
                })?;
            let path_changed = new.path() != parts.uri.path();
            let mut uri = std::mem::take(&mut parts.uri).into_parts();
            uri.path_and_query = Some(new);
            parts.uri =
                http::Uri::from_parts(uri).map_err(|e| format!("the filter's :path: {e}"))?;
            if path_changed {
                parts.extensions.insert(PathRewritten);
            }
        }
    }
    parts.headers = headers;
    Ok(())
}

fn apply_response_edits(
    parts: &mut http::response::Parts,
    pairs: &stream::Pairs,
) -> Result<(), String> {
    parts.headers = stream::header_map(pairs)?;
    if let Some(status) = stream::get(pairs, b":status") {
        parts.status = std::str::from_utf8(status)
            .ok()
            .and_then(|s| s.parse::<u16>().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or_else(|| {
                format!(
                    "the filter set an invalid :status {:?}",
                    String::from_utf8_lossy(status)
                )
            })?;
    }
    Ok(())
}

/// A response body as the filter's callbacks see it.
enum Held {
    /// Passed on as it comes (no body callbacks).
    Streaming(crate::stage::Body),
    /// Read whole for the body callbacks.
    Collected(Collected),
}

/// A body read whole, its trailers kept (gRPC's status is in them).
struct Collected {
    data: Bytes,
    trailers: Option<http::HeaderMap>,
}

impl Collected {
    fn into_body(self) -> crate::stage::Body {
        let Some(trailers) = self.trailers else {
            return full_body(self.data);
        };
        let frames = [
            http_body::Frame::data(self.data),
            http_body::Frame::trailers(trailers),
        ]
        .map(Ok::<_, std::convert::Infallible>);
        crate::stage::box_body(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }
}

async fn collect_limited(mut body: crate::stage::Body, limit: usize) -> Result<Collected, String> {
    let mut buf = bytes::BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the response body: {e}"))?;
        let frame = match frame.into_data() {
            Ok(data) => {
                if buf.len() + data.len() > limit {
                    return Err(format!(
                        "the response body is larger than the plugin's `max_body` of {limit} bytes"
                    ));
                }
                buf.extend_from_slice(&data);
                continue;
            }
            Err(frame) => frame,
        };
        if let Ok(more) = frame.into_trailers() {
            trailers
                .get_or_insert_with(http::HeaderMap::new)
                .extend(more);
        }
    }
    Ok(Collected {
        data: buf.freeze(),
        trailers,
    })
}
