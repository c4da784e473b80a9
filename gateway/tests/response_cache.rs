//! The response cache (`routes[].cache`) through the real gateway: hits
//! within the ttl (with `Age` and `Cache-Status`), the key (query order,
//! consumer, `vary`), the client's and the upstream's `Cache-Control`,
//! one upstream call for concurrent misses, stale answers served while one
//! refresh runs, and purges through the admin API.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::TestGateway;
use common::scripted::{self, Handler};
use http::{Method, StatusCode};
use prost_reflect::DynamicMessage;
use switchyard_demo::Service;

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The demo users route with `cache` (YAML flow mapping) and `extra` keys.
async fn cached_demo(cache: &str, extra: &str) -> TestGateway {
    TestGateway::demo_with(&format!(", cache: {cache} {extra}"), "").await
}

async fn get(gw: &TestGateway, path: &str, headers: &[(&str, &str)]) -> common::Reply {
    gw.send(Method::GET, path, headers, Bytes::new()).await
}

fn status(reply: &common::Reply) -> &str {
    reply.cache_status()
}

#[tokio::test]
async fn a_get_is_served_from_the_cache_within_its_ttl_with_age_and_cache_status() {
    let gw = cached_demo("{ ttl: 2s }", "").await;
    let first = get(&gw, "/v1/users?pageSize=2&role=ROLE_CUSTOMER", &[]).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    assert_eq!(status(&first), "switchyard; fwd=miss; stored");
    // The same query in another order is the same entry.
    let second = get(&gw, "/v1/users?role=ROLE_CUSTOMER&pageSize=2", &[]).await;
    assert!(
        status(&second).starts_with("switchyard; hit; ttl="),
        "{}",
        status(&second)
    );
    assert_eq!(second.headers["age"], "0");
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers["content-type"], "application/json");
    assert_eq!(gw.demo.calls(Service::Users), 1);
    // Past the ttl, the upstream is asked again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let third = get(&gw, "/v1/users?pageSize=2&role=ROLE_CUSTOMER", &[]).await;
    assert_eq!(status(&third), "switchyard; fwd=miss; stored");
    assert_eq!(gw.demo.calls(Service::Users), 2);
    // Errors are not stored; other methods are not cached.
    for _ in 0..2 {
        let missing = get(&gw, "/v1/users/999", &[]).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(gw.demo.calls(Service::Users), 4);
    let metric =
        |s: &str| format!("switchyard_cache_requests_total{{route=\"users\",status=\"{s}\"}}");
    assert_eq!(gw.metric(&metric("hit")).await, Some(1.0));
    assert_eq!(gw.metric(&metric("miss")).await, Some(4.0));
}

#[tokio::test]
async fn the_client_s_no_store_bypasses_and_no_cache_refreshes() {
    let gw = cached_demo("{ ttl: 60s }", "").await;
    get(&gw, "/v1/users/1", &[]).await;
    let bypass = get(&gw, "/v1/users/1", &[("cache-control", "no-store")]).await;
    assert_eq!(status(&bypass), "switchyard; fwd=bypass");
    let refresh = get(&gw, "/v1/users/1", &[("cache-control", "no-cache")]).await;
    assert_eq!(status(&refresh), "switchyard; fwd=request; stored");
    assert_eq!(gw.demo.calls(Service::Users), 3);
    let hit = get(&gw, "/v1/users/1", &[]).await;
    assert!(
        status(&hit).starts_with("switchyard; hit"),
        "{}",
        status(&hit)
    );
    assert_eq!(gw.demo.calls(Service::Users), 3);
}

#[tokio::test]
async fn consumers_get_their_own_answers_unless_the_route_is_public() {
    let auth = format!(
        ", plugins: [{{ auth: {{ methods: [{{ api_key: {{ header: x-api-key, keys: [{{ consumer: a, sha256: {} }}, {{ consumer: b, sha256: {} }}] }} }}] }} }}]",
        sha256_hex("key-a"),
        sha256_hex("key-b")
    );
    for (public, calls) in [(false, 2), (true, 1)] {
        let gw = cached_demo(&format!("{{ ttl: 60s, public: {public} }}"), &auth).await;
        let a = get(&gw, "/v1/users/1", &[("x-api-key", "key-a")]).await;
        let b = get(&gw, "/v1/users/1", &[("x-api-key", "key-b")]).await;
        assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK));
        assert_eq!(gw.demo.calls(Service::Users), calls, "public: {public}");
        // Auth still runs before the cache: no key, no answer.
        let anonymous = get(&gw, "/v1/users/1", &[]).await;
        assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn vary_headers_are_part_of_the_key() {
    let gw = cached_demo("{ ttl: 60s, vary: [accept-language] }", "").await;
    for lang in ["en", "fr", "en", "fr"] {
        get(&gw, "/v1/users/1", &[("accept-language", lang)]).await;
    }
    assert_eq!(gw.demo.calls(Service::Users), 2);
}

