//! HTTP callouts (`proxy_http_call`), made safe: a filter can call only the
//! upstreams its plugin config lists (`http_callouts`, by the cluster name
//! the filter passes), at most [`MAX_PER_STREAM`] per request, each within
//! the plugin's `callout_timeout` (or the filter's own, if shorter), the
//! answer's body bounded by `max_body`. The stream waits for its callouts
//! between two callbacks — never inside one, never holding a VM — and the
//! filter gets each answer in `proxy_on_http_call_response`: the status and
//! headers (`:status` first), the body; a failed call (refused, timed out,
//! too large) comes back with no headers, as in Envoy.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::abi::Status;
use super::stream::{self, Pairs};

/// The most callouts one request may make.
pub const MAX_PER_STREAM: u32 = 8;

/// A callout a filter asked for, not sent yet.
#[derive(Debug)]
pub struct Pending {
    pub token: u32,
    request: http::Request<Full<Bytes>>,
    timeout: Duration,
}

/// A callout's answer, as the filter reads it.
#[derive(Debug, Default)]
pub struct Answered {
    pub token: u32,
    pub headers: Pairs,
    pub body: Bytes,
    pub trailers: Pairs,
}

/// A plugin's callout targets and client.
pub struct Callouts {
    targets: HashMap<String, Uri>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    max_body: usize,
}

impl Callouts {
    /// `targets`: cluster name → base URL (`http://authz:8080`, `https://…`).
    pub fn new(
        targets: &std::collections::BTreeMap<String, String>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<Callouts, String> {
        let mut parsed = HashMap::new();
        for (name, url) in targets {
            let uri: Uri = url
                .parse()
                .map_err(|_| format!("`http_callouts.{name}`: {url:?} is not a URL"))?;
            let path_ok = uri.path() == "/" || uri.path().is_empty();
            match uri.scheme_str() {
                Some("http" | "https")
                    if uri.authority().is_some() && path_ok && uri.query().is_none() => {}
                _ => {
                    return Err(format!(
                        "`http_callouts.{name}`: {url:?} must be http:// or https:// and a host, without a path"
                    ));
                }
            }
            parsed.insert(name.clone(), uri);
        }
        let tls = crate::outbound::tls_config(None, "http_callouts")?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Callouts {
            targets: parsed,
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
            max_body,
        })
    }

    /// The request a filter's `proxy_http_call` describes, or why not:
    /// `NotFound` for a cluster the config does not list, `BadArgument` for
    /// a header map without `:method` and `:path`.
    pub fn prepare(
        &self,
        token: u32,
        cluster: &str,
        headers: Pairs,
        body: Vec<u8>,
        timeout_ms: u32,
    ) -> Result<Pending, Status> {
        let base = self.targets.get(cluster).ok_or(Status::NotFound)?;
        if body.len() > self.max_body {
            return Err(Status::BadArgument);
        }
        let method = stream::get(&headers, b":method")
            .and_then(|m| Method::from_bytes(m).ok())
            .ok_or(Status::BadArgument)?;
        let path = stream::get(&headers, b":path")
            .filter(|p| p.starts_with(b"/"))
            .and_then(|p| http::uri::PathAndQuery::try_from(p).ok())
            .ok_or(Status::BadArgument)?;
        let mut uri = base.clone().into_parts();
        uri.path_and_query = Some(path);
        let uri = Uri::from_parts(uri).map_err(|_| Status::BadArgument)?;
        let mut request = http::Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = stream::header_map(&headers).map_err(|_| Status::BadArgument)?;
        let asked = Duration::from_millis(u64::from(timeout_ms));
        let timeout = if asked.is_zero() {
            self.timeout
        } else {
            asked.min(self.timeout)
        };
        Ok(Pending {
            token,
            request,
            timeout,
        })
    }

    /// Sends `pending` at once; their answers, in the same order.
    pub async fn run(&self, pending: Vec<Pending>) -> Vec<Answered> {
        let calls = pending.into_iter().map(|p| self.one(p));
        futures_util::future::join_all(calls).await
    }

    async fn one(&self, pending: Pending) -> Answered {
        let token = pending.token;
        let call = async {
            let response = self.client.request(pending.request).await.ok()?;
            let (parts, body) = response.into_parts();
            let collected = Limited::new(body, self.max_body).collect().await.ok()?;
            let trailers = collected
                .trailers()
                .map(stream::pairs_of)
                .unwrap_or_default();
            Some(Answered {
                token,
                headers: stream::response_pairs(parts.status, &parts.headers),
                body: collected.to_bytes(),
                trailers,
            })
        };
        match tokio::time::timeout(pending.timeout, call).await {
            Ok(Some(answered)) => answered,
            _ => Answered {
                token,
                ..Answered::default()
            },
        }
    }
}
