//! Upstream gRPC services: one tonic channel per upstream (connections are
//! reused and multiplexed over HTTP/2), balanced across its endpoints, and
//! unary calls with a per-call deadline and message-size limit.

pub mod codec;

use std::time::Duration;

use http::uri::PathAndQuery;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::transport::{Channel, Endpoint};

pub use codec::DynamicCodec;

/// A named upstream, ready for calls.
#[derive(Clone, Debug)]
pub struct Upstream {
    pub name: String,
    channel: Channel,
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
    pub metadata: tonic::metadata::MetadataMap,
    pub timeout: Duration,
}

// === impl Upstream ===

impl Upstream {
    /// Prepares channels; connections open lazily on first use, so a gateway
    /// starts (and a config validates) while an upstream is down.
    pub fn new(
        name: &str,
        endpoints: &[String],
        connect_timeout: Duration,
        timeout: Duration,
        max_message: usize,
    ) -> Result<Upstream, EndpointError> {
        let mut list = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            list.push(endpoint_for(endpoint, connect_timeout)?);
        }
        let channel = match list.len() {
            0 => {
                return Err(EndpointError {
                    endpoint: String::new(),
                    message: "an upstream needs at least one endpoint".into(),
                });
            }
            1 => list[0].connect_lazy(),
            _ => Channel::balance_list(list.into_iter()),
        };
        Ok(Upstream {
            name: name.to_owned(),
            channel,
            timeout,
            max_message,
        })
    }

    /// A unary call. Errors are gRPC statuses, whether the upstream sent them
    /// or the transport failed (UNAVAILABLE) or the deadline passed (DEADLINE_EXCEEDED).
    pub async fn unary(
        &self,
        call: Call<'_>,
        message: DynamicMessage,
    ) -> Result<tonic::Response<DynamicMessage>, tonic::Status> {
        // Accept gzip: gRPC servers that compress may do so to a client that
        // did not say otherwise (grpc-core does), and tonic refuses it unless accepted.
        let mut grpc = tonic::client::Grpc::new(self.channel.clone())
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .max_decoding_message_size(self.max_message);
        let mut request = tonic::Request::from_parts(call.metadata, Default::default(), message);
        request.set_timeout(call.timeout);
        let codec = DynamicCodec::new(call.output.clone());
        let path = call.path.clone();
        let work = async move {
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("upstream not ready: {e}")))?;
            grpc.unary(request, path, codec).await
        };
        let deadline_passed = || {
            tonic::Status::deadline_exceeded(format!(
                "upstream `{}` did not answer within {:?}",
                self.name, call.timeout
            ))
        };
        let started = std::time::Instant::now();
        match tokio::time::timeout(call.timeout, work).await {
            // tonic enforces `grpc-timeout` on the client side too, and reports it
            // as CANCELLED "Timeout expired"; to the caller that is the deadline.
            Ok(Err(status))
                if status.code() == tonic::Code::Cancelled && started.elapsed() >= call.timeout =>
            {
                Err(deadline_passed())
            }
            Ok(result) => result,
            Err(_) => Err(deadline_passed()),
        }
    }
}

fn endpoint_for(endpoint: &str, connect_timeout: Duration) -> Result<Endpoint, EndpointError> {
    let err = |message: String| EndpointError {
        endpoint: endpoint.to_owned(),
        message,
    };
    if !endpoint.starts_with("http://") {
        return Err(err(
            "expected http://host:port (TLS upstreams arrive with the TLS work)".into(),
        ));
    }
    let parsed = Endpoint::from_shared(endpoint.to_owned()).map_err(|e| err(e.to_string()))?;
    Ok(parsed
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true))
}
