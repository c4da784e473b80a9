//! The gRPC wire protocol for one unary call, over a hyper HTTP/2 sender.
//!
//! Done here rather than through tonic's client because a unary request is
//! one known-length frame, sent with the headers, and the reply is read with
//! our own limits. Status parsing never panics on a malformed upstream
//! (tonic's `Status::from_header_map` does on bad details).

use std::io::Read;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::RecvStream;
use http::header::{CONTENT_TYPE, TE};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Uri, uri};
use percent_encoding::percent_decode;
use prost::Message as _;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::{Code, Status};

use super::UpstreamError;
use super::endpoint::Sender;

const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
const GRPC_ENCODING: HeaderName = HeaderName::from_static("grpc-encoding");
pub(super) const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
const GRPC_DETAILS: &str = "grpc-status-details-bin";

/// `-bin` metadata is base64 with or without padding (gRPC over HTTP/2 spec).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A successful reply: the message and the upstream's metadata (initial and
/// trailing, `grpc-*` removed).
pub struct Reply {
    pub metadata: HeaderMap,
    pub message: DynamicMessage,
}

/// One call's parameters.
pub struct UnaryCall<'a> {
    pub origin: &'a Uri,
    pub path: &'a uri::PathAndQuery,
    pub metadata: HeaderMap,
    pub timeout: Duration,
    pub output: &'a MessageDescriptor,
    pub max_message: usize,
}

/// Sends `message` and reads the reply.
pub async fn unary(
    sender: Sender,
    mut call: UnaryCall<'_>,
    message: &DynamicMessage,
) -> Result<Reply, UpstreamError> {
    let response = send(sender, &mut call, message, true).await?;
    read_reply(response, &call).await
}

/// Sends the request (head and its one message) and waits for the reply's
/// head. `deadline`: whether `call.timeout` is also sent as `grpc-timeout`
/// (not for streams, which live as long as their client).
pub(super) async fn send(
    sender: Sender,
    call: &mut UnaryCall<'_>,
    message: &DynamicMessage,
    deadline: bool,
) -> Result<http::Response<RecvStream>, UpstreamError> {
    // Until the request is handed to the connection it cannot have reached
    // the upstream; a unary handler needs the whole message (END_STREAM).
    let unsent = |e: h2::Error| UpstreamError::Transport {
        status: Status::unavailable(format!("upstream request failed: {e}")),
        unsent: true,
    };
    let (mut head, frame) = build_request(call, message)?;
    if !deadline {
        head.headers_mut().remove(GRPC_TIMEOUT);
    }
    // `ready` waits while the connection is at the peer's stream limit.
    let mut sender = sender.ready().await.map_err(unsent)?;
    let (response, mut body) = sender.send_request(head, false).map_err(unsent)?;
    body.send_data(frame, true).map_err(unsent)?;
    response.await.map_err(|e| UpstreamError::Transport {
        // REFUSED_STREAM promises the stream was not processed (RFC 9113
        // §8.7). Anything else (reset, GOAWAY, closed connection) may come
        // after the upstream acted on the request.
        unsent: e.is_remote() && e.reason() == Some(h2::Reason::REFUSED_STREAM),
        status: Status::unavailable(format!("upstream request failed: {e}")),
    })
}

/// The request head and its one data frame. No `content-length`: gRPC
/// clients send none, and servers such as grpc-core would show it to
/// handlers as metadata.
fn build_request(
    call: &mut UnaryCall<'_>,
    message: &DynamicMessage,
) -> Result<(Request<()>, Bytes), UpstreamError> {
    let frame = frame(message)?;
    let mut parts = uri::Parts::default();
    parts.scheme = call.origin.scheme().cloned();
    parts.authority = call.origin.authority().cloned();
    parts.path_and_query = Some(call.path.clone());
    let uri =
        Uri::from_parts(parts).map_err(|e| UpstreamError::Protocol(format!("request URI: {e}")))?;
    // Built in place rather than with `Request::builder`, whose by-value
    // `Result<Parts>` steps showed up as copies in profiles.
    let mut request = Request::new(());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri;
    let headers = request.headers_mut();
    *headers = std::mem::take(&mut call.metadata);
    set_call_headers(headers);
    if let Ok(value) = HeaderValue::from_str(&encode_timeout(call.timeout)) {
        headers.insert(GRPC_TIMEOUT, value);
    }
    Ok((request, frame))
}

