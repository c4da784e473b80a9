//! The types every stage of the request pipeline shares.
//!
//! One body type and one boxed service type for the whole pipeline: each stage
//! (edge → route → plugins → handler) is a [`HttpService`], so stacks are built
//! from YAML at run time without generic explosion, and errors never escape a
//! stage (`Infallible`): by the time a value leaves a service it is a response.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use tower::util::BoxCloneSyncService;

/// Boxed error used inside bodies and services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The body of every request and response inside the pipeline.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A request inside the pipeline.
pub type Request = http::Request<Body>;

/// A response inside the pipeline.
pub type Response = http::Response<Body>;

/// A pipeline stage: cloneable, shareable across connections, and infallible
/// (failures are already responses).
pub type HttpService = BoxCloneSyncService<Request, Response, Infallible>;

/// The client's socket address, set by the edge on every request (rate
/// limits, logs). Trusted-proxy headers are a plugin's concern, not this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// The request's URI as the client sent it, set by the edge when path
/// normalisation changed it: signatures (HMAC) are over the bytes sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginalUri(pub http::Uri);

/// Set by a plugin (`wasm`) that changed the request's path after the route
/// matched it: the route's handler matches the new path again, among the
/// route's own methods (a plugin cannot send a request past another route's
/// plugins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathRewritten;

/// The verified client certificate's identity, set by the TLS edge on each
/// request of a mutually authenticated connection (read by `auth`'s `mtls`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertificate {
    /// The subject's common name.
    pub subject_cn: Option<String>,
    /// DNS and URI subject alternative names, in certificate order.
    pub sans: Vec<String>,
}

/// Who is calling, once an auth plugin has said so: the key for per-consumer
/// rate limits, metrics and upstream metadata.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Consumer(pub String);

/// Where `auth` also leaves the consumer's name, when the edge put one in
/// the request's extensions: the edge reads it after the response (the
/// access log), whichever stage answered.
#[derive(Clone, Debug, Default)]
pub struct ConsumerSlot(pub std::sync::Arc<std::sync::OnceLock<String>>);

/// The claims of the JSON Web Token that authenticated the request, set by
/// `auth` when its `jwt` method did (in `all` mode, the first `jwt` method
/// listed), after the signature, `exp`/`nbf`, `iss` and `aud` checks: every
/// claim of the token's payload, top-level names to JSON values. Absent when
/// another method (an API key, a signature, a certificate) authenticated
/// the request. Later stages read it (rate-limit keys on a claim, metadata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claims(pub std::sync::Arc<serde_json::Map<String, serde_json::Value>>);

/// A boxed, `Send` future, for services whose futures must be type-erased.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

/// A body holding `bytes` in full.
pub fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty_body() -> Body {
    full_body(Bytes::new())
}

/// Boxes any body whose error converts into [`BoxError`].
pub fn box_body<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// Reads a whole request body, refusing more than `limit` bytes with 413: up
/// front from `content-length`, and while reading for chunked bodies.
/// `limit_name` says whose limit it is in the message ("the route's limit").
/// A body past its [`crate::body_deadline::DeadlineBody`] deadline is 408.
pub async fn read_body_limited(
    headers: &http::HeaderMap,
    mut body: Body,
    limit: usize,
    limit_name: &str,
) -> Result<Bytes, crate::error::ErrorResponse> {
    use crate::body_deadline::BodyTimedOut;
    use crate::error::{Code, ErrorResponse};
    let too_large = || {
        ErrorResponse::with_status(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            Code::InvalidArgument,
            format!("request body is larger than {limit_name} of {limit} bytes"),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = bytes::BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| match e.downcast_ref::<BodyTimedOut>() {
            Some(timed_out) => ErrorResponse::with_status(
                http::StatusCode::REQUEST_TIMEOUT,
                Code::DeadlineExceeded,
                timed_out.to_string(),
            ),
            None => ErrorResponse::new(
                Code::InvalidArgument,
                format!("could not read the request body: {e}"),
            ),
        })?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(data);
        }
    }
    Ok(buf.freeze())
}
