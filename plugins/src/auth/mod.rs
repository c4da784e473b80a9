//! Plugin `auth`: authenticates the caller before anything else on the route
//! runs, and answers 401/403 itself.
//!
//! A route lists one or several **methods** (`api_key`, `jwt`, `hmac` and
//! `mtls`, each a [`MethodConfig`] variant implementing the internal
//! [`Method`] trait). How they combine is the [`Mode`]:
//!
//! - `first_match` (default): methods are tried in order; the first one that
//!   authenticates the request wins and names the consumer. A method whose
//!   credentials are absent or wrong is passed over, so a client may use any
//!   one of the listed methods.
//! - `all`: every method must authenticate the request; the consumer is the
//!   one named by the first method listed. Every method is evaluated (no early
//!   exit), so timing does not tell which credential was wrong.
//!
//! Failures:
//! - **401** when no method (or, in `all` mode, not every method)
//!   authenticated the request: a `WWW-Authenticate` challenge per method, and
//!   the body `{"code":16,"message":"unauthenticated: missing credentials"}`
//!   (nothing presented) or `"unauthenticated: invalid credentials"` (something
//!   presented and refused; the short code comes from the first method that
//!   refused). Neither the credential nor the reason it failed is echoed.
//! - **403** when the request authenticated but the route's `allow` rules
//!   (on the consumer, a token's scopes or its claims; see [`allow`]) refuse
//!   the identity: `{"code":7,"message":"permission denied"}`, whichever
//!   rule refused.
//!
//! On success the request continues with a [`Consumer`] in its extensions (for
//! per-consumer rate limits, metrics and upstream metadata), the token's
//! [`Claims`] too when a `jwt` method authenticated it, and every
//! method's credentials removed (an API key header, a query parameter…): the
//! upstream never sees them. The one exception is the JWT `Authorization`
//! header, kept on purpose (upstreams may read the token); the `jwt` method
//! also sets headers from validated claims (`claims_to_metadata`), after
//! removing any client-sent copies of them.
//!
//! Request bodies: a method that signs the body (`hmac`) asks for it through
//! [`Method::body_limit`], only for requests that carry its credentials. The
//! stage then reads the whole body first (at most the limit: **413** beyond,
//! from `content-length` up front or while reading), puts its SHA-256 in the
//! extensions as [`BodyDigest`] for `authenticate` (which stays synchronous),
//! and passes the same bytes on as the body. Trailers of a buffered body are
//! dropped. Other requests stream through untouched.
//!
//! Every outcome is counted in `switchyard_auth_requests_total{route,
//! outcome}` (see [`crate::metrics`]).
//!
//! A method may also answer **503** ([`Outcome::Unavailable`]): `hmac` does
//! when its replay cache is full, rather than forget signatures it has seen.

mod allow;
mod api_key;
mod body;
mod hmac;
mod jwt;
mod mtls;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{HeaderName, HeaderValue, header};
use schemars::JsonSchema;
use serde::Deserialize;
use tower::Service;

pub use self::hmac::{ByteSize, HmacConfig, HmacKey};
pub use allow::{AllowRules, ClaimValue};
pub use api_key::{ApiKeyConfig, KeyEntry};
pub use jwt::{Alg, JwtConfig, KeysConfig};

use crate::error::{Code, ErrorResponse};
use crate::metrics::{AuthCounters, PluginMetrics};
use crate::registry::{Plugin, PluginError};
use crate::stage::{BoxFuture, Claims, Consumer, ConsumerSlot, HttpService, Request, Response};

/// Configuration of the `auth` plugin.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The authentication methods, in the order they are tried; at least one.
    pub methods: Vec<MethodConfig>,
    /// How the methods combine: `first_match` (the default: the first method
    /// that authenticates the request wins) or `all` (every method must).
    #[serde(default)]
    pub mode: Mode,
    /// Who may call the route once authenticated: by consumer, by a token's
    /// scopes or by its claims; anyone authenticated when omitted. A refused
    /// identity gets 403.
    #[serde(default)]
    pub allow: Option<AllowRules>,
}

