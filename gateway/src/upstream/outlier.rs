//! Passive outlier ejection: an endpoint whose calls keep failing is passed
//! over for a while, longer each time (a circuit breaker per endpoint).
//!
//! One state per endpoint covers both ways an endpoint is passed over: a
//! short pause after a refused connection ([`DOWN_FOR`], not an ejection)
//! and ejection after `consecutive_failures` failed calls in a row. A refused
//! connection also counts as a failed call. The state is plain data driven by
//! an explicit `now`, so the back-off is unit-tested without sleeping.

use std::time::{Duration, Instant};

use prometheus::{IntCounter, IntGauge};

/// How long an endpoint that refused a connection is passed over.
pub const DOWN_FOR: Duration = Duration::from_secs(1);

/// When endpoints are ejected, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct OutlierPolicy {
    /// Failures in a row that eject; 0 disables ejection.
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
}

/// The metric handles of one endpoint (labels resolved at build time).
#[derive(Clone, Debug)]
pub struct EndpointMetrics {
    /// 1 while the endpoint takes calls: passing health checks and not
    /// ejected (an ejected endpoint reads 0 until a call to it succeeds).
    pub healthy: IntGauge,
    pub ejections: IntCounter,
}

/// One endpoint's failure record.
#[derive(Debug, Default)]
pub struct OutlierState {
    consecutive: u32,
    /// Ejections so far: the exponent of the back-off.
    ejections: u32,
    ejected_until: Option<Instant>,
    /// When the last ejection was due to end (kept after a success ends it early).
    last_end: Option<Instant>,
    /// Set by an ejection, cleared by a success: the circuit is open (or
    /// half-open once `ejected_until` has passed).
    open: bool,
    /// Passed over after a refused connection, until then.
    down_until: Option<Instant>,
}

impl OutlierPolicy {
    /// Ejection disabled; refused connections still pause the endpoint.
    pub const OFF: OutlierPolicy = OutlierPolicy {
        consecutive_failures: 0,
        base_ejection: Duration::ZERO,
        max_ejection: Duration::ZERO,
    };

    /// The length of ejection number `ejections` (0-based).
    fn ejection(&self, ejections: u32) -> Duration {
        let factor = 1u32.checked_shl(ejections.min(31)).unwrap_or(u32::MAX);
        self.base_ejection
            .saturating_mul(factor)
            .min(self.max_ejection.max(self.base_ejection))
    }
}

// === impl OutlierState ===

impl OutlierState {
    /// Whether the balancer should pass the endpoint over at `now`.
    pub fn is_out(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|t| now < t) || self.down_until.is_some_and(|t| now < t)
    }

    /// Consecutive failures, ejections so far, and how much longer the
    /// current ejection lasts at `now`.
    pub fn snapshot(&self, now: Instant) -> (u32, u32, Option<Duration>) {
        let left = self
            .ejected_until
            .map(|t| t.saturating_duration_since(now))
            .filter(|d| !d.is_zero());
        (self.consecutive, self.ejections, left)
    }

    /// Whether the endpoint's circuit is open: ejected and not yet
    /// answered a call successfully since.
    pub fn is_open(&self) -> bool {
        self.open
    }

    /// A call got an answer: the failure count starts over and an ejection
    /// ends early. Returns whether this closed an open circuit.
    pub fn success(&mut self) -> bool {
        self.consecutive = 0;
        self.down_until = None;
        self.ejected_until = None;
        std::mem::take(&mut self.open)
    }

    /// A connection could not be opened: a short pause, and a failure.
    pub fn connect_failed(&mut self, policy: &OutlierPolicy, now: Instant) -> Option<Duration> {
        self.down_until = Some(now + DOWN_FOR);
        self.failure(policy, now)
    }

    /// A call failed; returns the ejection's length if this ejects the endpoint.
    pub fn failure(&mut self, policy: &OutlierPolicy, now: Instant) -> Option<Duration> {
        if policy.consecutive_failures == 0 {
            return None;
        }
        if self.ejected_until.is_some_and(|t| now < t) {
            // Used while ejected (every endpoint was out): no new ejection.
            return None;
        }
        self.consecutive = self.consecutive.saturating_add(1);
        if self.consecutive < policy.consecutive_failures {
            return None;
        }
        // Long enough without trouble since the last ejection ended: start over.
        if self
            .last_end
            .is_some_and(|end| now.saturating_duration_since(end) >= policy.max_ejection)
        {
            self.ejections = 0;
        }
        let length = policy.ejection(self.ejections);
        self.ejections = self.ejections.saturating_add(1);
        self.ejected_until = Some(now + length);
        self.last_end = self.ejected_until;
        self.open = true;
        // On return, one more failure ejects it again (half-open).
        self.consecutive = policy.consecutive_failures - 1;
        Some(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: OutlierPolicy = OutlierPolicy {
        consecutive_failures: 3,
        base_ejection: Duration::from_secs(5),
        max_ejection: Duration::from_secs(30),
    };

    #[test]
    fn n_failures_in_a_row_eject_and_a_success_resets_the_count() {
        let now = Instant::now();
        let mut state = OutlierState::default();
        assert_eq!(state.failure(&POLICY, now), None);
        assert_eq!(state.failure(&POLICY, now), None);
        assert!(!state.success());
        assert_eq!(state.failure(&POLICY, now), None);
        assert_eq!(state.failure(&POLICY, now), None);
        assert!(!state.is_out(now));
        assert_eq!(state.failure(&POLICY, now), Some(Duration::from_secs(5)));
        assert!(state.is_out(now) && state.is_open());
        assert!(!state.is_out(now + Duration::from_secs(5)));
    }

    #[test]
    fn ejections_double_up_to_the_maximum_and_a_returning_endpoint_is_on_probation() {
        let mut now = Instant::now();
        let mut state = OutlierState::default();
        for _ in 0..2 {
            assert_eq!(state.failure(&POLICY, now), None);
        }
        let mut lengths = Vec::new();
        for _ in 0..5 {
            // One failure after each return ejects again.
            let length = state.failure(&POLICY, now).expect("ejected");
            // Failures while still ejected do not extend it.
            assert_eq!(state.failure(&POLICY, now), None);
            lengths.push(length.as_secs());
            now += length;
        }
        assert_eq!(lengths, [5, 10, 20, 30, 30]);
        // A success closes the circuit; after max_ejection the doubling starts over.
        assert!(state.success());
        now += POLICY.max_ejection;
        for _ in 0..2 {
            assert_eq!(state.failure(&POLICY, now), None);
        }
        assert_eq!(state.failure(&POLICY, now), Some(Duration::from_secs(5)));
    }

    #[test]
    fn a_refused_connection_pauses_the_endpoint_and_counts_as_a_failure() {
        let now = Instant::now();
        let mut state = OutlierState::default();
        assert_eq!(state.connect_failed(&OutlierPolicy::OFF, now), None);
        assert!(state.is_out(now) && !state.is_out(now + DOWN_FOR));
        let mut state = OutlierState::default();
        state.connect_failed(&POLICY, now);
        state.connect_failed(&POLICY, now);
        assert!(state.connect_failed(&POLICY, now).is_some());
        assert!(state.is_out(now + DOWN_FOR));
    }
}
