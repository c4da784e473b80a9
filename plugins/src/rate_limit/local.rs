//! The in-process limiter: governor's GCRA over a sharded concurrent map
//! (`DashMap`), one state per key, with a bounded number of keys.
//!
//! # Exactness
//!
//! Each key's state is one atomic theoretical-arrival-time updated by
//! compare-and-swap (governor's `InMemoryState`): concurrent requests for a
//! key are serialised on that word, so a burst of `B` admits exactly `B`
//! requests however many arrive at once.
//!
//! # Bounded memory
//!
//! The map holds at most about `max_keys` keys (each at most
//! [`MAX_VERBATIM_KEY`](super::key::MAX_VERBATIM_KEY) + 1 bytes, longer keys
//! being digested):
//!
//! - **Idle keys are swept** every [`SWEEP_EVERY`] (amortised on the request
//!   path: the first request after the deadline sweeps, the others carry on).
//!   A key is idle once its state is indistinguishable from a fresh one
//!   (governor's `retain_recent` rule), so removing it changes no decision.
//! - **When the map is full and a new key arrives**, room is made down to
//!   7/8 of `max_keys`: first idle keys go; then, if that is not enough, the
//!   keys with the *most quota left* (those having used at most 1/4 of their
//!   burst, then 1/2, then 3/4, then all). The new key is always admitted.
//!
//! Why evict rather than refuse new keys: refusing (fail closed) would let
//! anyone able to keep `max_keys` keys busy — trivial with IPv6 addresses or
//! a header key — lock out every client not yet in the map. Admitting new
//! keys untracked (fail open) would let them through without any limit.
//! Evicting the least-used states costs an evicted key at most the part of
//! its burst it had used, and only while the map is under such pressure;
//! keys that are exhausted (the ones being limited) are the last to go.
//!
//! The bound is soft by the handful of keys inserted while a sweep runs (one
//! sweep at a time; other requests do not wait for it). The count is exact
//! after every sweep and incremented on every insertion in between.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::StateInformationMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};

use super::key::Key;

/// How often idle keys are swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// The outcome of checking one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Let through; `remaining` more requests would be let through right
    /// now, and the full burst is available again after `reset`.
    Allowed { remaining: u32, reset: Duration },
    /// Refused; the next request can succeed after `retry_after`.
    Limited { retry_after: Duration },
}

/// A keyed GCRA limiter held in process memory.
pub struct LocalLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<Key, SharedTable, C, StateInformationMiddleware>,
    table: Arc<Table>,
    /// The limiter's time origin (taken right after governor's own, so our
    /// idea of "now" never runs ahead of the states' time base).
    start: C::Instant,
    /// Replenishment interval of one request.
    interval: Nanos,
    /// Burst size.
    burst: u32,
    max_keys: usize,
    /// Where making room stops.
    low_water: usize,
    /// When the next periodic sweep is due, in nanoseconds since `start`.
    next_sweep: AtomicU64,
    /// Held by the one thread sweeping.
    sweeping: AtomicBool,
}

/// The key → state map, shared by the governor limiter (through
/// [`SharedTable`]) and the housekeeping that bounds it.
struct Table {
    map: DashMapStateStore<Key>,
    /// Keys in the map: recounted on every sweep, incremented on insertion.
    len: AtomicUsize,
}

/// The governor state store: the shared [`Table`], counting insertions.
#[derive(Clone)]
struct SharedTable(Arc<Table>);

/// Releases the sweeping flag when dropped.
struct SweepGuard<'a>(&'a AtomicBool);

// === impl LocalLimiter ===

impl LocalLimiter<DefaultClock> {
    /// A limiter with `quota`, tracking about `max_keys` keys at most.
    pub fn new(quota: Quota, max_keys: usize) -> Self {
        LocalLimiter::with_clock(quota, max_keys, DefaultClock::default())
    }
}

impl<C: Clock> LocalLimiter<C> {
    /// A limiter on a given clock (tests use a fake one).
    pub fn with_clock(quota: Quota, max_keys: usize, clock: C) -> Self {
        let max_keys = max_keys.max(1);
        let table = Arc::new(Table {
            map: DashMapStateStore::default(),
            len: AtomicUsize::new(0),
        });
        let limiter = RateLimiter::new(quota, SharedTable(table.clone()), clock);
        let start = limiter.clock().now();
        LocalLimiter {
            limiter,
            table,
            start,
            interval: Nanos::from(quota.replenish_interval()).max(Nanos::new(1)),
            burst: quota.burst_size().get(),
            max_keys,
            low_water: max_keys - (max_keys / 8).max(1),
            next_sweep: AtomicU64::new(Nanos::from(SWEEP_EVERY).as_u64()),
            sweeping: AtomicBool::new(false),
        }
    }

