//! Plugin `request_id`: gives every request an id and echoes it in the response.
//!
//! An id sent by the client is kept (so a caller's id follows the request
//! through every hop); otherwise a random UUID v4 is generated. The id is
//! forwarded upstream like any allowed header.
//!
//! Ids come from a per-thread generator seeded once from the OS (fastrand's
//! wyrand), not from a `getrandom` syscall per request: a request id must be
//! unique, not secret.

use std::cell::RefCell;

use http::{HeaderName, HeaderValue, Request};
use schemars::JsonSchema;
use serde::Deserialize;
use tower::Layer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId as Id, SetRequestIdLayer,
};

use crate::registry::{Plugin, PluginError};
use crate::stage::HttpService;

/// Configuration of the `request_id` plugin.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestIdConfig {
    /// The header carrying the id.
    #[serde(default = "default_header")]
    pub header: String,
}

/// The built plugin.
pub struct RequestId {
    header: HeaderName,
}

/// Generates UUID v4 text from a thread-local generator.
#[derive(Clone, Copy, Debug, Default)]
pub struct FastUuid;

fn default_header() -> String {
    "x-request-id".to_owned()
}

thread_local! {
    static RNG: RefCell<fastrand::Rng> = RefCell::new(fastrand::Rng::new());
}

// === impl FastUuid ===

impl FastUuid {
    /// A random (version 4, RFC 9562 variant) UUID in its 36-character form.
    pub fn generate() -> [u8; 36] {
        let mut bits = RNG.with(|rng| rng.borrow_mut().u128(..));
        bits = (bits & !(0xF << 76)) | (0x4 << 76); // version 4
        bits = (bits & !(0x3 << 62)) | (0x2 << 62); // variant 10
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        let mut nibble = 32;
        for (i, slot) in out.iter_mut().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                continue;
            }
            nibble -= 1;
            *slot = HEX[((bits >> (nibble * 4)) & 0xF) as usize];
        }
        out
    }
}

impl MakeRequestId for FastUuid {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<Id> {
        HeaderValue::from_bytes(&FastUuid::generate())
            .ok()
            .map(Id::new)
    }
}

// === impl RequestId ===

impl Plugin for RequestId {
    const NAME: &'static str = "request_id";
    type Config = RequestIdConfig;

    async fn new(config: RequestIdConfig) -> Result<Self, PluginError> {
        let header = HeaderName::try_from(config.header.as_str()).map_err(|e| PluginError {
            plugin: Self::NAME,
            message: format!("invalid header name {:?}: {e}", config.header),
        })?;
        Ok(RequestId { header })
    }

    fn wrap(&self, inner: HttpService) -> HttpService {
        // Set first (outer), so the propagate layer sees the id on the request.
        let set = SetRequestIdLayer::new(self.header.clone(), FastUuid);
        let propagate = PropagateRequestIdLayer::new(self.header.clone());
        HttpService::new(set.layer(propagate.layer(inner)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::{Request, Response, empty_body};
    use std::convert::Infallible;
    use tower::ServiceExt;

    fn echo_handler() -> HttpService {
        HttpService::new(tower::service_fn(|req: Request| async move {
            let seen = req.headers().get("x-request-id").cloned();
            let mut res = Response::new(empty_body());
            if let Some(v) = seen {
                res.headers_mut().insert("x-seen", v);
            }
            Ok::<_, Infallible>(res)
        }))
    }

    async fn plugin() -> RequestId {
        RequestId::new(RequestIdConfig {
            header: default_header(),
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn generates_an_id_when_the_client_sent_none() {
        let svc = plugin().await.wrap(echo_handler());
        let res = svc.oneshot(Request::new(empty_body())).await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_eq!(id.len(), 36, "uuid: {id}");
        assert_eq!(res.headers()["x-seen"], id.as_str());
    }

    #[test]
    fn generated_ids_are_distinct_version_4_uuids() {
        let a = FastUuid::generate();
        let b = FastUuid::generate();
        assert_ne!(a, b);
        let text = std::str::from_utf8(&a).unwrap();
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('4'), "version nibble: {text}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "variant: {text}"
        );
        assert!(text.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
    }

    #[tokio::test]
    async fn keeps_the_clients_id() {
        let svc = plugin().await.wrap(echo_handler());
        let req = http::Request::builder()
            .header("x-request-id", "abc-123")
            .body(empty_body())
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.headers()["x-request-id"], "abc-123");
        assert_eq!(res.headers()["x-seen"], "abc-123");
    }

    #[tokio::test]
    async fn rejects_an_invalid_header_name() {
        let err = RequestId::new(RequestIdConfig {
            header: "bad header".into(),
        })
        .await
        .err()
        .unwrap();
        assert!(err.to_string().contains("invalid header name"), "{err}");
    }
}
