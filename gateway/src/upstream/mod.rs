//! Upstream gRPC services: multiplexed HTTP/2 connections to each endpoint,
//! balanced across endpoints (`balance.rs`) that are passed over while
//! ejected for failing (`outlier.rs`) or failing health checks (`health.rs`),
//! and unary calls with a per-call deadline and message-size limit, a
//! concurrency limit that sheds load, and budgeted retries (`retry.rs`);
//! server-streaming calls read as the caller asks (`stream.rs`).

pub mod balance;
pub mod endpoint;
pub mod grpc;
pub mod health;
pub mod outlier;
pub mod raw;
pub mod retry;
pub mod status;
pub mod stream;
pub mod tls;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Uri;
use http::uri::PathAndQuery;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tracing::Instrument as _;

use balance::Balancer;
use endpoint::{ConnSettings, Endpoint};
use health::{Checks, HealthPolicy};
use outlier::{EndpointMetrics, OutlierPolicy};
use retry::{Limit, RetryPolicy, UpstreamMetrics};

use crate::config::Balance;

/// A named upstream, ready for calls.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    endpoints: Arc<[Endpoint]>,
    /// Default deadline for calls.
    pub timeout: Duration,
    max_message: usize,
    limit: Arc<Limit>,
    retry: RetryPolicy,
    metrics: UpstreamMetrics,
    balancer: Arc<Balancer>,
    /// The health-check tasks, stopped when the last clone is dropped.
    _checks: Option<Arc<Checks>>,
}

/// How calls to an upstream are bounded and retried.
pub struct Options<'a> {
    /// Default deadline for calls.
    pub timeout: Duration,
    pub max_message: usize,
    /// Calls in flight beyond which new calls are refused (UNAVAILABLE).
    pub max_concurrent: usize,
    pub retry: RetryPolicy,
    pub metrics: UpstreamMetrics,
    pub balance: Balance,
    pub outlier: OutlierPolicy,
    /// Active health checks; none when `None`.
    pub health: Option<HealthPolicy>,
    /// The metrics of each endpoint, by endpoint address as configured.
    pub endpoint_metrics: &'a dyn Fn(&str) -> EndpointMetrics,
    /// TLS for `https://` endpoints (the public web roots when `None`).
    pub tls: Option<&'a tls::TlsSettings>,
}

/// An endpoint address that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid endpoint {endpoint:?}: {message}")]
pub struct EndpointError {
    pub endpoint: String,
    pub message: String,
}

/// What one call needs besides the message.
pub struct Call<'a> {
    pub path: &'a PathAndQuery,
    pub output: &'a MessageDescriptor,
    pub metadata: http::HeaderMap,
    pub timeout: Duration,
    /// Whether the call may run twice (a GET or HEAD binding): if so it is
    /// also retried when it may have reached the upstream.
    pub idempotent: bool,
}

/// Why a call did not produce a reply.
#[derive(Debug)]
pub enum UpstreamError {
    /// A gRPC status: sent by the upstream, or UNAVAILABLE (transport) or
    /// DEADLINE_EXCEEDED (our deadline).
    Status(tonic::Status),
    /// The reply is larger than `limits.max_upstream_message`.
    ReplyTooLarge { limit: usize },
    /// The upstream broke the gRPC protocol (bad framing, no status, garbage).
    Protocol(String),
    /// The transport failed before any answer: no connection, a refused
    /// stream, a reset or a closed connection. `status` is UNAVAILABLE. An
    /// UNAVAILABLE *sent by the upstream* is a [`UpstreamError::Status`].
    Transport {
        status: tonic::Status,
        /// The request cannot have reached the upstream's handler (no
        /// connection, not sent, or `REFUSED_STREAM`): safe to retry for any
        /// method. Otherwise only idempotent calls are retried.
        unsent: bool,
    },
}

impl UpstreamError {
    pub(crate) fn unsent(status: tonic::Status) -> UpstreamError {
        UpstreamError::Transport {
            status,
            unsent: true,
        }
    }
}

// === impl Upstream ===

