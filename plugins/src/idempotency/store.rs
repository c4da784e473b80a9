//! Where records live: Redis (shared by every gateway instance) or this
//! process's memory ([`super::local`]), behind one interface of three
//! atomic operations.
//!
//! - **reserve**: store an in-flight record if the key is free, else return
//!   what is there. Redis: one script, `SET key <in-flight> NX PX
//!   in_flight_ttl`, then `GET` if it was taken (atomic: no other command
//!   runs in between, so exactly one of any number of racing requests wins).
//! - **complete**: replace *our* in-flight record by the response, `PX ttl`.
//! - **release**: delete *our* in-flight record, so a retry runs again.
//!
//! "Our": complete and release compare the stored value with the in-flight
//! record this request wrote (its random token included) and do nothing if
//! it changed, so a request that outlived its reservation (`in_flight_ttl`)
//! cannot overwrite or delete the record of the request that reserved the
//! key after it.
//!
//! # Redis keys
//!
//! `key_prefix` + the route's name + `:` + the hex SHA-256 of the key's
//! scope (consumer, method, path, key): fixed length whatever the key, and
//! no client-chosen bytes in Redis key names.
//!
//! # Failures
//!
//! Every operation has the configured `timeout`. After a failed `reserve`,
//! Redis is not asked to reserve again for [`RETRY_AFTER_ERROR`] (those
//! requests fail at once, as store errors): an outage costs requests at most
//! one `timeout` a second rather than one each. `complete` and `release`
//! always try (the request already ran). The connection is a
//! [`ConnectionManager`], which reconnects by itself; the gateway starts and
//! reloads while Redis is down.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::redis::aio::ConnectionManager;
use ::redis::{Client, Script};
use bytes::Bytes;

use super::config::{RedisStoreConfig, duration};
use super::local::LocalStore;
use super::record::{Fingerprint, Record, StoredResponse};
use crate::hex;

/// How long `reserve` leaves Redis alone after a failure.
pub const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// The default per-operation timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);

/// `KEYS[1]`: the key; `ARGV[1]`: the in-flight record; `ARGV[2]`: its
/// lifetime in ms. Nil when reserved, else the record already there.
pub const RESERVE_SCRIPT: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1])
";

/// `KEYS[1]`: the key; `ARGV[1]`: our in-flight record; `ARGV[2]`: the
/// completed record; `ARGV[3]`: its lifetime in ms. 1 if stored.
pub const COMPLETE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// `KEYS[1]`: the key; `ARGV[1]`: our in-flight record. 1 if deleted.
pub const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The scope of a key, hashed: what a record is stored under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ScopeKey(pub [u8; 32]);

/// What `reserve` found.
#[derive(Debug)]
pub enum Reservation {
    /// The key was free and is now ours.
    Reserved(Lease),
    /// Another request holds or completed the key.
    Existing(Record),
}

/// Our reservation of a key: the in-flight record we wrote.
#[derive(Clone, Debug)]
pub struct Lease {
    pub token: u128,
    /// The encoded in-flight record, compared by Redis.
    pub value: Bytes,
}

/// The store failed (unreachable, timed out, full, a value it cannot read).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// A store of either kind.
pub enum Store {
    Redis(RedisStore),
    Local(LocalStore),
}

/// Records in Redis.
pub struct RedisStore {
    conn: ConnectionManager,
    reserve: Script,
    complete: Script,
    release: Script,
    /// `key_prefix` + route + `:`.
    prefix: String,
    timeout: Duration,
    ttl_ms: u64,
    in_flight_ttl_ms: u64,
    /// Origin of `retry_at`.
    start: Instant,
    /// `reserve` does not ask Redis before this many ms since `start`.
    retry_at: AtomicU64,
}

// === impl Store ===

impl Store {
    /// Reserves `key` for a request with `fingerprint`, or returns its record.
    pub async fn reserve(
        &self,
        key: &ScopeKey,
        fingerprint: Fingerprint,
    ) -> Result<Reservation, StoreError> {
        let token = fastrand::u128(..);
        let record = Record::InFlight { fingerprint, token };
        let lease = Lease {
            token,
            value: Bytes::from(record.encode()),
        };
        match self {
            Store::Redis(redis) => redis.reserve(key, lease).await,
            Store::Local(local) => local.reserve(key, record, lease),
        }
    }

