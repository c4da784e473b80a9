//! The response cache (`cache:` and `routes[].cache`): rendered answers of
//! unary GET calls, in memory, bounded in bytes (moka, weighed by each
//! entry's size, least-recently-used-ish eviction by TinyLFU), keyed on the
//! route, the split variant, the path, the query (pairs sorted), the `vary`
//! headers and, unless the route is `public`, the consumer.
//!
//! An entry is fresh for the route's `ttl` (or the upstream's `max-age`),
//! then served stale for `stale_while_revalidate` while one refresh per key
//! runs in the background; misses of one key wait for the one call in
//! flight instead of each calling the upstream (no stampede). Purges and
//! invalidations find their entries through an index of the stored paths.
//! With `cache.redis`, a Redis tier behind the memory store shares answers
//! and invalidations between instances ([`shared`]). See docs/caching.md.

pub mod control;
pub mod shared;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use prometheus::{IntCounterVec, IntGauge};
use tokio::sync::watch;

/// Stored keys (with their route) by path.
type PathIndex =
    std::collections::BTreeMap<String, std::collections::HashSet<(Arc<str>, Arc<str>)>>;

/// One stored answer.
#[derive(Debug)]
pub struct Entry {
    /// The route it belongs to and the path it answered (for purges).
    pub route: Arc<str>,
    pub path: String,
    pub body: Bytes,
    /// The response headers (content type, response metadata).
    pub headers: HeaderMap,
    pub stored: Instant,
    /// Fresh this long after `stored`, then stale this much longer.
    pub fresh: Duration,
    pub stale: Duration,
}

