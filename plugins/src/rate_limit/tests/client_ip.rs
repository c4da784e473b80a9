//! The client IP of a rate-limit key: trusted proxies, `X-Forwarded-For` and
//! `Forwarded` walked from the right, and CIDRs.

use super::*;

#[tokio::test]
async fn a_spoofed_forwarded_for_from_an_untrusted_peer_changes_nothing() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        trusted_proxies: vec!["10.0.0.0/8".into()],
        ..config("1/h")
    })
    .await;
    let spoofed = |xff: &str| {
        request_from("203.0.113.5:1")
            .header("x-forwarded-for", xff)
            .body(empty_body())
            .unwrap()
    };
    assert_eq!(status(&svc, spoofed("1.1.1.1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, spoofed("2.2.2.2")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status(&svc, spoofed("10.0.0.1, 3.3.3.3")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        trusted_proxies: vec!["10.0.0.0/8".into()],
        ..config("1/h")
    })
    .await;
    let via_proxy = |xff: &str| {
        request_from("10.0.0.9:1")
            .header("x-forwarded-for", xff)
            .body(empty_body())
            .unwrap()
    };
    assert_eq!(
        status(&svc, via_proxy("1.1.1.1, 10.0.0.5")).await,
        StatusCode::OK
    );
    // The same client through the other proxy, with a spoofed left part.
    assert_eq!(
        status(&svc, via_proxy("6.6.6.6, 1.1.1.1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(status(&svc, via_proxy("1.1.1.2")).await, StatusCode::OK);
}

#[test]
fn client_ip_resolution() {
    let xff = ClientIpResolver::new(
        vec![
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8:ffff::/48").unwrap(),
        ],
        ForwardedHeader::XForwardedFor,
    );
    // (peer, headers, client)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        // Untrusted peer: the peer, whatever the headers.
        (
            "203.0.113.5",
            &[("x-forwarded-for", "1.1.1.1")],
            "203.0.113.5",
        ),
        // Trusted peer, right-most untrusted hop.
        (
            "10.0.0.9",
            &[("x-forwarded-for", "1.1.1.1, 10.0.0.5")],
            "1.1.1.1",
        ),
        (
            "10.0.0.9",
            &[("x-forwarded-for", "9.9.9.9, 1.1.1.1, 10.0.0.5")],
            "1.1.1.1",
        ),
        // Several header lines are one list.
        (
            "10.0.0.9",
            &[
                ("x-forwarded-for", "1.1.1.1"),
                ("x-forwarded-for", "10.0.0.5"),
            ],
            "1.1.1.1",
        ),
        (
            "10.0.0.9",
            &[
                ("x-forwarded-for", "9.9.9.9"),
                ("x-forwarded-for", "1.1.1.1, 10.1.1.1"),
            ],
            "1.1.1.1",
        ),
        // Ports, brackets, spaces, empty members.
        (
            "10.0.0.9",
            &[("x-forwarded-for", "1.1.1.1:5555 ,  ,")],
            "1.1.1.1",
        ),
        (
            "10.0.0.9",
            &[("x-forwarded-for", "[2001:db8::1]:80")],
            "2001:db8::1",
        ),
        (
            "10.0.0.9",
            &[("x-forwarded-for", "2001:db8::1")],
            "2001:db8::1",
        ),
        // Every hop trusted: the left-most.
        (
            "10.0.0.9",
            &[("x-forwarded-for", "10.1.2.3, 10.0.0.5")],
            "10.1.2.3",
        ),
        // No header: the peer.
        ("10.0.0.9", &[], "10.0.0.9"),
        // A hop that is not an address: the last trusted address seen.
        (
            "10.0.0.9",
            &[("x-forwarded-for", "1.1.1.1, unknown, 10.0.0.5")],
            "10.0.0.5",
        ),
        ("10.0.0.9", &[("x-forwarded-for", "garbage")], "10.0.0.9"),
        // IPv4-mapped peers and hops are IPv4.
        (
            "::ffff:10.0.0.9",
            &[("x-forwarded-for", "::ffff:1.1.1.1")],
            "1.1.1.1",
        ),
        ("::ffff:203.0.113.5", &[], "203.0.113.5"),
        // IPv6 trusted proxy.
        (
            "2001:db8:ffff::1",
            &[("x-forwarded-for", "2001:db8::7")],
            "2001:db8::7",
        ),
        // The Forwarded header is not the configured one: ignored.
        ("10.0.0.9", &[("forwarded", "for=1.1.1.1")], "10.0.0.9"),
    ];
    for (peer, hdrs, expected) in cases {
        assert_eq!(
            xff.resolve(ip(peer), &headers(hdrs)),
            ip(expected),
            "peer {peer}, headers {hdrs:?}"
        );
    }
}

#[test]
fn client_ip_from_the_forwarded_header() {
    let fwd = ClientIpResolver::new(
        vec![Cidr::parse("10.0.0.0/8").unwrap()],
        ForwardedHeader::Forwarded,
    );
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("forwarded", r#"for="[2001:db8::1]:4711""#)],
            "2001:db8::1",
        ),
        (
            &[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")],
            "192.0.2.60",
        ),
        (
            &[("forwarded", r#"For="192.0.2.43:47011", for=10.0.0.5"#)],
            "192.0.2.43",
        ),
        (
            &[
                ("forwarded", "for=9.9.9.9, for=1.1.1.1"),
                ("forwarded", "for=10.0.0.5;proto=https"),
            ],
            "1.1.1.1",
        ),
        // Quoted values may hold separators.
        (
            &[("forwarded", r#"for=1.1.1.1;host="a,b;c", for=10.0.0.5"#)],
            "1.1.1.1",
        ),
        // Obfuscated or unknown: the last trusted address seen.
        (&[("forwarded", "for=_hidden, for=10.0.0.5")], "10.0.0.5"),
        (&[("forwarded", "for=unknown")], "10.0.0.9"),
        // Elements without for= are skipped.
        (&[("forwarded", "for=1.1.1.1, proto=https")], "1.1.1.1"),
        // X-Forwarded-For is not the configured header: ignored.
        (&[("x-forwarded-for", "1.1.1.1")], "10.0.0.9"),
    ];
    for (hdrs, expected) in cases {
        assert_eq!(
            fwd.resolve(ip("10.0.0.9"), &headers(hdrs)),
            ip(expected),
            "headers {hdrs:?}"
        );
    }
}

#[test]
fn forwarded_for_values_are_unquoted() {
    assert_eq!(
        key::forwarded_for_values(r#"for="[2001:db8::1]:4711";proto=https, by=x, for=1.2.3.4"#),
        vec!["[2001:db8::1]:4711", "", "1.2.3.4"]
    );
    assert_eq!(
        key::parse_node("[2001:db8::1]:4711"),
        Some(ip("2001:db8::1"))
    );
    assert_eq!(key::parse_node("\"1.2.3.4:80\""), Some(ip("1.2.3.4")));
    assert_eq!(key::parse_node("_hidden"), None);
    assert_eq!(key::parse_node("fe80::1%eth0"), None);
}

#[test]
fn cidrs() {
    let net = Cidr::parse("10.0.0.0/8").unwrap();
    assert!(net.contains(ip("10.255.1.2")));
    assert!(net.contains(ip("::ffff:10.1.1.1")));
    assert!(!net.contains(ip("11.0.0.1")));
    assert!(
        !net.contains(ip("::a00:1")),
        "IPv4-compatible is not IPv4-mapped"
    );

    let v6 = Cidr::parse("2001:db8::/32").unwrap();
    assert!(v6.contains(ip("2001:db8:1::1")));
    assert!(!v6.contains(ip("2001:db9::1")));
    assert!(!v6.contains(ip("10.0.0.1")));

    let host = Cidr::parse("192.0.2.1").unwrap();
    assert!(host.contains(ip("192.0.2.1")));
    assert!(!host.contains(ip("192.0.2.2")));
    assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));

    let all = Cidr::parse("0.0.0.0/0").unwrap();
    assert!(all.contains(ip("255.255.255.255")));
    assert!(!all.contains(ip("::1")));
    assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
    assert!(
        Cidr::parse("192.0.2.0/31")
            .unwrap()
            .contains(ip("192.0.2.1"))
    );
    assert_eq!(Cidr::parse(" 10.0.0.0/8 ").unwrap(), net);

    for bad in [
        "10.0.0.0/33",
        "2001:db8::/129",
        "10.0.0.1/8",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "10.0.0.0/-1",
        "10.0.0/8",
        "example.com/8",
        "",
        "2001:db8::1/32",
    ] {
        assert!(Cidr::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert!(
        Cidr::parse("10.0.0.1/8")
            .unwrap_err()
            .contains("10.0.0.0/8"),
        "suggests the network"
    );
}