impl Upstream {
    /// Prepares the endpoints; connections open lazily on first use, so a
    /// gateway starts (and a config validates) while an upstream is down.
    /// Health checks, if any, start now on the current tokio runtime.
    pub fn new(
        name: &str,
        endpoints: &[String],
        settings: ConnSettings,
        options: Options<'_>,
    ) -> Result<Upstream, EndpointError> {
        if endpoints.is_empty() {
            return Err(EndpointError {
                endpoint: String::new(),
                message: "an upstream needs at least one endpoint".into(),
            });
        }
        let mut list = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let metrics = (options.endpoint_metrics)(endpoint);
            list.push(endpoint_for(
                endpoint,
                settings,
                options.outlier,
                metrics,
                options.tls,
            )?);
        }
        let endpoints: Arc<[Endpoint]> = list.into();
        let checks = options
            .health
            .and_then(|policy| health::spawn(name, &endpoints, policy));
        Ok(Upstream {
            name: name.to_owned(),
            endpoints,
            timeout: options.timeout,
            max_message: options.max_message,
            limit: Arc::new(Limit::new(options.max_concurrent)),
            retry: options.retry,
            metrics: options.metrics,
            balancer: Arc::new(Balancer::new(options.balance)),
            _checks: checks.map(Arc::new),
        })
    }

    /// Whether some endpoint is in service (not ejected, not failing its
    /// health checks).
    pub fn is_serving(&self) -> bool {
        let now = Instant::now();
        self.endpoints.iter().any(|e| !e.is_out(now))
    }

    /// What `/admin/upstreams` shows of it.
    pub fn status(&self, critical: bool) -> status::UpstreamStatus {
        let now = Instant::now();
        let endpoints: Vec<_> = self.endpoints.iter().map(|e| e.status(now)).collect();
        status::UpstreamStatus {
            name: self.name.clone(),
            serving: endpoints.iter().any(|e| e.in_service),
            critical,
            in_flight: endpoints.iter().map(|e| e.in_flight).sum(),
            endpoints,
        }
    }

    /// A unary call, bounded by `call.timeout` (also sent as `grpc-timeout`)
    /// across all its attempts. Refused at once with UNAVAILABLE when
    /// `max_concurrent` calls are in flight; retried on transport failures
    /// (see [`UpstreamError::Transport`]) while the retry budget allows.
    pub async fn unary(
        &self,
        call: Call<'_>,
        message: &DynamicMessage,
    ) -> Result<grpc::Reply, UpstreamError> {
        let _permit = self.admit()?;
        let timeout = call.timeout;
        let deadline = Instant::now() + timeout;
        let span = crate::observability::otel::upstream_span(&self.name, call.path.as_str());
        // Boxed so the call state is not copied each time the enclosing futures move.
        let work = Box::pin(self.attempts(call, message, deadline));
        let result = match tokio::time::timeout(timeout, work)
            .instrument(span.clone())
            .await
        {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Status(tonic::Status::deadline_exceeded(
                format!("upstream `{}` did not answer within {timeout:?}", self.name),
            ))),
        };
        if !span.is_disabled() {
            let code = match &result {
                Ok(_) => 0,
                Err(UpstreamError::Status(status)) => status.code() as i32,
                Err(_) => tonic::Code::Unavailable as i32,
            };
            span.record("rpc.grpc.status_code", code);
        }
        result
    }

    /// A server-streaming call: `call.timeout` bounds the wait for the
    /// reply's head, not the stream (which lasts as long as its caller
    /// wants it, so no `grpc-timeout` is sent). Not counted against
    /// `max_concurrent` (long-lived streams would starve unary calls): the
    /// caller bounds how many it opens. Not retried once sent.
    pub async fn server_stream(
        &self,
        mut call: Call<'_>,
        message: &DynamicMessage,
    ) -> Result<stream::MessageStream, UpstreamError> {
        let timeout = call.timeout;
        let open = async {
            let (index, sender) = self.connect(None).await.map_err(UpstreamError::unsent)?;
            let endpoint = &self.endpoints[index];
            let mut head = grpc::UnaryCall {
                origin: &endpoint.origin,
                path: call.path,
                metadata: std::mem::take(&mut call.metadata),
                timeout,
                output: call.output,
                max_message: self.max_message,
            };
            let result = grpc::send(sender, &mut head, message, false).await;
            endpoint.record(&self.name, &result);
            self.messages(result?, call.output)
        };
        match tokio::time::timeout(timeout, open).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Status(tonic::Status::deadline_exceeded(
                format!(
                    "upstream `{}` did not start the stream within {timeout:?}",
                    self.name
                ),
            ))),
        }
    }

    /// The messages of a streaming reply whose head has arrived, decoded as
    /// `output` and each bounded by `max_upstream_message`; a failed head
    /// (an HTTP error, or a trailers-only error status) is the error.
    pub fn messages(
        &self,
        reply: http::Response<h2::RecvStream>,
        output: &prost_reflect::MessageDescriptor,
    ) -> Result<stream::MessageStream, UpstreamError> {
        let (parts, body) = reply.into_parts();
        match grpc::check_head(&parts)? {
            Some(compressed_ok) => Ok(stream::MessageStream::new(
                &parts,
                Some(body),
                compressed_ok,
                output.clone(),
                self.max_message,
            )),
            // Trailers-only: an error, or an OK stream with no messages.
            None => {
                match grpc::status_from(&parts.headers) {
                    Some(status) if status.code() == tonic::Code::Ok => Ok(
                        stream::MessageStream::new(&parts, None, false, output.clone(), 0),
                    ),
                    status => Err(UpstreamError::Status(status.unwrap_or_else(|| {
                        tonic::Status::unknown("upstream sent an invalid grpc-status")
                    }))),
                }
            }
        }
    }

    /// Attempts until one answers, the failure is not retryable, or the
    /// attempts, the budget or the deadline run out. A retry goes to another
    /// endpoint when there is one.
    async fn attempts(
        &self,
        mut call: Call<'_>,
        message: &DynamicMessage,
        deadline: Instant,
    ) -> Result<grpc::Reply, UpstreamError> {
        self.retry.deposit();
        let mut avoid = None;
        let mut attempt = 1;
        loop {
            let last = attempt >= self.retry.attempts;
            let metadata = if last {
                std::mem::take(&mut call.metadata)
            } else {
                call.metadata.clone()
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let (used, result) = self
                .attempt(&call, metadata, remaining, message, avoid)
                .await;
            let retry = match &result {
                Err(UpstreamError::Transport { unsent, .. }) => {
                    !last
                        && (*unsent || call.idempotent)
                        // Never retry with (next to) no time left.
                        && deadline.saturating_duration_since(Instant::now())
                            > Duration::from_millis(1)
                        && self.retry.withdraw()
                }
                _ => false,
            };
            if !retry {
                return result;
            }
            self.metrics.retries.inc();
            avoid = used;
            attempt += 1;
        }
    }

    /// One attempt; also says which endpoint it used, if any.
    async fn attempt(
        &self,
        call: &Call<'_>,
        metadata: http::HeaderMap,
        timeout: Duration,
        message: &DynamicMessage,
        avoid: Option<usize>,
    ) -> (Option<usize>, Result<grpc::Reply, UpstreamError>) {
        let (index, sender) = match self.connect(avoid).await {
            Ok(connected) => connected,
            Err(status) => return (None, Err(UpstreamError::unsent(status))),
        };
        let endpoint = &self.endpoints[index];
        let _in_flight = endpoint.track();
        let unary = grpc::UnaryCall {
            origin: &endpoint.origin,
            path: call.path,
            metadata,
            timeout,
            output: call.output,
            max_message: self.max_message,
        };
        let result = grpc::unary(sender, unary, message).await;
        endpoint.record(&self.name, &result);
        (Some(index), result)
    }

    /// An endpoint with a live connection, chosen by the balancer among
    /// those not passed over (ejected, refusing connections or unhealthy)
    /// and other than `avoid` (the endpoint that just failed) when it can;
    /// on a connection failure the others are tried in turn.
    async fn connect(
        &self,
        avoid: Option<usize>,
    ) -> Result<(usize, endpoint::Sender), tonic::Status> {
        let n = self.endpoints.len();
        let now = Instant::now();
        let first = self.balancer.pick(
            n,
            |i| 2 * u8::from(avoid == Some(i)) + u8::from(self.endpoints[i].is_out(now)),
            |i| self.endpoints[i].in_flight(),
        );
        let mut last_error = None;
        for offset in 0..n {
            let index = (first + offset) % n;
            let endpoint = &self.endpoints[index];
            if offset > 0 && endpoint.is_out(now) {
                continue;
            }
            match endpoint.sender(&self.name).await {
                Ok(sender) => return Ok((index, sender)),
                Err(status) => last_error = Some(status),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            tonic::Status::unavailable(format!(
                "upstream `{}` has no reachable endpoint",
                self.name
            ))
        }))
    }
}

