//! Upstream gRPC services: one tonic channel per upstream (connections are
//! reused and multiplexed over HTTP/2), balanced across its endpoints, and
//! unary calls with a per-call deadline and message-size limit.

pub mod endpoint;
pub mod grpc;

use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use http::uri::PathAndQuery;
use prost_reflect::{DynamicMessage, MessageDescriptor};

use endpoint::{ConnSettings, Endpoint};

/// A named upstream, ready for calls.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    endpoints: Arc<[Endpoint]>,
    /// Default deadline for calls.
    pub timeout: Duration,
    max_message: usize,
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
}

// === impl Upstream ===

impl Upstream {
    /// Prepares the endpoints; connections open lazily on first use, so a
    /// gateway starts (and a config validates) while an upstream is down.
    pub fn new(
        name: &str,
        endpoints: &[String],
        settings: ConnSettings,
        timeout: Duration,
        max_message: usize,
    ) -> Result<Upstream, EndpointError> {
        if endpoints.is_empty() {
            return Err(EndpointError {
                endpoint: String::new(),
                message: "an upstream needs at least one endpoint".into(),
            });
        }
        let mut list = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            list.push(endpoint_for(endpoint, settings)?);
        }
        Ok(Upstream {
            name: name.to_owned(),
            endpoints: list.into(),
            timeout,
            max_message,
        })
    }

    /// A unary call, bounded by `call.timeout` (also sent as `grpc-timeout`).
    pub async fn unary(
        &self,
        call: Call<'_>,
        message: &DynamicMessage,
    ) -> Result<grpc::Reply, UpstreamError> {
        let timeout = call.timeout;
        // Boxed so the call state is not copied each time the enclosing futures move.
        let work = Box::pin(async move {
            let (endpoint, sender) = self.connect().await.map_err(UpstreamError::Status)?;
            let _in_flight = endpoint.track();
            let call = grpc::UnaryCall {
                origin: &endpoint.origin,
                path: call.path,
                metadata: call.metadata,
                timeout: call.timeout,
                output: call.output,
                max_message: self.max_message,
            };
            grpc::unary(sender, call, message).await
        });
        match tokio::time::timeout(timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Status(tonic::Status::deadline_exceeded(
                format!("upstream `{}` did not answer within {timeout:?}", self.name),
            ))),
        }
    }

    /// An endpoint with a live connection: the less busy of two picked at
    /// random (power of two choices), skipping endpoints that just refused a
    /// connection; on a connection failure the others are tried in turn.
    async fn connect(&self) -> Result<(&Endpoint, endpoint::Sender), tonic::Status> {
        let first = self.pick();
        let mut last_error = None;
        for offset in 0..self.endpoints.len() {
            let endpoint = &self.endpoints[(first + offset) % self.endpoints.len()];
            if offset > 0 && endpoint.is_down() {
                continue;
            }
            match endpoint.sender(&self.name).await {
                Ok(sender) => return Ok((endpoint, sender)),
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

    fn pick(&self) -> usize {
        let n = self.endpoints.len();
        if n == 1 {
            return 0;
        }
        let a = fastrand::usize(..n);
        let b = (a + 1 + fastrand::usize(..n - 1)) % n;
        let load = |i: usize| {
            let e = &self.endpoints[i];
            (e.is_down(), e.in_flight())
        };
        if load(b) < load(a) { b } else { a }
    }
}

fn endpoint_for(endpoint: &str, settings: ConnSettings) -> Result<Endpoint, EndpointError> {
    let err = |message: &str| EndpointError {
        endpoint: endpoint.to_owned(),
        message: message.to_owned(),
    };
    let uri: Uri = endpoint
        .parse()
        .map_err(|e: http::uri::InvalidUri| err(&e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(err(
            "expected http://host:port (TLS upstreams arrive with the TLS work)",
        ));
    }
    if uri.path() != "/" && !uri.path().is_empty() {
        return Err(err("an endpoint is scheme://host:port, without a path"));
    }
    Endpoint::new(uri, settings).ok_or_else(|| err("missing host"))
}
