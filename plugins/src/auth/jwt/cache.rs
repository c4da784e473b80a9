//! Verified tokens, remembered so a client that sends the same token on every
//! request pays for one signature check, not one per request (an RS256 or
//! ES256 verification costs tens of microseconds; a hit costs a hash lookup).
//!
//! An entry lives until the token's `exp` or `max_ttl`, whichever is first,
//! and remembers the key that verified it: the caller re-checks that the key
//! is still published, so a key withdrawn from the JWKS stops admitting its
//! cached tokens at the next refresh. Keyed by the whole token text (no
//! collisions to reason about);
//! bounded by `max_entries`: when full, expired entries go first, then an
//! eighth of the table.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of the verified-token cache.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Verified tokens remembered at most; `0` turns the cache off.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// Longest time a verified token is trusted without a new check, in
    /// seconds (and never past its `exp`).
    #[serde(default = "default_max_ttl")]
    pub max_ttl_seconds: u64,
}

/// The cache itself; `V` is what a verification produced.
pub(super) struct TokenCache<V> {
    entries: Mutex<HashMap<Box<str>, Entry<V>>>,
    max_entries: usize,
    max_ttl: Duration,
}

struct Entry<V> {
    value: V,
    until: Instant,
}

fn default_max_entries() -> usize {
    10_000
}

fn default_max_ttl() -> u64 {
    300
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_entries: default_max_entries(),
            max_ttl_seconds: default_max_ttl(),
        }
    }
}

// === impl TokenCache ===

impl<V: Clone> TokenCache<V> {
    pub(super) fn new(config: &CacheConfig) -> TokenCache<V> {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
            max_entries: config.max_entries,
            max_ttl: Duration::from_secs(config.max_ttl_seconds),
        }
    }

    /// What a still-valid cached token's verification gave.
    pub(super) fn get(&self, token: &str) -> Option<V> {
        if self.max_entries == 0 {
            return None;
        }
        let mut entries = self.lock();
        let now = Instant::now();
        match entries.get(token) {
            Some(entry) if entry.until > now => Some(entry.value.clone()),
            Some(_) => {
                entries.remove(token);
                None
            }
            None => None,
        }
    }

    /// Remembers a verified token; `exp` is its expiry in Unix seconds.
    pub(super) fn put(&self, token: &str, value: V, exp: Option<u64>) {
        if self.max_entries == 0 {
            return;
        }
        let now = Instant::now();
        let mut until = now + self.max_ttl;
        if let Some(exp) = exp {
            let unix_now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            until = until.min(now + Duration::from_secs(exp.saturating_sub(unix_now)));
        }
        if until <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.max_entries {
            entries.retain(|_, e| e.until > now);
        }
        if entries.len() >= self.max_entries {
            let drop: Vec<Box<str>> = entries
                .keys()
                .take(self.max_entries / 8 + 1)
                .cloned()
                .collect();
            for key in drop {
                entries.remove(&key);
            }
        }
        entries.insert(token.into(), Entry { value, until });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Entry<V>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str) -> String {
        name.to_owned()
    }

    fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn a_cached_token_is_returned_until_its_expiry() {
        let cache = TokenCache::<String>::new(&CacheConfig::default());
        cache.put("t1", identity("a"), Some(unix_now() + 60));
        assert_eq!(cache.get("t1"), Some("a".into()));
        assert!(cache.get("t2").is_none());
        // Already expired: not cached at all.
        cache.put("old", identity("b"), Some(unix_now().saturating_sub(1)));
        assert!(cache.get("old").is_none());
    }

    #[test]
    fn the_table_stays_within_max_entries() {
        let cache = TokenCache::<String>::new(&CacheConfig {
            max_entries: 16,
            max_ttl_seconds: 60,
        });
        for i in 0..1000 {
            cache.put(&format!("token-{i}"), identity("a"), None);
            assert!(cache.len() <= 16);
        }
        assert!(cache.get("token-999").is_some(), "the newest entry is kept");
    }

    #[test]
    fn zero_entries_turns_caching_off() {
        let cache = TokenCache::<String>::new(&CacheConfig {
            max_entries: 0,
            max_ttl_seconds: 60,
        });
        cache.put("t", identity("a"), None);
        assert!(cache.get("t").is_none());
    }
}
