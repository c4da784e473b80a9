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
