//! The request path: key → body fingerprint → reserve → run once → store,
//! or answer from what the key already holds.

use std::convert::Infallible;
use std::future::ready;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use http_body::Body as _;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tower::Service;

use super::config::{OnStoreError, Settings};
use super::record::{Fingerprint, Record, StoredResponse};
use super::store::{Lease, Reservation, ScopeKey, Store, StoreError};
use crate::error::{Code, ErrorResponse};
use crate::metrics::IdempotencyCounters;
use crate::stage::{
    BoxFuture, Consumer, HttpService, Request, Response, full_body, read_body_limited,
};

/// What every clone of the service shares.
pub(super) struct Shared {
    pub settings: Settings,
    pub store: Store,
    pub counters: IdempotencyCounters,
}

/// The service wrapping the rest of the route.
#[derive(Clone)]
pub struct IdempotencyService {
    pub(super) inner: HttpService,
    pub(super) shared: Arc<Shared>,
}

/// Our reservation while the first request runs: released if the request
/// ends without a stored response, dropped future included (the client went
/// away: whether the upstream acted is unknown, as after a 5xx).
struct Pending {
    shared: Arc<Shared>,
    scope: ScopeKey,
    lease: Option<Lease>,
}

// === impl IdempotencyService ===

impl Service<Request> for IdempotencyService {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if !self.shared.settings.methods.contains(request.method()) {
            return self.inner.call(request);
        }
        let key = match self.shared.key_of(&request) {
            Ok(Some(key)) => key,
            Ok(None) => return self.inner.call(request),
            Err(refusal) => {
                self.shared.counters.rejected.inc();
                return Box::pin(ready(Ok(refusal.into_response())));
            }
        };
        // The ready service goes with the request; a clone stays for the
        // next call (which polls it ready first).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        Box::pin(async move { Ok(shared.handle(inner, request, key).await) })
    }
}

// === impl Shared ===

impl Shared {
    /// The request's key: `None` without the header (refused when
    /// `required`), refused when malformed. A structured-field string
    /// (`"..."`, as the IETF draft writes it) and a bare token are the same key.
    fn key_of(&self, request: &Request) -> Result<Option<Vec<u8>>, ErrorResponse> {
        let settings = &self.settings;
        let mut values = request.headers().get_all(&settings.header).iter();
        let Some(value) = values.next() else {
            if settings.required {
                return Err(refusal::required(settings, request.method()));
            }
            return Ok(None);
        };
        let invalid = |why: &str| Err(refusal::invalid(settings, why));
        if values.next().is_some() {
            return invalid("send it once");
        }
        let key = match value.as_bytes() {
            [b'"', quoted @ .., b'"'] => quoted,
            bare => bare,
        };
        if key.is_empty() {
            return invalid("it is empty");
        }
        if key.len() > settings.max_key_length {
            let max = settings.max_key_length;
            return invalid(&format!("it is longer than {max} characters"));
        }
        if !key.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return invalid("use printable ASCII characters only");
        }
        Ok(Some(key.to_vec()))
    }

    async fn handle(
        self: Arc<Self>,
        inner: HttpService,
        request: Request,
        key: Vec<u8>,
    ) -> Response {
        let (parts, body) = request.into_parts();
        let limit = self.settings.max_request_body;
        let name = "the idempotency plugin's `max_request_body`";
        let body = match read_body_limited(&parts.headers, body, limit, name).await {
            Ok(body) => body,
            Err(refusal) => {
                self.counters.rejected.inc();
                return refusal.into_response();
            }
        };
        let fingerprint = Fingerprint::of(&parts.method, &parts.uri, &body);
        let scope = scope(&parts, &key);
        let request = Request::from_parts(parts, full_body(body));
        match self.store.reserve(&scope, fingerprint).await {
            Ok(Reservation::Reserved(lease)) => {
                let pending = Pending {
                    shared: self.clone(),
                    scope,
                    lease: Some(lease),
                };
                self.first(inner, request, pending, fingerprint).await
            }
            Ok(Reservation::Existing(record)) => self.existing(&record, &fingerprint),
            Err(error) => self.store_failed(error, inner, request).await,
        }
    }

    /// The key already holds `record`: a mismatch (422), in flight (409),
    /// or the response to replay.
    fn existing(&self, record: &Record, fingerprint: &Fingerprint) -> Response {
        if record.fingerprint() != fingerprint {
            self.counters.mismatch.inc();
            return refusal::reused(&self.settings).into_response();
        }
        match record {
            Record::InFlight { .. } => {
                self.counters.conflict.inc();
                refusal::in_progress(&self.settings).into_response()
            }
            Record::Completed(stored) => {
                self.counters.replayed.inc();
                stored.replay()
            }
        }
    }

    /// The key is ours: run the request, then store its response or release
    /// the key.
    async fn first(
        &self,
        mut inner: HttpService,
        request: Request,
        pending: Pending,
        fingerprint: Fingerprint,
    ) -> Response {
        let Ok(response) = inner.call(request).await;
        if !storable(response.status()) {
            pending.release().await;
            self.counters.not_stored.inc();
            return response;
        }
        let (parts, body) = response.into_parts();
        // Only complete bodies of a known length are stored: a stream
        // (unknown length) must reach the client as it comes.
        let exact = body.size_hint().exact();
        if exact.is_none_or(|n| n > self.settings.max_body as u64) {
            pending.release().await;
            self.counters.not_stored.inc();
            return Response::from_parts(parts, body);
        }
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(error) => {
                pending.release().await;
                self.counters.not_stored.inc();
                let message = format!("could not read the response: {error}");
                return ErrorResponse::with_status(
                    StatusCode::BAD_GATEWAY,
                    Code::Internal,
                    message,
                )
                .into_response();
            }
        };
        let stored = StoredResponse {
            fingerprint,
            status: parts.status,
            headers: self.stored_headers(&parts.headers),
            body: body.clone(),
        };
        pending.complete(stored).await;
        Response::from_parts(parts, full_body(body))
    }

    async fn store_failed(
        &self,
        error: StoreError,
        mut inner: HttpService,
        request: Request,
    ) -> Response {
        self.counters.store_error.inc();
        tracing::debug!(%error, "idempotency: the store could not reserve the key");
        match self.settings.on_store_error {
            OnStoreError::FailClosed => refusal::unavailable().into_response(),
            OnStoreError::FailOpen => {
                let Ok(response) = inner.call(request).await;
                response
            }
        }
    }

    /// The configured `stored_headers` of a response (values that are not
    /// visible ASCII are left out: the store keeps text).
    fn stored_headers(&self, headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
        headers
            .iter()
            .filter(|(name, value)| {
                self.settings.stored_headers.allows(name) && value.to_str().is_ok()
            })
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    }
}

