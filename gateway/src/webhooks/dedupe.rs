//! Which webhook ids were already delivered: reserve, then confirm or
//! release.
//!
//! A delivery first **reserves** its id (a short-lived `pending` mark, see
//! [`PENDING_TTL`]); only the one delivery that got the reservation appends
//! its event, so two simultaneous deliveries of one id publish once (the
//! other is told to retry: it may yet be needed if the first fails). After
//! the append the reservation is **confirmed** (`done`, kept for `ttl`);
//! when the append fails it is **released**, so the provider's retry is
//! accepted. A crash between the two leaves only the pending mark, which
//! expires on its own.
//!
//! - `local`: a map in this process, bounded by `max_entries` (the entries
//!   closest to expiring are forgotten first when full).
//! - `redis`: `SET <key> <token> NX PX <pending>` (in a script that also
//!   says whether an existing mark is pending or done), confirmed with
//!   `SET <key> done PX <ttl>`, released with a compare-and-delete on the
//!   token, so a late release never deletes someone else's reservation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::Script;
use redis::aio::ConnectionManager;

/// How long a reservation holds without being confirmed or released.
pub const PENDING_TTL: Duration = Duration::from_secs(30);
/// How long one Redis command may take, connecting included.
const REDIS_TIMEOUT: Duration = Duration::from_secs(2);
/// Prefix of the Redis keys: `switchyard:webhook:<endpoint>:<id>`.
const REDIS_PREFIX: &str = "switchyard:webhook:";

/// The answer to a reservation.
#[derive(Debug, PartialEq, Eq)]
pub enum Reservation {
    /// This delivery owns the id: publish, then confirm or release.
    Reserved(Token),
    /// The id was delivered (and confirmed) before.
    Duplicate,
    /// Another delivery of the id is being handled right now.
    InProgress,
}

/// Proves ownership of a reservation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token(u64);

/// An endpoint's store.
pub enum Store {
    Local(LocalStore),
    Redis(RedisStore),
}

impl Store {
    pub async fn reserve(&self, id: &str) -> Result<Reservation, String> {
        match self {
            Store::Local(local) => Ok(local.reserve(id, Instant::now())),
            Store::Redis(redis) => redis.reserve(id).await,
        }
    }

    pub async fn confirm(&self, id: &str, token: Token) -> Result<(), String> {
        match self {
            Store::Local(local) => {
                local.confirm(id, token, Instant::now());
                Ok(())
            }
            Store::Redis(redis) => redis.confirm(id, token).await,
        }
    }

    pub async fn release(&self, id: &str, token: Token) -> Result<(), String> {
        match self {
            Store::Local(local) => {
                local.release(id, token);
                Ok(())
            }
            Store::Redis(redis) => redis.release(id, token).await,
        }
    }
}

// === local ===

/// Ids in this process's memory.
pub struct LocalStore {
    ttl: Duration,
    max_entries: usize,
    state: Mutex<LocalState>,
}

#[derive(Default)]
struct LocalState {
    entries: HashMap<String, Entry>,
    /// (expiry, sequence) → id: what expires (or is forgotten) first.
    order: BTreeMap<(Instant, u64), String>,
    next: u64,
}

struct Entry {
    expires: Instant,
    seq: u64,
    /// `Some(token)` while pending, `None` once done.
    pending: Option<Token>,
}

