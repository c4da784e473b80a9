//! A deadline on receiving a request body (`limits.body_read_timeout`): a
//! client that sends its body slowly (slow POST) holds a connection and a
//! task for as long as it likes unless something stops it. The edge wraps
//! the bodies it reads whole in [`DeadlineBody`]; past the deadline the body
//! yields [`BodyTimedOut`], which [`crate::stage::read_body_limited`] turns
//! into 408.
//!
//! The timer is armed only when the body first makes the reader wait, so a
//! body that arrives with its head (most of them) costs no timer.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::stage::BoxError;

/// The body was not received within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received within {0:?} (limits.body_read_timeout)")]
pub struct BodyTimedOut(pub Duration);

/// `inner`, failing with [`BodyTimedOut`] once `limit` has passed since it
/// was wrapped without the body being complete.
pub struct DeadlineBody<B> {
    inner: B,
    limit: Duration,
    started: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    done: bool,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, limit: Duration) -> Self {
        DeadlineBody {
            inner,
            limit,
            started: Instant::now(),
            timer: None,
            done: false,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                if frame.is_none() {
                    this.done = true;
                    this.timer = None;
                }
                return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
            }
            Poll::Pending => {}
        }
        let (started, limit) = (this.started, this.limit);
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(started + limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                this.done = true;
                Poll::Ready(Some(Err(Box::new(BodyTimedOut(limit)))))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    /// One byte, then nothing, ever (a slow POST).
    struct Stalling(bool);

    impl Body for Stalling {
        type Data = Bytes;
        type Error = BoxError;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            if std::mem::replace(&mut self.0, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"{")))))
            }
        }
    }

    #[tokio::test]
    async fn a_body_that_stalls_fails_at_the_deadline() {
        let mut body = DeadlineBody::new(Stalling(false), Duration::from_millis(50));
        assert!(body.frame().await.unwrap().is_ok(), "the first byte passes");
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyTimedOut>(), "{err}");
        assert!(body.frame().await.is_none(), "nothing after the timeout");
    }

    #[tokio::test]
    async fn a_complete_body_arms_no_timer() {
        let mut body = DeadlineBody::new(Full::new(Bytes::from_static(b"{}")), Duration::ZERO);
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "{}"
        );
        assert!(body.frame().await.is_none());
        assert!(body.timer.is_none());
    }
}