/// Which stored paths an invalidation or a purge takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paths<'a> {
    /// Every path starting with this.
    Prefix(&'a str),
    /// This path only (every query, variant, `vary` value and consumer of it).
    Exact(&'a str),
}

/// What a lookup found.
pub enum Lookup {
    Fresh(Arc<Entry>),
    /// Past its freshness, within its stale window.
    Stale(Arc<Entry>),
    Miss,
}

/// The cache's metrics.
#[derive(Clone, Debug)]
pub struct CacheMetrics {
    /// By route and status: hit, stale, miss, bypass (no-store),
    /// refresh (no-cache).
    pub requests: IntCounterVec,
    /// By cause: size, expired, purged.
    pub evictions: IntCounterVec,
    pub bytes: IntGauge,
    /// The shared tier's operations by outcome: hit, miss, stored, error.
    pub shared: IntCounterVec,
}

/// The process's store, shared by the routes of a config version (and
/// taken over by the next when its bounds are the same).
pub struct Store {
    entries: moka::sync::Cache<Arc<str>, Arc<Entry>>,
    /// The keys being fetched, each with what its waiters watch.
    inflight: Mutex<HashMap<Arc<str>, watch::Receiver<()>>>,
    /// The stored keys by path, so a purge or an invalidation finds a
    /// prefix's entries by a range of this map, not a scan of the store.
    /// Kept in step by `put` and the eviction listener.
    paths: Arc<Mutex<PathIndex>>,
    /// Largest entry stored, in bytes.
    pub max_entry: usize,
    pub max_bytes: u64,
    pub metrics: CacheMetrics,
    /// The Redis tier, and the settings it was made from (a reload with
    /// other settings makes a new store).
    shared: Option<(
        Arc<shared::SharedTier>,
        crate::config::cache::SharedCacheConfig,
    )>,
}

/// A fetch of one key: the one in flight to wait for, or the right to make it.
pub enum Flight {
    /// This request fetches; dropping the guard releases the waiters.
    Lead(LeadGuard),
    /// Another request is fetching: wait, then look again.
    Follow(watch::Receiver<()>),
}

/// Held by the request fetching a key.
pub struct LeadGuard {
    store: Arc<Store>,
    key: Arc<str>,
    _done: watch::Sender<()>,
}

impl Drop for LeadGuard {
    fn drop(&mut self) {
        if let Ok(mut inflight) = self.store.inflight.lock() {
            inflight.remove(&self.key);
        }
        // Dropping `_done` closes the channel: every waiter wakes.
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("entries", &self.entries.entry_count())
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

/// Bytes an entry is counted for: its key, body and headers, plus a fixed
/// overhead for the bookkeeping.
fn weight(key: &str, entry: &Entry) -> u32 {
    let headers: usize = entry
        .headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len() + 32)
        .sum();
    let total = key.len() + entry.path.len() + entry.body.len() + headers + 160;
    u32::try_from(total).unwrap_or(u32::MAX)
}

impl Store {
    /// A memory-only store.
    pub fn new(max_bytes: u64, max_entry: usize, metrics: CacheMetrics) -> Arc<Store> {
        Store::build(max_bytes, max_entry, metrics, None)
    }

    /// A store with the Redis tier `config` behind it, listening for the
    /// other instances' invalidations.
    pub fn with_shared(
        max_bytes: u64,
        max_entry: usize,
        metrics: CacheMetrics,
        config: &crate::config::cache::SharedCacheConfig,
        listen: bool,
    ) -> Result<Arc<Store>, String> {
        let tier = shared::SharedTier::new(
            &config.url,
            &config.key_prefix,
            config.timeout.0,
            metrics.shared.clone(),
        )?;
        let tier = Arc::new(tier);
        let store = Store::build(
            max_bytes,
            max_entry,
            metrics,
            Some((tier.clone(), config.clone())),
        );
        if listen {
            tier.listen(Arc::downgrade(&store));
        }
        Ok(store)
    }

    /// The shared tier's settings, if the store has one.
    pub fn shared_config(&self) -> Option<&crate::config::cache::SharedCacheConfig> {
        self.shared.as_ref().map(|(_, config)| config)
    }

    fn build(
        max_bytes: u64,
        max_entry: usize,
        metrics: CacheMetrics,
        shared: Option<(
            Arc<shared::SharedTier>,
            crate::config::cache::SharedCacheConfig,
        )>,
    ) -> Arc<Store> {
        let evictions = metrics.evictions.clone();
        let paths: Arc<Mutex<PathIndex>> = Arc::default();
        let unindex = paths.clone();
        let entries = moka::sync::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &Arc<str>, entry: &Arc<Entry>| weight(key, entry))
            .expire_after(Lifetime)
            .eviction_listener(move |key: Arc<Arc<str>>, entry: Arc<Entry>, cause| {
                let cause = match cause {
                    moka::notification::RemovalCause::Size => "size",
                    moka::notification::RemovalCause::Expired => "expired",
                    moka::notification::RemovalCause::Explicit => "purged",
                    // The same key, so the same path: still indexed.
                    moka::notification::RemovalCause::Replaced => return,
                };
                evictions.with_label_values(&[cause]).inc();
                if let Ok(mut paths) = unindex.lock()
                    && let Some(keys) = paths.get_mut(entry.path.as_str())
                {
                    keys.remove(&(entry.route.clone(), (*key).clone()));
                    if keys.is_empty() {
                        paths.remove(entry.path.as_str());
                    }
                }
            })
            .build();
        Arc::new(Store {
            entries,
            inflight: Mutex::new(HashMap::new()),
            paths,
            max_entry,
            max_bytes,
            metrics,
            shared,
        })
    }

    /// [`Store::get`], then, on a miss, the shared tier: an answer found
    /// there is kept in memory for the rest of its lifetime and returned.
    pub async fn lookup(&self, key: &Arc<str>) -> Lookup {
        let found = self.get(key);
        let (Lookup::Miss, Some((tier, _))) = (&found, &self.shared) else {
            return found;
        };
        match tier.get(key).await {
            Some(entry) => {
                self.put_local(key.clone(), Arc::new(entry));
                self.get(key)
            }
            None => Lookup::Miss,
        }
    }

    /// The entry under `key`, fresh or stale.
    pub fn get(&self, key: &str) -> Lookup {
        let Some(entry) = self.entries.get(key) else {
            return Lookup::Miss;
        };
        let age = entry.stored.elapsed();
        if age < entry.fresh {
            Lookup::Fresh(entry)
        } else if age < entry.fresh + entry.stale {
            Lookup::Stale(entry)
        } else {
            Lookup::Miss
        }
    }

    /// Stores `entry`, unless it is larger than `max_entry` or keeps no
    /// time at all (fresh and stale both 0); whether it stored it.
    pub fn put(&self, key: Arc<str>, entry: Entry) -> bool {
        if entry.body.len() > self.max_entry || entry.fresh + entry.stale == Duration::ZERO {
            return false;
        }
        let entry = Arc::new(entry);
        if let Some((tier, _)) = &self.shared {
            tier.put(&key, &entry);
        }
        self.put_local(key, entry);
        true
    }

    /// Stores `entry` in memory only.
    fn put_local(&self, key: Arc<str>, entry: Arc<Entry>) {
        // Indexed first: an eviction right after the insert then finds it.
        if let Ok(mut paths) = self.paths.lock() {
            paths
                .entry(entry.path.clone())
                .or_default()
                .insert((entry.route.clone(), key.clone()));
        }
        self.entries.insert(key, entry);
        self.metrics
            .bytes
            .set(i64::try_from(self.entries.weighted_size()).unwrap_or(i64::MAX));
    }

    /// Removes the entries of `route` (every route when `None`) whose path
    /// starts with `prefix`, at once (none is served again here); how many
    /// this instance held. With a shared tier, they are deleted from Redis
    /// and every instance drops them too, in the background.
    pub fn invalidate(&self, route: Option<&str>, prefix: &str) -> usize {
        self.invalidate_paths(route, Paths::Prefix(prefix))
    }

    /// [`Store::invalidate`] for a prefix or one exact path.
    pub fn invalidate_paths(&self, route: Option<&str>, paths: Paths<'_>) -> usize {
        if let Some((tier, _)) = &self.shared {
            tier.invalidate(route, paths);
        }
        self.invalidate_local(route, paths)
    }

    /// [`Store::invalidate_paths`] in this instance's memory only. The path
    /// index gives the entries: a range of it (or one of its keys), not a
    /// scan of the store.
    pub fn invalidate_local(&self, route: Option<&str>, paths: Paths<'_>) -> usize {
        use std::ops::Bound;
        let Ok(index) = self.paths.lock() else {
            return 0;
        };
        let matched: Box<dyn Iterator<Item = _>> = match paths {
            Paths::Prefix(prefix) => Box::new(
                index
                    .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                    .take_while(move |(path, _)| path.starts_with(prefix)),
            ),
            Paths::Exact(path) => Box::new(index.get_key_value(path).into_iter()),
        };
        let doomed: Vec<Arc<str>> = matched
            .flat_map(|(_, keys)| keys.iter())
            .filter(|(owner, _)| route.is_none_or(|r| **owner == *r))
            .map(|(_, key)| key.clone())
            .collect();
        drop(index);
        for key in &doomed {
            self.entries.invalidate(key);
        }
        doomed.len()
    }

    /// [`Store::invalidate_paths`], then the store's maintenance and size
    /// gauge brought up to date (the admin API's purge).
    pub fn purge(&self, route: Option<&str>, paths: Paths<'_>) -> usize {
        let purged = self.invalidate_paths(route, paths);
        self.entries.run_pending_tasks();
        self.metrics
            .bytes
            .set(i64::try_from(self.entries.weighted_size()).unwrap_or(i64::MAX));
        purged
    }

    /// Entries stored now (after pending maintenance).
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Joins the fetch of `key` in flight, or becomes it.
    pub fn flight(self: &Arc<Self>, key: &Arc<str>) -> Flight {
        let Ok(mut inflight) = self.inflight.lock() else {
            // A poisoned map: fetch without coalescing.
            let (done, _) = watch::channel(());
            return Flight::Lead(LeadGuard {
                store: self.clone(),
                key: key.clone(),
                _done: done,
            });
        };
        if let Some(waiting) = inflight.get(key) {
            return Flight::Follow(waiting.clone());
        }
        let (done, waiting) = watch::channel(());
        inflight.insert(key.clone(), waiting);
        Flight::Lead(LeadGuard {
            store: self.clone(),
            key: key.clone(),
            _done: done,
        })
    }
}

/// Each entry lives for its fresh and stale windows.
struct Lifetime;

impl moka::Expiry<Arc<str>, Arc<Entry>> for Lifetime {
    fn expire_after_create(
        &self,
        _key: &Arc<str>,
        entry: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        // An answer from the shared tier is older than its insertion here.
        Some((entry.fresh + entry.stale).saturating_sub(entry.stored.elapsed()))
    }

    fn expire_after_update(
        &self,
        _key: &Arc<str>,
        entry: &Arc<Entry>,
        _updated_at: Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.fresh + entry.stale)
    }
}

