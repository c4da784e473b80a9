//! Checks of a request's head that hyper leaves to the server, made before
//! anything routes or reads it (the rules are in docs/security.md):
//!
//! - HTTP/1.1 needs exactly one valid `Host` (RFC 9112 §3.2); HTTP/1.0 at
//!   most one. Routes are chosen by host, so an absent or doubled one is an
//!   ambiguity, never a default.
//! - HTTP/1.1: `Transfer-Encoding` must be exactly `chunked` (one line,
//!   one coding). The gateway decodes no other coding, so `gzip, chunked`
//!   would hand a handler gzip bytes as if they were the body, and
//!   `chunked, chunked` is read one way here and another by other parsers
//!   (a smuggling staple). These refusals close the connection: the rest of
//!   its bytes cannot be trusted to start a request.
//! - HTTP/2: an authority (`:authority` or `Host`) is required, and a `Host`
//!   that names another authority than `:authority` is refused
//!   (RFC 9113 §8.3.1).
//!
//! Framing hyper settles itself, before a request exists: invalid or
//! differing `Content-Length` values, a `Transfer-Encoding` not ending in
//! `chunked` or on HTTP/1.0, obs-fold, a bare CR, a NUL, a space before a
//! colon are answered 400 without a body and the connection closed; equal
//! duplicate `Content-Length` values are folded into one (RFC 9110 §8.6);
//! `Content-Length` beside `Transfer-Encoding` is dropped, the body read as
//! chunked, and the connection closed after the response (RFC 9112 §6.1),
//! so nothing pipelined behind it is read.
use http::header::{CONNECTION, HOST, TRANSFER_ENCODING};
use http::uri::Authority;
use http::{HeaderValue, Version};
use switchyard_plugins::ErrorResponse;
use switchyard_plugins::error::Code;
use switchyard_plugins::stage::{Request, Response};

/// The 400 to answer when the head is refused.
pub fn refusal(req: &Request) -> Option<Response> {
    let refused = match req.version() {
        Version::HTTP_2 | Version::HTTP_3 => check_h2(req),
        version => check_h1(req, version),
    };
    let Refusal { message, close } = refused?;
    let mut response = ErrorResponse::new(Code::InvalidArgument, message).into_response();
    if close {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Some(response)
}

struct Refusal {
    message: &'static str,
    /// Close the connection after the answer (HTTP/1 framing in doubt).
    close: bool,
}

fn refuse(message: &'static str, close: bool) -> Option<Refusal> {
    Some(Refusal { message, close })
}

fn check_h1(req: &Request, version: Version) -> Option<Refusal> {
    let headers = req.headers();
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
    if let Some(first) = codings.next()
        && (codings.next().is_some() || !first.as_bytes().eq_ignore_ascii_case(b"chunked"))
    {
        return refuse(
            "Transfer-Encoding may only be `chunked`: the gateway decodes no other coding",
            true,
        );
    }
    let mut hosts = headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => refuse("a request may have one Host header only", false),
        (None, None) if version == Version::HTTP_11 => {
            refuse("an HTTP/1.1 request needs a Host header", false)
        }
        (Some(host), None) if !valid_host(host) => {
            refuse("the Host header is not a valid host[:port]", false)
        }
        _ => None,
    }
}

fn check_h2(req: &Request) -> Option<Refusal> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let (host, more) = (hosts.next(), hosts.next());
    if more.is_some() {
        return refuse("a request may have one host header only", false);
    }
    match (req.uri().authority(), host) {
        (None, None) => refuse("an HTTP/2 request needs :authority or host", false),
        (Some(authority), Some(host)) if !same_authority(authority, host) => refuse(
            "the host header names another authority than :authority",
            false,
        ),
        (None, Some(host)) if !valid_host(host) => {
            refuse("the host header is not a valid host[:port]", false)
        }
        _ => None,
    }
}

/// `host[:port]` with no user info, path or other stray characters.
fn valid_host(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && !bytes.contains(&b'@')
        && Authority::try_from(bytes).is_ok_and(|a| a.as_str().len() == bytes.len())
}

fn same_authority(authority: &Authority, host: &HeaderValue) -> bool {
    valid_host(host)
        && authority
            .as_str()
            .eq_ignore_ascii_case(host.to_str().unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_plugins::stage::empty_body;

    fn request(version: Version, uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut builder = http::Request::builder().version(version).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(empty_body()).unwrap()
    }

    /// `Some(closes the connection)` when refused (always a 400).
    fn refusal(req: &Request) -> Option<bool> {
        let response = super::refusal(req)?;
        assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
        Some(response.headers().get(CONNECTION).is_some())
    }

    #[test]
    fn http11_needs_exactly_one_valid_host() {
        let v = Version::HTTP_11;
        assert!(refusal(&request(v, "/a", &[("host", "api.example.com:8443")])).is_none());
        assert!(refusal(&request(v, "/a", &[("host", "[::1]:80")])).is_none());
        for bad in [
            vec![],
            vec![("host", "a"), ("host", "b")],
            vec![("host", "a b")],
            vec![("host", "user@a")],
            vec![("host", "a/b")],
            vec![("host", "")],
        ] {
            let close = refusal(&request(v, "/a", &bad)).unwrap_or_else(|| panic!("{bad:?}"));
            assert!(!close, "a host refusal keeps the connection: {bad:?}");
        }
        // HTTP/1.0 may go without one.
        assert!(refusal(&request(Version::HTTP_10, "/a", &[])).is_none());
    }

    #[test]
    fn transfer_encoding_other_than_one_chunked_closes_the_connection() {
        let v = Version::HTTP_11;
        let ok = request(v, "/a", &[("host", "a"), ("transfer-encoding", "Chunked")]);
        assert!(refusal(&ok).is_none());
        for bad in [
            vec![("host", "a"), ("transfer-encoding", "chunked, chunked")],
            vec![("host", "a"), ("transfer-encoding", "gzip, chunked")],
            vec![
                ("host", "a"),
                ("transfer-encoding", "gzip"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            let close = refusal(&request(v, "/a", &bad)).unwrap_or_else(|| panic!("{bad:?}"));
            assert!(close, "{bad:?}");
        }
    }

    #[test]
    fn http2_host_must_agree_with_authority() {
        let v = Version::HTTP_2;
        assert!(refusal(&request(v, "http://a:1/x", &[])).is_none());
        assert!(refusal(&request(v, "http://a:1/x", &[("host", "A:1")])).is_none());
        assert!(refusal(&request(v, "/x", &[("host", "a")])).is_none());
        assert!(refusal(&request(v, "http://a:1/x", &[("host", "b:1")])).is_some());
        assert!(refusal(&request(v, "/x", &[])).is_some());
    }
}
