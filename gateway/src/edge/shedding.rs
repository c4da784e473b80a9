//! Admission control (`limits.load_shedding`, docs/load-shedding.md).
//!
//! A gateway whose CPU is saturated queues work where it cannot see it: in
//! the sockets' buffers and in its event loops' run queues. Each worker
//! measures that queue the way a request feels it: a probe task asks to wake
//! every `interval` and notes how late it runs (the time a ready task waits
//! behind the others on the worker's one thread). A PIE controller (RFC 8033)
//! turns those delays into the share of new requests the worker answers at
//! once with 503, before spending anything on them; the share rises while
//! the delay stays above the target and decays once it is back under half.
//!
//! Everything is per worker and on the worker's own thread (thread per
//! core): the probe writes the worker's controller, the requests the same
//! worker serves read it, with no lock and no atomic.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, header};
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::{Request, Response};

use super::Gateway;
use crate::config::LoadShedding;
use crate::grpc;

/// RFC 8033's gains: per second of delay above the target (α) and per
/// second of the delay's growth since the last update (β), per update.
const ALPHA: f64 = 0.125;
const BETA: f64 = 1.25;
/// A share of 0.1 and above moves by at most this per update (RFC 8033
/// §5.2), and delays above ten targets add it (as Linux's PIE does above
/// 250 ms for its 15 ms target).
const STEP: f64 = 0.02;
/// The message of a shed request.
const OVERLOADED: &str = "the gateway is overloaded; retry after a second";

thread_local! {
    /// This worker's controller; `None` on threads without a probe.
    static CONTROLLER: RefCell<Option<Pie>> = const { RefCell::new(None) };
}

/// The PIE controller of one worker.
#[derive(Clone, Debug)]
pub struct Pie {
    settings: LoadShedding,
    /// The share of new requests shed (PIE's drop probability).
    share: f64,
    /// The delay measured at the last update, in seconds.
    delay_old: f64,
    /// Time left during which a delay above the target is a burst (seconds).
    burst_left: f64,
}

// === impl Pie ===

impl Pie {
    pub fn new(settings: LoadShedding) -> Pie {
        let burst_left = settings.burst.0.as_secs_f64();
        Pie {
            settings,
            share: 0.0,
            delay_old: 0.0,
            burst_left,
        }
    }

    /// Takes the settings of a reloaded config, keeping the state.
    pub fn configure(&mut self, settings: &LoadShedding) {
        if &self.settings != settings {
            self.settings = settings.clone();
            if !settings.enabled {
                *self = Pie::new(settings.clone());
            }
        }
    }

    /// The share of new requests shed now.
    pub fn share(&self) -> f64 {
        if self.burst_left > 0.0 {
            0.0
        } else {
            self.share.min(self.settings.max_share)
        }
    }

    /// Updates the share from the delay measured `elapsed` after the last
    /// update (RFC 8033 §4.2 and §5.2, the terms that integrate over time
    /// scaled by `elapsed / interval`, since an overloaded worker runs its
    /// probe late).
    pub fn update(&mut self, delay: Duration, elapsed: Duration) {
        if !self.settings.enabled {
            return;
        }
        let target = self.settings.target.0.as_secs_f64();
        let interval = self.settings.interval.0.as_secs_f64().max(1e-3);
        let delay = delay.as_secs_f64();
        let ticks = (elapsed.as_secs_f64() / interval).clamp(1.0, 100.0);
        let mut delta = ALPHA * (delay - target) * ticks + BETA * (delay - self.delay_old);
        // Small shares move in small steps (auto-tuning, RFC 8033 §5.2).
        delta /= match self.share {
            p if p < 0.000_001 => 2048.0,
            p if p < 0.000_01 => 512.0,
            p if p < 0.000_1 => 128.0,
            p if p < 0.001 => 32.0,
            p if p < 0.01 => 8.0,
            p if p < 0.1 => 2.0,
            _ => 1.0,
        };
        if self.share >= 0.1 {
            delta = delta.min(STEP * ticks);
        }
        if delay > 10.0 * target {
            delta += STEP * ticks;
        }
        self.share += delta;
        let calm = delay < target / 2.0 && self.delay_old < target / 2.0;
        if calm {
            self.share *= 0.98f64.powf(ticks);
        }
        self.share = self.share.clamp(0.0, 1.0);
        self.burst_left = (self.burst_left - elapsed.as_secs_f64()).max(0.0);
        if self.share == 0.0 && calm {
            self.burst_left = self.settings.burst.0.as_secs_f64();
        }
        self.delay_old = delay;
    }

    /// Whether to shed the next request, `uniform` drawing from [0, 1)
    /// (RFC 8033 §4.1, without its de-randomisation: requests come from
    /// many clients, and the share shed is then the share set).
    pub fn shed(&self, uniform: impl FnOnce() -> f64) -> bool {
        let share = self.share();
        let target = self.settings.target.0.as_secs_f64();
        // Work-conserving: a delay back under half the target sheds nothing
        // unless the share is high.
        if share == 0.0 || (self.delay_old < target / 2.0 && share < 0.2) {
            return false;
        }
        uniform() < share
    }
}

// === the worker's probe ===

/// Measures this worker's delay every `interval` and updates its controller,
/// for as long as the worker's event loop runs.
pub(super) async fn probe(gateway: Arc<Gateway>, worker: usize) {
    let settings = || gateway.runtime().loaded.config.limits.load_shedding.clone();
    let metrics = &gateway.metrics.load;
    let share = metrics.share.with_label_values(&[&worker.to_string()]);
    let mut last = Instant::now();
    loop {
        let settings = settings();
        let interval = settings.interval.0.max(Duration::from_millis(1));
        let asleep = Instant::now();
        tokio::time::sleep(interval).await;
        let now = Instant::now();
        let delay = now.duration_since(asleep).saturating_sub(interval);
        metrics.delay.observe(delay.as_secs_f64());
        let elapsed = now.duration_since(last);
        last = now;
        let current = CONTROLLER.with(|c| {
            let mut c = c.borrow_mut();
            let pie = c.get_or_insert_with(|| Pie::new(settings.clone()));
            pie.configure(&settings);
            pie.update(delay, elapsed);
            pie.share()
        });
        share.set(current);
    }
}

/// The 503 (gRPC: `UNAVAILABLE`) for `req` when this worker sheds it now.
pub(super) fn refuse(gateway: &Gateway, req: &Request) -> Option<Response> {
    // No controller before the probe's first update: nothing is shed.
    let shed = CONTROLLER.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|pie| pie.shed(fastrand::f64))
    });
    if !shed {
        return None;
    }
    let protocol = grpc::Protocol::of(req.headers());
    gateway
        .metrics
        .load
        .shed
        .with_label_values(&[protocol.map_or("http", |p| p.label())])
        .inc();
    Some(match protocol {
        Some(protocol) => {
            let mut headers = HeaderMap::new();
            // gRPC's retry throttling hint (gRFC A6): wait a second.
            headers.insert("grpc-retry-pushback-ms", HeaderValue::from_static("1000"));
            grpc::status::response(protocol, Code::Unavailable as i32, OVERLOADED, headers)
        }
        None => {
            let mut error = ErrorResponse::new(Code::Unavailable, OVERLOADED);
            error
                .headers
                .push((header::RETRY_AFTER, HeaderValue::from_static("1")));
            error.into_response()
        }
    })
}

#[cfg(test)]
mod tests;