    /// Counts one request against `key`.
    pub fn check(&self, key: &Key) -> Decision {
        let elapsed = self.limiter.clock().now().duration_since(self.start);
        self.housekeeping(key, elapsed);
        match self.limiter.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                // The state is full again once the used part of the burst has
                // been replenished (an upper bound: within one interval).
                let used = u64::from(self.burst.saturating_sub(remaining));
                Decision::Allowed {
                    remaining,
                    reset: Duration::from(self.interval * used),
                }
            }
            Err(not_until) => Decision::Limited {
                retry_after: not_until.wait_time_from(self.limiter.clock().now()),
            },
        }
    }

    /// Keys currently tracked (exact after a sweep; approximate while
    /// requests insert keys).
    pub fn tracked_keys(&self) -> usize {
        self.table.map.len()
    }

    /// Sweeps when one is due, makes room when `key` is new and the map full.
    fn housekeeping(&self, key: &Key, elapsed: Nanos) {
        let due = elapsed.as_u64() >= self.next_sweep.load(Ordering::Relaxed);
        let full = self.table.len.load(Ordering::Relaxed) >= self.max_keys
            && !self.table.map.contains_key(key);
        if !(due || full) {
            return;
        }
        // One sweeper at a time; the others carry on.
        let Some(_guard) = SweepGuard::acquire(&self.sweeping) else {
            return;
        };
        self.next_sweep.store(
            (elapsed + Nanos::from(SWEEP_EVERY)).as_u64(),
            Ordering::Relaxed,
        );
        self.sweep(elapsed, full);
    }

    /// Removes idle keys; when `make_room`, then removes the least-used keys
    /// until the map is down to the low-water mark.
    fn sweep(&self, elapsed: Nanos, make_room: bool) {
        let map = &self.table.map;
        // Idle: governor's own rule (theoretical arrival time at least one
        // interval in the past).
        map.retain_recent(elapsed.saturating_sub(self.interval));
        let mut len = map.len();
        if make_room {
            // Keys whose arrival time is at most `k/4` of a full burst ahead
            // of now have used at most `k/4` of their burst.
            let window = self.interval.as_u64().saturating_mul(u64::from(self.burst));
            for quarter in 1..=4u64 {
                if len <= self.low_water {
                    break;
                }
                let ahead = window / 4 * quarter + if quarter == 4 { window % 4 } else { 0 };
                map.retain_recent(Nanos::new(elapsed.as_u64().saturating_add(ahead)));
                len = map.len();
            }
        } else if len < map.capacity() / 4 {
            // After a flood, give the memory back.
            map.shrink_to_fit();
        }
        self.table.len.store(len, Ordering::Relaxed);
    }
}

/// The quota for `count` requests per `period` with a burst of `burst`.
pub fn quota(count: NonZeroU32, period: Period, burst: NonZeroU32) -> Quota {
    let quota = match period {
        Period::Second => Quota::per_second(count),
        Period::Minute => Quota::per_minute(count),
        Period::Hour => Quota::per_hour(count),
    };
    quota.allow_burst(burst)
}

/// The period of a rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Second,
    Minute,
    Hour,
}

impl Period {
    /// The period's length.
    pub fn duration(self) -> Duration {
        match self {
            Period::Second => Duration::from_secs(1),
            Period::Minute => Duration::from_secs(60),
            Period::Hour => Duration::from_secs(3600),
        }
    }
}

// === impl SharedTable ===

impl StateStore for SharedTable {
    type Key = Key;

    fn measure_and_replace<T, F, E>(&self, key: &Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let table = &self.0;
        if let Some(state) = table.map.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let state = table.map.entry(key.clone()).or_insert_with(|| {
            table.len.fetch_add(1, Ordering::Relaxed);
            InMemoryState::default()
        });
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

// === impl SweepGuard ===

impl<'a> SweepGuard<'a> {
    fn acquire(flag: &'a AtomicBool) -> Option<Self> {
        flag.compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| SweepGuard(flag))
    }
}

impl Drop for SweepGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
