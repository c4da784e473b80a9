//! Request mirroring (`routes[].mirror`): a copy of a share of a route's
//! unary REST calls goes to a shadow upstream, fire and forget. The copy is
//! a task of its own, started before the real call and never awaited: its
//! answer is read and dropped, its failure only counted. At most
//! `max_concurrent` copies are in flight per route and config version; a
//! call past that is not copied (counted `skipped`), so a slow or dead
//! shadow costs the clients nothing but the bounded copies' CPU.

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};
use prometheus::IntCounter;
use prost_reflect::DynamicMessage;
use tokio::sync::Semaphore;

use super::split::BUCKETS;
use crate::transcode::binding::Binding;
use crate::upstream::{Call, Upstream};

/// The metadata key that tells a shadow it is served a copy.
pub const MIRROR_HEADER: &str = "x-switchyard-mirror";

/// A route's compiled mirror.
#[derive(Debug)]
pub struct Mirror {
    upstream: Arc<Upstream>,
    /// The share copied, in buckets of [`BUCKETS`].
    buckets: u32,
    permits: Arc<Semaphore>,
    counts: Counts,
}

/// `switchyard_mirror_requests_total{route, outcome}`.
#[derive(Clone, Debug)]
pub struct Counts {
    /// The shadow answered with OK.
    pub ok: IntCounter,
    /// Anything else: a status it sent, no answer, our deadline (the
    /// upstream metrics tell which).
    pub error: IntCounter,
    /// Not copied: `max_concurrent` copies were in flight.
    pub skipped: IntCounter,
}

// === impl Mirror ===

impl Mirror {
    pub fn new(upstream: Upstream, buckets: u32, max_concurrent: usize, counts: Counts) -> Mirror {
        Mirror {
            upstream: Arc::new(upstream),
            buckets,
            permits: Arc::new(Semaphore::new(max_concurrent)),
            counts,
        }
    }

    /// Copies the call of `binding` with `message` and `metadata` to the
    /// shadow, if this call falls in the mirrored share and a slot is free.
    pub fn copy(&self, binding: &Arc<Binding>, metadata: &HeaderMap, message: &DynamicMessage) {
        if self.buckets < BUCKETS && fastrand::u32(..BUCKETS) >= self.buckets {
            return;
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            self.counts.skipped.inc();
            return;
        };
        let binding = binding.clone();
        let upstream = self.upstream.clone();
        let counts = self.counts.clone();
        let mut metadata = metadata.clone();
        metadata.insert(MIRROR_HEADER, HeaderValue::from_static("1"));
        let message = message.clone();
        tokio::spawn(async move {
            let route = &binding.route;
            let call = Call {
                path: &binding.grpc_path,
                output: &binding.output,
                metadata,
                timeout: route.timeout,
                // A copy is never retried: the shadow gets what the
                // upstream got, once.
                idempotent: false,
            };
            let started = std::time::Instant::now();
            let result = upstream.unary(call, &message).await;
            crate::transcode::handler::observe_upstream(route, &upstream, started, &result);
            match result {
                Ok(_) => counts.ok.inc(),
                Err(_) => counts.error.inc(),
            }
            drop(permit);
        });
    }
}