/// The users route on a scripted upstream whose GetUser takes `delay`,
/// with `cache` and `cache-control` metadata forwarded.
async fn scripted_users(cache: &str, delay: Duration) -> (TestGateway, scripted::Scripted) {
    let pool = scripted::pool(common::repo_root().join("proto"));
    let user = pool.get_message_by_name("demo.users.v1.User").unwrap();
    let handler: Handler = Arc::new(move |_: &DynamicMessage| {
        std::thread::sleep(delay);
        DynamicMessage::new(user.clone())
    });
    let upstream = scripted::start(pool, HashMap::from([("GetUser", handler)])).await;
    let yaml = common::one_route_config(
        None,
        "demo.users.v1.UserService",
        &format!("\"http://{}\"", upstream.addr),
        "",
        &format!(", cache: {cache}, headers: {{ forward: [x-reply-cache-control] }}"),
    );
    let gw = TestGateway::start_yaml(common::spawn_demo().await, &yaml).await;
    (gw, upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_misses_of_one_key_make_one_upstream_call() {
    let (gw, upstream) = scripted_users("{ ttl: 60s }", Duration::from_millis(300)).await;
    let gw = Arc::new(gw);
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { get(&gw, "/v1/users/7", &[]).await })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK);
        statuses.push(status(&reply).to_owned());
    }
    assert_eq!(upstream.calls_to("GetUser").len(), 1, "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| s.contains("fwd=miss")).count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_answer_is_served_while_one_refresh_runs() {
    let (gw, upstream) = scripted_users(
        "{ ttl: 200ms, stale_while_revalidate: 30s }",
        Duration::from_millis(200),
    )
    .await;
    get(&gw, "/v1/users/7", &[]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Stale: served at once, one refresh started, however many ask (the
    // later ones may find it done already on a loaded machine: a hit).
    let stale = get(&gw, "/v1/users/7", &[]).await;
    assert_eq!(stale.status, StatusCode::OK);
    assert!(
        status(&stale).contains("detail=stale-while-revalidate"),
        "{}",
        status(&stale)
    );
    for _ in 0..4 {
        let again = get(&gw, "/v1/users/7", &[]).await;
        assert!(
            status(&again).starts_with("switchyard; hit"),
            "{}",
            status(&again)
        );
    }
    // Once the refresh is stored, the answer is fresh again.
    let mut last = String::new();
    for _ in 0..250 {
        last = status(&get(&gw, "/v1/users/7", &[]).await).to_owned();
        if !last.contains("stale") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(last.starts_with("switchyard; hit; ttl="), "{last}");
    assert!(!last.contains("stale"), "{last}");
    assert_eq!(
        upstream.calls_to("GetUser").len(),
        2,
        "one refresh, however many stale hits"
    );
}

#[tokio::test]
async fn the_upstream_s_cache_control_metadata_is_honoured() {
    let (gw, upstream) = scripted_users("{ ttl: 60s }", Duration::ZERO).await;
    for _ in 0..2 {
        get(&gw, "/v1/users/1", &[("x-reply-cache-control", "private")]).await;
    }
    assert_eq!(
        upstream.calls_to("GetUser").len(),
        2,
        "private is not stored"
    );
    // max-age=0: stored for no time (a miss again), whatever the route's ttl.
    for _ in 0..2 {
        let reply = get(
            &gw,
            "/v1/users/2",
            &[("x-reply-cache-control", "max-age=0")],
        )
        .await;
        assert_eq!(
            status(&reply),
            "switchyard; fwd=miss",
            "not said to be stored"
        );
    }
    assert_eq!(upstream.calls_to("GetUser").len(), 4);
    let first = get(
        &gw,
        "/v1/users/3",
        &[("x-reply-cache-control", "max-age=300")],
    )
    .await;
    assert_eq!(status(&first), "switchyard; fwd=miss; stored");
    let hit = get(&gw, "/v1/users/3", &[]).await;
    assert!(
        status(&hit).starts_with("switchyard; hit; ttl=29"),
        "{}",
        status(&hit)
    );
}

#[tokio::test]
async fn the_admin_api_purges_by_route_and_path_prefix_or_exact_path() {
    let gw = cached_demo("{ ttl: 60s }", "").await;
    for id in ["1", "2"] {
        get(&gw, &format!("/v1/users/{id}"), &[]).await;
    }
    let size = gw.admin_get("/admin/cache").await.json();
    assert_eq!(size["entries"], 2);
    let none = purge(&gw, "route=orders&prefix=/v1/users/").await;
    assert_eq!(none.json()["purged"], 0);
    let one = purge(&gw, "route=users&prefix=/v1/users/1").await;
    assert_eq!(one.json()["purged"], 1);
    let bad = purge(&gw, "route=users").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    get(&gw, "/v1/users/1", &[]).await;
    get(&gw, "/v1/users/2", &[]).await;
    assert_eq!(
        gw.demo.calls(Service::Users),
        3,
        "only /v1/users/1 was fetched again"
    );
    let all = purge(&gw, "prefix=/").await;
    assert_eq!(all.json()["purged"], 2);
    // One exact path: /v1/users/1 goes, /v1/users/10 stays.
    for id in ["1", "10"] {
        get(&gw, &format!("/v1/users/{id}"), &[]).await;
    }
    let exact = purge(&gw, "path=/v1/users/1").await;
    assert_eq!(exact.json()["purged"], 1, "{}", exact.text());
    assert!(status(&get(&gw, "/v1/users/10", &[]).await).contains("hit"));
    let both = purge(&gw, "path=/v1/users/1&prefix=/v1/").await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
}

async fn purge(gw: &TestGateway, query: &str) -> common::Reply {
    gw.admin_send(Method::POST, &format!("/admin/cache/purge?{query}"), &[])
        .await
}

#[tokio::test]
async fn a_successful_update_drops_the_answers_it_makes_obsolete() {
    let demo = common::spawn_demo().await;
    let yaml = common::demo_config(&demo, ", cache: { ttl: 60s }", "").replace(
        "upstream: users ",
        r#"upstream: users, invalidate_cache: [{ method: UpdateUser, prefixes: ["/v1/users/{request.user.id}"], route: users }] "#,
    );
    let gw = TestGateway::start_yaml(demo, &yaml).await;
    let before = get(&gw, "/v1/users/2", &[]).await.json();
    get(&gw, "/v1/users/3", &[]).await;
    // A failed update (unknown user) invalidates nothing.
    let failed = update(&gw, "999", r#"{"name":"Nobody"}"#).await;
    assert_eq!(failed.status, StatusCode::NOT_FOUND);
    let cached = get(&gw, "/v1/users/2", &[]).await;
    assert!(
        status(&cached).starts_with("switchyard; hit"),
        "{}",
        status(&cached)
    );
    let updated = update(&gw, "2", r#"{"name":"Grace B. Hopper"}"#).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text());
    let after = get(&gw, "/v1/users/2", &[]).await;
    assert_eq!(status(&after), "switchyard; fwd=miss; stored");
    assert_eq!(after.json()["name"], "Grace B. Hopper");
    assert_ne!(after.json()["name"], before["name"]);
    // Another user's answer stays.
    let other = get(&gw, "/v1/users/3", &[]).await;
    assert!(
        status(&other).starts_with("switchyard; hit"),
        "{}",
        status(&other)
    );
}

/// PATCH a user's name.
async fn update(gw: &TestGateway, id: &str, body: &'static str) -> common::Reply {
    gw.send(
        Method::PATCH,
        &format!("/v1/users/{id}?updateMask=name"),
        &[("content-type", "application/json")],
        Bytes::from_static(body.as_bytes()),
    )
    .await
}

#[tokio::test]
async fn bad_cache_settings_are_refused_at_their_key() {
    let base = |route_extra: &str| {
        format!(
            "protos: {{ sources: [\"{}\"] }}\nupstreams: {{ users: {{ endpoints: [\"http://127.0.0.1:1\"] }} }}\nroutes:\n  - {{ name: users, service: demo.users.v1.UserService, upstream: users {route_extra} }}\n",
            common::repo_root().join("proto").display()
        )
    };
    common::assert_refused(base, "routes[0].", &[
        (", cache: { ttl: 0s }", "cache.ttl", "keeps nothing"),
        (
            ", cache: { ttl: 1s, vary: [\"bad header\"] }",
            "cache.vary[0]",
            "not a valid header name",
        ),
        (
            ", invalidate_cache: [{ method: UpdateUser, prefixes: [/v1/users] }]",
            "invalidate_cache",
            "no route has `cache:`",
        ),
        (
            ", cache: { ttl: 1s }, invalidate_cache: [{ method: Nope, prefixes: [/v1/users] }]",
            "invalidate_cache[0].method",
            "has no method `Nope`",
        ),
        (
            ", cache: { ttl: 1s }, invalidate_cache: [{ method: UpdateUser, prefixes: [/v1/users], route: orders }]",
            "invalidate_cache[0].route",
            "no route named `orders` has `cache:`",
        ),
        (
            ", cache: { ttl: 1s }, invalidate_cache: [{ method: UpdateUser, prefixes: [\"/v1/users/{request.nope}\"] }]",
            "invalidate_cache[0].prefixes[0]",
            "nope",
        ),
    ])
    .await;
}

#[tokio::test]
async fn graphql_query_fields_through_a_cached_route_are_cached_and_mutations_invalidate_them() {
    let demo = common::spawn_demo().await;
    let yaml = common::demo_config(&demo, ", cache: { ttl: 60s }", "graphql: {}").replace(
        "upstream: users ",
        r#"upstream: users, invalidate_cache: [{ method: UpdateUser, prefixes: ["/demo.users.v1.UserService/GetUser"] }] "#,
    );
    let gw = TestGateway::start_yaml(demo, &yaml).await;
    let query = |q: &str| serde_json::json!({ "query": q });
    let ada = gw
        .post_graphql(&query(r#"{ user(id: "1") { name } }"#))
        .await;
    assert_eq!(
        ada.json()["data"]["user"]["name"],
        "Ada Lovelace",
        "{}",
        ada.text()
    );
    let again = gw
        .post_graphql(&query(r#"{ user(id: "1") { name } }"#))
        .await;
    assert_eq!(again.json(), ada.json());
    assert_eq!(
        gw.demo.calls(Service::Users),
        1,
        "the second query was a hit"
    );
    // Another selection is another read mask: another request, another entry.
    gw.post_graphql(&query(r#"{ user(id: "1") { name email } }"#))
        .await;
    assert_eq!(gw.demo.calls(Service::Users), 2);
    // A mutation is never cached, and its success drops GetUser's entries.
    let renamed = gw
        .post_graphql(&query(
            r#"mutation { updateUser(user: { id: "1", name: "Ada King" }, updateMask: "name") { name } }"#,
        ))
        .await;
    assert_eq!(
        renamed.json()["data"]["updateUser"]["name"],
        "Ada King",
        "{}",
        renamed.text()
    );
    let after = gw
        .post_graphql(&query(r#"{ user(id: "1") { name } }"#))
        .await;
    assert_eq!(after.json()["data"]["user"]["name"], "Ada King");
    assert_eq!(gw.demo.calls(Service::Users), 4);
}

#[tokio::test]
async fn a_stale_graphql_field_is_served_while_one_refresh_runs() {
    let demo = common::spawn_demo().await;
    let yaml = common::demo_config(
        &demo,
        ", cache: { ttl: 1s, stale_while_revalidate: 30s }",
        "graphql: {}",
    );
    let gw = TestGateway::start_yaml(demo, &yaml).await;
    let query = serde_json::json!({ "query": r#"{ user(id: "1") { name } }"# });
    let first = gw.post_graphql(&query).await;
    assert_eq!(
        first.json()["data"]["user"]["name"],
        "Ada Lovelace",
        "{}",
        first.text()
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Past its freshness: three queries at once get the stale answer (or,
    // on a slow machine, the refreshed one once the refresh is in), and
    // one refresh reaches the upstream.
    let (a, b, c) = tokio::join!(
        gw.post_graphql(&query),
        gw.post_graphql(&query),
        gw.post_graphql(&query)
    );
    for reply in [&a, &b, &c] {
        assert_eq!(reply.json(), first.json());
    }
    let count = async |status: &str| {
        gw.metric(&format!(
            "switchyard_cache_requests_total{{route=\"users\",status=\"{status}\"}}"
        ))
        .await
        .unwrap_or(0.0)
    };
    let (stale, hit) = (count("stale").await, count("hit").await);
    assert!(
        stale >= 1.0,
        "the first query past freshness is served stale"
    );
    assert_eq!(
        stale + hit,
        3.0,
        "none of the three called the upstream itself"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while gw.demo.calls(Service::Users) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no refresh reached the upstream"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(gw.demo.calls(Service::Users), 2, "one refresh for the key");
}
