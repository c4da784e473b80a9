//! Records in this process's memory: the same three operations as Redis
//! (see [`super::store`]), for a single gateway instance or development.
//!
//! Bounded by `max_keys` and `max_bytes`. Expired records are dropped as
//! the table is used. When a new record needs room, completed records are
//! dropped closest-to-expiry first (their keys can then run again, as after
//! `ttl`); in-flight records never are, so a key is never run twice at the
//! same time. When in-flight records alone fill the table, `reserve` fails
//! (a store error) and a completed response with no room is not stored.
//!
//! One mutex over a hash map and an expiry index: every operation is a few
//! map operations, never I/O, under the lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::record::{Record, StoredResponse};
use super::store::{Lease, Reservation, ScopeKey, StoreError};

/// What an in-flight record costs, for `max_bytes`.
const IN_FLIGHT_SIZE: usize = 128;

/// A bounded in-memory store.
pub struct LocalStore {
    table: Mutex<Table>,
    max_keys: usize,
    max_bytes: usize,
    ttl: Duration,
    in_flight_ttl: Duration,
}

#[derive(Default)]
struct Table {
    slots: HashMap<ScopeKey, Slot>,
    /// (expiry, sequence number) → key: expired and eviction order.
    by_expiry: BTreeMap<(Instant, u64), ScopeKey>,
    bytes: usize,
    next_seq: u64,
}

struct Slot {
    record: Record,
    expires: Instant,
    seq: u64,
    size: usize,
}

// === impl LocalStore ===

impl LocalStore {
    pub fn new(
        max_keys: usize,
        max_bytes: usize,
        ttl: Duration,
        in_flight_ttl: Duration,
    ) -> LocalStore {
        LocalStore {
            table: Mutex::new(Table::default()),
            max_keys,
            max_bytes,
            ttl,
            in_flight_ttl,
        }
    }

    /// Keys held now (expired ones included until the next operation).
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn reserve(
        &self,
        key: &ScopeKey,
        record: Record,
        lease: Lease,
    ) -> Result<Reservation, StoreError> {
        let now = Instant::now();
        let mut table = self.lock();
        table.expire(now);
        if let Some(slot) = table.slots.get(key) {
            return Ok(Reservation::Existing(slot.record.clone()));
        }
        if !table.make_room(IN_FLIGHT_SIZE, self.max_keys, self.max_bytes, None) {
            return Err(StoreError(
                "the local idempotency store is full of requests in flight".to_owned(),
            ));
        }
        table.insert(*key, record, now + self.in_flight_ttl, IN_FLIGHT_SIZE);
        Ok(Reservation::Reserved(lease))
    }

    pub(super) fn complete(&self, key: &ScopeKey, lease: &Lease, response: StoredResponse) -> bool {
        let now = Instant::now();
        let mut table = self.lock();
        table.expire(now);
        if !table.is_ours(key, lease) {
            return false;
        }
        let size = response.size();
        if !table.make_room(size, self.max_keys, self.max_bytes, Some(key)) {
            return false;
        }
        table.remove(key);
        table.insert(
            *key,
            Record::Completed(Arc::new(response)),
            now + self.ttl,
            size,
        );
        true
    }

    pub(super) fn release(&self, key: &ScopeKey, lease: &Lease) {
        let mut table = self.lock();
        if table.is_ours(key, lease) {
            table.remove(key);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // A panic under the lock leaves whole map operations behind: go on.
        self.table
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

// === impl Table ===

impl Table {
    fn insert(&mut self, key: ScopeKey, record: Record, expires: Instant, size: usize) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_expiry.insert((expires, seq), key);
        self.bytes += size;
        self.slots.insert(
            key,
            Slot {
                record,
                expires,
                seq,
                size,
            },
        );
    }

    fn remove(&mut self, key: &ScopeKey) {
        if let Some(slot) = self.slots.remove(key) {
            self.by_expiry.remove(&(slot.expires, slot.seq));
            self.bytes -= slot.size;
        }
    }

    fn is_ours(&self, key: &ScopeKey, lease: &Lease) -> bool {
        matches!(
            self.slots.get(key),
            Some(Slot { record: Record::InFlight { token, .. }, .. }) if *token == lease.token
        )
    }

    /// Drops every record expired at `now`.
    fn expire(&mut self, now: Instant) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            if let Some(slot) = self.slots.remove(&key) {
                self.bytes -= slot.size;
            }
        }
    }

    /// Drops completed records, closest to expiry first, until one more
    /// record of `size` bytes fits (replacing `replacing`, whose own key
    /// and bytes are freed by the caller). False if it cannot fit.
    fn make_room(
        &mut self,
        size: usize,
        max_keys: usize,
        max_bytes: usize,
        replacing: Option<&ScopeKey>,
    ) -> bool {
        let freed = replacing
            .and_then(|k| self.slots.get(k))
            .map_or((0, 0), |slot| (1, slot.size));
        if size > max_bytes {
            return false;
        }
        let mut victims = Vec::new();
        let (mut keys, mut bytes) = (self.slots.len() - freed.0, self.bytes - freed.1);
        for key in self.by_expiry.values() {
            if keys < max_keys && bytes + size <= max_bytes {
                break;
            }
            if let Some(slot) = self.slots.get(key)
                && matches!(slot.record, Record::Completed(_))
                && Some(key) != replacing
            {
                victims.push(*key);
                keys -= 1;
                bytes -= slot.size;
            }
        }
        if keys >= max_keys || bytes + size > max_bytes {
            return false;
        }
        for key in victims {
            self.remove(&key);
        }
        true
    }
}