/// One authentication method: its name as the only key, its settings as the value.
// Read once at load, a few per route: the size difference between variants
// (the `jwt` settings are the largest) costs nothing worth boxing for.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodConfig {
    /// An API key from a request header or a query parameter, checked against
    /// SHA-256 digests of the issued keys.
    ApiKey(ApiKeyConfig),
    /// A signed JSON Web Token (`Authorization: Bearer …`), checked against
    /// a PEM public key, a JWK Set URL or an HMAC secret.
    Jwt(JwtConfig),
    /// Requests signed by a partner with a shared secret (`x-sy-signature`):
    /// HMAC-SHA256 over the method, path, query, a timestamp and the body's
    /// SHA-256; see `docs/partner-signing.md`.
    Hmac(HmacConfig),
    /// The client certificate of a mutual-TLS connection (verified by the
    /// TLS edge): the consumer is its subject CN or first SAN.
    Mtls(mtls::MtlsConfig),
}

/// How several methods combine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The first method, in list order, that authenticates the request wins;
    /// methods whose credentials are absent or invalid are passed over.
    #[default]
    FirstMatch,
    /// Every method must authenticate the request; the consumer is the one
    /// named by the first method listed.
    All,
}

/// Who a method says the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The consumer's name, inserted into the request as [`Consumer`].
    pub consumer: String,
    /// Request headers to set once admitted (JWT claims for the upstream).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// A validated token's claims (`jwt` only; `None` for every other
    /// method): checked by `allow.scopes` and `allow.claims`, then inserted
    /// into the request as [`Claims`].
    pub claims: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
}

