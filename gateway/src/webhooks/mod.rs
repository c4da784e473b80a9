//! Inbound webhooks: endpoints that accept signed deliveries from a
//! provider (Stripe, or any Standard Webhooks sender) and hand each one,
//! once, to an events sink as a CloudEvent, or to a gRPC method.
//!
//! One delivery, in order (docs/webhooks.md, "Inbound webhooks"):
//! 1. `POST` only (405), body read up to `max_body` (413);
//! 2. the signature over the raw body bytes ([`verify`]): 401 when missing
//!    or wrong, then the signed timestamp against `tolerance`: 400;
//! 3. the body must be JSON (400); the webhook id is `webhook-id`, or
//!    Stripe's body `id` (else the signature);
//! 4. the id is reserved in the dedupe store ([`dedupe`]): an id already
//!    delivered is answered 200 `{"status":"duplicate"}` and not
//!    published; one being handled by a concurrent delivery gets 409 (retry);
//!    the store unreachable gets 503;
//! 5. the CloudEvent is appended to the outbox ([`publish`]); a full outbox
//!    is 503 and the reservation is released so the provider's retry is
//!    accepted; then the id is confirmed and the answer is 202
//!    `{"status":"accepted","id":…}`: the event is durable within the
//!    outbox's flush window, delivered to the broker by the relay.
//!    With `forward:` instead, the method is called ([`forward`]): its
//!    success confirms the id and answers 200 `{"status":"delivered",…}`;
//!    its failure releases the reservation and answers the call's error
//!    (502, 503, 504…), so the provider's retry is accepted.

mod build;
pub mod dedupe;
pub mod forward;
pub mod mac;
pub mod publish;
pub mod verify;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, StatusCode, header};
use prometheus::{IntCounter, IntCounterVec, Opts};
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::{HttpService, Request, Response, full_body, read_body_limited};

use crate::events::outbox::AppendError;
use crate::routing::hosts::host_rank;
use dedupe::{Reservation, Store};
use forward::{ForwardError, Forwarder};
use publish::{PublishError, Publisher};
use verify::{Rejection, Verified, Verifier};

/// A config version's webhook endpoints, by path.
#[derive(Default)]
pub struct Endpoints {
    by_path: HashMap<String, Vec<Served>>,
}

/// An endpoint behind its plugins.
pub struct Served {
    endpoint: Arc<Endpoint>,
    /// The plugins (`plugins:` with the top-level ones, less `auth` and
    /// `idempotency`) around [`Endpoint::call`].
    stack: HttpService,
}

impl Served {
    /// The endpoint's name (metrics, logs).
    pub fn name(&self) -> &str {
        &self.endpoint.name
    }

    /// The endpoint's pipeline: plugins, then the delivery.
    pub fn stack(&self) -> HttpService {
        self.stack.clone()
    }
}

/// One compiled endpoint.
pub struct Endpoint {
    name: String,
    /// Host patterns (`api.example.com`, `*.example.com`); any when empty.
    hosts: Vec<String>,
    verifier: Verifier,
    max_body: usize,
    store: Store,
    handoff: Handoff,
    outcomes: Outcomes,
}

/// Where an accepted delivery goes.
enum Handoff {
    /// An events sink, through the outbox (`publish:`).
    Publish(Publisher),
    /// A gRPC method, called before answering (`forward:`).
    Forward(Forwarder),
}

/// What became of a delivery: the `outcome` label of
/// `switchyard_webhooks_received_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    Duplicate,
    InProgress,
    BadSignature,
    Stale,
    TooLarge,
    Invalid,
    Full,
    Unavailable,
    Forwarded,
    UpstreamFailed,
}

/// A refused delivery: its outcome and the error answered.
type Refusal = (Outcome, ErrorResponse);

/// A verified delivery.
struct Delivery {
    /// The request (its body taken).
    parts: http::request::Parts,
    /// The body as received (what was signed; the event's `data`).
    raw: bytes::Bytes,
    body: serde_json::Value,
    /// The webhook id (see [`delivery_id`]).
    id: String,
}

/// One counter per outcome, resolved at build time.
struct Outcomes(Vec<IntCounter>);

/// The deliveries counter, `switchyard_webhooks_received_total{endpoint,
/// outcome}`, for the gateway's registry.
pub fn received_counter() -> IntCounterVec {
    IntCounterVec::new(
        Opts::new(
            "webhooks_received_total",
            "Inbound webhook deliveries by endpoint and outcome: accepted (in the outbox), forwarded (the gRPC method succeeded), duplicate, in_progress, bad_signature, stale, too_large, invalid, full (outbox), unavailable (dedupe store), upstream_error (the forward call failed).",
        ),
        &["endpoint", "outcome"],
    )
    .expect("static metric definition")
}

// === impl Endpoints ===

