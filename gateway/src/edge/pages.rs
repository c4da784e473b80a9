//! Browser pages served by the gateway (the GraphiQL page, the API docs
//! page) whose scripts and styles are built into the binary: the page
//! response with its Content-Security-Policy, and the assets, stored
//! gzip-compressed and sent as stored when the client accepts gzip,
//! inflated otherwise.

use std::io::Read;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use switchyard_plugins::stage::{self, Body};

/// `(name, gzip bytes, content type)` of a page's bundled assets.
pub type Gzipped = [(&'static str, &'static [u8], &'static str)];

/// An HTML page under `csp`, never cached (it names the current assets).
pub fn page(html: String, csp: &'static str) -> Response<Body> {
    let mut response = Response::new(stage::full_body(html));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The asset `name`: the page's `init.js`, or one of `gzipped`; `None` when
/// there is no such asset.
pub fn asset(
    name: &str,
    request: &HeaderMap,
    init_js: &'static str,
    gzipped: &Gzipped,
) -> Option<Response<Body>> {
    if name == "init.js" {
        return Some(asset_response(
            Bytes::from_static(init_js.as_bytes()),
            "text/javascript; charset=utf-8",
            false,
        ));
    }
    let &(_, gz, content_type) = gzipped.iter().find(|(n, _, _)| *n == name)?;
    if accepts_gzip(request) {
        return Some(asset_response(Bytes::from_static(gz), content_type, true));
    }
    let mut plain = Vec::with_capacity(gz.len() * 4);
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut plain)
        .ok()?;
    Some(asset_response(Bytes::from(plain), content_type, false))
}

fn asset_response(body: Bytes, content_type: &'static str, gzip: bool) -> Response<Body> {
    let mut response = Response::new(stage::full_body(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if gzip {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}

/// Whether `Accept-Encoding` lists gzip (without `q=0`).
pub(crate) fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or("");
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// `text` safe inside a double-quoted HTML attribute.
pub(crate) fn escape_attr(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
