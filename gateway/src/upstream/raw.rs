//! Raw gRPC streams for passthrough: the caller's head goes to an endpoint
//! the balancer picks, the caller streams the request body and reads the
//! reply as the upstream sends it. Nothing is decoded here.

use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::{RecvStream, SendStream};
use http::uri::PathAndQuery;
use http::{HeaderMap, Request, Uri, uri};
use tonic::Status;

use super::endpoint::{Endpoint, InFlight};
use super::retry::Permit;
use super::{Upstream, UpstreamError};

/// A stream opened on an endpoint; its reply head is still to come.
pub struct Opened<'a> {
    /// The request body: the caller sends the frames (flow control applies).
    pub body: SendStream<Bytes>,
    pub reply: ReplyHead<'a>,
}

/// The reply head, recorded for outlier detection when it arrives.
pub struct ReplyHead<'a> {
    response: ResponseFuture,
    upstream: &'a str,
    endpoint: &'a Endpoint,
    _in_flight: InFlight<'a>,
}

// === impl Upstream ===

impl Upstream {
    /// A slot under `max_concurrent`, or UNAVAILABLE (counted as shed) when
    /// that many calls are in flight.
    pub fn admit(&self) -> Result<Permit<'_>, UpstreamError> {
        self.limit
            .try_acquire(&self.metrics.in_flight)
            .ok_or_else(|| {
                self.metrics.shed.inc();
                UpstreamError::Status(Status::unavailable(format!(
                    "upstream `{}` is saturated ({} calls in flight)",
                    self.name,
                    self.limit.max()
                )))
            })
    }

    /// Sends `headers` (the request's metadata) for `path` on a new stream.
    /// Not retried: the body is streamed, so it cannot be sent twice.
    pub async fn open(
        &self,
        path: &PathAndQuery,
        headers: HeaderMap,
    ) -> Result<Opened<'_>, UpstreamError> {
        let unsent = |e: h2::Error| {
            UpstreamError::unsent(Status::unavailable(format!("upstream request failed: {e}")))
        };
        let (index, sender) = self.connect(None).await.map_err(UpstreamError::unsent)?;
        let endpoint = &self.endpoints[index];
        let mut parts = uri::Parts::default();
        parts.scheme = endpoint.origin.scheme().cloned();
        parts.authority = endpoint.origin.authority().cloned();
        parts.path_and_query = Some(path.clone());
        let uri = Uri::from_parts(parts)
            .map_err(|e| UpstreamError::Protocol(format!("request URI: {e}")))?;
        let mut request = Request::new(());
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let mut sender = sender.ready().await.map_err(unsent)?;
        let (response, body) = sender.send_request(request, false).map_err(unsent)?;
        Ok(Opened {
            body,
            reply: ReplyHead {
                response,
                upstream: &self.name,
                endpoint,
                _in_flight: endpoint.track(),
            },
        })
    }
}

// === impl ReplyHead ===

impl ReplyHead<'_> {
    /// The reply's head, with the body to stream.
    pub async fn get(self) -> Result<http::Response<RecvStream>, UpstreamError> {
        let result = self.response.await.map_err(|e| UpstreamError::Transport {
            unsent: e.is_remote() && e.reason() == Some(h2::Reason::REFUSED_STREAM),
            status: Status::unavailable(format!("upstream request failed: {e}")),
        });
        self.endpoint.record(self.upstream, &result);
        result
    }
}
