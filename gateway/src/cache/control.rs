//! `Cache-Control` as the response cache reads it: the client's request
//! directives (RFC 9111 §5.2.1) and the upstream's response directives,
//! sent as gRPC response metadata (§5.2.2). Unknown directives are ignored,
//! as the RFC says; a malformed number makes its directive absent.

use std::time::Duration;

use http::HeaderMap;

/// What a request's `Cache-Control` asks of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    /// `no-store`: neither served from nor stored in the cache.
    pub no_store: bool,
    /// `no-cache` or `max-age=0`: not served from the cache (the answer
    /// fetched is stored).
    pub no_cache: bool,
}

/// What an upstream's `cache-control` metadata says of its reply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResponseDirectives {
    /// `no-store`, `no-cache` or `private`: not stored by a shared cache.
    pub uncacheable: bool,
    /// `s-maxage`, else `max-age`: how long the reply is fresh.
    pub max_age: Option<Duration>,
    /// `stale-while-revalidate`.
    pub stale_while_revalidate: Option<Duration>,
}

/// The directives of every `Cache-Control` line of `headers`, lower-cased,
/// with their values unquoted.
fn directives(headers: &HeaderMap) -> impl Iterator<Item = (String, Option<String>)> + '_ {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
        .filter_map(|directive| {
            let directive = directive.trim();
            if directive.is_empty() {
                return None;
            }
            Some(match directive.split_once('=') {
                Some((name, value)) => (
                    name.trim().to_ascii_lowercase(),
                    Some(value.trim().trim_matches('"').to_owned()),
                ),
                None => (directive.to_ascii_lowercase(), None),
            })
        })
}

fn seconds(value: Option<&str>) -> Option<Duration> {
    value?.parse::<u64>().ok().map(Duration::from_secs)
}

impl RequestDirectives {
    pub fn of(headers: &HeaderMap) -> RequestDirectives {
        let mut out = RequestDirectives::default();
        for (name, value) in directives(headers) {
            match name.as_str() {
                "no-store" => out.no_store = true,
                "no-cache" => out.no_cache = true,
                "max-age" if seconds(value.as_deref()) == Some(Duration::ZERO) => {
                    out.no_cache = true;
                }
                _ => {}
            }
        }
        // `Pragma: no-cache` (HTTP/1.0) when no Cache-Control says otherwise.
        if !headers.contains_key(http::header::CACHE_CONTROL)
            && headers
                .get(http::header::PRAGMA)
                .is_some_and(|p| p.as_bytes().eq_ignore_ascii_case(b"no-cache"))
        {
            out.no_cache = true;
        }
        out
    }
}

impl ResponseDirectives {
    pub fn of(metadata: &HeaderMap) -> ResponseDirectives {
        let mut out = ResponseDirectives::default();
        let mut s_maxage = None;
        for (name, value) in directives(metadata) {
            match name.as_str() {
                "no-store" | "no-cache" | "private" => out.uncacheable = true,
                "max-age" => out.max_age = seconds(value.as_deref()).or(out.max_age),
                "s-maxage" => s_maxage = seconds(value.as_deref()),
                "stale-while-revalidate" => {
                    out.stale_while_revalidate = seconds(value.as_deref());
                }
                _ => {}
            }
        }
        out.max_age = s_maxage.or(out.max_age);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            http::HeaderName::try_from(name).unwrap(),
            value.parse().unwrap(),
        );
        map
    }

    #[test]
    fn request_directives_bypass_or_refresh() {
        let of = |v| RequestDirectives::of(&headers("cache-control", v));
        assert!(of("no-store").no_store);
        assert!(of("No-Cache").no_cache);
        assert!(of("max-age=0").no_cache);
        assert!(!of("max-age=60").no_cache);
        assert_eq!(of("max-stale, foo=\"bar\""), RequestDirectives::default());
        assert!(RequestDirectives::of(&headers("pragma", "no-cache")).no_cache);
    }

    #[test]
    fn response_directives_prefer_s_maxage_and_refuse_private() {
        let of = |v| ResponseDirectives::of(&headers("cache-control", v));
        assert_eq!(of("max-age=60").max_age, Some(Duration::from_secs(60)));
        assert_eq!(
            of("max-age=60, s-maxage=5").max_age,
            Some(Duration::from_secs(5))
        );
        assert!(of("private, max-age=60").uncacheable);
        assert!(of("no-store").uncacheable);
        assert_eq!(
            of("max-age=1, stale-while-revalidate=30").stale_while_revalidate,
            Some(Duration::from_secs(30))
        );
        assert_eq!(of("max-age=ten").max_age, None);
    }
}
