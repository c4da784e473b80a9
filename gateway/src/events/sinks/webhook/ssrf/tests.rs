use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect(text)
}

fn blocked(text: &str) -> bool {
    Guard::default().check(ip(text)).is_err()
}

#[test]
fn ipv4_ranges_that_are_not_public_are_blocked() {
    for addr in [
        "0.0.0.0",
        "0.1.2.3",
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.0.1",
        "192.168.255.255",
        "100.64.0.1",
        "100.127.255.255",
        "169.254.169.254",
        "169.254.0.1",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "198.19.255.255",
        "198.51.100.7",
        "203.0.113.9",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
    ] {
        assert!(blocked(addr), "{addr} must be blocked");
    }
}

#[test]
fn public_ipv4_addresses_pass() {
    for addr in [
        "8.8.8.8",
        "1.1.1.1",
        "9.255.255.255",
        "11.0.0.0",
        "172.15.255.255",
        "172.32.0.0",
        "192.167.255.255",
        "192.169.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "169.253.255.255",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "128.0.0.1",
        "126.255.255.255",
    ] {
        assert!(!blocked(addr), "{addr} is public");
    }
}

#[test]
fn ipv6_ranges_that_are_not_public_are_blocked() {
    for addr in [
        "::",
        "::1",
        "fe80::1",
        "febf::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "ff05::2",
        "100::1",
        "2001:db8::1",
        "2001::1",
        "64:ff9b:1::1",
        // IPv4-compatible (deprecated), whatever the embedded address.
        "::8.8.8.8",
        "::127.0.0.1",
    ] {
        assert!(blocked(addr), "{addr} must be blocked");
    }
}

#[test]
fn ipv4_embedded_in_ipv6_is_judged_by_the_ipv4_address() {
    for addr in [
        "::ffff:127.0.0.1",
        "::ffff:7f00:1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:0.0.0.0",
        "64:ff9b::127.0.0.1",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::192.168.1.1",
        "2002:7f00:1::",
        "2002:c0a8:101::1",
    ] {
        assert!(blocked(addr), "{addr} must be blocked");
    }
    for addr in [
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "2002:808:808::1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:800::200e",
    ] {
        assert!(!blocked(addr), "{addr} is public");
    }
}

#[test]
fn the_reason_names_the_class_and_the_way_out() {
    let err = Guard::default()
        .check(ip("::ffff:127.0.0.1"))
        .expect_err("blocked");
    let text = err.to_string();
    assert!(text.contains("loopback"), "{text}");
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(text.contains("IPv4-mapped"), "{text}");
    assert!(text.contains("allow_networks"), "{text}");
    let err = Guard::default()
        .check(ip("169.254.169.254"))
        .expect_err("blocked");
    assert!(err.to_string().contains("link-local"), "{err}");
}

#[test]
fn allowed_networks_let_private_addresses_through() {
    let guard = Guard::new(&[
        "127.0.0.1".to_owned(),
        "10.1.0.0/16".to_owned(),
        "fd00::/8".to_owned(),
    ])
    .expect("guard");
    for addr in [
        "127.0.0.1",
        "::ffff:127.0.0.1",
        "10.1.2.3",
        "fd00::5",
        "8.8.8.8",
    ] {
        assert!(guard.check(ip(addr)).is_ok(), "{addr} is allowed");
    }
    for addr in ["127.0.0.2", "10.2.0.1", "::1", "fc00::1", "192.168.1.1"] {
        assert!(guard.check(ip(addr)).is_err(), "{addr} is not allowed");
    }
    // Everything, for a gateway on a trusted network.
    let open = Guard::new(&["0.0.0.0/0".to_owned(), "::/0".to_owned()]).expect("guard");
    for addr in ["127.0.0.1", "::1", "169.254.169.254", "fe80::1"] {
        assert!(open.check(ip(addr)).is_ok(), "{addr}");
    }
}

#[test]
fn allowed_networks_are_checked() {
    for (text, expected) in [
        ("10.0.0.0/33", "prefix"),
        ("10.0.0.0/x", "prefix"),
        ("::/129", "prefix"),
        ("10.0.0.1/8", "host bits"),
        ("fd00::1/8", "host bits"),
        ("localhost", "not an address"),
        ("10.0.0/8", "not an address"),
        ("", "not an address"),
    ] {
        let err = Guard::new(&[text.to_owned()]).expect_err(text);
        assert!(err.contains(expected), "{text:?}: {err}");
        assert!(err.contains("allow_networks"), "{err}");
    }
    assert!("0.0.0.0/0".parse::<Network>().is_ok());
    assert!("192.168.1.0/24".parse::<Network>().is_ok());
    assert!("::1/128".parse::<Network>().is_ok());
}

#[test]
fn dotted_decimal_and_bracketed_ipv6_hosts_are_addresses() {
    assert_eq!(parse_host("8.8.8.8"), Ok(Host::Ip(ip("8.8.8.8"))));
    assert_eq!(parse_host("127.0.0.1"), Ok(Host::Ip(ip("127.0.0.1"))));
    assert_eq!(parse_host("[::1]"), Ok(Host::Ip(ip("::1"))));
    assert_eq!(
        parse_host("[::ffff:127.0.0.1]"),
        Ok(Host::Ip(ip("::ffff:127.0.0.1")))
    );
    assert!(parse_host("[::1").is_err());
    assert!(parse_host("[fe80::1%25eth0]").is_err());
    assert!(parse_host("[not-v6]").is_err());
}

#[test]
fn numeric_ipv4_notations_browsers_accept_are_refused_naming_the_address() {
    for (host, means) in [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("10.0x10.1", "10.16.0.1"),
        ("0", "0.0.0.0"),
        ("0x", "0.0.0.0"),
        ("3232235777", "192.168.1.1"),
        ("134744072", "8.8.8.8"),
        ("08.8.8.8", ""),
    ] {
        let err = parse_host(host).expect_err(host);
        assert!(err.contains(host), "{host}: {err}");
        if !means.is_empty() {
            assert!(
                err.contains(means) && err.contains("non-standard"),
                "{host}: {err}"
            );
        }
    }
    // Invalid as IPv4 although they end in a number: no fallback to DNS.
    for host in [
        "1.2.3.4.5",
        "256.0.0.1",
        "1.2.3.256",
        "4294967296",
        "example.0x1",
    ] {
        assert!(parse_host(host).is_err(), "{host}");
    }
}

#[test]
fn names_are_names() {
    assert_eq!(
        parse_host("Hooks.Example.COM"),
        Ok(Host::Name("hooks.example.com".to_owned()))
    );
    assert_eq!(
        parse_host("localhost."),
        Ok(Host::Name("localhost".to_owned()))
    );
    // Labels that merely start with digits are names.
    assert_eq!(
        parse_host("1password.com"),
        Ok(Host::Name("1password.com".to_owned()))
    );
    assert_eq!(
        parse_host("127.0.0.1.nip.io"),
        Ok(Host::Name("127.0.0.1.nip.io".to_owned()))
    );
    assert_eq!(parse_host("x.0xg"), Ok(Host::Name("x.0xg".to_owned())));
    for host in [
        "",
        "a..b",
        ".",
        "%31%32%37.0.0.1",
        "a b",
        "caf\u{e9}.fr",
        "a+1",
    ] {
        assert!(parse_host(host).is_err(), "{host:?}");
    }
}
