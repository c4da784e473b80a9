//! Plugin `auth`: authenticates the caller before anything else on the route
//! runs, and answers 401/403 itself.
//!
//! A route lists one or several **methods** (today `api_key` and `jwt`; HMAC
//! and mTLS slot in as more [`MethodConfig`] variants, each implementing the
//! internal [`Method`] trait). How they combine is the [`Mode`]:
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
//!   refuse the identity: `{"code":7,"message":"permission denied"}`.
//!
//! On success the request continues with a [`Consumer`] in its extensions (for
//! per-consumer rate limits, metrics and upstream metadata), and every
//! method's credentials removed (an API key header, a query parameter…): the
//! upstream never sees them. The one exception is the JWT `Authorization`
//! header, kept on purpose (upstreams may read the token); the `jwt` method
//! also sets headers from validated claims (`claims_to_metadata`), after
//! removing any client-sent copies of them.

mod api_key;
mod jwt;
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

pub use api_key::{ApiKeyConfig, KeyEntry};
pub use jwt::{Alg, JwtConfig, KeysConfig};

use crate::error::{Code, ErrorResponse};
use crate::registry::{Plugin, PluginError};
use crate::stage::{Consumer, HttpService, Request, Response};

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
    /// Who may call the route once authenticated; anyone authenticated when
    /// omitted. A refused identity gets 403.
    #[serde(default)]
    pub allow: Option<AllowRules>,
}

/// One authentication method: its name as the only key, its settings as the value.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodConfig {
    /// An API key from a request header or a query parameter, checked against
    /// SHA-256 digests of the issued keys.
    ApiKey(ApiKeyConfig),
    /// A signed JSON Web Token (`Authorization: Bearer …`), checked against
    /// a PEM public key, a JWK Set URL or an HMAC secret.
    Jwt(JwtConfig),
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

/// Rules an authenticated identity must pass, else 403. Every rule that is
/// set must pass.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowRules {
    /// Only these consumers (as named by the authenticating method, e.g. an
    /// API key's `consumer`) may call the route.
    #[serde(default)]
    pub consumers: Option<Vec<String>>,
}

/// Who a method says the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// The consumer's name, inserted into the request as [`Consumer`].
    pub consumer: String,
    /// Request headers to set once admitted (JWT claims for the upstream).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    // Claims and scopes (JWT) go here, for `allow` rules to check.
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
}

/// An authentication method, built and validated from its config.
trait Method: Send + Sync {
    /// The method's `WWW-Authenticate` challenge (`ApiKey header="x-api-key"`),
    /// sent with every 401.
    fn challenge(&self) -> &HeaderValue;

    /// Looks at the request's credentials. Runs on the request path: no I/O.
    fn authenticate(&self, parts: &Parts) -> Outcome;

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
    allow_consumers: Option<Vec<String>>,
}

/// The `auth` stage in front of the rest of the route.
#[derive(Clone)]
struct AuthService {
    shared: Arc<Shared>,
    inner: HttpService,
}

/// Either the rejection, ready now, or the inner service's response.
enum AuthFuture {
    Refused(Ready<Result<Response, Infallible>>),
    Admitted(<HttpService as Service<Request>>::Future),
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

    async fn new(config: AuthConfig) -> Result<Self, PluginError> {
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
            };
            methods.push(built);
        }
        let allow_consumers = match config.allow {
            None => None,
            Some(AllowRules { consumers: None }) => {
                return Err(error(
                    "`allow` sets no rule: list `consumers`, or remove `allow`".into(),
                ));
            }
            Some(AllowRules {
                consumers: Some(consumers),
            }) => {
                if consumers.is_empty() {
                    return Err(error(
                        "`allow.consumers` is empty: no caller could pass; remove the route instead"
                            .into(),
                    ));
                }
                Some(consumers)
            }
        };
        Ok(Auth {
            shared: Arc::new(Shared {
                methods,
                mode: config.mode,
                allow_consumers,
            }),
        })
    }

    fn wrap(&self, inner: HttpService) -> HttpService {
        HttpService::new(AuthService {
            shared: self.shared.clone(),
            inner,
        })
    }
}

// === impl Shared ===

impl Shared {
    /// Admits the request (credentials stripped, [`Consumer`] set) or answers it.
    fn admit(&self, request: Request) -> Result<Request, ErrorResponse> {
        let (mut parts, body) = request.into_parts();
        let identity = self.authenticate(&parts)?;
        if !self.allows(&identity) {
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
        parts.extensions.insert(Consumer(identity.consumer));
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
                    // method's headers are set.
                    match &mut first {
                        None => first = Some(identity),
                        Some(first) => first.headers.extend(identity.headers),
                    }
                }
                Outcome::Absent => absent = true,
                Outcome::Rejected(code) => {
                    rejected.get_or_insert(code);
                }
            }
        }
        // first_match: nothing authenticated. all: every method ran; any
        // refusal or absence fails the request.
        match (first, rejected, absent) {
            (Some(identity), None, false) => Ok(identity),
            (_, Some(code), _) => Err(self.unauthenticated(code)),
            _ => Err(self.unauthenticated(MISSING)),
        }
    }

    fn allows(&self, identity: &Identity) -> bool {
        match &self.allow_consumers {
            None => true,
            Some(consumers) => consumers.contains(&identity.consumer),
        }
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
        match self.shared.admit(request) {
            Ok(request) => AuthFuture::Admitted(self.inner.call(request)),
            Err(error) => AuthFuture::Refused(ready(Ok(error.into_response()))),
        }
    }
}

// === impl AuthFuture ===

impl Future for AuthFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Both variants are `Unpin` (a `Ready` and a boxed future).
        match self.get_mut() {
            AuthFuture::Refused(ready) => Pin::new(ready).poll(cx),
            AuthFuture::Admitted(future) => future.as_mut().poll(cx),
        }
    }
}