impl LocalStore {
    /// Remembers ids for `ttl`, at most `max_entries` (at least 1) of them.
    pub fn new(ttl: Duration, max_entries: usize) -> LocalStore {
        LocalStore {
            ttl,
            max_entries: max_entries.max(1),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LocalState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn reserve(&self, id: &str, now: Instant) -> Reservation {
        let mut state = self.lock();
        state.expire(now);
        if let Some(entry) = state.entries.get(id) {
            return match entry.pending {
                Some(_) => Reservation::InProgress,
                None => Reservation::Duplicate,
            };
        }
        let token = Token(fastrand::u64(..));
        state.insert(id, now + PENDING_TTL, Some(token), self.max_entries);
        Reservation::Reserved(token)
    }

    pub fn confirm(&self, id: &str, token: Token, now: Instant) {
        let mut state = self.lock();
        match state.entries.get(id).map(|e| e.pending) {
            // Ours, or forgotten (expired, evicted): remember it as done.
            Some(Some(held)) if held == token => {}
            None => {}
            // Someone else's: leave it.
            Some(_) => return,
        }
        state.remove(id);
        state.insert(id, now + self.ttl, None, self.max_entries);
    }

    pub fn release(&self, id: &str, token: Token) {
        let mut state = self.lock();
        if state.entries.get(id).and_then(|e| e.pending) == Some(token) {
            state.remove(id);
        }
    }

    /// Ids remembered (pending or done), expired ones included until the
    /// next reservation sweeps them.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl LocalState {
    fn expire(&mut self, now: Instant) {
        while let Some(entry) = self.order.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let id = entry.remove();
            self.entries.remove(&id);
        }
    }

    fn insert(&mut self, id: &str, expires: Instant, pending: Option<Token>, max: usize) {
        while self.entries.len() >= max {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            tracing::debug!(id = %oldest, "webhooks: dedupe store full, forgetting the oldest id");
            self.entries.remove(&oldest);
        }
        let seq = self.next;
        self.next += 1;
        self.order.insert((expires, seq), id.to_owned());
        self.entries.insert(
            id.to_owned(),
            Entry {
                expires,
                seq,
                pending,
            },
        );
    }

    fn remove(&mut self, id: &str) {
        if let Some(entry) = self.entries.remove(id) {
            self.order.remove(&(entry.expires, entry.seq));
        }
    }
}

// === redis ===

/// 1: reserved; 0: done before; 2: pending elsewhere.
const RESERVE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == 'done' then return 0 end
return 2";

/// Done, unless another delivery holds a reservation now.
const CONFIRM: &str = r"
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] or not held then
  redis.call('SET', KEYS[1], 'done', 'PX', ARGV[2])
  return 1
end
return 0";

/// Deletes the reservation if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// Ids in Redis, shared by every gateway instance.
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    ttl_ms: u64,
    reserve: Script,
    confirm: Script,
    release: Script,
}

impl RedisStore {
    /// A store for endpoint `name` at `url`. Does not connect: the
    /// connection is made on first use (the gateway starts while Redis is
    /// down, and deliveries are answered 503 until it is back).
    pub fn new(url: &str, name: &str, ttl: Duration) -> Result<RedisStore, String> {
        let client = redis::Client::open(url).map_err(|e| format!("{url:?}: {e}"))?;
        let conn = switchyard_plugins::redis_conn::lazy_manager(client, REDIS_TIMEOUT)
            .map_err(|e| format!("{url:?}: {e}"))?;
        Ok(RedisStore {
            conn,
            prefix: format!("{REDIS_PREFIX}{name}:"),
            ttl_ms: millis(ttl),
            reserve: Script::new(RESERVE),
            confirm: Script::new(CONFIRM),
            release: Script::new(RELEASE),
        })
    }

    async fn reserve(&self, id: &str) -> Result<Reservation, String> {
        let token = fastrand::u64(..);
        let answer = self
            .run(&self.reserve, id, &token.to_string(), millis(PENDING_TTL))
            .await?;
        Ok(match answer {
            1 => Reservation::Reserved(Token(token)),
            0 => Reservation::Duplicate,
            _ => Reservation::InProgress,
        })
    }

    async fn confirm(&self, id: &str, token: Token) -> Result<(), String> {
        if self
            .run(&self.confirm, id, &token.0.to_string(), self.ttl_ms)
            .await?
            == 0
        {
            tracing::warn!(%id, "webhooks: another delivery reserved the id before this one was confirmed");
        }
        Ok(())
    }

    async fn release(&self, id: &str, token: Token) -> Result<(), String> {
        self.run(&self.release, id, &token.0.to_string(), 0)
            .await
            .map(drop)
    }

    /// One script on `<prefix><id>` with two arguments, bounded in time.
    async fn run(&self, script: &Script, id: &str, token: &str, ms: u64) -> Result<i64, String> {
        let mut conn = self.conn.clone();
        let call = async {
            script
                .key(format!("{}{id}", self.prefix))
                .arg(token)
                .arg(ms)
                .invoke_async::<i64>(&mut conn)
                .await
        };
        match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => Err(format!("redis: {e}")),
            Err(_) => Err(format!("redis: no answer within {REDIS_TIMEOUT:?}")),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests;
