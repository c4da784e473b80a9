//! Resilience for upstream calls: a concurrency limit that sheds load at once
//! rather than queueing, and a retry policy bounded by a retry budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus::{IntCounter, IntGauge};
use tower::retry::budget::{Budget, TpsBudget};

/// The window over which the retry budget counts calls and retries.
const BUDGET_WINDOW: Duration = Duration::from_secs(10);

/// When to retry a call that failed in transport.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per call, the first included; 1 disables retries.
    pub attempts: u32,
    budget: Arc<TpsBudget>,
}

/// An invalid retry setting, with what is allowed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RetryError(pub String);

/// The per-upstream metric handles (labels resolved once, at build time).
#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    pub retries: IntCounter,
    pub shed: IntCounter,
    pub in_flight: IntGauge,
}

/// Calls in flight on one upstream, shared by every route that uses it.
#[derive(Debug)]
pub struct Limit {
    in_flight: AtomicUsize,
    max: usize,
}

/// One call counted against a [`Limit`] until dropped.
pub struct Permit<'a> {
    limit: &'a Limit,
    gauge: &'a IntGauge,
}

// === impl RetryPolicy ===

impl RetryPolicy {
    /// `budget_ratio` retries per call over the last 10 s, plus
    /// `min_per_second` retries a second that are always allowed.
    pub fn new(
        attempts: u32,
        budget_ratio: f32,
        min_per_second: u32,
    ) -> Result<RetryPolicy, RetryError> {
        if attempts == 0 {
            return Err(RetryError(
                "retry.attempts counts the first attempt and must be at least 1".into(),
            ));
        }
        // `TpsBudget::new` asserts these ranges; refuse them as config errors.
        if !(0.0..=1000.0).contains(&budget_ratio) {
            return Err(RetryError(format!(
                "retry.budget_ratio must be between 0 and 1000, not {budget_ratio}"
            )));
        }
        if min_per_second >= i32::MAX as u32 {
            return Err(RetryError("retry.min_per_second is too large".into()));
        }
        Ok(RetryPolicy {
            attempts,
            budget: Arc::new(TpsBudget::new(BUDGET_WINDOW, min_per_second, budget_ratio)),
        })
    }

    /// Records a call, which earns the budget `budget_ratio` of a retry.
    pub fn deposit(&self) {
        if self.attempts > 1 {
            self.budget.deposit();
        }
    }

    /// Takes one retry from the budget, if it has one.
    pub fn withdraw(&self) -> bool {
        self.budget.withdraw()
    }
}

// === impl Limit ===

impl Limit {
    pub fn new(max: usize) -> Limit {
        Limit {
            in_flight: AtomicUsize::new(0),
            max: max.max(1),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A permit, or `None` when `max` calls are already in flight.
    pub fn try_acquire<'a>(&'a self, gauge: &'a IntGauge) -> Option<Permit<'a>> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        // inc/dec rather than set: calls of an older config version, with
        // their own `Limit`, share the gauge until they finish.
        gauge.inc();
        Some(Permit { limit: self, gauge })
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.limit.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_refuses_calls_beyond_max_and_frees_on_drop() {
        let gauge = IntGauge::new("g", "g").unwrap();
        let limit = Limit::new(2);
        let a = limit.try_acquire(&gauge).unwrap();
        let _b = limit.try_acquire(&gauge).unwrap();
        assert!(limit.try_acquire(&gauge).is_none());
        assert_eq!(gauge.get(), 2);
        drop(a);
        assert_eq!(gauge.get(), 1);
        assert!(limit.try_acquire(&gauge).is_some());
    }

    #[test]
    fn the_budget_allows_the_reserve_plus_a_share_of_calls() {
        let policy = RetryPolicy::new(2, 0.5, 1).unwrap();
        // Reserve: 1 a second over the 10 s window.
        let reserve = (0..100).take_while(|_| policy.withdraw()).count();
        assert_eq!(reserve, 10);
        for _ in 0..4 {
            policy.deposit();
        }
        assert!(policy.withdraw() && policy.withdraw());
        assert!(!policy.withdraw());
    }

    #[test]
    fn invalid_settings_are_refused() {
        assert!(RetryPolicy::new(0, 0.2, 10).is_err());
        assert!(RetryPolicy::new(2, -1.0, 10).is_err());
        assert!(RetryPolicy::new(2, f32::NAN, 10).is_err());
    }
}
