//! The `hmac` method's replay cache: the signatures accepted and still inside
//! their timestamp window, so none is accepted twice.
//!
//! An entry is kept until its own timestamp leaves the window (`timestamp +
//! window`); after that the timestamp check refuses the request anyway, so the
//! entry can go. Expired entries are evicted (oldest expiry first) before
//! every insertion. When the cache is still full, the new signature is
//! **refused** ([`Insert::Full`], a 503 for the caller) rather than an old
//! entry forgotten: forgetting one would let that signature be replayed.
//! Only signatures that verified are inserted, so only key holders fill it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Mutex, PoisonError};

/// (index of the key that verified, signature bytes).
pub(super) type Entry = (usize, [u8; 32]);

/// What inserting a signature found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Insert {
    /// Not seen inside its window: now remembered.
    Fresh,
    /// Already accepted inside its window.
    Replayed,
    /// The cache holds `capacity` live entries: nothing was remembered.
    Full,
}

/// A bounded set of signatures with their expiry (unix seconds).
pub(super) struct ReplayCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    seen: HashSet<Entry>,
    expiries: BinaryHeap<Reverse<(u64, Entry)>>,
}

impl ReplayCache {
    pub(super) fn new(capacity: usize) -> Self {
        ReplayCache {
            capacity,
            inner: Mutex::default(),
        }
    }

    /// Remembers `entry` until `expires_at` (inclusive), unless it is already
    /// remembered or the cache is full. `now` drives eviction.
    pub(super) fn insert(&self, entry: Entry, expires_at: u64, now: u64) -> Insert {
        // The sets stay consistent whatever panicked while holding the lock.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Inner { seen, expiries } = &mut *inner;
        while let Some(Reverse((expiry, _))) = expiries.peek()
            && *expiry < now
        {
            if let Some(Reverse((_, old))) = expiries.pop() {
                seen.remove(&old);
            }
        }
        if seen.contains(&entry) {
            return Insert::Replayed;
        }
        if seen.len() >= self.capacity {
            return Insert::Full;
        }
        seen.insert(entry);
        expiries.push(Reverse((expires_at, entry)));
        Insert::Fresh
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .seen
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_are_evicted_before_refusing() {
        let cache = ReplayCache::new(2);
        assert_eq!(cache.insert((0, [1; 32]), 110, 100), Insert::Fresh);
        assert_eq!(cache.insert((0, [2; 32]), 200, 100), Insert::Fresh);
        assert_eq!(cache.insert((0, [1; 32]), 110, 105), Insert::Replayed);
        assert_eq!(cache.insert((1, [1; 32]), 110, 105), Insert::Full);
        // At 110 the first entry is still live (inclusive); at 111 it is gone.
        assert_eq!(cache.insert((0, [3; 32]), 120, 110), Insert::Full);
        assert_eq!(cache.insert((0, [3; 32]), 120, 111), Insert::Fresh);
        assert_eq!(cache.len(), 2);
    }
}
