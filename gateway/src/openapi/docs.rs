//! The API docs page (Swagger UI) for the OpenAPI document, served on
//! `openapi.docs` with its scripts and styles built into the binary (from
//! the npm package `swagger-ui-dist`, pinned in
//! `gateway/assets/swagger-ui/fetch.sh`): no CDN, nothing fetched at build
//! or run time. Assets are under `<docs>/assets/<name>`, gzip as stored when
//! accepted; the page's Content-Security-Policy lets it load only its own
//! assets and the document from its own origin.

use http::{HeaderMap, Response};
use switchyard_plugins::stage::Body;

use crate::edge::pages::{self, Gzipped, escape_attr};

const PAGE: &str = include_str!("../../assets/swagger-ui/index.html");
const INIT_JS: &str = include_str!("../../assets/swagger-ui/init.js");

/// `(name, gzip bytes, content type)`.
const GZIPPED: &Gzipped = &[
    (
        "swagger-ui-bundle.js",
        include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js.gz"),
        "text/javascript; charset=utf-8",
    ),
    (
        "swagger-ui.css",
        include_bytes!("../../assets/swagger-ui/swagger-ui.css.gz"),
        "text/css; charset=utf-8",
    ),
];

/// Own scripts only; inline styles (Swagger UI sets some) and data-URI
/// images; requests to the page's origin only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   font-src 'self' data:; img-src 'self' data:; connect-src 'self'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// What a `GET` under the docs path is for.
pub fn serve(docs: &str, spec: &str, path: &str, request: &HeaderMap) -> Option<Response<Body>> {
    let docs = docs.trim_end_matches('/');
    if path == docs || path == format!("{docs}/") {
        return Some(page(docs, spec));
    }
    let name = path.strip_prefix(docs)?.strip_prefix("/assets/")?;
    asset(name, request)
}

fn page(docs: &str, spec: &str) -> Response<Body> {
    let html = PAGE
        .replace("__ASSETS__", &escape_attr(&format!("{docs}/assets")))
        .replace("__SPEC__", &escape_attr(spec));
    pages::page(html, CSP)
}

fn asset(name: &str, request: &HeaderMap) -> Option<Response<Body>> {
    pages::asset(name, request, INIT_JS, GZIPPED)
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;

    #[test]
    fn the_page_its_assets_and_nothing_else_are_served_under_the_docs_path() {
        let none = HeaderMap::new();
        let page = serve("/docs", "/openapi.json", "/docs", &none).expect("the page");
        assert!(
            page.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        assert!(serve("/docs", "/openapi.json", "/docs/assets/init.js", &none).is_some());
        assert!(
            serve(
                "/docs",
                "/openapi.json",
                "/docs/assets/swagger-ui.css",
                &none
            )
            .is_some()
        );
        assert!(serve("/docs", "/openapi.json", "/docs/assets/../x", &none).is_none());
        assert!(serve("/docs", "/openapi.json", "/other", &none).is_none());
        let html = PAGE
            .replace("__ASSETS__", "/docs/assets")
            .replace("__SPEC__", "/openapi.json");
        assert!(!html.contains("http"), "no external URL in the page");
    }
}
