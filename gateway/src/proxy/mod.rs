//! Plain HTTP reverse proxying (`proxies:`, `http_upstreams:`,
//! docs/proxying.md): requests no route, webhook, GraphQL endpoint or gRPC
//! method takes go, through the proxy's plugins, to an HTTP/1.1 service,
//! bodies streamed both ways.
//!
//! `upstream.rs` holds the endpoints and the per-worker connection pools,
//! `headers.rs` what crosses (hop-by-hop headers dropped, `X-Forwarded-*`
//! set, the prefix rewritten), `build.rs` the compilation of the config.

mod body;
mod build;
mod conn;
pub mod headers;
pub mod upstream;

use std::sync::Arc;

use http::{HeaderValue, StatusCode, Version};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use prometheus::IntCounter;
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::{ClientAddr, HttpService, Request, Response};

use crate::config::proxy::ForwardedFor;
use crate::routing::hosts::{host_rank, request_host};
use body::{Capped, Overflow};
use conn::SendError;
use upstream::{HttpEndpoint, SharedPool};

/// Marks a request that came over a TLS listener (`X-Forwarded-Proto`).
#[derive(Clone, Copy, Debug)]
pub struct Encrypted;

/// A config version's proxies, longest prefix first.
#[derive(Default)]
pub struct Proxies {
    served: Vec<Served>,
    /// `http_upstreams:`, by name (the admin API's view).
    pools: Vec<SharedPool>,
}

/// A proxy behind its plugins.
pub struct Served {
    proxy: Arc<Proxy>,
    stack: HttpService,
}

/// One compiled proxy.
pub struct Proxy {
    pub name: String,
    pub prefix: String,
    hosts: Vec<String>,
    pub upstream: SharedPool,
    rewrite_prefix: Option<String>,
    preserve_host: bool,
    forwarded_for: ForwardedFor,
    timeout: std::time::Duration,
    max_body: usize,
    reject_ambiguous_paths: bool,
    failures: Failures,
}

/// `switchyard_proxy_upstream_errors_total{proxy, kind}`, resolved at
/// build time.
struct Failures {
    connect: IntCounter,
    timeout: IntCounter,
    broken: IntCounter,
    saturated: IntCounter,
}

// === impl Proxies ===

impl Proxies {
    pub fn is_empty(&self) -> bool {
        self.served.is_empty()
    }

    /// What `/admin/routes` shows of each proxy.
    pub fn describe(&self, plugins: impl Fn(&str) -> Vec<String>) -> Vec<serde_json::Value> {
        self.served
            .iter()
            .map(|s| {
                let p = &s.proxy;
                serde_json::json!({
                    "name": p.name,
                    "prefix": p.prefix,
                    "hosts": p.hosts,
                    "upstream": p.upstream.name,
                    "rewrite_prefix": p.rewrite_prefix,
                    "plugins": plugins(&p.name),
                })
            })
            .collect()
    }

    /// What `/admin/upstreams` shows of each HTTP upstream.
    pub fn upstreams(&self) -> Vec<serde_json::Value> {
        self.pools.iter().map(|p| p.status()).collect()
    }

    /// The proxy for a request's (normalised) path and host: the longest
    /// prefix, then the most specific host.
    pub fn find(&self, req: &Request) -> Option<&Served> {
        if self.served.is_empty() {
            return None;
        }
        let path = req.uri().path();
        let host = request_host(req);
        self.served
            .iter()
            .filter(|s| headers::under(path, &s.proxy.prefix))
            .filter_map(|s| {
                let rank = host_rank(&s.proxy.hosts, host.as_deref())?;
                Some(((s.proxy.prefix.trim_end_matches('/').len(), rank), s))
            })
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, s)| s)
    }
}

impl Served {
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// The proxy's pipeline: plugins, then the forwarding.
    pub fn stack(&self) -> HttpService {
        self.stack.clone()
    }
}

// === impl Proxy ===

impl Proxy {
    /// The 400 for a path the service may split differently from the
    /// gateway (`reject_ambiguous_paths`), if `path` is one.
    pub fn refuse_path(&self, path: &str) -> Option<ErrorResponse> {
        if !self.reject_ambiguous_paths || !headers::ambiguous(path) {
            return None;
        }
        Some(ErrorResponse::new(
            Code::InvalidArgument,
            "the path holds `;`, `\\` or an escaped `/`, `\\` or `;`, which the service behind this proxy may read as a separator: refused (reject_ambiguous_paths)",
        ))
    }

    /// Forwards one request (never fails: errors are JSON responses).
    pub async fn call(&self, req: Request) -> Response {
        match self.forward(req).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }

    async fn forward(&self, req: Request) -> Result<Response, ErrorResponse> {
        let pool = &self.upstream;
        let Some(_in_flight) = pool.admit() else {
            self.failures.saturated.inc();
            return Err(ErrorResponse::new(
                Code::Unavailable,
                format!("upstream {} is saturated (max_concurrent)", pool.name),
            ));
        };
        let (mut parts, body) = req.into_parts();
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(too_large(self.max_body));
        }
        // A request without a body can be sent again to another endpoint
        // when the first refuses the connection.
        let bodyless = body.is_end_stream() || body.size_hint().exact() == Some(0);
        self.prepare(&mut parts)?;
        let overflow = Overflow::default();
        let mut body = Some(Capped::new(body, self.max_body, overflow.clone()).boxed_unsync());
        let attempts = if bodyless {
            pool.endpoint_count().min(3)
        } else {
            1
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let endpoint = pool.pick();
            let sent = body
                .take()
                .unwrap_or_else(switchyard_plugins::stage::empty_body);
            // The head is copied only when another attempt may need it.
            let headers = if attempt < attempts {
                parts.headers.clone()
            } else {
                std::mem::take(&mut parts.headers)
            };
            let request = self.upstream_request(&parts, headers, endpoint, sent)?;
            let result = tokio::time::timeout(self.timeout, pool.send(endpoint, request)).await;
            match result {
                Ok(Ok(response)) => return Ok(self.downstream(response)),
                Ok(Err(SendError::Connect(e))) => {
                    pool.mark_down(endpoint);
                    if attempt < attempts {
                        continue;
                    }
                    self.failures.connect.inc();
                    return Err(ErrorResponse::with_status(
                        StatusCode::BAD_GATEWAY,
                        Code::Unavailable,
                        format!(
                            "cannot connect to upstream {} ({}): {}",
                            pool.name,
                            endpoint.authority,
                            root_cause(&*e)
                        ),
                    ));
                }
                Ok(Err(SendError::Broken(e))) => return Err(self.failed(&*e, &overflow, endpoint)),
                Err(_elapsed) => {
                    self.failures.timeout.inc();
                    return Err(ErrorResponse::with_status(
                        StatusCode::GATEWAY_TIMEOUT,
                        Code::DeadlineExceeded,
                        format!(
                            "upstream {} did not answer within {}",
                            pool.name,
                            humantime::format_duration(self.timeout)
                        ),
                    ));
                }
            }
        }
    }

    /// The request's head as it goes upstream (less its URI, set per
    /// endpoint): hop-by-hop headers out, `X-Forwarded-*` in, `Host`.
    fn prepare(&self, parts: &mut http::request::Parts) -> Result<(), ErrorResponse> {
        let host = request_host_of(parts);
        headers::strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(http::header::EXPECT);
        let client = headers::Client {
            ip: parts.extensions.get::<ClientAddr>().map(|a| a.0.ip()),
            proto: if parts.extensions.get::<Encrypted>().is_some() {
                "https"
            } else {
                "http"
            },
            host: host.as_deref(),
        };
        headers::set_forwarded(&mut parts.headers, self.forwarded_for, &client);
        parts.headers.remove(http::header::HOST);
        if self.preserve_host
            && let Some(host) = host.as_deref().and_then(|h| HeaderValue::try_from(h).ok())
        {
            parts.headers.insert(http::header::HOST, host);
        }
        let path = match &self.rewrite_prefix {
            Some(with) => headers::rewrite(parts.uri.path(), &self.prefix, with, parts.uri.query()),
            None => parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        };
        let path = path
            .parse()
            .map_err(|_| ErrorResponse::new(Code::InvalidArgument, "invalid request path"))?;
        parts.uri = http::Uri::from_parts({
            let mut uri = http::uri::Parts::default();
            uri.path_and_query = Some(path);
            uri
        })
        .map_err(|_| ErrorResponse::new(Code::InvalidArgument, "invalid request path"))?;
        Ok(())
    }

    fn upstream_request(
        &self,
        parts: &http::request::Parts,
        headers: http::HeaderMap,
        endpoint: &HttpEndpoint,
        body: switchyard_plugins::stage::Body,
    ) -> Result<Request, ErrorResponse> {
        let mut request = http::Request::new(body);
        *request.method_mut() = parts.method.clone();
        // Origin form (`/path?query`); the connection is the endpoint's.
        *request.uri_mut() = parts.uri.clone();
        *request.version_mut() = Version::HTTP_11;
        *request.headers_mut() = headers;
        if !request.headers().contains_key(http::header::HOST) {
            request
                .headers_mut()
                .insert(http::header::HOST, endpoint.host.clone());
        }
        Ok(request)
    }

    /// The upstream's answer as the client gets it.
    fn downstream(&self, response: Response) -> Response {
        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        parts.version = Version::HTTP_11;
        http::Response::from_parts(parts, body)
    }

    /// A request that failed after the connection was made.
    fn failed(
        &self,
        error: &(dyn std::error::Error + Send + Sync + 'static),
        overflow: &Overflow,
        endpoint: &HttpEndpoint,
    ) -> ErrorResponse {
        if overflow.is_set() {
            return too_large(self.max_body);
        }
        if let Some(timed_out) = find::<switchyard_plugins::body_deadline::BodyTimedOut>(error) {
            return ErrorResponse::with_status(
                StatusCode::REQUEST_TIMEOUT,
                Code::DeadlineExceeded,
                timed_out.to_string(),
            );
        }
        self.failures.broken.inc();
        tracing::debug!(proxy = %self.name, endpoint = %endpoint.authority, error = ?error, "proxied request failed");
        ErrorResponse::with_status(
            StatusCode::BAD_GATEWAY,
            Code::Unavailable,
            format!(
                "upstream {} ({}) failed: {}",
                self.upstream.name,
                endpoint.authority,
                root_cause(error)
            ),
        )
    }
}

/// The host the client asked for (`:authority` or `Host`).
fn request_host_of(parts: &http::request::Parts) -> Option<String> {
    if let Some(authority) = parts.uri.authority() {
        return Some(authority.as_str().to_owned());
    }
    parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn too_large(limit: usize) -> ErrorResponse {
    ErrorResponse::with_status(
        StatusCode::PAYLOAD_TOO_LARGE,
        Code::InvalidArgument,
        format!("request body is larger than the proxy's max_request_body of {limit} bytes"),
    )
}

/// The first error of type `T` in `error`'s chain.
fn find<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        next = e.source();
    }
    None
}

/// The innermost error's message (hyper's outer ones say little).
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut last = error;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}
