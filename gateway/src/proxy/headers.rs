//! What a proxied request and its answer carry across: hop-by-hop headers
//! dropped both ways (RFC 9110 §7.6.1), `X-Forwarded-*` set, the path's
//! prefix rewritten.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::proxy::ForwardedFor;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that concern one connection, never forwarded: the fixed ones,
/// and any the `Connection` header names.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Drops the hop-by-hop headers of `headers`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most requests and answers carry none: one pass over the names,
    // without hashing, before any removal.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
}

/// What the request's forwarding headers say of the client.
pub struct Client<'a> {
    pub ip: Option<IpAddr>,
    /// `https` on a TLS listener.
    pub proto: &'static str,
    /// The host the client asked for (`Host` or `:authority`).
    pub host: Option<&'a str>,
}

/// Sets `X-Forwarded-For`, `-Proto` and `-Host` by `policy`: `replace`
/// overwrites what the client sent, `append` keeps it (adding the client's
/// address to `X-Forwarded-For`, and `-Proto` and `-Host` only where
/// missing), `drop` removes the three.
pub fn set_forwarded(headers: &mut HeaderMap, policy: ForwardedFor, client: &Client<'_>) {
    if policy == ForwardedFor::Drop {
        for name in [X_FORWARDED_FOR, X_FORWARDED_PROTO, X_FORWARDED_HOST] {
            headers.remove(name);
        }
        return;
    }
    let replace = policy == ForwardedFor::Replace;
    let sent: Vec<&str> = if replace {
        Vec::new()
    } else {
        headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    };
    let mut chain = sent.join(", ");
    if let Some(ip) = client.ip {
        if !chain.is_empty() {
            chain.push_str(", ");
        }
        chain.push_str(&ip.to_string());
    }
    match HeaderValue::try_from(chain) {
        Ok(value) if !value.is_empty() => {
            headers.insert(X_FORWARDED_FOR, value);
        }
        _ => {
            headers.remove(X_FORWARDED_FOR);
        }
    }
    if replace || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(client.proto));
    }
    if replace || !headers.contains_key(&X_FORWARDED_HOST) {
        match client.host.and_then(|h| HeaderValue::try_from(h).ok()) {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST, host);
            }
            None => {
                headers.remove(X_FORWARDED_HOST);
            }
        }
    }
}

/// `path` with `prefix` (which it starts with, by whole segments) replaced
/// by `with`, never with `//` where they join; the query kept.
pub fn rewrite(path: &str, prefix: &str, with: &str, query: Option<&str>) -> String {
    let rest = path.get(prefix.trim_end_matches('/').len()..).unwrap_or("");
    let mut out = String::with_capacity(with.len() + rest.len() + 1);
    out.push_str(with.trim_end_matches('/'));
    if rest.is_empty() {
        if with.ends_with('/') || out.is_empty() {
            out.push('/');
        }
    } else {
        out.push_str(rest);
    }
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Whether `path` holds a character some services read as a separator or
/// a parameter where the gateway reads part of a segment: `;`, `\`, or
/// `%2F`, `%5C`, `%3B` in either case.
pub fn ambiguous(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.iter().enumerate().any(|(i, b)| match b {
        b';' | b'\\' => true,
        b'%' => matches!(
            bytes
                .get(i + 1..i + 3)
                .map(|h| [h[0].to_ascii_uppercase(), h[1].to_ascii_uppercase()]),
            Some([b'2', b'F'] | [b'5', b'C'] | [b'3', b'B'])
        ),
        _ => false,
    })
}

/// Whether `path` is `prefix` or below it, by whole segments.
pub fn under(path: &str, prefix: &str) -> bool {
    let base = prefix.trim_end_matches('/');
    base.is_empty()
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::try_from(*name).expect("name"),
                HeaderValue::try_from(*value).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_dropped() {
        let mut headers = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic eA=="),
            ("authorization", "Bearer t"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "x-kept"]);
    }

    fn client(ip: &str) -> Client<'static> {
        Client {
            ip: Some(ip.parse().expect("ip")),
            proto: "https",
            host: Some("shop.example.com"),
        }
    }

    #[test]
    fn replace_drops_what_the_client_claimed() {
        let mut headers = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-proto", "http"),
            ("x-forwarded-host", "evil.example"),
        ]);
        set_forwarded(&mut headers, ForwardedFor::Replace, &client("10.0.0.7"));
        assert_eq!(headers["x-forwarded-for"], "10.0.0.7");
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "shop.example.com");
    }

    #[test]
    fn append_keeps_the_chain_and_adds_the_peer() {
        let mut headers = map(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("x-forwarded-for", "5.6.7.8"),
            ("x-forwarded-proto", "https"),
        ]);
        set_forwarded(&mut headers, ForwardedFor::Append, &client("10.0.0.7"));
        assert_eq!(headers["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.0.0.7");
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(headers["x-forwarded-proto"], "https");
        assert_eq!(headers["x-forwarded-host"], "shop.example.com");
    }

    #[test]
    fn drop_removes_the_forwarding_headers() {
        let mut headers = map(&[("x-forwarded-for", "1.2.3.4"), ("x-forwarded-host", "h")]);
        set_forwarded(&mut headers, ForwardedFor::Drop, &client("10.0.0.7"));
        assert!(headers.is_empty());
    }

    #[test]
    fn separators_in_disguise_are_ambiguous() {
        for path in [
            "/a;b",
            "/a%2Fb",
            "/a%2fb",
            "/a%5cb",
            "/a\\b",
            "/a%3Bb",
            "/admin;x=1/users",
        ] {
            assert!(ambiguous(path), "{path}");
        }
        for path in ["/a/b", "/a%20b", "/a%2", "/a%", "/caf%C3%A9", "/a%25"] {
            assert!(!ambiguous(path), "{path}");
        }
    }

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(under("/legacy", "/legacy"));
        assert!(under("/legacy/a", "/legacy"));
        assert!(under("/legacy/a", "/legacy/"));
        assert!(!under("/legacyx", "/legacy"));
        assert!(under("/anything", "/"));
    }

    #[test]
    fn rewrite_replaces_the_prefix_and_keeps_the_query() {
        assert_eq!(rewrite("/legacy/a/b", "/legacy", "/", None), "/a/b");
        assert_eq!(rewrite("/legacy", "/legacy", "/", None), "/");
        assert_eq!(rewrite("/legacy/", "/legacy", "/", None), "/");
        assert_eq!(
            rewrite("/legacy/a", "/legacy", "/v2", Some("x=1")),
            "/v2/a?x=1"
        );
        assert_eq!(rewrite("/legacy", "/legacy", "/v2", None), "/v2");
        assert_eq!(rewrite("/legacy", "/legacy", "/v2/", None), "/v2/");
        assert_eq!(rewrite("/a", "/", "/app", None), "/app/a");
        assert_eq!(rewrite("/legacy/a", "/legacy/", "/", None), "/a");
    }
}
