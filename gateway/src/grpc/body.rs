//! The upstream's reply streamed to the client: data frames as they come
//! (flow-control capacity released as each is passed on), then the
//! trailers — as HTTP/2 trailers for gRPC, as the trailer frame for
//! gRPC-Web. The call is counted by the status it ends with; a streaming
//! call is counted open until the body ends or is dropped (a client that
//! disconnects drops it, which resets the upstream stream: the upstream
//! call is cancelled).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::RecvStream;
use http::HeaderMap;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::sync::Arc;

use prometheus::IntGauge;
use switchyard_plugins::error::Code;
use switchyard_plugins::stage::BoxError;

use super::status::{GRPC_STATUS, trailers};
use super::{GrpcTarget, Protocol, web};

/// Counts the call once, by the status it ended with.
pub struct CallRecord {
    target: Arc<GrpcTarget>,
    protocol: Protocol,
    /// Set for streaming calls: decremented when the body goes.
    open: Option<IntGauge>,
    recorded: bool,
}

/// The reply body.
pub struct UpstreamBody {
    recv: RecvStream,
    protocol: Protocol,
    state: State,
    record: CallRecord,
}

enum State {
    Data,
    Trailers,
    /// A trailers-only reply: its status was in the head (for gRPC-Web it
    /// is sent as the trailer frame).
    HeadStatus(Option<HeaderMap>),
    Done,
}

// === impl CallRecord ===

impl CallRecord {
    pub fn new(target: Arc<GrpcTarget>, protocol: Protocol, open: Option<IntGauge>) -> CallRecord {
        if let Some(open) = &open {
            open.inc();
        }
        CallRecord {
            target,
            protocol,
            open,
            recorded: false,
        }
    }

    /// Counts the call by the `grpc-status` in `headers` (UNKNOWN when absent).
    pub fn status(&mut self, headers: &HeaderMap) {
        let code = headers
            .get(GRPC_STATUS)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i32>().ok())
            .unwrap_or(Code::Unknown as i32);
        self.code(code);
    }

    pub fn code(&mut self, code: i32) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        self.target.count(self.protocol, code);
    }
}

impl Drop for CallRecord {
    fn drop(&mut self) {
        if let Some(open) = &self.open {
            open.dec();
        }
        // Dropped before its status: the client went away.
        self.code(Code::Cancelled as i32);
    }
}

// === impl UpstreamBody ===

impl UpstreamBody {
    /// `head_status`: the head's `grpc-*` headers of a trailers-only reply.
    pub fn new(
        recv: RecvStream,
        protocol: Protocol,
        head_status: Option<HeaderMap>,
        mut record: CallRecord,
    ) -> UpstreamBody {
        let state = match head_status {
            Some(status) => {
                record.status(&status);
                State::HeadStatus((protocol != Protocol::Native).then_some(status))
            }
            None => State::Data,
        };
        UpstreamBody {
            recv,
            protocol,
            state,
            record,
        }
    }

    /// The end of the reply: trailers for gRPC, the trailer frame for gRPC-Web.
    fn end(&mut self, trailers: HeaderMap) -> Frame<Bytes> {
        self.record.status(&trailers);
        self.state = State::Done;
        match self.protocol {
            Protocol::Native => Frame::trailers(trailers),
            Protocol::Web | Protocol::WebText => {
                Frame::data(web::encode(self.protocol, web::trailer_frame(&trailers)))
            }
        }
    }
}

impl HttpBody for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Data => match ready!(this.recv.poll_data(cx)) {
                    Some(Ok(data)) => {
                        let _ = this.recv.flow_control().release_capacity(data.len());
                        if data.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(web::encode(
                            this.protocol,
                            data,
                        )))));
                    }
                    Some(Err(e)) => {
                        let frame = this.end(trailers(
                            Code::Unavailable as i32,
                            &format!("upstream stream failed: {e}"),
                        ));
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    None => this.state = State::Trailers,
                },
                State::Trailers => {
                    let trailers = match ready!(this.recv.poll_trailers(cx)) {
                        Ok(Some(trailers)) => trailers,
                        Ok(None) => trailers(
                            Code::Internal as i32,
                            "upstream ended the call without a status",
                        ),
                        Err(e) => trailers(
                            Code::Unavailable as i32,
                            &format!("upstream stream failed: {e}"),
                        ),
                    };
                    return Poll::Ready(Some(Ok(this.end(trailers))));
                }
                State::HeadStatus(status) => {
                    let frame = status.take().map(|status| {
                        Frame::data(web::encode(this.protocol, web::trailer_frame(&status)))
                    });
                    this.state = State::Done;
                    if let Some(frame) = frame {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                }
                State::Done => return Poll::Ready(None),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