/// The headers a gRPC request carries beside its metadata: the content
/// type, `te: trailers`, and gzip accepted for replies.
pub fn set_call_headers(headers: &mut HeaderMap) {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(GRPC_ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
}

/// `message` as one uncompressed length-prefixed gRPC frame.
pub fn frame(message: &DynamicMessage) -> Result<Bytes, UpstreamError> {
    let len = message.encoded_len();
    let mut frame = BytesMut::with_capacity(5 + len);
    frame.put_u8(0);
    frame.put_u32(
        u32::try_from(len)
            .map_err(|_| UpstreamError::Protocol("request message over 4 GiB".into()))?,
    );
    message
        .encode(&mut frame)
        .map_err(|e| UpstreamError::Protocol(format!("encoding the request: {e}")))?;
    Ok(frame.freeze())
}

/// `grpc-timeout`: at most 8 digits and a unit (gRPC over HTTP/2 spec).
pub(crate) fn encode_timeout(timeout: Duration) -> String {
    let millis = timeout.as_millis();
    if millis < 100_000_000 {
        format!("{}m", millis.max(1))
    } else {
        format!("{}S", timeout.as_secs().min(99_999_999))
    }
}

async fn read_reply(
    response: http::Response<RecvStream>,
    call: &UnaryCall<'_>,
) -> Result<Reply, UpstreamError> {
    let (parts, mut body) = response.into_parts();
    // Trailers-only: an error (or an empty OK) in the headers.
    let compressed_ok = check_head(&parts)?.ok_or_else(|| {
        UpstreamError::Status(
            status_from(&parts.headers)
                .unwrap_or_else(|| Status::unknown("upstream sent no message")),
        )
    })?;
    let transport = |e: h2::Error| UpstreamError::Transport {
        status: Status::unavailable(format!("reading the upstream reply: {e}")),
        unsent: false,
    };
    let mut data = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(transport)?;
        // Give the window back as we go, or replies stall once it is spent.
        let _ = body.flow_control().release_capacity(chunk.len());
        if data.len() + chunk.len() > call.max_message + 5 {
            return Err(UpstreamError::ReplyTooLarge {
                limit: call.max_message,
            });
        }
        data.extend_from_slice(&chunk);
    }
    let mut trailers = body
        .trailers()
        .await
        .map_err(transport)?
        .unwrap_or_default();
    match trailers.get(GRPC_STATUS).map(|v| v.as_bytes()) {
        // The common case, checked without building a `Status`.
        Some(b"0") => {}
        Some(_) => {
            if let Some(status) = status_from(&trailers).filter(|s| s.code() != Code::Ok) {
                return Err(UpstreamError::Status(status));
            }
        }
        None => {
            return Err(UpstreamError::Protocol(
                "upstream reply ended without grpc-status".into(),
            ));
        }
    }
    let payload = unframe(data.freeze(), compressed_ok, call.max_message)?;
    let message = DynamicMessage::decode(call.output.clone(), payload).map_err(|e| {
        UpstreamError::Protocol(format!(
            "upstream sent an invalid {}: {e}",
            call.output.full_name()
        ))
    })?;
    let mut metadata = user_metadata(&parts.headers);
    if trailers.keys().any(is_user_metadata) {
        strip_reserved(&mut trailers);
        for (name, value) in trailers {
            if let Some(name) = name {
                metadata.append(name, value);
            }
        }
    }
    Ok(Reply { metadata, message })
}

/// Checks a reply's head: an HTTP error is a status error. `Ok(None)`: a
/// trailers-only reply (the status is in the head); else whether its
/// messages may be gzip-compressed.
pub(super) fn check_head(parts: &http::response::Parts) -> Result<Option<bool>, UpstreamError> {
    if parts.status != http::StatusCode::OK {
        return Err(UpstreamError::Status(Status::new(
            status_from_http(parts.status),
            format!("upstream answered HTTP {} instead of gRPC", parts.status),
        )));
    }
    if parts.headers.contains_key(GRPC_STATUS) {
        return Ok(None);
    }
    // Messages follow: they must be gRPC's (an HTML error page from a proxy
    // in between would otherwise be read as frames).
    if crate::grpc::Protocol::of(&parts.headers) != Some(crate::grpc::Protocol::Native) {
        let content_type = parts.headers.get(CONTENT_TYPE);
        return Err(UpstreamError::Protocol(format!(
            "upstream answered content-type {:?}, not gRPC",
            content_type.map_or("(none)", |v| v.to_str().unwrap_or("(not text)"))
        )));
    }
    Ok(Some(
        parts
            .headers
            .get(GRPC_ENCODING)
            .is_some_and(|e| e == "gzip"),
    ))
}