    /// Replaces our reservation by `response`. `Ok(false)`: the reservation
    /// was no longer ours (it expired), or a memory store had no room.
    pub async fn complete(
        &self,
        key: &ScopeKey,
        lease: &Lease,
        response: StoredResponse,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Redis(redis) => redis.complete(key, lease, response).await,
            Store::Local(local) => Ok(local.complete(key, lease, response)),
        }
    }

    /// Deletes our reservation, if it still is ours.
    pub async fn release(&self, key: &ScopeKey, lease: &Lease) -> Result<(), StoreError> {
        match self {
            Store::Redis(redis) => redis.release(key, lease).await,
            Store::Local(local) => {
                local.release(key, lease);
                Ok(())
            }
        }
    }
}

// === impl RedisStore ===

impl RedisStore {
    /// A store for `route`'s keys. Does not connect: the connection is made
    /// on first use.
    pub fn new(
        config: &RedisStoreConfig,
        route: &str,
        ttl: Duration,
        in_flight_ttl: Duration,
    ) -> Result<RedisStore, String> {
        let timeout = duration(
            "store.redis.timeout",
            config.timeout.as_deref(),
            DEFAULT_TIMEOUT,
        )?;
        if timeout.is_zero() {
            return Err("`store.redis.timeout` must be more than zero".to_owned());
        }
        let client = Client::open(config.url.as_str())
            .map_err(|e| format!("`store.redis.url` {:?}: {e}", config.url))?;
        let conn =
            crate::redis_conn::lazy_manager(client, timeout).map_err(|e| format!("redis: {e}"))?;
        let prefix = if route.is_empty() {
            config.key_prefix.clone()
        } else {
            format!("{}{route}:", config.key_prefix)
        };
        Ok(RedisStore {
            conn,
            reserve: Script::new(RESERVE_SCRIPT),
            complete: Script::new(COMPLETE_SCRIPT),
            release: Script::new(RELEASE_SCRIPT),
            prefix,
            timeout,
            ttl_ms: millis(ttl),
            in_flight_ttl_ms: millis(in_flight_ttl).max(1),
            start: Instant::now(),
            retry_at: AtomicU64::new(0),
        })
    }

    /// The Redis key name of `key`.
    pub fn name(&self, key: &ScopeKey) -> String {
        format!("{}{}", self.prefix, hex::encode(&key.0))
    }

    async fn reserve(&self, key: &ScopeKey, lease: Lease) -> Result<Reservation, StoreError> {
        if millis(self.start.elapsed()) < self.retry_at.load(Ordering::Relaxed) {
            return Err(StoreError("redis failed less than a second ago".to_owned()));
        }
        let mut conn = self.conn.clone();
        let mut call = self.reserve.key(self.name(key));
        call.arg(&lease.value[..]).arg(self.in_flight_ttl_ms);
        let found: Option<Vec<u8>> = match self.run(call.invoke_async(&mut conn)).await {
            Ok(found) => found,
            Err(error) => {
                let retry_at = millis(self.start.elapsed()) + millis(RETRY_AFTER_ERROR);
                self.retry_at.fetch_max(retry_at, Ordering::Relaxed);
                return Err(error);
            }
        };
        match found {
            None => Ok(Reservation::Reserved(lease)),
            Some(bytes) => Record::decode(Bytes::from(bytes))
                .map(Reservation::Existing)
                .map_err(|e| {
                    StoreError(format!("unreadable record under {}: {e}", self.name(key)))
                }),
        }
    }

    async fn complete(
        &self,
        key: &ScopeKey,
        lease: &Lease,
        response: StoredResponse,
    ) -> Result<bool, StoreError> {
        let value = Record::Completed(response.into()).encode();
        let mut conn = self.conn.clone();
        let mut call = self.complete.key(self.name(key));
        call.arg(&lease.value[..]).arg(value).arg(self.ttl_ms);
        let stored: i64 = self.run(call.invoke_async(&mut conn)).await?;
        Ok(stored == 1)
    }

    async fn release(&self, key: &ScopeKey, lease: &Lease) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let mut call = self.release.key(self.name(key));
        call.arg(&lease.value[..]);
        let _deleted: i64 = self.run(call.invoke_async(&mut conn)).await?;
        Ok(())
    }

    /// `call` within the timeout, errors as [`StoreError`].
    async fn run<T>(
        &self,
        call: impl Future<Output = ::redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreError(format!("redis: {e}"))),
            Err(_) => Err(StoreError(format!(
                "redis: no answer within {:?}",
                self.timeout
            ))),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
