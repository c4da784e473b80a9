//! The cache's optional shared tier (`cache.redis`): answers stored in
//! Redis as well, so every gateway instance serves what one fetched, and
//! invalidations and purges reach every instance.
//!
//! - A miss in the memory store asks Redis (bounded by `timeout`; an error
//!   or a timeout is a miss, counted): an answer found there is served and
//!   kept in memory for the rest of its lifetime.
//! - A stored answer is written to Redis in the background (`SET … PX`), its
//!   path indexed in a sorted set (`{prefix}paths`, members
//!   `path NUL route NUL key`, scored by expiry).
//! - An invalidation or a purge deletes the prefix's answers from Redis (a
//!   lex range of the index, in one Lua script) and publishes itself on
//!   `{prefix}invalidations`: each instance, this one included, drops the
//!   prefix from its memory store.
//!
//! Keys in Redis are `{prefix}e:` and the SHA-256 of the cache key (which
//! holds consumer names): fixed length, nothing readable.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use prometheus::IntCounterVec;
use redis::Script;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use super::{Entry, Paths, Store};

/// Deletes the indexed answers under a path prefix (of one route, or all
/// when ARGV[3] is empty), drops expired index members, and tells every
/// instance. KEYS[1]: the index; ARGV: lex min, lex max, route, channel,
/// message, now (ms).
const INVALIDATE: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[6])
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[1], ARGV[2])
local n = 0
for _, m in ipairs(members) do
  local a = string.find(m, '\0', 1, true)
  local b = a and string.find(m, '\0', a + 1, true)
  if b then
    local route = string.sub(m, a + 1, b - 1)
    if ARGV[3] == '' or ARGV[3] == route then
      redis.call('DEL', string.sub(m, b + 1))
      redis.call('ZREM', KEYS[1], m)
      n = n + 1
    end
  end
end
redis.call('PUBLISH', ARGV[4], ARGV[5])
return n
";

/// The Redis side of a [`Store`].
pub struct SharedTier {
    conn: ConnectionManager,
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    invalidate: Script,
    /// `switchyard_cache_shared_total{outcome}`: hit, miss, stored, error.
    outcomes: IntCounterVec,
}