/// One path prefix a method's success drops: the route whose answers it
/// drops (every route's when `None`) and the prefix's template.
pub type Invalidation = (Option<Arc<str>>, crate::events::template::Template);

/// What a route's methods invalidate (`invalidate_cache`), by method name.
#[derive(Debug, Default)]
pub struct Invalidations {
    store: Option<Arc<Store>>,
    by_method: HashMap<String, Vec<Invalidation>>,
}

impl Invalidations {
    pub fn new(store: Arc<Store>, by_method: HashMap<String, Vec<Invalidation>>) -> Invalidations {
        Invalidations {
            store: Some(store),
            by_method,
        }
    }

    /// Whether `method` invalidates anything (before building an occurrence).
    pub fn any(&self, method: &str) -> bool {
        self.by_method.contains_key(method)
    }

    /// After a call of `method`: when it succeeded, drops what it makes obsolete.
    pub fn apply(&self, method: &str, call: &crate::events::Occurrence<'_>) {
        let (Some(store), Some(rules), Ok(_)) =
            (&self.store, self.by_method.get(method), call.outcome)
        else {
            return;
        };
        for (route, template) in rules {
            store.invalidate(route.as_deref(), &template.render(call));
        }
    }
}

/// A route's cache settings, compiled.
#[derive(Debug)]
pub struct RouteCache {
    pub store: Arc<Store>,
    pub ttl: Duration,
    pub stale_while_revalidate: Duration,
    pub vary: Vec<HeaderName>,
    /// Shared by every consumer (no consumer in the key).
    pub public: bool,
}

