//! A span around each plugin's stage, for the gateway's exported traces.
//!
//! The span is a `tracing` span of target [`SPAN_TARGET`] at TRACE level.
//! Stages are wrapped only in a process that exports spans (the gateway
//! calls [`enable`] at start when its config has `tracing:`); elsewhere the
//! stack is exactly the plugins' services, with nothing added per request.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tower::Service;
use tracing::Instrument as _;

use crate::stage::{BoxFuture, HttpService, Request, Response};

/// The target of the gateway's exported spans.
pub const SPAN_TARGET: &str = "switchyard::otel";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Stacks built from now on wrap each stage in a span.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// `inner`, each call inside a span named after the plugin, when spans are
/// exported; else `inner` itself.
pub fn traced(name: &'static str, inner: HttpService) -> HttpService {
    if !ENABLED.load(Ordering::Relaxed) {
        return inner;
    }
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
