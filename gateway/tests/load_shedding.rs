//! Admission control (`limits.load_shedding`) through the real gateway: a
//! worker whose event loop is held (a WebAssembly filter that spins until
//! its 40 ms deadline, on one worker) sheds new requests at once with 503,
//! `Retry-After: 1` and a JSON body (gRPC: `UNAVAILABLE` with a retry
//! pushback), counts them, and serves normally again once the load is gone;
//! with shedding off, the same load is queued, never shed.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TestGateway;
use http::{Method, StatusCode};

/// One worker; the users route runs `gateway/tests/wasm/loop.wat`, which
/// spins on requests with `x-loop` until the deadline stops it (500).
async fn gateway(shedding: &str) -> TestGateway {
    let module = common::repo_root().join("gateway/tests/wasm/loop.wat");
    let route_extra = format!(
        r#", plugins: [{{ wasm: {{ module: "{}", fuel: 100000000000, deadline: 40ms }} }}]"#,
        module.display()
    );
    let top = format!("workers: 1\nlimits: {{ load_shedding: {shedding} }}");
    TestGateway::demo_with(&route_extra, &top).await
}

/// Clients sending looping requests back to back until `stop`: each one
/// holds the worker for 40 ms, so the worker's queue stands at seconds.
fn hold_the_worker(
    gw: &Arc<TestGateway>,
    clients: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..clients)
        .map(|_| {
            let (gw, stop) = (gw.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    gw.send(Method::GET, "/v1/users/1", &[("x-loop", "1")], Bytes::new())
                        .await;
                }
            })
        })
        .collect()
}

/// Ends the load and waits for its clients.
async fn release(stop: &AtomicBool, clients: Vec<tokio::task::JoinHandle<()>>) {
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_overloaded_worker_sheds_new_requests_with_503_and_recovers_when_the_load_ends() {
    let gw = Arc::new(gateway("{ target: 20ms, burst: 50ms }").await);
    assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = hold_the_worker(&gw, 24, &stop);

    // Plain requests, one after another, until one is shed.
    let deadline = Instant::now() + Duration::from_secs(20);
    let shed = loop {
        assert!(Instant::now() < deadline, "nothing shed in 20 s");
        let res = gw.get("/v1/users/1").await;
        if res.status == StatusCode::SERVICE_UNAVAILABLE {
            break res;
        }
    };
    assert_eq!(shed.headers["retry-after"], "1", "{:?}", shed.headers);
    assert_eq!(shed.headers["content-type"], "application/json");
    let (code, message) = shed.error();
    assert_eq!(code, 14, "UNAVAILABLE: {}", shed.text());
    assert!(message.contains("overloaded"), "{message}");

    // A gRPC call arriving now is refused the gRPC way.
    let grpc = loop {
        assert!(Instant::now() < deadline, "no gRPC call shed in 20 s");
        let res = gw
            .send(
                Method::POST,
                "/demo.users.v1.UserService/GetUser",
                &[("content-type", "application/grpc"), ("te", "trailers")],
                Bytes::from_static(&[0, 0, 0, 0, 0]),
            )
            .await;
        if res.headers.get("grpc-status").is_some_and(|s| s == "14") {
            break res;
        }
    };
    assert_eq!(grpc.status, StatusCode::OK);
    assert_eq!(grpc.headers["grpc-retry-pushback-ms"], "1000");

    let counted = gw
        .metric(r#"switchyard_shed_requests_total{protocol="http"}"#)
        .await
        .unwrap_or(0.0);
    assert!(counted >= 1.0, "shed requests are counted: {counted}");
    // The share is published per worker (its value moves with the load:
    // shedding the holders' requests too lets the delay fall and rise).
    let share = gw.metric(r#"switchyard_shed_share{worker="0"}"#).await;
    assert!(
        share.is_some_and(|s| (0.0..=0.9).contains(&s)),
        "the worker's share is published, within max_share: {share:?}"
    );
    assert!(
        gw.admin_get("/metrics")
            .await
            .text()
            .contains("switchyard_worker_delay_seconds_bucket"),
        "the probe's delays are published"
    );

    // The load ends: the worker serves everything again.
    release(&stop, clients).await;
    let recovered = Instant::now() + Duration::from_secs(20);
    let mut in_a_row = 0;
    while in_a_row < 20 {
        assert!(
            Instant::now() < recovered,
            "still shedding 20 s after the load ended"
        );
        let res = gw.get("/v1/users/1").await;
        in_a_row = if res.status == StatusCode::OK {
            in_a_row + 1
        } else {
            0
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Arc::try_unwrap(gw).ok().unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_shedding_off_the_same_load_is_queued_and_never_shed() {
    let gw = Arc::new(gateway("{ enabled: false }").await);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = hold_the_worker(&gw, 24, &stop);
    let until = Instant::now() + Duration::from_secs(3);
    let mut answered = 0;
    while Instant::now() < until {
        // Queued behind the held worker: 200, or 504 once the queue outlasts
        // the upstream's 2 s deadline (what shedding is there to prevent),
        // but never shed.
        let res = gw.get("/v1/users/1").await;
        assert!(
            matches!(res.status, StatusCode::OK | StatusCode::GATEWAY_TIMEOUT),
            "{} {}",
            res.status,
            res.text()
        );
        answered += 1;
    }
    assert!(answered >= 1);
    release(&stop, clients).await;
    assert_eq!(
        gw.metric("switchyard_shed_requests_total").await,
        None,
        "nothing shed"
    );
    Arc::try_unwrap(gw).ok().unwrap().stop().await;
}

#[tokio::test]
async fn bad_shedding_settings_are_refused_at_their_key() {
    let base = |shedding: &str| {
        format!(
            "protos: {{ sources: [\"{}\"] }}\nupstreams: {{ users: {{ endpoints: [\"http://127.0.0.1:1\"] }} }}\nroutes: [{{ service: demo.users.v1.UserService, upstream: users }}]\nlimits: {{ load_shedding: {shedding} }}\n",
            common::repo_root().join("proto").display()
        )
    };
    common::assert_refused(
        base,
        "limits.load_shedding.",
        &[
            (
                "{ max_share: 1.5 }",
                "max_share",
                "use a share above 0 and at most 1",
            ),
            (
                "{ max_share: 0 }",
                "max_share",
                "use a share above 0 and at most 1",
            ),
            ("{ interval: 5s }", "interval", "use 1ms to 1s"),
            ("{ target: 1ms }", "target", "use 2ms or more"),
            ("{ targets: 5ms }", "", "unknown field `targets`"),
        ],
    )
    .await;
}