/// What a method made of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Valid credentials for this method.
    Authenticated(Identity),
    /// None of this method's credentials are on the request.
    Absent,
    /// Credentials were presented and refused. The short code (e.g. `invalid
    /// credentials`) is the only thing the client learns: never the secret,
    /// never which check failed.
    Rejected(&'static str),
    /// The method cannot decide right now (503, whatever the other methods
    /// say): `hmac` with a full replay cache. The short code is the message.
    Unavailable(&'static str),
}

/// The SHA-256 of a buffered request body, in the request's extensions while
/// methods authenticate it (see [`Method::body_limit`]); removed afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyDigest(pub [u8; 32]);

/// An authentication method, built and validated from its config.
trait Method: Send + Sync {
    /// The method's `WWW-Authenticate` challenge (`ApiKey header="x-api-key"`),
    /// sent with every 401.
    fn challenge(&self) -> &HeaderValue;

    /// Looks at the request's credentials. Runs on the request path: no I/O.
    fn authenticate(&self, parts: &Parts) -> Outcome;

    /// Whether this request's body must be read before [`Method::authenticate`]
    /// runs, and at most how many bytes of it: the stage then buffers it and
    /// sets [`BodyDigest`]. `None` (the default) leaves the body streaming.
    fn body_limit(&self, _parts: &Parts) -> Option<usize> {
        None
    }

    /// Removes this method's credentials from the request, so the upstream
    /// never sees them. Called on every method once the request is admitted.
    fn strip(&self, parts: &mut Parts);
}

/// The short code for a request that carries no credentials at all.
const MISSING: &str = "missing credentials";

/// The built plugin.
#[derive(Clone)]
pub struct Auth {
    shared: Arc<Shared>,
}

struct Shared {
    methods: Vec<Box<dyn Method>>,
    mode: Mode,
    allow: Option<allow::Allow>,
    counters: AuthCounters,
}

/// The `auth` stage in front of the rest of the route.
#[derive(Clone)]
struct AuthService {
    shared: Arc<Shared>,
    inner: HttpService,
}

/// Either the rejection, ready now, the inner service's response, or (for a
/// body a method must see) reading the body, then either of those.
enum AuthFuture {
    Refused(Ready<Result<Response, Infallible>>),
    Admitted(<HttpService as Service<Request>>::Future),
    Buffering(BoxFuture<Result<Response, Infallible>>),
}

fn error(message: String) -> PluginError {
    PluginError {
        plugin: Auth::NAME,
        message,
    }
}

// === impl Auth ===

impl Plugin for Auth {
    const NAME: &'static str = "auth";
    type Config = AuthConfig;

    /// `keys_file` paths are relative to the config file.
    async fn build(
        mut config: AuthConfig,
        ctx: &crate::registry::BuildContext,
    ) -> Result<Self, PluginError> {
        for method in &mut config.methods {
            match method {
                MethodConfig::ApiKey(api_key) => {
                    if let Some(path) = &api_key.keys_file {
                        api_key.keys_file = Some(ctx.resolve(path));
                    }
                }
                MethodConfig::Jwt(jwt) => {
                    if let Some(path) = &jwt.keys.jwks_ca_file {
                        jwt.keys.jwks_ca_file = Some(ctx.resolve(path));
                    }
                }
                _ => {}
            }
        }
        Self::create(config, ctx.metrics.auth(&ctx.route)).await
    }

    async fn new(config: AuthConfig) -> Result<Self, PluginError> {
        Self::create(config, PluginMetrics::default().auth("")).await
    }

    fn wrap(&self, inner: HttpService) -> HttpService {
        HttpService::new(AuthService {
            shared: self.shared.clone(),
            inner,
        })
    }
}

impl Auth {
    /// Checks `config` and builds the methods, counting outcomes into `counters`.
    async fn create(config: AuthConfig, counters: AuthCounters) -> Result<Self, PluginError> {
        if config.methods.is_empty() {
            return Err(error(
                "`methods` is empty: list at least one authentication method".into(),
            ));
        }
        let mut methods: Vec<Box<dyn Method>> = Vec::with_capacity(config.methods.len());
        for (i, method) in config.methods.iter().enumerate() {
            let built: Box<dyn Method> = match method {
                MethodConfig::ApiKey(c) => Box::new(
                    api_key::ApiKey::new(c)
                        .map_err(|e| error(format!("methods[{i}].api_key: {e}")))?,
                ),
                MethodConfig::Jwt(c) => Box::new(
                    jwt::Jwt::new(c)
                        .await
                        .map_err(|e| error(format!("methods[{i}].jwt: {e}")))?,
                ),
                MethodConfig::Hmac(c) => Box::new(
                    self::hmac::Hmac::new(c)
                        .map_err(|e| error(format!("methods[{i}].hmac: {e}")))?,
                ),
                MethodConfig::Mtls(c) => Box::new(
                    mtls::Mtls::new(c).map_err(|e| error(format!("methods[{i}].mtls: {e}")))?,
                ),
            };
            methods.push(built);
        }
        let allow = config
            .allow
            .map(allow::Allow::new)
            .transpose()
            .map_err(error)?;
        Ok(Auth {
            shared: Arc::new(Shared {
                methods,
                mode: config.mode,
                allow,
                counters,
            }),
        })
    }
}

// === impl Shared ===

impl Shared {
    /// Admits the request (credentials stripped, [`Consumer`] and, for a
    /// token, [`Claims`] set) or answers it.
    fn admit(&self, request: Request) -> Result<Request, ErrorResponse> {
        let (mut parts, body) = request.into_parts();
        let identity = self.authenticate(&parts);
        parts.extensions.remove::<BodyDigest>();
        let identity = identity?;
        if !self.allows(&identity) {
            self.counters.forbidden.inc();
            return Err(ErrorResponse::new(
                Code::PermissionDenied,
                "permission denied",
            ));
        }
        for method in &self.methods {
            method.strip(&mut parts);
        }
        for (name, value) in identity.headers {
            parts.headers.insert(name, value);
        }
        if let Some(ConsumerSlot(slot)) = parts.extensions.get::<ConsumerSlot>() {
            let _ = slot.set(identity.consumer.clone());
        }
        parts.extensions.insert(Consumer(identity.consumer));
        self.counters.authenticated.inc();
        // Always this stage's word: no earlier stage's claims survive an
        // admission by another method.
        match identity.claims {
            Some(claims) => parts.extensions.insert(Claims(claims)),
            None => parts.extensions.remove::<Claims>(),
        };
        Ok(Request::from_parts(parts, body))
    }

    fn authenticate(&self, parts: &Parts) -> Result<Identity, ErrorResponse> {
        let mut first: Option<Identity> = None;
        let mut rejected: Option<&'static str> = None;
        let mut absent = false;
        for method in &self.methods {
            match method.authenticate(parts) {
                Outcome::Authenticated(identity) => {
                    if self.mode == Mode::FirstMatch {
                        return Ok(identity);
                    }
                    // `all`: the first method names the consumer; every
                    // method's headers are set; the claims are the first
                    // token's.
                    match &mut first {
                        None => first = Some(identity),
                        Some(first) => {
                            first.headers.extend(identity.headers);
                            if first.claims.is_none() {
                                first.claims = identity.claims;
                            }
                        }
                    }
                }
                Outcome::Absent => absent = true,
                Outcome::Rejected(code) => {
                    rejected.get_or_insert(code);
                }
                Outcome::Unavailable(code) => {
                    self.counters.unavailable.inc();
                    return Err(ErrorResponse::new(Code::Unavailable, code)
                        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")));
                }
            }
        }
        // first_match: nothing authenticated. all: every method ran; any
        // refusal or absence fails the request.
        match (first, rejected, absent) {
            (Some(identity), None, false) => Ok(identity),
            (_, Some(code), _) => {
                self.counters.invalid_credentials.inc();
                Err(self.unauthenticated(code))
            }
            _ => {
                self.counters.missing_credentials.inc();
                Err(self.unauthenticated(MISSING))
            }
        }
    }

    /// The largest body any method needs to see for this request, if any.
    fn body_limit(&self, parts: &Parts) -> Option<usize> {
        self.methods
            .iter()
            .filter_map(|m| m.body_limit(parts))
            .max()
    }

    fn allows(&self, identity: &Identity) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|allow| allow.allows(identity))
    }

    fn unauthenticated(&self, code: &str) -> ErrorResponse {
        let mut error =
            ErrorResponse::new(Code::Unauthenticated, format!("unauthenticated: {code}"));
        for method in &self.methods {
            let challenge = method.challenge();
            if !error.headers.iter().any(|(_, v)| v == challenge) {
                error = error.with_header(header::WWW_AUTHENTICATE, challenge.clone());
            }
        }
        error
    }
}

