//! HTTP/2 floods: rapid reset (CVE-2023-44487), a CONTINUATION flood, a
//! flood of SETTINGS, PING or WINDOW_UPDATE frames, a window overflow, and
//! streams beyond the advertised limit. The frames come from the Python
//! `h2` package's framing layer (tests/peers/python/h2_attacks.py), written
//! straight to the socket. The attacker's connection is cut or its abuse
//! bounded, the test process's memory stays bounded, and a normal client is
//! served all along.

use std::time::Duration;

use http::StatusCode;
use serde_json::Value;
use switchyard_demo::Service;

use crate::common::{self, TestGateway};

/// What the attack script saw.
#[derive(Debug)]
struct Outcome {
    sent: u64,
    goaway: Option<u64>,
    closed: bool,
    refused: u64,
}

/// GOAWAY error codes (RFC 9113 §7).
const FLOW_CONTROL_ERROR: u64 = 0x3;
const ENHANCE_YOUR_CALM: u64 = 0xb;

/// Runs `attack` with `count` frames (or streams) against `gw` while a
/// normal client sends requests on its own connections; every one of those
/// must be served. Also checks the process's resident memory grew by less
/// than 64 MiB.
async fn attack(gw: &TestGateway, name: &str, count: u32) -> Outcome {
    let rss_before = common::rss_kib();
    let script = common::repo_root().join("gateway/tests/peers/python/h2_attacks.py");
    let run = tokio::process::Command::new(common::python())
        .arg(&script)
        .args([
            "127.0.0.1",
            &gw.addr.port().to_string(),
            name,
            &count.to_string(),
        ])
        .kill_on_drop(true)
        .output();
    let others = async {
        for _ in 0..20 {
            let reply = gw.get("/v1/users/1").await;
            assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.text());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (out, ()) = tokio::join!(
        async {
            tokio::time::timeout(Duration::from_secs(60), run)
                .await
                .expect("the attack ends within 60 s")
        },
        others
    );
    let out = out.unwrap_or_else(|e| panic!("cannot run the h2 attack script: {e}"));
    assert!(
        out.status.success(),
        "{name}: h2_attacks.py failed (needs the h2 package: scripts/test.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    // Served after the attack, too.
    assert_eq!(gw.get("/v1/users/1").await.status, StatusCode::OK);
    let grown = common::rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "{name}: memory grew by {grown} KiB");
    Outcome {
        sent: json["sent"].as_u64().unwrap(),
        goaway: json["goaway"].as_u64(),
        closed: json["closed"].as_bool().unwrap(),
        refused: json["refused"].as_u64().unwrap(),
    }
}

#[tokio::test]
async fn rapid_reset_is_cut_off() {
    let gw = TestGateway::demo().await;
    let outcome = attack(&gw, "rapid_reset", 20_000).await;
    // The GOAWAY is sent, but the reset that closing a socket with unread
    // bytes in it causes can overtake it on the client's side.
    assert!(
        matches!(outcome.goaway, None | Some(ENHANCE_YOUR_CALM)),
        "{outcome:?}"
    );
    assert!(outcome.closed, "{outcome:?}");
    assert!(outcome.sent < 2_000, "{outcome:?}");
    // The attack's streams were cancelled: at most one call per stream it
    // got in, besides the normal client's 21.
    assert!(gw.demo.calls(Service::Users) as u64 <= 21 + outcome.sent);
    gw.stop().await;
}

#[tokio::test]
async fn a_continuation_flood_is_cut_off_at_the_header_limit() {
    let gw = TestGateway::demo_with("", "limits: { max_header_bytes: 64KiB }").await;
    // 10 000 frames of 16 KB would be 160 MB of one header block.
    let outcome = attack(&gw, "continuation_flood", 10_000).await;
    assert!(outcome.closed, "{outcome:?}");
    // Cut long before: what was sent beyond the first few frames sat in
    // the sockets' buffers (a few MB on loopback), and memory stayed flat.
    assert!(outcome.sent < 1_000, "{outcome:?}");
    gw.stop().await;
}

#[tokio::test]
async fn settings_ping_and_window_update_floods_cost_the_attacker_only_its_own_connection() {
    let gw = TestGateway::demo().await;
    for flood in ["settings_flood", "ping_flood", "window_update_flood"] {
        let outcome = attack(&gw, flood, 20_000).await;
        // Each frame is answered (an ACK) or absorbed; the connection's
        // reads wait on its writes, so a client that does not read stops
        // being read from.
        assert!(outcome.sent > 0, "{flood}: {outcome:?}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_window_update_past_the_maximum_is_a_flow_control_error() {
    let gw = TestGateway::demo().await;
    let outcome = attack(&gw, "window_overflow", 4).await;
    assert_eq!(outcome.goaway, Some(FLOW_CONTROL_ERROR), "{outcome:?}");
    assert!(outcome.closed, "{outcome:?}");
    gw.stop().await;
}

#[tokio::test]
async fn streams_beyond_the_limit_are_refused_and_others_are_served() {
    let gw = TestGateway::demo_with(
        "",
        "limits: { h2_max_concurrent_streams: 10, body_read_timeout: 2s }",
    )
    .await;
    // Requests whose bodies never end, so each stream stays open.
    let outcome = attack(&gw, "too_many_streams", 2_000).await;
    assert!(outcome.refused > 0, "{outcome:?}");
    // Past 1024 refusals the connection is cut.
    assert!(
        outcome.closed || outcome.refused + 10 >= outcome.sent,
        "{outcome:?}"
    );
    assert!(
        matches!(outcome.goaway, None | Some(ENHANCE_YOUR_CALM)),
        "{outcome:?}"
    );
    assert_eq!(gw.demo.calls(Service::Orders), 0, "{outcome:?}");
    gw.stop().await;
}
