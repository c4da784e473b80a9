//! HTTP/1 framing: the requests request smuggling is made of. Each refused
//! one is answered 400 and, where its framing is in doubt, the connection
//! closed, so a request pipelined behind it is never served.

use switchyard_demo::Service;

use crate::QUIET;
use crate::common::TestGateway;
use crate::raw::exchange;

/// A request that must be served if it is ever read: pipelined behind the
/// attack, it proves the attack's bytes did not leave the connection usable.
const SMUGGLED: &str = "GET /v1/users/1 HTTP/1.1\r\nHost: a\r\n\r\n";

fn post(headers: &str, body: &str) -> String {
    format!(
        "POST /v1/orders HTTP/1.1\r\nHost: a\r\ncontent-type: application/json\r\n{headers}\r\n{body}{SMUGGLED}"
    )
}

#[tokio::test]
async fn content_length_beside_transfer_encoding_is_read_as_chunked_and_closes_in_either_order() {
    // RFC 9112 §6.1: Transfer-Encoding wins, and the connection is closed
    // after the response, so the request pipelined behind it, which a
    // Content-Length reading would find inside the body, is never served.
    let gw = TestGateway::demo().await;
    let order = r#"{"userId":"1","items":[{"sku":"A-1","qty":1}]}"#;
    let chunked = format!("{:x}\r\n{order}\r\n0\r\n\r\n", order.len());
    for attack in [
        post(
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            &chunked,
        ),
        post(
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            &chunked,
        ),
        post(
            "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n",
            &chunked,
        ),
    ] {
        let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
        let reply = got.only();
        assert_eq!(reply.status, 200, "{attack:?}: {}", reply.text());
        assert!(got.closed, "{attack:?}: the connection stays open");
    }
    assert_eq!(gw.demo.calls(Service::Orders), 3);
    assert_eq!(
        gw.demo.calls(Service::Users),
        0,
        "a smuggled request was served"
    );
    gw.stop().await;
}

#[tokio::test]
async fn duplicate_or_invalid_content_length_is_400_and_closes() {
    let gw = TestGateway::demo().await;
    for headers in [
        "Content-Length: 2\r\nContent-Length: 3\r\n",
        "Content-Length: 2, 2\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: +2\r\n",
        "Content-Length: 0x2\r\n",
        "Content-Length: 2 2\r\n",
        "Content-Length: 99999999999999999999999\r\n",
    ] {
        let attack = post(headers, "{}");
        let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
        assert_eq!(got.statuses(), [400], "{headers:?}");
        assert!(got.closed, "{headers:?}: the connection stays open");
    }
    assert_eq!(gw.upstream_calls(), 0, "the upstream was called");
    // Equal values are one length (RFC 9110 §8.6): read once, and the next
    // request, right after the 2 bytes, is served.
    let attack = post("Content-Length: 2\r\nContent-Length: 2\r\n", "{}");
    let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
    assert_eq!(got.statuses(), [400, 200], "{got:?}");
    assert!(got.responses[0].message().contains("must not be empty"));
    gw.stop().await;
}

#[tokio::test]
async fn a_transfer_encoding_other_than_final_chunked_is_400_and_closes() {
    let gw = TestGateway::demo().await;
    for (version, te) in [
        ("1.1", "chunked, gzip"),
        ("1.1", "gzip"),
        ("1.1", "identity"),
        ("1.1", "xchunked"),
        ("1.1", "chunked, chunked"),
        ("1.1", "gzip, chunked"),
        // HTTP/1.0 has no Transfer-Encoding at all.
        ("1.0", "chunked"),
    ] {
        let attack = format!(
            "POST /v1/orders HTTP/{version}\r\nHost: a\r\ncontent-type: application/json\r\nTransfer-Encoding: {te}\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n{SMUGGLED}"
        );
        let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
        assert_eq!(got.statuses(), [400], "HTTP/{version} {te:?}");
        assert!(
            got.closed,
            "HTTP/{version} {te:?}: the connection stays open"
        );
        // Those hyper lets through, the gateway refuses itself, saying why.
        if te.ends_with(", chunked") {
            let reply = got.only();
            assert_eq!(reply.header("connection"), Some("close"));
            assert!(
                reply
                    .message()
                    .starts_with("Transfer-Encoding may only be `chunked`")
            );
        }
    }
    assert_eq!(gw.upstream_calls(), 0, "the upstream was called");
    gw.stop().await;
}

