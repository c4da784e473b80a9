//! The request body as it streams upstream, cut at the proxy's
//! `max_request_body`: past it the body ends in an error (the upstream sees
//! an aborted request) and [`Overflow`] tells the proxy to answer 413.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use switchyard_plugins::stage::{Body, BoxError};

/// Set when a body went over its limit.
#[derive(Clone, Default)]
pub struct Overflow(Arc<AtomicBool>);

impl Overflow {
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A body that fails past `limit` bytes.
pub struct Capped {
    inner: Body,
    left: usize,
    overflow: Overflow,
}

/// The error a [`Capped`] body ends with.
#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body over the proxy's limit")
    }
}

impl std::error::Error for TooLarge {}

impl Capped {
    pub fn new(inner: Body, limit: usize, overflow: Overflow) -> Capped {
        Capped {
            inner,
            left: limit,
            overflow,
        }
    }
}

impl HttpBody for Capped {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            if data.len() > self.left {
                self.overflow.0.store(true, Ordering::Release);
                return Poll::Ready(Some(Err(Box::new(TooLarge))));
            }
            self.left -= data.len();
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt as _;

    use super::*;

    #[tokio::test]
    async fn a_body_within_its_limit_passes_whole() {
        let overflow = Overflow::default();
        let body = Capped::new(
            switchyard_plugins::stage::full_body("hello"),
            5,
            overflow.clone(),
        );
        let bytes = body.collect().await.expect("body").to_bytes();
        assert_eq!(&bytes[..], b"hello");
        assert!(!overflow.is_set());
    }

    #[tokio::test]
    async fn a_body_over_its_limit_fails_and_says_so() {
        let overflow = Overflow::default();
        let body = Capped::new(
            switchyard_plugins::stage::full_body("hello!"),
            5,
            overflow.clone(),
        );
        assert!(body.collect().await.is_err());
        assert!(overflow.is_set());
    }
}