impl Endpoints {
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    /// The endpoint for a request's (normalised) path and host, if any: an
    /// exact host first, then the longest wildcard, then an endpoint
    /// without `hosts`.
    pub fn find(&self, req: &Request) -> Option<&Served> {
        if self.is_empty() {
            return None;
        }
        let candidates = self.by_path.get(req.uri().path())?;
        let host = crate::routing::hosts::request_host(req);
        candidates
            .iter()
            .filter_map(|e| Some((host_rank(&e.endpoint.hosts, host.as_deref())?, e)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, e)| e)
    }
}

// === impl Endpoint ===

impl Endpoint {
    /// Serves one delivery (never fails: errors are responses).
    pub async fn call(&self, req: Request) -> Response {
        let (outcome, response) = match self.handle(req).await {
            Ok((outcome, response)) => (outcome, response),
            Err((outcome, error)) => {
                tracing::debug!(endpoint = %self.name, ?outcome, error = %error.message, "webhook refused");
                (outcome, error.into_response())
            }
        };
        if let Some(counter) = self.outcomes.0.get(outcome as usize) {
            counter.inc();
        }
        response
    }

    /// Steps 1 to 3: a verified delivery, its JSON body and its id.
    async fn receive(&self, req: Request) -> Result<Delivery, Refusal> {
        if req.method() != Method::POST {
            let error = ErrorResponse::with_status(
                StatusCode::METHOD_NOT_ALLOWED,
                Code::Unimplemented,
                "webhook endpoints accept POST only",
            )
            .with_header(header::ALLOW, HeaderValue::from_static("POST"));
            return Err((Outcome::Invalid, error));
        }
        let (parts, body) = req.into_parts();
        let limit = "the webhook endpoint's max_body";
        let raw = read_body_limited(&parts.headers, body, self.max_body, limit)
            .await
            .map_err(|e| match e.http_status {
                StatusCode::PAYLOAD_TOO_LARGE => (Outcome::TooLarge, e),
                _ => (Outcome::Invalid, e),
            })?;
        let verified = self
            .verifier
            .verify(&parts.headers, &raw, unix_now())
            .map_err(rejected)?;
        let body: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
            let message = format!("the webhook body is not JSON: {e}");
            (
                Outcome::Invalid,
                ErrorResponse::new(Code::InvalidArgument, message),
            )
        })?;
        let id = delivery_id(verified, &body);
        Ok(Delivery {
            parts,
            raw,
            body,
            id,
        })
    }

    /// Steps 4 and 5: deduplicated, handed off, answered.
    async fn handle(&self, req: Request) -> Result<(Outcome, Response), Refusal> {
        let delivery = self.receive(req).await?;
        let id = delivery.id.as_str();
        let token = match self.store.reserve(id).await {
            Ok(Reservation::Reserved(token)) => token,
            Ok(Reservation::Duplicate) => {
                return Ok((Outcome::Duplicate, reply(StatusCode::OK, "duplicate", id)));
            }
            Ok(Reservation::InProgress) => return Err((Outcome::InProgress, in_progress(id))),
            Err(e) => {
                tracing::warn!(endpoint = %self.name, error = %e, "webhooks: dedupe store unavailable");
                let error = unavailable("the dedupe store is unavailable");
                return Err((Outcome::Unavailable, error));
            }
        };
        let handed = match &self.handoff {
            Handoff::Publish(publisher) => publisher
                .publish(id, &delivery.body, &delivery.raw)
                .map(|()| (Outcome::Accepted, StatusCode::ACCEPTED, "accepted"))
                .map_err(|failure| self.publish_failed(id, failure)),
            Handoff::Forward(forwarder) => forwarder
                .forward(id, &delivery.raw, &delivery.parts)
                .await
                .map(|()| (Outcome::Forwarded, StatusCode::OK, "delivered"))
                .map_err(|failure| self.forward_failed(forwarder, id, failure)),
        };
        let (outcome, status, word) = match handed {
            Ok(handed) => handed,
            Err(refusal) => {
                if let Err(e) = self.store.release(id, token).await {
                    tracing::warn!(endpoint = %self.name, %id, error = %e, "webhooks: reservation not released (it expires on its own)");
                }
                return Err(refusal);
            }
        };
        if let Err(e) = self.store.confirm(id, token).await {
            // Handed off: the answer stays a success; a redelivery after the
            // reservation expires is dropped by the broker (same event id),
            // or by the method (same `webhook-id`).
            tracing::warn!(endpoint = %self.name, %id, error = %e, "webhooks: delivery not marked as done");
        }
        Ok((outcome, reply(status, word, id)))
    }

    fn forward_failed(&self, forwarder: &Forwarder, id: &str, failure: ForwardError) -> Refusal {
        match failure {
            ForwardError::Invalid(message) => (Outcome::Invalid, forward::invalid(message)),
            ForwardError::Call(error) => {
                tracing::warn!(endpoint = %self.name, %id, method = %forwarder.describe(), status = %error.http_status, error = %error.message, "webhooks: forwarded delivery failed; the provider's retry will be accepted");
                (Outcome::UpstreamFailed, error)
            }
        }
    }

    fn publish_failed(&self, id: &str, failure: PublishError) -> Refusal {
        match failure {
            PublishError::Render(message) => (
                Outcome::Invalid,
                ErrorResponse::new(Code::InvalidArgument, message),
            ),
            PublishError::Append(AppendError::Full(waiting)) => {
                tracing::warn!(endpoint = %self.name, %id, waiting, "webhooks: outbox full, delivery refused");
                (Outcome::Full, unavailable("the event outbox is full"))
            }
            PublishError::Append(e @ AppendError::TooLarge { .. }) => (
                Outcome::TooLarge,
                ErrorResponse::with_status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Code::ResourceExhausted,
                    e.to_string(),
                ),
            ),
        }
    }
}

