//! A `rate_limit` with `backend: redis` is one limit across gateway
//! instances: two gateways in front of the same upstream, pointing at the
//! same Redis (127.0.0.1:6379, started by scripts/test.sh), share one budget.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::TestGateway;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REDIS: &str = "127.0.0.1:6379";

/// Fails the test, saying what to do, when the test Redis is not running
/// (fail-open limits would otherwise fall back to per-instance limits).
async fn require_redis() {
    let ping = async {
        let mut conn = TcpStream::connect(REDIS).await.ok()?;
        conn.write_all(b"PING\r\n").await.ok()?;
        let mut reply = [0u8; 7];
        conn.read_exact(&mut reply).await.ok()?;
        Some(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(2), ping).await;
    assert!(
        matches!(reply, Ok(Some(ref r)) if r == b"+PONG\r\n"),
        "Redis is not reachable at {REDIS}: run scripts/test.sh, which starts one \
         (or `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no`)"
    );
}

#[tokio::test]
async fn two_gateways_share_one_redis_rate_limit() {
    require_redis().await;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("switchyard-test:{}:{nanos}:", std::process::id());
    let route_extra = format!(
        ", plugins: [ {{ rate_limit: {{ rate: 5/min, backend: {{ redis: {{ url: \"redis://{REDIS}\", key_prefix: \"{prefix}\" }} }} }} }} ]"
    );
    let demo = common::spawn_demo().await;
    let yaml = common::demo_config(&demo, &route_extra, "");
    let first = TestGateway::start_yaml(demo, &yaml).await;
    // The second gateway's own demo services stay idle: both use the first's.
    let second = TestGateway::start_yaml(common::spawn_demo().await, &yaml).await;

    let mut ok = 0;
    let mut limited = 0;
    for i in 0..12 {
        let gw = if i % 2 == 0 { &first } else { &second };
        let reply = gw.get("/v1/users/1").await;
        match reply.status {
            StatusCode::OK => {
                ok += 1;
                let quota = reply.headers["ratelimit"].to_str().unwrap();
                assert!(
                    quota.starts_with(&format!("\"default\";r={};t=", 5 - ok)),
                    "{quota}"
                );
            }
            StatusCode::TOO_MANY_REQUESTS => {
                limited += 1;
                assert_eq!(reply.error().0, 8);
                assert!(reply.headers.contains_key("retry-after"));
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!(
        (ok, limited),
        (5, 7),
        "the two gateways must share one limit"
    );
    // Both gateways refuse now, not just the one that saw the last request.
    assert_eq!(
        first.get("/v1/users/1").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        second.get("/v1/users/1").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    first.stop().await;
    second.stop().await;
}
