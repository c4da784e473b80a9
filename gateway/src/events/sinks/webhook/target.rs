//! Where a delivery goes: the sink's `url`, checked once at start, with the
//! event's `destination` appended to its path, and the operator's extra
//! headers.

use std::collections::BTreeMap;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};

use super::ssrf::{Guard, Host, parse_host};

/// The characters of a destination that are percent-encoded in the path:
/// controls, space, non-ASCII and what would end or change the path (`?`,
/// `#`) or be read as an escape (`%`). `/` stays a separator.
const PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(0x7f);

/// Header names an operator cannot set: the signature covers what the
/// sink sends, and the transport headers are hyper's.
const RESERVED: &[&str] = &[
    "connection",
    "content-length",
    "content-type",
    "host",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// The sink's endpoint.
#[derive(Clone, Debug)]
pub struct Target {
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The URL's path without a trailing `/` (empty for the root).
    path: String,
    query: Option<String>,
}

impl Target {
    /// Checks `url`: absolute http(s), a host the guard accepts when it is
    /// an address, no credentials in it (they would be logged with it).
    pub fn parse(url: &str, guard: &Guard) -> Result<Target, String> {
        let uri: Uri = url.parse().map_err(|e| {
            format!("`url` is not a URL ({e}); expected e.g. https://hooks.example.com/switchyard")
        })?;
        let scheme = match uri.scheme_str() {
            Some("http" | "https") => uri.scheme().cloned(),
            _ => None,
        }
        .ok_or("`url` must start with https:// or http://")?;
        let authority = uri
            .authority()
            .cloned()
            .ok_or("`url` has no host; expected e.g. https://hooks.example.com/switchyard")?;
        if authority.as_str().contains('@') {
            return Err("`url` must not hold credentials (user:password@); send them in `headers`, e.g. `authorization`".to_owned());
        }
        let host = parse_host(authority.host()).map_err(|e| format!("`url`: {e}"))?;
        if let Host::Ip(ip) = host {
            guard
                .check(ip)
                .map_err(|blocked| format!("`url`: {blocked}"))?;
        }
        Ok(Target {
            scheme,
            authority,
            path: uri.path().trim_end_matches('/').to_owned(),
            query: uri.query().map(str::to_owned),
        })
    }

    /// Whether deliveries go over TLS.
    pub fn is_https(&self) -> bool {
        self.scheme == http::uri::Scheme::HTTPS
    }

    /// The host and port, for messages (the path and query may hold
    /// tokens; the authority does not, `parse` made sure).
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// The URL for an event: `destination` (when non-empty) appended to the
    /// path after one `/`, percent-encoded except for `/`. A destination
    /// with `.` or `..` segments is refused: the receiver would resolve
    /// them out of the configured path.
    pub fn uri_for(&self, destination: &str) -> Result<Uri, String> {
        let destination = destination.trim_start_matches('/');
        let mut path = self.path.clone();
        if !destination.is_empty() {
            if destination.split('/').any(|s| s == "." || s == "..") {
                return Err(format!(
                    "destination {destination:?} has a `.` or `..` segment; it must stay below the sink's url path"
                ));
            }
            path.push('/');
            path.extend(percent_encoding::utf8_percent_encode(destination, PATH));
        }
        if path.is_empty() {
            path.push('/');
        }
        if let Some(query) = &self.query {
            path.push('?');
            path.push_str(query);
        }
        let path = PathAndQuery::try_from(path)
            .map_err(|e| format!("destination {destination:?} does not make a URL path: {e}"))?;
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| format!("destination {destination:?} does not make a URL: {e}"))
    }
}