/// Exactly one length-prefixed message, inflated if flagged compressed.
pub(super) fn unframe(
    mut data: Bytes,
    compressed_ok: bool,
    limit: usize,
) -> Result<Bytes, UpstreamError> {
    if data.len() < 5 {
        return Err(UpstreamError::Protocol(
            "upstream reply has no message".into(),
        ));
    }
    let compressed = data.get_u8();
    let len = data.get_u32() as usize;
    if len > limit {
        return Err(UpstreamError::ReplyTooLarge { limit });
    }
    if data.len() != len {
        return Err(UpstreamError::Protocol(format!(
            "upstream reply frame says {len} bytes but carries {}",
            data.len()
        )));
    }
    match compressed {
        0 => Ok(data),
        1 if compressed_ok => {
            let mut out = Vec::new();
            let mut inflater = flate2::read::GzDecoder::new(data.as_ref()).take(limit as u64 + 1);
            inflater.read_to_end(&mut out).map_err(|e| {
                UpstreamError::Protocol(format!("inflating the upstream reply: {e}"))
            })?;
            if out.len() > limit {
                return Err(UpstreamError::ReplyTooLarge { limit });
            }
            Ok(Bytes::from(out))
        }
        1 => Err(UpstreamError::Protocol(
            "upstream compressed its reply with an encoding we did not offer".into(),
        )),
        flag => Err(UpstreamError::Protocol(format!(
            "invalid gRPC frame flag {flag}"
        ))),
    }
}

/// The status in `grpc-status`/`grpc-message`/`grpc-status-details-bin`;
/// malformed details are dropped rather than trusted.
pub(super) fn status_from(headers: &HeaderMap) -> Option<Status> {
    let code = Code::from_bytes(headers.get(GRPC_STATUS)?.as_bytes());
    let message = headers
        .get(GRPC_MESSAGE)
        .map(|m| {
            percent_decode(m.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let details = headers
        .get(GRPC_DETAILS)
        .and_then(|d| BASE64.decode(d.as_bytes()).ok())
        .unwrap_or_default();
    let mut metadata = headers.clone();
    strip_reserved(&mut metadata);
    Some(Status::with_details_and_metadata(
        code,
        message,
        Bytes::from(details),
        tonic::metadata::MetadataMap::from_headers(metadata),
    ))
}

/// Whether a header is the application's metadata rather than the gRPC
/// protocol's (`grpc-*`, `content-type`) or HTTP's (`date`).
fn is_user_metadata(name: &HeaderName) -> bool {
    !(name.as_str().starts_with("grpc-") || name == CONTENT_TYPE || name == http::header::DATE)
}

/// The application metadata among `headers`; allocates nothing in the usual
/// case of there being none.
pub(super) fn user_metadata(headers: &HeaderMap) -> HeaderMap {
    if !headers.keys().any(is_user_metadata) {
        return HeaderMap::new();
    }
    let mut out = HeaderMap::new();
    for (name, value) in headers.iter().filter(|(name, _)| is_user_metadata(name)) {
        out.append(name.clone(), value.clone());
    }
    out
}

fn strip_reserved(headers: &mut HeaderMap) {
    let reserved: Vec<HeaderName> = headers
        .keys()
        .filter(|k| !is_user_metadata(k))
        .cloned()
        .collect();
    for name in reserved {
        headers.remove(name);
    }
}

/// gRPC's mapping for a non-200 HTTP answer (grpc/doc/http-grpc-status-mapping.md).
fn status_from_http(status: http::StatusCode) -> Code {
    match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_encoded_in_at_most_eight_digits() {
        assert_eq!(encode_timeout(Duration::from_millis(2000)), "2000m");
        assert_eq!(encode_timeout(Duration::from_micros(10)), "1m");
        assert_eq!(encode_timeout(Duration::from_secs(200_000)), "200000S");
    }

    #[test]
    fn malformed_status_details_are_dropped_not_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("5"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("user%20%22x%22%20not%20found"),
        );
        headers.insert(
            "grpc-status-details-bin",
            HeaderValue::from_static("!!not base64!!"),
        );
        let status = status_from(&headers).unwrap();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "user \"x\" not found");
        assert!(status.details().is_empty());
    }

    #[test]
    fn a_frame_must_hold_exactly_one_message() {
        let framed = |flag: u8, len: u32, body: &[u8]| {
            let mut b = BytesMut::new();
            b.put_u8(flag);
            b.put_u32(len);
            b.extend_from_slice(body);
            b.freeze()
        };
        assert_eq!(
            unframe(framed(0, 2, b"ok"), false, 10).unwrap(),
            Bytes::from_static(b"ok")
        );
        assert!(matches!(
            unframe(framed(0, 3, b"ok"), false, 10),
            Err(UpstreamError::Protocol(_))
        ));
        assert!(matches!(
            unframe(framed(0, 20, &[0; 20]), false, 10),
            Err(UpstreamError::ReplyTooLarge { .. })
        ));
        assert!(matches!(
            unframe(framed(1, 2, b"ok"), false, 10),
            Err(UpstreamError::Protocol(_))
        ));
        assert!(matches!(
            unframe(framed(7, 2, b"ok"), false, 10),
            Err(UpstreamError::Protocol(_))
        ));
        assert!(matches!(
            unframe(Bytes::from_static(b"\0\0"), false, 10),
            Err(UpstreamError::Protocol(_))
        ));
    }
}