impl RouteCache {
    /// An answer of `route` to keep, stored now: fresh and stale for what
    /// the upstream said (`says`), or else the route's `ttl` and
    /// `stale_while_revalidate`.
    pub fn entry(
        &self,
        route: &str,
        path: &str,
        body: Bytes,
        headers: HeaderMap,
        says: &control::ResponseDirectives,
    ) -> Entry {
        Entry {
            route: route.into(),
            path: path.to_owned(),
            body,
            headers,
            stored: Instant::now(),
            fresh: says.max_age.unwrap_or(self.ttl),
            stale: says
                .stale_while_revalidate
                .unwrap_or(self.stale_while_revalidate),
        }
    }

    /// Counts a lookup of `route` in `switchyard_cache_requests_total`.
    pub fn count(&self, route: &str, status: &str) {
        self.store
            .metrics
            .requests
            .with_label_values(&[route, status])
            .inc();
    }

    /// The key of a request: route, variant, path, sorted query, the
    /// `vary` headers' values and (unless public) the consumer, each on a
    /// line of its own (none of them can hold a line feed).
    pub fn key(
        &self,
        route: &str,
        variant: Option<&str>,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        consumer: Option<&str>,
    ) -> Arc<str> {
        let mut key = String::with_capacity(64 + path.len());
        key.push_str(route);
        key.push('\n');
        key.push_str(variant.unwrap_or_default());
        key.push('\n');
        key.push_str(path);
        key.push('\n');
        if let Some(query) = query {
            let mut pairs: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
            pairs.sort_unstable();
            key.push_str(&pairs.join("&"));
        }
        for name in &self.vary {
            key.push('\n');
            for (i, value) in headers.get_all(name).iter().enumerate() {
                if i > 0 {
                    key.push_str(", ");
                }
                // Header values hold no line feed (hyper refuses them).
                key.push_str(&String::from_utf8_lossy(value.as_bytes()));
            }
        }
        key.push('\n');
        if !self.public {
            key.push_str(consumer.unwrap_or_default());
        }
        key.into()
    }
}

#[cfg(test)]
mod tests;
