//! gRPC statuses sent by the gateway itself: a refusal before the upstream
//! (a plugin's JSON error, an unknown method, a transport failure) becomes
//! a trailers-only response for gRPC clients, and a body holding only the
//! trailer frame for gRPC-Web clients.

use std::future::Future;
use std::pin::Pin;

use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use switchyard_plugins::error::Code;
use switchyard_plugins::stage::{Response, empty_body, full_body, read_body_limited};

use super::{Protocol, web};
use crate::observability::Metrics;
use crate::upstream::UpstreamError;

pub const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// `grpc-message` is percent-encoded: bytes outside printable ASCII, and `%`.
const MESSAGE: &AsciiSet = &CONTROLS.add(b'%');

/// The largest plugin error body read to find its code and message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// `grpc-status` and `grpc-message` for `code` and `message`.
pub fn trailers(code: i32, message: &str) -> HeaderMap {
    let mut out = HeaderMap::new();
    out.insert(GRPC_STATUS, HeaderValue::from(code));
    if !message.is_empty()
        && let Ok(value) = HeaderValue::try_from(utf8_percent_encode(message, MESSAGE).to_string())
    {
        out.insert(GRPC_MESSAGE, value);
    }
    out
}

/// A response carrying only a status: trailers-only for gRPC, the trailer
/// frame as the body for gRPC-Web. `headers` (e.g. `www-authenticate`,
/// `retry-after`, CORS) are kept.
pub fn response(protocol: Protocol, code: i32, message: &str, headers: HeaderMap) -> Response {
    let status = trailers(code, message);
    let mut response = match protocol {
        Protocol::Native => {
            let mut response = http::Response::new(empty_body());
            response.headers_mut().extend(status);
            response
        }
        Protocol::Web | Protocol::WebText => http::Response::new(full_body(web::encode(
            protocol,
            web::trailer_frame(&status),
        ))),
    };
    let out = response.headers_mut();
    for (name, value) in &headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH && !out.contains_key(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out.insert(CONTENT_TYPE, web::content_type(protocol));
    response
}

/// The status for a call that got no answer from the upstream.
pub fn of_upstream(error: &UpstreamError) -> (i32, String) {
    match error {
        UpstreamError::Status(status) | UpstreamError::Transport { status, .. } => {
            (status.code() as i32, status.message().to_owned())
        }
        UpstreamError::ReplyTooLarge { limit } => (
            Code::ResourceExhausted as i32,
            format!("upstream reply over {limit} bytes"),
        ),
        UpstreamError::Protocol(message) => (Code::Internal as i32, message.clone()),
    }
}

/// The pipeline's answer as gRPC: a gRPC answer (the upstream's, counted by
/// the handler) passes; anything else (a plugin's JSON refusal) becomes the
/// status its body or HTTP status says, counted in `grpc_calls_total`.
///
/// Boxed with an explicit `Send` bound: rustc cannot prove `Send` for the
/// un-erased future through the boxed-error body type (rust-lang/rust#102211).
pub fn ensure_grpc<'a>(
    protocol: Protocol,
    answer: Response,
    route: &'a str,
    metrics: &'a Metrics,
) -> Pin<Box<dyn Future<Output = Response> + Send + 'a>> {
    Box::pin(async move {
        if Protocol::of(answer.headers()).is_some() {
            return answer;
        }
        let (parts, body) = answer.into_parts();
        let bytes = read_body_limited(&parts.headers, body, MAX_ERROR_BODY, "the error limit")
            .await
            .unwrap_or_default();
        let (code, message) = code_and_message(parts.status, &bytes);
        metrics
            .grpc
            .calls
            .with_label_values(&[route, protocol.label(), Code::from_i32(code).name()])
            .inc();
        response(protocol, code, &message, parts.headers)
    })
}

/// The code and message of a gateway error body (`{"code":…,"message":…}`),
/// else the gRPC code for the HTTP status (gRPC's HTTP-to-status mapping).
fn code_and_message(status: StatusCode, body: &[u8]) -> (i32, String) {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        code: i32,
        #[serde(default)]
        message: String,
    }
    if let Ok(error) = serde_json::from_slice::<ErrorBody>(body)
        && (1..=16).contains(&error.code)
    {
        return (error.code, error.message);
    }
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502..=504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    (code as i32, format!("HTTP {status}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_percent_encoded() {
        let t = trailers(3, "bad 100% naïve\nline");
        assert_eq!(t[GRPC_STATUS], "3");
        assert_eq!(t[GRPC_MESSAGE], "bad 100%25 na%C3%AFve%0Aline");
    }

    #[test]
    fn a_gateway_error_body_gives_its_code_else_the_http_status_does() {
        let body = br#"{"code":16,"message":"unauthenticated: missing credentials"}"#;
        assert_eq!(
            code_and_message(StatusCode::UNAUTHORIZED, body),
            (16, "unauthenticated: missing credentials".into())
        );
        assert_eq!(code_and_message(StatusCode::FORBIDDEN, b"nope").0, 7);
        assert_eq!(code_and_message(StatusCode::TOO_MANY_REQUESTS, b"").0, 14);
        assert_eq!(code_and_message(StatusCode::IM_A_TEAPOT, b"").0, 2);
    }
}
