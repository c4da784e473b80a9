//! Route guards: a route's own plugins, run before each upstream call the
//! GraphQL endpoint makes on that route (root fields, join calls, batches,
//! subscriptions), as they run before each REST call.
//!
//! The endpoint's top-level plugins already ran on the GraphQL request; a
//! guard adds what the route declares for itself (its `auth`, `allow`,
//! `rate_limit`, request `headers` edits) on a request built for the call:
//! `POST /<package.Service>/<Method>` with the GraphQL request's headers and
//! the caller the edge and the top-level plugins identified. A refusal is
//! the field's error (UNAUTHENTICATED, PERMISSION_DENIED,
//! RESOURCE_EXHAUSTED…); on success the call forwards the headers as the
//! route's plugins left them. `cors` and `request_id` have no meaning per
//! call and are not run.

use std::convert::Infallible;

use http::uri::PathAndQuery;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use switchyard_plugins::PluginError;
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::registry::{BuildContext, Phase, PluginConfig, build_stack};
use switchyard_plugins::stage::{
    BoxFuture, Claims, ClientAddr, ClientCertificate, Consumer, HttpService, Request, Response,
    empty_body,
};
use tower::{Service, ServiceExt};

/// Who is calling, as the edge and the endpoint's plugins said: carried from
/// the GraphQL request to each guarded call.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    addr: Option<ClientAddr>,
    certificate: Option<ClientCertificate>,
    consumer: Option<Consumer>,
    claims: Option<Claims>,
}

/// A route's guard.
pub struct Guard {
    stack: HttpService,
}

/// The headers a passed guard leaves, in the terminal response.
#[derive(Clone)]
struct Passed(HeaderMap);

// === impl Caller ===

impl Caller {
    /// The consumer the top-level auth plugins identified.
    pub fn consumer(&self) -> Option<&str> {
        self.consumer.as_ref().map(|c| c.0.as_str())
    }

    /// The verified JWT claims, when a JWT authenticated the request.
    pub fn claims(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.claims.as_ref().map(|c| &*c.0)
    }

    /// The connection's peer address.
    pub fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.addr.map(|a| a.0.ip())
    }

    pub fn of(extensions: &http::Extensions) -> Caller {
        Caller {
            addr: extensions.get().copied(),
            certificate: extensions.get().cloned(),
            consumer: extensions.get().cloned(),
            claims: extensions.get().cloned(),
        }
    }

    fn apply(&self, extensions: &mut http::Extensions) {
        if let Some(addr) = self.addr {
            extensions.insert(addr);
        }
        if let Some(certificate) = &self.certificate {
            extensions.insert(certificate.clone());
        }
        if let Some(consumer) = &self.consumer {
            extensions.insert(consumer.clone());
        }
        if let Some(claims) = &self.claims {
            extensions.insert(claims.clone());
        }
    }
}

// === impl Guard ===

impl Guard {
    /// The guard of a route with `plugins` of its own; `None` when none of
    /// them applies per call.
    pub async fn build(
        plugins: &[PluginConfig],
        ctx: &BuildContext,
    ) -> Result<Option<Guard>, PluginError> {
        let guarding: Vec<PluginConfig> = plugins
            .iter()
            // Idempotency keys are per HTTP request; a GraphQL call inside
            // one is not that request, and a replayed answer is no guard pass.
            .filter(|p| {
                !matches!(
                    p.phase(),
                    Phase::Correlate | Phase::Cors | Phase::Idempotency
                )
            })
            .cloned()
            .collect();
        if guarding.is_empty() {
            return Ok(None);
        }
        let passed = HttpService::new(tower::service_fn(
            |req: Request| -> BoxFuture<Result<Response, Infallible>> {
                let mut res = http::Response::new(empty_body());
                res.extensions_mut().insert(Passed(req.headers().clone()));
                Box::pin(std::future::ready(Ok(res)))
            },
        ));
        let stack = build_stack(&guarding, passed, ctx).await?;
        Ok(Some(Guard { stack }))
    }

    /// Runs the route's plugins for a call to `path`: the headers to forward,
    /// or the refusal. (Boxed with an explicit `Send` bound: the resolvers'
    /// futures must be `Send` for any lifetime.)
    pub fn check(
        &self,
        headers: &HeaderMap,
        caller: &Caller,
        path: &PathAndQuery,
    ) -> BoxFuture<Result<HeaderMap, ErrorResponse>> {
        let mut req = http::Request::new(empty_body());
        *req.method_mut() = Method::POST;
        *req.uri_mut() = http::Uri::from(path.clone());
        *req.headers_mut() = headers.clone();
        caller.apply(req.extensions_mut());
        let mut stack = self.stack.clone();
        Box::pin(async move {
            let res = match stack.ready().await {
                Ok(ready) => match ready.call(req).await {
                    Ok(res) => res,
                    Err(never) => match never {},
                },
                Err(never) => match never {},
            };
            let (mut parts, body) = res.into_parts();
            if parts.status.is_success()
                && let Some(Passed(headers)) = parts.extensions.remove::<Passed>()
            {
                return Ok(headers);
            }
            Err(refusal(parts.status, body).await)
        })
    }
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard").finish_non_exhaustive()
    }
}

/// A plugin's error response as the call's error: its `code` and `message`
/// (the plugins' JSON error body), else the code of the HTTP status.
async fn refusal(status: StatusCode, body: switchyard_plugins::stage::Body) -> ErrorResponse {
    #[derive(serde::Deserialize)]
    struct Status {
        code: i32,
        message: String,
    }
    // The plugins' error bodies are small JSON; anything past 64 KiB is not one.
    let mut body = body;
    let mut bytes = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            bytes.extend_from_slice(data);
        }
        if bytes.len() > 64 * 1024 {
            bytes.clear();
            break;
        }
    }
    match serde_json::from_slice::<Status>(&bytes) {
        Ok(s) => ErrorResponse::with_status(status, Code::from_i32(s.code), s.message),
        Err(_) => ErrorResponse::with_status(
            status,
            code_of(status),
            format!("refused by the route's plugins ({status})"),
        ),
    }
}

fn code_of(status: StatusCode) -> Code {
    match status.as_u16() {
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        429 => Code::ResourceExhausted,
        503 => Code::Unavailable,
        400..=499 => Code::InvalidArgument,
        _ => Code::Internal,
    }
}
