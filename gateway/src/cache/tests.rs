//! The store: keys, lifetimes, bounds, purges, the path index, coalescing.

use super::*;

fn metrics() -> CacheMetrics {
    CacheMetrics {
        requests: IntCounterVec::new(prometheus::Opts::new("r", "r"), &["route", "status"])
            .unwrap(),
        evictions: IntCounterVec::new(prometheus::Opts::new("e", "e"), &["cause"]).unwrap(),
        bytes: IntGauge::new("b", "b").unwrap(),
        shared: IntCounterVec::new(prometheus::Opts::new("s", "s"), &["outcome"]).unwrap(),
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
    assert_eq!(store.purge(Some("users"), Paths::Prefix("/v1/users/1")), 1);
    assert_eq!(store.purge(Some("users"), Paths::Prefix("/v1/")), 1);
    assert_eq!(store.purge(None, Paths::Prefix("/")), 1);
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
    assert_eq!(store.purge(Some("other"), Paths::Prefix("/p/")), 0);
    assert_eq!(store.purge(None, Paths::Prefix("/p/")), held);
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

#[test]
fn an_exact_purge_takes_one_path_and_none_below_it() {
    let store = Store::new(1 << 20, 1 << 16, metrics());
    store.put("1".into(), entry("users", "/v1/users/1", b"x", 60_000, 0));
    store.put("1q".into(), entry("users", "/v1/users/1", b"y", 60_000, 0));
    store.put("10".into(), entry("users", "/v1/users/10", b"x", 60_000, 0));
    assert_eq!(store.purge(None, Paths::Exact("/v1/users/1")), 2);
    assert!(matches!(store.get("10"), Lookup::Fresh(_)));
    assert_eq!(store.purge(None, Paths::Exact("/v1/users/")), 0);
}
