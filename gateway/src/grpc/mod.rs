//! gRPC clients at the edge. A route with `grpc.passthrough` serves native
//! gRPC clients: the call runs through the route's plugins, then its frames,
//! metadata and trailers go to the upstream and back untouched
//! (`passthrough`), in all four kinds of method. With `grpc.web`, browsers'
//! gRPC-Web requests are translated to gRPC on the way in and back on the
//! way out (`web`). A refusal before the upstream (a plugin's 401, a 429, an
//! unknown method) reaches the client as a gRPC status (`status`).

pub mod body;
pub mod builtin;
pub mod passthrough;
pub mod status;
pub mod table;
pub mod web;

use http::HeaderMap;
use http::header::CONTENT_TYPE;

pub use table::{GrpcMatched, GrpcMethods, GrpcTarget};

/// The gRPC flavour of a request, from its `content-type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `application/grpc` (and `+proto`, `+json`…): HTTP/2 gRPC.
    Native,
    /// `application/grpc-web` (`+proto`): length-prefixed frames in the body.
    Web,
    /// `application/grpc-web-text` (`+proto`): the same, base64-encoded.
    WebText,
}

// === impl Protocol ===

impl Protocol {
    /// The protocol a request speaks, if gRPC of some kind.
    pub fn of(headers: &HeaderMap) -> Option<Protocol> {
        let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
        let essence = value.split(';').next().unwrap_or("").trim();
        let (base, _subtype) = essence.split_once('+').unwrap_or((essence, ""));
        match base.to_ascii_lowercase().as_str() {
            "application/grpc" => Some(Protocol::Native),
            "application/grpc-web" => Some(Protocol::Web),
            "application/grpc-web-text" => Some(Protocol::WebText),
            _ => None,
        }
    }

    pub fn is_web(self) -> bool {
        self != Protocol::Native
    }

    /// The label in metrics.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Native => "grpc",
            Protocol::Web | Protocol::WebText => "grpc-web",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(content_type: &str) -> Option<Protocol> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type.parse().unwrap());
        Protocol::of(&headers)
    }

    #[test]
    fn the_content_type_names_the_protocol() {
        assert_eq!(of("application/grpc"), Some(Protocol::Native));
        assert_eq!(of("application/grpc+proto"), Some(Protocol::Native));
        assert_eq!(
            of("Application/GRPC; charset=utf-8"),
            Some(Protocol::Native)
        );
        assert_eq!(of("application/grpc-web"), Some(Protocol::Web));
        assert_eq!(of("application/grpc-web+proto"), Some(Protocol::Web));
        assert_eq!(of("application/grpc-web-text"), Some(Protocol::WebText));
        assert_eq!(
            of("application/grpc-web-text+proto"),
            Some(Protocol::WebText)
        );
        assert_eq!(of("application/json"), None);
        assert_eq!(of("application/grpcx"), None);
    }
}