fn endpoint_for(
    endpoint: &str,
    settings: ConnSettings,
    outlier: OutlierPolicy,
    metrics: EndpointMetrics,
    tls: Option<&tls::TlsSettings>,
) -> Result<Endpoint, EndpointError> {
    let err = |message: &str| EndpointError {
        endpoint: endpoint.to_owned(),
        message: message.to_owned(),
    };
    let uri: Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| err(&e.to_string()))?;
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(err("an endpoint is scheme://host:port, without a path"));
    }
    let host = uri.host().ok_or_else(|| err("missing host"))?;
    let tls = match uri.scheme_str() {
        Some("http") => None,
        Some("https") => {
            let default;
            let settings = match tls {
                Some(settings) => settings,
                None => {
                    default = tls::TlsSettings::new(&Default::default(), |p: &str| {
                        std::path::PathBuf::from(p)
                    })
                    .map_err(|e| err(&e))?;
                    &default
                }
            };
            let name = settings.name_for(host).map_err(|e| err(&e))?;
            Some(tls::EndpointTls {
                connector: settings.connector.clone(),
                name,
            })
        }
        _ => return Err(err("expected http://host:port or https://host:port")),
    };
    Endpoint::new(uri, settings, outlier, metrics, tls).ok_or_else(|| err("missing host"))
}