impl std::fmt::Debug for SharedTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTier")
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl SharedTier {
    /// A tier on `url` (connecting lazily: the gateway starts while Redis is down).
    pub fn new(
        url: &str,
        prefix: &str,
        timeout: Duration,
        outcomes: IntCounterVec,
    ) -> Result<SharedTier, String> {
        let client = redis::Client::open(url).map_err(|e| format!("{url:?}: {e}"))?;
        let conn = switchyard_plugins::redis_conn::lazy_manager(client.clone(), timeout)
            .map_err(|e| format!("{url:?}: {e}"))?;
        Ok(SharedTier {
            conn,
            client,
            prefix: prefix.to_owned(),
            timeout,
            invalidate: Script::new(INVALIDATE),
            outcomes,
        })
    }

    fn count(&self, outcome: &str) {
        self.outcomes.with_label_values(&[outcome]).inc();
    }

    fn entry_key(&self, key: &str) -> String {
        let digest = Sha256::digest(key.as_bytes());
        format!(
            "{}e:{}",
            self.prefix,
            switchyard_plugins::hex::encode(&digest)
        )
    }

    fn index_key(&self) -> String {
        format!("{}paths", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}invalidations", self.prefix)
    }

    /// The answer stored under `key`, if Redis has one in time.
    pub async fn get(&self, key: &str) -> Option<Entry> {
        let mut conn = self.conn.clone();
        let mut get = redis::cmd("GET");
        get.arg(self.entry_key(key));
        let get = get.query_async::<Option<Vec<u8>>>(&mut conn);
        match tokio::time::timeout(self.timeout, get).await {
            Ok(Ok(Some(bytes))) => match decode(&bytes) {
                Some(entry) => {
                    self.count("hit");
                    Some(entry)
                }
                None => {
                    self.count("error");
                    None
                }
            },
            Ok(Ok(None)) => {
                self.count("miss");
                None
            }
            Ok(Err(error)) => {
                self.count("error");
                tracing::debug!(%error, "cache: the shared tier could not answer");
                None
            }
            Err(_) => {
                self.count("error");
                None
            }
        }
    }

    /// Writes `entry` under `key`, in the background.
    pub fn put(self: &Arc<Self>, key: &str, entry: &Entry) {
        let lifetime = (entry.fresh + entry.stale).as_millis() as u64;
        let age = entry.stored.elapsed().as_millis() as u64;
        let Some(left) = lifetime.checked_sub(age).filter(|l| *l > 0) else {
            return;
        };
        let bytes = encode(entry);
        let redis_key = self.entry_key(key);
        let member = format!("{}\0{}\0{}", entry.path, entry.route, redis_key);
        let expiry = now_ms() + left;
        let tier = self.clone();
        tokio::spawn(async move {
            let mut conn = tier.conn.clone();
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("SET")
                .arg(&redis_key)
                .arg(bytes)
                .arg("PX")
                .arg(left)
                .ignore()
                .cmd("ZADD")
                .arg(tier.index_key())
                .arg(expiry)
                .arg(member)
                .ignore();
            match tokio::time::timeout(tier.timeout, pipe.query_async::<()>(&mut conn)).await {
                Ok(Ok(())) => tier.count("stored"),
                Ok(Err(error)) => {
                    tier.count("error");
                    tracing::debug!(%error, "cache: the shared tier did not store an answer");
                }
                Err(_) => tier.count("error"),
            }
        });
    }

    /// Deletes the answers of `route` (all routes when `None`) under
    /// `paths` from Redis and tells every instance, in the background.
    /// The message is `route NUL prefix`, or `route NUL = path` for one
    /// exact path.
    pub fn invalidate(self: &Arc<Self>, route: Option<&str>, paths: Paths<'_>) {
        let tier = self.clone();
        let route = route.unwrap_or_default().to_owned();
        // Index members are `path NUL route NUL key`: a prefix of the path,
        // or the whole path and its NUL.
        let (start, message) = match paths {
            Paths::Prefix(prefix) => (prefix.to_owned(), format!("{route}\0{prefix}")),
            Paths::Exact(path) => (format!("{path}\0"), format!("{route}\0={path}")),
        };
        let prefix = start.clone();
        tokio::spawn(async move {
            let mut conn = tier.conn.clone();
            let mut max = start.clone().into_bytes();
            max.push(0xff);
            let mut call = tier.invalidate.key(tier.index_key());
            call.arg([b"[".as_slice(), start.as_bytes()].concat())
                .arg([b"[".as_slice(), &max].concat())
                .arg(&route)
                .arg(tier.channel())
                .arg(message)
                .arg(now_ms());
            match tokio::time::timeout(tier.timeout, call.invoke_async::<u64>(&mut conn)).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tier.count("error");
                    tracing::warn!(%error, %prefix, "cache: the shared tier did not take an invalidation; other instances keep their copies until they expire");
                }
                Err(_) => tier.count("error"),
            }
        });
    }

    /// Listens for invalidations (this instance's included) and applies
    /// them to `store`'s memory, until the store is dropped; reconnects
    /// after a second when Redis goes away.
    pub fn listen(self: &Arc<Self>, store: Weak<Store>) {
        use futures_util::StreamExt as _;
        let tier = self.clone();
        tokio::spawn(async move {
            loop {
                let subscribed = async {
                    let mut pubsub = tier.client.get_async_pubsub().await?;
                    pubsub.subscribe(tier.channel()).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                match subscribed.await {
                    Ok(mut pubsub) => {
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            let Some(store) = store.upgrade() else { return };
                            let payload: Vec<u8> = message.get_payload_bytes().to_vec();
                            if let Some((route, paths)) = split_message(&payload) {
                                let route = (!route.is_empty()).then_some(route);
                                store.invalidate_local(route, paths);
                            }
                        }
                    }
                    Err(error) => {
                        tracing::debug!(%error, "cache: cannot subscribe to the shared tier's invalidations");
                    }
                }
                if store.strong_count() == 0 {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// The route and paths of an invalidation message.
fn split_message(payload: &[u8]) -> Option<(&str, Paths<'_>)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (route, rest) = text.split_once('\0')?;
    Some(match rest.strip_prefix('=') {
        Some(path) => (route, Paths::Exact(path)),
        None => (route, Paths::Prefix(rest)),
    })
}

const MAGIC: &[u8; 4] = b"SYC1";

/// An entry as stored in Redis: magic, stored-at (unix ms), fresh and
/// stale (ms), then length-prefixed route, path and headers, then the body.
fn encode(entry: &Entry) -> Vec<u8> {
    let age = entry.stored.elapsed().as_millis() as u64;
    let mut out = Vec::with_capacity(64 + entry.body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&now_ms().saturating_sub(age).to_le_bytes());
    out.extend_from_slice(&(entry.fresh.as_millis() as u64).to_le_bytes());
    out.extend_from_slice(&(entry.stale.as_millis() as u64).to_le_bytes());
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    field(entry.route.as_bytes());
    field(entry.path.as_bytes());
    field(&(entry.headers.len() as u32).to_le_bytes());
    for (name, value) in &entry.headers {
        field(name.as_str().as_bytes());
        field(value.as_bytes());
    }
    out.extend_from_slice(&entry.body);
    out
}

/// Reads an encoded entry, front to back.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn field(&mut self) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize;
        self.take(len)
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.at.min(self.bytes.len())..]
    }
}

/// The entry [`encode`] wrote, or `None` for anything else.
fn decode(bytes: &[u8]) -> Option<Entry> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(4)? != MAGIC {
        return None;
    }
    let stored_ms = r.u64()?;
    let fresh = Duration::from_millis(r.u64()?);
    let stale = Duration::from_millis(r.u64()?);
    let route = std::str::from_utf8(r.field()?).ok()?;
    let path = std::str::from_utf8(r.field()?).ok()?.to_owned();
    let count = u32::from_le_bytes(r.field()?.try_into().ok()?) as usize;
    let mut headers = HeaderMap::with_capacity(count.min(64));
    for _ in 0..count {
        let name = HeaderName::from_bytes(r.field()?).ok()?;
        let value = HeaderValue::from_bytes(r.field()?).ok()?;
        headers.append(name, value);
    }
    let age = Duration::from_millis(now_ms().saturating_sub(stored_ms));
    Some(Entry {
        route: route.into(),
        path,
        body: Bytes::copy_from_slice(r.rest()),
        headers,
        stored: std::time::Instant::now().checked_sub(age)?,
        fresh,
        stale,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_their_redis_encoding() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-a", HeaderValue::from_static("1"));
        headers.append("x-a", HeaderValue::from_static("2"));
        let entry = Entry {
            route: "users".into(),
            path: "/v1/users/1".into(),
            body: Bytes::from_static(b"{\"id\":\"1\"}"),
            headers,
            stored: std::time::Instant::now() - Duration::from_secs(3),
            fresh: Duration::from_secs(30),
            stale: Duration::from_secs(5),
        };
        let back = decode(&encode(&entry)).unwrap();
        assert_eq!((&*back.route, back.path.as_str()), ("users", "/v1/users/1"));
        assert_eq!(back.body, entry.body);
        assert_eq!(back.headers, entry.headers);
        assert_eq!((back.fresh, back.stale), (entry.fresh, entry.stale));
        let age = back.stored.elapsed().as_secs_f64();
        assert!((2.9..4.0).contains(&age), "{age}");
        let bytes = encode(&entry);
        assert!(decode(&bytes[..bytes.len() - entry.body.len() - 1]).is_none());
        assert!(decode(b"SYC0").is_none());
    }
}
