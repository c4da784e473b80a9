//! The metrics of the edge's admission control (`limits.load_shedding`,
//! docs/load-shedding.md).

use prometheus::core::Collector;
use prometheus::{GaugeVec, Histogram, HistogramOpts, IntCounterVec, Opts};

/// Requests shed, and what the workers' probes measure.
#[derive(Clone, Debug)]
pub struct LoadMetrics {
    /// Requests answered 503 / `UNAVAILABLE` by admission control, by
    /// protocol (`http`, or the gRPC protocol).
    pub shed: IntCounterVec,
    /// The share of new requests each worker sheds now.
    pub share: GaugeVec,
    /// How late the workers' probes ran: their event loops' queueing delay.
    pub delay: Histogram,
}

impl LoadMetrics {
    pub fn new() -> LoadMetrics {
        LoadMetrics {
            shed: super::traffic::counter(
                "shed_requests_total",
                "Requests answered at once with 503 (gRPC: UNAVAILABLE) because their worker's queueing delay stayed above limits.load_shedding.target, by protocol (http, grpc, grpc-web…).",
                &["protocol"],
            ),
            share: GaugeVec::new(
                Opts::new(
                    "shed_share",
                    "The share of new requests each edge worker sheds now (0 to limits.load_shedding.max_share).",
                ),
                &["worker"],
            )
            .expect("static metric definition"),
            delay: Histogram::with_opts(
                HistogramOpts::new(
                    "worker_delay_seconds",
                    "How late the edge workers' probes ran, every limits.load_shedding.interval: the time a ready request waits for its worker's CPU.",
                )
                .buckets(vec![
                    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0,
                ]),
            )
            .expect("static metric definition"),
        }
    }

    /// Every family, to register.
    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.shed.clone()),
            Box::new(self.share.clone()),
            Box::new(self.delay.clone()),
        ]
    }
}

impl Default for LoadMetrics {
    fn default() -> Self {
        LoadMetrics::new()
    }
}
