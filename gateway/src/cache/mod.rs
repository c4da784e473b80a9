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
//! See docs/caching.md.

pub mod control;

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
    pub fn new(max_bytes: u64, max_entry: usize, metrics: CacheMetrics) -> Arc<Store> {
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
        })
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
        // Indexed first: an eviction right after the insert then finds it.
        if let Ok(mut paths) = self.paths.lock() {
            paths
                .entry(entry.path.clone())
                .or_default()
                .insert((entry.route.clone(), key.clone()));
        }
        self.entries.insert(key, Arc::new(entry));
        self.metrics
            .bytes
            .set(i64::try_from(self.entries.weighted_size()).unwrap_or(i64::MAX));
        true
    }

    /// Removes the entries of `route` (every route when `None`) whose path
    /// starts with `prefix`, at once (none is served again); how many. The
    /// path index gives them: a range of it, not a scan of the store.
    pub fn invalidate(&self, route: Option<&str>, prefix: &str) -> usize {
        use std::ops::Bound;
        let doomed: Vec<Arc<str>> = match self.paths.lock() {
            Ok(paths) => paths
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(path, _)| path.starts_with(prefix))
                .flat_map(|(_, keys)| keys.iter())
                .filter(|(owner, _)| route.is_none_or(|r| **owner == *r))
                .map(|(_, key)| key.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        for key in &doomed {
            self.entries.invalidate(key);
        }
        doomed.len()
    }

    /// [`Store::invalidate`], then the store's maintenance and size gauge
    /// brought up to date (the admin API's purge).
    pub fn purge(&self, route: Option<&str>, prefix: &str) -> usize {
        let purged = self.invalidate(route, prefix);
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
        Some(entry.fresh + entry.stale)
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
mod tests {
    use super::*;

    fn metrics() -> CacheMetrics {
        CacheMetrics {
            requests: IntCounterVec::new(prometheus::Opts::new("r", "r"), &["route", "status"])
                .unwrap(),
            evictions: IntCounterVec::new(prometheus::Opts::new("e", "e"), &["cause"]).unwrap(),
            bytes: IntGauge::new("b", "b").unwrap(),
        }
    }

    fn entry(route: &str, path: &str, body: &[u8], fresh: u64, stale: u64) -> Entry {
        Entry {
            route: route.into(),
            path: path.into(),
            body: Bytes::copy_from_slice(body),
            headers: HeaderMap::new(),
            stored: Instant::now(),
            fresh: Duration::from_millis(fresh),
            stale: Duration::from_millis(stale),
        }
    }

    fn route_cache(vary: &[&'static str], public: bool) -> RouteCache {
        RouteCache {
            store: Store::new(1 << 20, 1 << 16, metrics()),
            ttl: Duration::from_secs(1),
            stale_while_revalidate: Duration::ZERO,
            vary: vary.iter().map(|v| HeaderName::from_static(v)).collect(),
            public,
        }
    }

    #[test]
    fn the_key_sorts_the_query_and_scopes_by_vary_and_consumer() {
        let cache = route_cache(&["accept-language"], false);
        let mut en = HeaderMap::new();
        en.insert("accept-language", "en".parse().unwrap());
        let mut fr = HeaderMap::new();
        fr.insert("accept-language", "fr".parse().unwrap());
        let key = |q, h, c| cache.key("users", None, "/v1/users", q, h, c);
        assert_eq!(
            key(Some("b=2&a=1"), &en, Some("ci")),
            key(Some("a=1&b=2&"), &en, Some("ci"))
        );
        assert_ne!(key(None, &en, Some("ci")), key(None, &fr, Some("ci")));
        assert_ne!(key(None, &en, Some("ci")), key(None, &en, Some("cd")));
        let public = route_cache(&[], true);
        assert_eq!(
            public.key("users", None, "/v1/users", None, &en, Some("ci")),
            public.key("users", None, "/v1/users", None, &fr, Some("cd"))
        );
        assert_ne!(
            public.key("users", Some("canary"), "/v1/users", None, &en, None),
            public.key("users", None, "/v1/users", None, &en, None)
        );
    }

    #[test]
    fn entries_go_fresh_then_stale_then_missing() {
        let store = Store::new(1 << 20, 1 << 16, metrics());
        store.put("k".into(), entry("users", "/a", b"x", 40, 80));
        assert!(matches!(store.get("k"), Lookup::Fresh(_)));
        std::thread::sleep(Duration::from_millis(60));
        assert!(matches!(store.get("k"), Lookup::Stale(_)));
        std::thread::sleep(Duration::from_millis(80));
        assert!(matches!(store.get("k"), Lookup::Miss));
    }

    #[test]
    fn the_store_is_bounded_in_bytes_and_refuses_oversized_entries() {
        let store = Store::new(64 * 1024, 8 * 1024, metrics());
        store.put("big".into(), entry("r", "/big", &[0; 9 * 1024], 60_000, 0));
        assert!(matches!(store.get("big"), Lookup::Miss));
        for i in 0..100 {
            let key: Arc<str> = format!("k{i}").into();
            store.put(key, entry("r", "/k", &[0; 4 * 1024], 60_000, 0));
        }
        store.entries.run_pending_tasks();
        assert!(store.entries.weighted_size() <= 64 * 1024);
        assert!(store.len() < 100);
    }

    #[test]
    fn a_purge_removes_a_route_s_paths_by_prefix() {
        let store = Store::new(1 << 20, 1 << 16, metrics());
        store.put("1".into(), entry("users", "/v1/users/1", b"x", 60_000, 0));
        store.put("2".into(), entry("users", "/v1/users/2", b"x", 60_000, 0));
        store.put("3".into(), entry("orders", "/v1/users/3", b"x", 60_000, 0));
        assert_eq!(store.purge(Some("users"), "/v1/users/1"), 1);
        assert_eq!(store.purge(Some("users"), "/v1/"), 1);
        assert_eq!(store.purge(None, "/"), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn the_path_index_follows_the_store_through_evictions_and_purges() {
        let store = Store::new(64 * 1024, 8 * 1024, metrics());
        for i in 0..100 {
            let key: Arc<str> = format!("k{i}").into();
            store.put(
                key,
                entry("r", &format!("/p/{i}"), &[0; 4 * 1024], 60_000, 0),
            );
        }
        store.entries.run_pending_tasks();
        let indexed = || -> usize { store.paths.lock().unwrap().values().map(|k| k.len()).sum() };
        assert_eq!(
            indexed() as u64,
            store.entries.entry_count(),
            "evicted keys leave the index"
        );
        assert!(indexed() < 100);
        let held = indexed();
        assert_eq!(store.purge(Some("other"), "/p/"), 0);
        assert_eq!(store.purge(None, "/p/"), held);
        store.entries.run_pending_tasks();
        assert!(store.paths.lock().unwrap().is_empty());
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn one_fetch_per_key_and_its_waiters_wake_when_it_ends() {
        let store = Store::new(1 << 20, 1 << 16, metrics());
        let key: Arc<str> = "k".into();
        let Flight::Lead(lead) = store.flight(&key) else {
            panic!("the first fetch leads")
        };
        let Flight::Follow(mut waiting) = store.flight(&key) else {
            panic!("the second waits")
        };
        let woke = tokio::spawn(async move { waiting.changed().await.is_err() });
        drop(lead);
        assert!(woke.await.unwrap(), "the waiter wakes when the fetch ends");
        assert!(matches!(store.flight(&key), Flight::Lead(_)));
    }
}