// === impl AuthService ===

impl Service<Request> for AuthService {
    type Response = Response;
    type Error = Infallible;
    type Future = AuthFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> AuthFuture {
        let (parts, body) = request.into_parts();
        let Some(limit) = self.shared.body_limit(&parts) else {
            return match self.shared.admit(Request::from_parts(parts, body)) {
                Ok(request) => AuthFuture::Admitted(self.inner.call(request)),
                Err(error) => AuthFuture::Refused(ready(Ok(error.into_response()))),
            };
        };
        // The service made ready by `poll_ready` goes with the future.
        let ready_inner = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready_inner);
        let shared = self.shared.clone();
        AuthFuture::Buffering(Box::pin(async move {
            let admitted = match body::buffer(parts, body, limit).await {
                Ok(request) => shared.admit(request),
                Err(error) => Err(error),
            };
            match admitted {
                Ok(request) => inner.call(request).await,
                Err(error) => Ok(error.into_response()),
            }
        }))
    }
}

// === impl AuthFuture ===

impl Future for AuthFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Every variant is `Unpin` (a `Ready` and boxed futures).
        match self.get_mut() {
            AuthFuture::Refused(ready) => Pin::new(ready).poll(cx),
            AuthFuture::Admitted(future) => future.as_mut().poll(cx),
            AuthFuture::Buffering(future) => future.as_mut().poll(cx),
        }
    }
}
