//! Request mirroring (`routes[].mirror`) through the real gateway: copies
//! reach a real shadow upstream with their metadata, the client gets the
//! primary's answer, and a shadow that never answers costs the clients
//! nothing: copies beyond `max_concurrent` are skipped, none is awaited.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::TestGateway;
use common::scripted::{self, Handler};
use http::StatusCode;
use prost_reflect::DynamicMessage;
use switchyard_demo::Service;

/// The users route on the demo, mirrored to `shadow` with `mirror` keys.
async fn mirrored(shadow: &str, shadow_extra: &str, mirror: &str) -> TestGateway {
    let demo = common::spawn_demo().await;
    let yaml = format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
upstreams:
  users: {{ endpoints: ["{users}"] }}
  shadow: {{ endpoints: ["{shadow}"] {shadow_extra} }}
routes:
  - name: users
    service: demo.users.v1.UserService
    upstream: users
    timeout: 30s
    mirror: {{ upstream: shadow {mirror} }}
"#,
        proto = common::repo_root().join("proto").display(),
        users = demo.url(Service::Users),
    );
    TestGateway::start_yaml(demo, &yaml).await
}

#[tokio::test]
async fn copies_reach_the_shadow_with_their_metadata_and_the_client_gets_the_primary() {
    let pool = scripted::pool(common::repo_root().join("proto"));
    let user = pool.get_message_by_name("demo.users.v1.User").unwrap();
    let handler: Handler = Arc::new(move |_: &DynamicMessage| {
        let mut reply = DynamicMessage::new(user.clone());
        reply.set_field_by_name("name", prost_reflect::Value::String("shadow".into()));
        reply
    });
    let shadow = scripted::start(pool, HashMap::from([("GetUser", handler)])).await;
    let gw = mirrored(&format!("http://{}", shadow.addr), "", "").await;
    let direct = gw.get("/v1/users/1").await.json();
    for _ in 0..9 {
        let reply = gw
            .send(
                http::Method::GET,
                "/v1/users/1",
                &[("x-request-id", "mirror-test")],
                bytes::Bytes::new(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.json(), direct, "the client gets the primary's answer");
    }
    assert_eq!(gw.demo.calls(Service::Users), 10);
    // Copies are not awaited: they arrive in their own time.
    let mut copies = Vec::new();
    for _ in 0..100 {
        copies = shadow.recorded("GetUser");
        if copies.len() == 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(copies.len(), 10);
    let last = copies.last().unwrap();
    assert_eq!(last.metadata["x-switchyard-mirror"], "1");
    assert_eq!(last.metadata["x-request-id"], "mirror-test");
    assert_eq!(
        last.request.get_field_by_name("id").unwrap().as_str(),
        Some("1")
    );
    // Counted once the shadow's answer is in (recorded before it is sent).
    let ok = "switchyard_mirror_requests_total{outcome=\"ok\",route=\"users\"}";
    for _ in 0..100 {
        if gw.metric(ok).await == Some(10.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.metric(ok).await, Some(10.0));
}

#[tokio::test]
async fn a_shadow_that_never_answers_costs_the_clients_nothing() {
    let silent = common::silent_upstream();
    let gw = mirrored(
        &format!("http://{silent}"),
        ", connect_timeout: 30s, timeout: 30s",
        ", max_concurrent: 2",
    )
    .await;
    for _ in 0..10 {
        assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    }
    assert_eq!(gw.demo.calls(Service::Users), 10);
    let metric = |outcome: &str| {
        format!("switchyard_mirror_requests_total{{outcome=\"{outcome}\",route=\"users\"}}")
    };
    // Two copies hang on the shadow (30 s), and every client was answered
    // meanwhile; the other eight were never copied.
    assert_eq!(gw.metric(&metric("skipped")).await, Some(8.0));
    assert_eq!(gw.metric(&metric("ok")).await, Some(0.0));
    assert_eq!(gw.metric(&metric("error")).await, Some(0.0));
}

#[tokio::test]
async fn a_mirror_to_the_route_s_own_upstream_or_of_nothing_is_refused() {
    let base = |mirror: &str| {
        format!(
            "protos: {{ sources: [\"{}\"] }}\nupstreams: {{ users: {{ endpoints: [\"http://127.0.0.1:1\"] }}, b: {{ endpoints: [\"http://127.0.0.1:2\"] }} }}\nroutes:\n  - service: demo.users.v1.UserService\n    upstream: users\n    mirror: {mirror}\n",
            common::repo_root().join("proto").display()
        )
    };
    common::assert_refused(
        base,
        "routes[0].mirror.",
        &[
            (
                "{ upstream: users }",
                "upstream",
                "every mirrored call would reach it twice",
            ),
            ("{ upstream: nope }", "upstream", "unknown upstream `nope`"),
            ("{ upstream: b, percent: 0 }", "percent", "copies nothing"),
            (
                "{ upstream: b, percent: 120 }",
                "percent",
                "between 0 and 100",
            ),
            (
                "{ upstream: b, max_concurrent: 0 }",
                "max_concurrent",
                "copy nothing",
            ),
        ],
    )
    .await;
}
