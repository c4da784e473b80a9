//! The GraphiQL page, served on `GET <graphql path>` to browsers (requests
//! that accept `text/html`), with its scripts and styles built into the
//! binary: the page works behind a firewall, with no CDN.
//!
//! The assets live in `gateway/assets/graphiql/` (pinned versions, gzip
//! compressed, refreshed by its `fetch.sh`) and are served under
//! `<graphql path>/graphiql/<name>` (see `edge::pages`). The page sends a Content-Security-Policy that lets
//! it load only its own assets and talk only to its own origin.

use http::{HeaderMap, Response, header};
use switchyard_plugins::stage::Body;

use crate::edge::pages::{self, Gzipped, escape_attr};

/// Path segment under the GraphQL path where the assets are served.
pub const ASSETS_DIR: &str = "graphiql";

const PAGE: &str = include_str!("../../assets/graphiql/index.html");
const INIT_JS: &str = include_str!("../../assets/graphiql/init.js");

/// `(name, gzip bytes, content type)`.
const GZIPPED: &Gzipped = &[
    (
        "graphiql.min.js",
        include_bytes!("../../assets/graphiql/graphiql.min.js.gz"),
        "text/javascript; charset=utf-8",
    ),
    (
        "graphiql.min.css",
        include_bytes!("../../assets/graphiql/graphiql.min.css.gz"),
        "text/css; charset=utf-8",
    ),
    (
        "react.production.min.js",
        include_bytes!("../../assets/graphiql/react.production.min.js.gz"),
        "text/javascript; charset=utf-8",
    ),
    (
        "react-dom.production.min.js",
        include_bytes!("../../assets/graphiql/react-dom.production.min.js.gz"),
        "text/javascript; charset=utf-8",
    ),
];

/// Only the page's own scripts; styles inline (GraphiQL sets some), fonts as
/// data URIs; requests to the page's origin only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   font-src 'self' data:; img-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Whether a `GET` on the GraphQL path is a browser asking for a page rather
/// than a GraphQL-over-HTTP request: it accepts HTML and sends no `query`.
pub fn wants_page(headers: &HeaderMap, has_query: bool) -> bool {
    !has_query
        && headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("text/html"))
}

/// The page for a GraphQL endpoint at `endpoint` (a path on this origin).
pub fn page(endpoint: &str) -> Response<Body> {
    let assets = format!("{}/{ASSETS_DIR}", endpoint.trim_end_matches('/'));
    let html = PAGE
        .replace("__ASSETS__", &escape_attr(&assets))
        .replace("__ENDPOINT__", &escape_attr(endpoint));
    pages::page(html, CSP)
}

/// The asset `name`, or `None` when there is no such asset.
pub fn asset(name: &str, request: &HeaderMap) -> Option<Response<Body>> {
    pages::asset(name, request, INIT_JS, GZIPPED)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    #[test]
    fn browsers_get_the_page_and_graphql_clients_do_not() {
        let browser = headers(&[("accept", "text/html,application/xhtml+xml,*/*;q=0.8")]);
        assert!(wants_page(&browser, false));
        assert!(!wants_page(&browser, true));
        assert!(!wants_page(
            &headers(&[("accept", "application/json")]),
            false
        ));
    }

    #[test]
    fn the_page_points_at_its_endpoint_and_its_own_assets_only() {
        let response = page("/graph\"ql");
        assert!(
            response.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        let html = PAGE
            .replace("__ASSETS__", &escape_attr("/graph\"ql/graphiql"))
            .replace("__ENDPOINT__", &escape_attr("/graph\"ql"));
        assert!(html.contains(r#"data-endpoint="/graph&quot;ql""#));
        assert!(html.contains(r#"src="/graph&quot;ql/graphiql/graphiql.min.js""#));
        assert!(!html.contains("http"), "no external URL in the page");
    }

    #[test]
    fn assets_are_gzip_when_accepted_and_inflated_otherwise() {
        let gz = asset(
            "react.production.min.js",
            &headers(&[("accept-encoding", "br, gzip")]),
        )
        .unwrap();
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        let plain = asset(
            "react.production.min.js",
            &headers(&[("accept-encoding", "gzip;q=0")]),
        )
        .unwrap();
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert!(asset("../Cargo.toml", &HeaderMap::new()).is_none());
        assert!(asset("init.js", &HeaderMap::new()).is_some());
    }
}