/// The operator's extra headers, checked once: valid, and not one the
/// sink sets itself (`webhook-*`, `ce-*`, content and transport headers).
pub fn extra_headers(headers: &BTreeMap<String, String>) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let header = HeaderName::try_from(name.as_str())
            .map_err(|_| format!("`headers`: {name:?} is not a valid header name"))?;
        let lower = header.as_str();
        if RESERVED.contains(&lower) || lower.starts_with("webhook-") || lower.starts_with("ce-") {
            return Err(format!(
                "`headers`: {name:?} is set by the sink itself (webhook-*, ce-*, content-type, content-length and transport headers cannot be overridden)"
            ));
        }
        // The value is not repeated: it is often a credential.
        let mut value = HeaderValue::try_from(value.as_str()).map_err(|_| {
            format!("`headers`: the value of {name:?} is not a valid header value (visible ASCII expected)")
        })?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Target {
        Target::parse(url, &Guard::default()).expect(url)
    }

    #[test]
    fn the_destination_is_appended_to_the_path() {
        let t = target("https://hooks.example.com/in/");
        assert_eq!(
            t.uri_for("orders/created").unwrap().to_string(),
            "https://hooks.example.com/in/orders/created"
        );
        assert_eq!(
            t.uri_for("").unwrap().to_string(),
            "https://hooks.example.com/in"
        );
        assert_eq!(
            t.uri_for("/a").unwrap().to_string(),
            "https://hooks.example.com/in/a"
        );
        let root = target("http://hooks.example.com:8080");
        assert_eq!(
            root.uri_for("").unwrap().to_string(),
            "http://hooks.example.com:8080/"
        );
        assert_eq!(
            root.uri_for("x").unwrap().to_string(),
            "http://hooks.example.com:8080/x"
        );
        // The query stays after the path.
        let q = target("https://hooks.example.com/in?tenant=7");
        assert_eq!(
            q.uri_for("o/1").unwrap().to_string(),
            "https://hooks.example.com/in/o/1?tenant=7"
        );
    }

    #[test]
    fn a_destination_cannot_leave_the_path() {
        let t = target("https://hooks.example.com/in");
        assert_eq!(
            t.uri_for("a b?c=1#d%20é").unwrap().to_string(),
            "https://hooks.example.com/in/a%20b%3Fc=1%23d%2520%C3%A9"
        );
        for bad in ["..", "../admin", "a/./b", "a/.."] {
            let err = t.uri_for(bad).expect_err(bad);
            assert!(err.contains("`..` segment"), "{err}");
        }
        // Dots inside a segment are fine.
        assert!(t.uri_for("v1.2/a..b").is_ok());
    }

    #[test]
    fn urls_are_checked() {
        for (url, expected) in [
            ("hooks.example.com/in", "https://"),
            ("ftp://hooks.example.com/", "https://"),
            ("not a url", "not a URL"),
            ("https://user:pw@hooks.example.com/", "credentials"),
            ("http://127.0.0.1:9/", "loopback"),
            ("http://[::1]/", "loopback"),
            ("http://169.254.169.254/latest/meta-data", "link-local"),
            ("http://2130706433/", "non-standard"),
            ("http://0x7f.1/", "non-standard"),
            ("http://[::ffff:10.0.0.1]/", "private"),
        ] {
            let err = Target::parse(url, &Guard::default()).expect_err(url);
            assert!(err.contains(expected), "{url}: {err}");
        }
        let allowed = Guard::new(&["127.0.0.0/8".to_owned()]).expect("guard");
        assert!(Target::parse("http://127.0.0.1:9/", &allowed).is_ok());
        assert!(target("https://hooks.example.com").is_https());
        assert!(!target("http://hooks.example.com").is_https());
        assert_eq!(
            target("https://h.example.com:8443/x?t=1").authority(),
            "h.example.com:8443"
        );
    }

    #[test]
    fn extra_headers_are_checked() {
        let ok = BTreeMap::from([
            ("Authorization".to_owned(), "Bearer abc".to_owned()),
            ("x-tenant".to_owned(), "7".to_owned()),
        ]);
        let map = extra_headers(&ok).expect("headers");
        assert_eq!(map["authorization"], "Bearer abc");
        assert!(map["authorization"].is_sensitive());
        for name in [
            "webhook-id",
            "Webhook-Signature",
            "ce-id",
            "content-type",
            "Host",
            "bad name",
        ] {
            let headers = BTreeMap::from([(name.to_owned(), "v".to_owned())]);
            let err = extra_headers(&headers).expect_err(name);
            assert!(err.contains(name), "{err}");
        }
        let headers = BTreeMap::from([("x-token".to_owned(), "se\ncret".to_owned())]);
        let err = extra_headers(&headers).expect_err("bad value");
        assert!(
            !err.contains("se\ncret") && err.contains("x-token"),
            "{err}"
        );
    }
}