#[tokio::test]
async fn a_malformed_chunk_size_is_400_and_closes() {
    let gw = TestGateway::demo().await;
    for chunks in [
        "FFFFFFFFFFFFFFFFF1\r\n{}\r\n0\r\n\r\n", // overflows 64 bits
        "zz\r\n{}\r\n0\r\n\r\n",
        "-2\r\n{}\r\n0\r\n\r\n",
        "2\r\n{}XX0\r\n\r\n", // no CRLF after the data
    ] {
        let attack = post("Transfer-Encoding: chunked\r\n", chunks);
        let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
        let reply = got.only();
        assert_eq!(reply.status, 400, "{chunks:?}: {}", reply.text());
        assert!(
            reply
                .message()
                .starts_with("could not read the request body"),
            "{chunks:?}: {}",
            reply.text()
        );
        assert!(got.closed, "{chunks:?}: the connection stays open");
    }
    assert_eq!(gw.upstream_calls(), 0, "the upstream was called");
    gw.stop().await;
}

#[tokio::test]
async fn obs_fold_bare_cr_nul_and_a_space_before_the_colon_are_400_and_close() {
    let gw = TestGateway::demo().await;
    for header in [
        "X-A: a\r\n b\r\n", // obs-fold
        "X-A: a\rb\r\n",    // bare CR
        "X-A: a\0b\r\n",    // NUL
        "X-A : a\r\n",      // whitespace before the colon
        "X A: a\r\n",       // a space in the name
        "Host\r\n",         // no colon
        "\r\n X-A: a\r\n",  // a continuation with nothing to continue
    ] {
        let attack = format!("GET /v1/users/1 HTTP/1.1\r\nHost: a\r\n{header}\r\n{SMUGGLED}");
        let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
        // The last case ends the head early: its "request" is the first line
        // and Host only, then a line that is not a request.
        assert_eq!(got.statuses().last(), Some(&400), "{header:?}: {got:?}");
        assert!(got.closed, "{header:?}: the connection stays open");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_missing_doubled_or_invalid_host_is_400_and_the_next_request_is_served() {
    let gw = TestGateway::demo().await;
    for (head, message) in [
        ("", "an HTTP/1.1 request needs a Host header"),
        (
            "Host: a\r\nHost: b\r\n",
            "a request may have one Host header only",
        ),
        (
            "Host: a b\r\n",
            "the Host header is not a valid host[:port]",
        ),
        (
            "Host: user@a\r\n",
            "the Host header is not a valid host[:port]",
        ),
        (
            "Host: a/b\r\n",
            "the Host header is not a valid host[:port]",
        ),
    ] {
        let attack = format!("GET /v1/users/1 HTTP/1.1\r\n{head}\r\n{SMUGGLED}");
        let got = exchange(gw.addr, attack.as_bytes(), QUIET).await;
        assert_eq!(got.statuses(), [400, 200], "{head:?}: {got:?}");
        assert_eq!(got.responses[0].message(), message);
    }
    // Only the well-formed requests reached the upstream.
    assert_eq!(gw.upstream_calls(), 5);
    // HTTP/1.0 may leave Host out.
    let got = exchange(gw.addr, b"GET /v1/users/1 HTTP/1.0\r\n\r\n", QUIET).await;
    assert_eq!(got.statuses(), [200]);
    gw.stop().await;
}

#[tokio::test]
async fn a_lone_lf_ends_a_line_as_rfc_9112_allows() {
    // §2.2: a recipient MAY recognise a single LF as a line terminator. The
    // gateway does (hyper's parser), and since it forwards no HTTP/1 bytes
    // (requests become gRPC calls) no second parser can read them otherwise.
    let gw = TestGateway::demo().await;
    let got = exchange(gw.addr, b"GET /v1/users/1 HTTP/1.1\nHost: a\n\n", QUIET).await;
    assert_eq!(got.statuses(), [200]);
    gw.stop().await;
}