/// Whether a response is kept for replays: 2xx, and 4xx except those a
/// retry may well change (408, 409, 425, 429, 499). 5xx never: the upstream
/// failed or could not be reached, and a retry must run again.
pub fn storable(status: StatusCode) -> bool {
    status.is_success()
        || (status.is_client_error() && !matches!(status.as_u16(), 408 | 409 | 425 | 429 | 499))
}

/// What a key is stored under: SHA-256 of the consumer (or none), the
/// method, the path and the key, each tagged and length-prefixed (no two
/// scopes hash the same input). The route is in the store's key prefix.
fn scope(parts: &Parts, key: &[u8]) -> ScopeKey {
    let mut hash = Sha256::new();
    let mut part = |tag: u8, value: &[u8]| {
        hash.update([tag]);
        hash.update((value.len() as u64).to_be_bytes());
        hash.update(value);
    };
    match parts.extensions.get::<Consumer>() {
        Some(Consumer(name)) => part(b'c', name.as_bytes()),
        None => part(b'a', b""),
    }
    part(b'm', parts.method.as_str().as_bytes());
    part(b'p', parts.uri.path().as_bytes());
    part(b'k', key);
    ScopeKey(hash.finalize().into())
}

// === impl Pending ===

impl Pending {
    /// Frees the key so a retry runs again.
    async fn release(mut self) {
        if let Some(lease) = self.lease.take()
            && let Err(error) = self.shared.store.release(&self.scope, &lease).await
        {
            tracing::warn!(%error, "idempotency: could not release a key (it frees itself after in_flight_ttl)");
        }
    }

    /// Stores `response` under the key; if that fails, frees the key.
    async fn complete(mut self, response: StoredResponse) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let shared = &self.shared;
        match shared.store.complete(&self.scope, &lease, response).await {
            Ok(true) => {
                shared.counters.stored.inc();
                return;
            }
            Ok(false) => {
                shared.counters.not_stored.inc();
                tracing::warn!(
                    "idempotency: response not stored: the key's reservation expired \
                     (in_flight_ttl shorter than the request) or the local store is full"
                );
            }
            Err(error) => {
                shared.counters.store_error.inc();
                tracing::warn!(%error, "idempotency: could not store a response");
            }
        }
        if let Err(error) = shared.store.release(&self.scope, &lease).await {
            tracing::debug!(%error, "idempotency: could not release an unstored key");
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let (shared, scope) = (self.shared.clone(), self.scope);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = shared.store.release(&scope, &lease).await;
            });
        }
    }
}

/// The plugin's own answers: the shared JSON error shape, with a
/// `google.rpc.ErrorInfo` whose `reason` tells them apart.
mod refusal {
    use super::*;

    fn info(reason: &str, settings: &Settings) -> Vec<serde_json::Value> {
        vec![serde_json::json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "switchyard",
            "metadata": {"header": settings.header_label},
        })]
    }

    /// 400: the route requires a key.
    pub fn required(settings: &Settings, method: &http::Method) -> ErrorResponse {
        let message = format!(
            "{method} requests on this route need an {} header",
            settings.header_label
        );
        ErrorResponse::new(Code::InvalidArgument, message)
            .with_details(info("IDEMPOTENCY_KEY_REQUIRED", settings))
    }

    /// 400: a malformed key.
    pub fn invalid(settings: &Settings, why: &str) -> ErrorResponse {
        let message = format!("invalid {} header: {why}", settings.header_label);
        ErrorResponse::new(Code::InvalidArgument, message)
            .with_details(info("IDEMPOTENCY_KEY_INVALID", settings))
    }

    /// 409: the first request with the key is still running.
    pub fn in_progress(settings: &Settings) -> ErrorResponse {
        let message = format!(
            "a request with this {} is in progress; retry once it has finished",
            settings.header_label
        );
        ErrorResponse::new(Code::Aborted, message)
            .with_details(info("IDEMPOTENCY_KEY_IN_PROGRESS", settings))
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    /// 422: the key was used for another request.
    pub fn reused(settings: &Settings) -> ErrorResponse {
        let message = format!(
            "this {} was already used with a different request body (or method, path or \
             query); send a new key for a new request",
            settings.header_label
        );
        ErrorResponse::with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::FailedPrecondition,
            message,
        )
        .with_details(info("IDEMPOTENCY_KEY_REUSED", settings))
    }

    /// 503: the store could not answer (`fail_closed`).
    pub fn unavailable() -> ErrorResponse {
        ErrorResponse::new(Code::Unavailable, "idempotency store unavailable")
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }
}
