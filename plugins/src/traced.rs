//! A span around each plugin's stage, for the gateway's exported traces.
//!
//! The span is a `tracing` span of target [`SPAN_TARGET`] at TRACE level,
//! enabled only when the gateway exports spans (`tracing:`); otherwise the
//! stage's own future is returned as it is (no allocation, one static level
//! check per stage).

use std::convert::Infallible;
use std::task::{Context, Poll};

use tower::Service;
use tracing::Instrument as _;

use crate::stage::{BoxFuture, HttpService, Request, Response};

/// The target of the gateway's exported spans.
pub const SPAN_TARGET: &str = "switchyard::otel";

/// `inner`, each call inside a span named after the plugin.
pub fn traced(name: &'static str, inner: HttpService) -> HttpService {
    HttpService::new(Traced { name, inner })
}

#[derive(Clone)]
struct Traced {
    name: &'static str,
    inner: HttpService,
}

impl Service<Request> for Traced {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let span = tracing::trace_span!(
            target: SPAN_TARGET,
            "plugin",
            otel.name = self.name,
            otel.kind = "internal",
        );
        let future = self.inner.call(req);
        if span.is_disabled() {
            return future;
        }
        Box::pin(future.instrument(span))
    }
}