// === impl Outcome ===

impl Outcome {
    pub const ALL: [Outcome; 11] = [
        Outcome::Accepted,
        Outcome::Duplicate,
        Outcome::InProgress,
        Outcome::BadSignature,
        Outcome::Stale,
        Outcome::TooLarge,
        Outcome::Invalid,
        Outcome::Full,
        Outcome::Unavailable,
        Outcome::Forwarded,
        Outcome::UpstreamFailed,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::InProgress => "in_progress",
            Outcome::BadSignature => "bad_signature",
            Outcome::Stale => "stale",
            Outcome::TooLarge => "too_large",
            Outcome::Invalid => "invalid",
            Outcome::Full => "full",
            Outcome::Unavailable => "unavailable",
            Outcome::Forwarded => "forwarded",
            Outcome::UpstreamFailed => "upstream_error",
        }
    }
}

// === helpers ===

/// The id deliveries are deduplicated on, and the CloudEvent's id:
/// `webhook-id`; for Stripe the body's `id`, else `sig_<hex signature>`.
fn delivery_id(verified: Verified, body: &serde_json::Value) -> String {
    if let Some(id) = verified.id {
        return id;
    }
    match body.get("id").and_then(serde_json::Value::as_str) {
        Some(id) if verify::valid_id(id) => id.to_owned(),
        _ => format!(
            "sig_{}",
            switchyard_plugins::hex::encode(&verified.signature)
        ),
    }
}

fn rejected(rejection: Rejection) -> Refusal {
    let message = rejection.to_string();
    match rejection {
        Rejection::Malformed(_) | Rejection::BadSignature => (
            Outcome::BadSignature,
            ErrorResponse::new(Code::Unauthenticated, message),
        ),
        Rejection::TooOld { .. } | Rejection::TooNew { .. } => (
            Outcome::Stale,
            ErrorResponse::new(Code::InvalidArgument, message),
        ),
    }
}

fn in_progress(id: &str) -> ErrorResponse {
    ErrorResponse::new(
        Code::Aborted,
        format!("delivery {id:?} is being handled by a concurrent request; retry"),
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

fn unavailable(what: &str) -> ErrorResponse {
    ErrorResponse::new(Code::Unavailable, format!("{what}; retry later"))
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
}

/// `{"status": …, "id": …}` with `status`.
fn reply(status: StatusCode, word: &str, id: &str) -> Response {
    let body = serde_json::json!({"status": word, "id": id}).to_string();
    let mut response = http::Response::new(full_body(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_index_their_counters_in_order() {
        for (i, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, i, "{}", outcome.as_str());
        }
    }

    #[test]
    fn exact_hosts_beat_wildcards_which_beat_any_host() {
        let hosts = |list: &[&str]| list.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>();
        let exact = hosts(&["hooks.example.com"]);
        let wild = hosts(&["*.example.com"]);
        let deeper = hosts(&["*.hooks.example.com"]);
        let host = Some("a.hooks.example.com");
        assert_eq!(host_rank(&[], host), Some(0));
        assert_eq!(host_rank(&[], None), Some(0));
        assert_eq!(
            host_rank(&exact, Some("hooks.example.com")),
            Some(usize::MAX)
        );
        assert_eq!(host_rank(&exact, host), None);
        assert!(host_rank(&deeper, host) > host_rank(&wild, host));
        assert!(host_rank(&wild, host) > host_rank(&[], host));
        assert_eq!(host_rank(&wild, Some("example.com")), None);
        assert_eq!(host_rank(&wild, None), None);
    }

    #[test]
    fn stripe_ids_come_from_the_body_else_the_signature() {
        let verified = |id: Option<&str>| Verified {
            id: id.map(str::to_owned),
            signature: [0xab; 32],
        };
        let body = serde_json::json!({"id": "evt_1"});
        assert_eq!(delivery_id(verified(Some("msg_1")), &body), "msg_1");
        assert_eq!(delivery_id(verified(None), &body), "evt_1");
        let unusable = serde_json::json!({"id": "has space"});
        assert_eq!(
            delivery_id(verified(None), &unusable),
            format!("sig_{}", "ab".repeat(32))
        );
    }
}
