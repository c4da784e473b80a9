//! Rate limits cannot be stepped around by claiming another address: a
//! forwarding header from a peer that is not a trusted proxy is ignored, and
//! from a trusted one only the right-most hop it did not add itself counts.

use http::{Method, StatusCode};
use switchyard_demo::Service;

use crate::common::TestGateway;

fn limit(trusted: &str) -> String {
    format!(
        ", plugins: [ {{ rate_limit: {{ name: per-client, rate: 3/min, key: [client_ip]{trusted} }} }} ]"
    )
}

async fn get_as(gw: &TestGateway, name: &str, value: &str) -> StatusCode {
    gw.send(
        Method::GET,
        "/v1/users/1",
        &[(name, value)],
        bytes::Bytes::new(),
    )
    .await
    .status
}

#[tokio::test]
async fn spoofed_forwarding_headers_from_an_untrusted_peer_change_nothing() {
    let gw = TestGateway::demo_with(&limit(""), "").await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        let spoof = format!("203.0.113.{i}");
        let (name, value) = match i % 4 {
            0 => ("x-forwarded-for", spoof),
            1 => ("x-forwarded-for", format!("{spoof}, 198.51.100.7")),
            2 => ("forwarded", format!("for={spoof}")),
            _ => ("x-real-ip", spoof),
        };
        statuses.push(get_as(&gw, name, &value).await.as_u16());
    }
    // One client (the socket's address): three pass, the rest are 429.
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429, 429, 429]);
    assert_eq!(gw.demo.calls(Service::Users), 3);
    gw.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_only_the_hop_it_appended_counts() {
    let gw = TestGateway::demo_with(
        &limit(", trusted_proxies: [127.0.0.1/32], forwarded_header: x_forwarded_for"),
        "",
    )
    .await;
    // The proxy (this test, on loopback) appends the client it saw; what
    // the client put before that is its own claim and is not read.
    let mut statuses = Vec::new();
    for i in 0..5 {
        let chain = format!("10.9.9.{i}, 192.0.2.1");
        statuses.push(get_as(&gw, "x-forwarded-for", &chain).await.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429], "one client, 192.0.2.1");
    // Another client behind the same proxy has its own quota.
    assert_eq!(
        get_as(&gw, "x-forwarded-for", "192.0.2.2").await,
        StatusCode::OK
    );
    gw.stop().await;
}
