//! Server-streaming calls: one request message, then the upstream's
//! messages one at a time as the caller asks for them.
//!
//! Backpressure is HTTP/2 flow control: the reply is read only when the
//! caller wants the next message, so a slow client leaves the upstream's
//! stream window full and the upstream waits. At most one message (bounded
//! by `limits.max_upstream_message`) is buffered here. Dropping the
//! [`MessageStream`] resets the HTTP/2 stream (`CANCEL`), which the upstream
//! sees as the call being cancelled.

use bytes::{Buf, BytesMut};
use h2::RecvStream;
use http::HeaderMap;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::{Code, Status};

use super::UpstreamError;
use super::grpc::{GRPC_STATUS, status_from, unframe, user_metadata};

/// The messages of one server-streaming reply.
pub struct MessageStream {
    /// `None` once the stream has ended (or failed).
    body: Option<RecvStream>,
    buf: BytesMut,
    output: MessageDescriptor,
    max_message: usize,
    compressed_ok: bool,
    /// The upstream's initial metadata (`grpc-*` removed).
    pub metadata: HeaderMap,
}

// === impl MessageStream ===

impl MessageStream {
    /// The stream of a reply whose head has been checked; `compressed_ok`:
    /// the upstream declared gzip. `None` body: a trailers-only OK (no
    /// messages).
    pub(super) fn new(
        head: &http::response::Parts,
        body: Option<RecvStream>,
        compressed_ok: bool,
        output: MessageDescriptor,
        max_message: usize,
    ) -> MessageStream {
        MessageStream {
            body,
            buf: BytesMut::new(),
            output,
            max_message,
            compressed_ok,
            metadata: user_metadata(&head.headers),
        }
    }

    /// The next message; `None` when the upstream ended the stream with OK.
    /// A failure (the upstream's status, a broken stream, a message over
    /// the limit) is returned once, then the stream is over.
    pub async fn next(&mut self) -> Option<Result<DynamicMessage, UpstreamError>> {
        let result = self.read().await;
        if !matches!(result, Some(Ok(_))) {
            self.body = None;
        }
        result
    }

    async fn read(&mut self) -> Option<Result<DynamicMessage, UpstreamError>> {
        loop {
            match self.frame() {
                Ok(Some(message)) => return Some(Ok(message)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            let body = self.body.as_mut()?;
            match body.data().await {
                Some(Ok(chunk)) => {
                    // Capacity is given back once the bytes are ours; the
                    // next read only happens when the caller asks.
                    let _ = body.flow_control().release_capacity(chunk.len());
                    self.buf.extend_from_slice(&chunk);
                }
                Some(Err(e)) => {
                    return Some(Err(UpstreamError::Transport {
                        status: Status::unavailable(format!("the upstream stream broke: {e}")),
                        unsent: false,
                    }));
                }
                None => return self.end().await.err().map(Err),
            }
        }
    }

    /// A whole message from the buffer, if one is there.
    fn frame(&mut self) -> Result<Option<DynamicMessage>, UpstreamError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        let len = len as usize;
        if len > self.max_message {
            return Err(UpstreamError::ReplyTooLarge {
                limit: self.max_message,
            });
        }
        if self.buf.len() < 5 + len {
            self.buf.reserve(5 + len - self.buf.len());
            return Ok(None);
        }
        let frame = self.buf.split_to(5 + len).freeze();
        let payload = unframe(frame, self.compressed_ok, self.max_message)?;
        DynamicMessage::decode(self.output.clone(), payload)
            .map(Some)
            .map_err(|e| {
                UpstreamError::Protocol(format!(
                    "upstream sent an invalid {}: {e}",
                    self.output.full_name()
                ))
            })
    }

    /// The end of the data: the trailers say how the call ended.
    async fn end(&mut self) -> Result<(), UpstreamError> {
        let mut body = self.body.take().expect("`read` checked the body");
        if self.buf.has_remaining() {
            return Err(UpstreamError::Protocol(
                "the upstream stream ended inside a message".into(),
            ));
        }
        let trailers = body
            .trailers()
            .await
            .map_err(|e| UpstreamError::Transport {
                status: Status::unavailable(format!("reading the upstream trailers: {e}")),
                unsent: false,
            })?
            .unwrap_or_default();
        if !trailers.contains_key(GRPC_STATUS) {
            return Err(UpstreamError::Protocol(
                "upstream stream ended without grpc-status".into(),
            ));
        }
        match status_from(&trailers) {
            Some(status) if status.code() != Code::Ok => Err(UpstreamError::Status(status)),
            _ => Ok(()),
        }
    }
}
