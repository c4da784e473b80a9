//! The admin console: a page (`/console`) that reads the admin API and shows
//! routes with their traffic, upstream endpoints, the events outbox and the
//! reload history, refreshing every two seconds. Its three files are built
//! into the binary; it fetches nothing else. The files hold no data, so they
//! are served without the admin token; the page asks for the token when the
//! API answers 401 and keeps it for the browser tab (sessionStorage).

use http::{HeaderValue, StatusCode, header};
use switchyard_plugins::stage::{Response, full_body};

const INDEX: &str = include_str!("console/index.html");
const APP_JS: &str = include_str!("console/app.js");
const APP_CSS: &str = include_str!("console/app.css");

/// Only the page's own files and API; no inline script or style, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The console's files by path; `None` for any other path.
pub(super) fn serve(path: &str) -> Option<Response> {
    let (body, content_type) = match path {
        "/" => return Some(redirect("/console")),
        "/console" | "/console/" => (INDEX, "text/html; charset=utf-8"),
        "/console/app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        "/console/app.css" => (APP_CSS, "text/css; charset=utf-8"),
        _ => return None,
    };
    let mut res = http::Response::new(full_body(body));
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(res)
}

fn redirect(to: &'static str) -> Response {
    let mut res = http::Response::new(full_body(""));
    *res.status_mut() = StatusCode::FOUND;
    res.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    res
}
