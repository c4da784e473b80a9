//! One HTTP upstream (`http_upstreams:`): its endpoints, round robin, and
//! each endpoint's idle keep-alive connections per edge worker (`conn.rs`),
//! so a request is sent and its answer read on the event loop that serves
//! the client (as the gRPC upstreams do, `upstream::endpoint`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::uri::{Authority, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::ServerName;
use switchyard_plugins::stage::{Body, Request};

use super::conn::{Connector, IdleConns, SendError};
use crate::config::proxy::HttpUpstream;

/// How the `https://` endpoints are reached: the TLS client settings and
/// the name to verify instead of each endpoint's host.
pub struct ClientTls {
    pub config: rustls::ClientConfig,
    pub server_name: Option<ServerName<'static>>,
}

/// An HTTP upstream, compiled.
pub struct HttpPool {
    pub name: String,
    endpoints: Box<[HttpEndpoint]>,
    /// Opens connections (TCP, and TLS to `https://` endpoints).
    connector: Connector,
    next: AtomicUsize,
    in_flight: AtomicUsize,
    pub max_concurrent: usize,
    pub timeout: Duration,
    connect_timeout: Duration,
    /// Reference for the endpoints' `down_until` (ms since it).
    epoch: Instant,
}

/// One endpoint: where it is, and until when it is passed over.
pub struct HttpEndpoint {
    scheme: http::uri::Scheme,
    pub authority: Authority,
    /// `scheme://authority/`: what the connector connects to.
    origin: Uri,
    /// `authority`, as the `Host` header sent (without `preserve_host`).
    pub host: http::HeaderValue,
    idle: Arc<IdleConns>,
    /// Milliseconds since the pool's epoch before which the endpoint is
    /// passed over (it refused a connection); 0: in service.
    down_until: AtomicU64,
}

/// A request counted in flight on its upstream until dropped.
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl HttpPool {
    /// Compiles `config`, one client per worker, `tls` for its `https://`
    /// endpoints; an endpoint that is not `http(s)://host:port` is named
    /// in the error.
    pub fn new(
        name: &str,
        config: &HttpUpstream,
        tls: ClientTls,
        workers: usize,
    ) -> Result<HttpPool, String> {
        if config.endpoints.is_empty() {
            return Err("no `endpoints`: give at least one, e.g. http://127.0.0.1:8000".into());
        }
        let idle = || {
            Arc::new(IdleConns::new(
                workers,
                config.max_idle_per_endpoint,
                config.idle_timeout.0,
            ))
        };
        let endpoints = config
            .endpoints
            .iter()
            .map(|raw| endpoint(raw, idle()))
            .collect::<Result<Vec<_>, _>>()?;
        if config.max_concurrent == 0 {
            return Err("`max_concurrent` must be at least 1".into());
        }
        let connect_timeout = config.connect_timeout.0;
        Ok(HttpPool {
            name: name.to_owned(),
            endpoints: endpoints.into_boxed_slice(),
            connector: connector(&tls),
            next: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_concurrent: config.max_concurrent,
            timeout: config.timeout.0,
            connect_timeout,
            epoch: Instant::now(),
        })
    }

    /// Sends `req` (its URI on `endpoint`) over one of the endpoint's
    /// connections.
    pub async fn send(
        &self,
        endpoint: &HttpEndpoint,
        req: Request,
    ) -> Result<http::Response<Body>, SendError> {
        super::conn::send(
            endpoint.idle.clone(),
            &self.connector,
            self.connect_timeout,
            &endpoint.origin,
            req,
        )
        .await
    }

    /// Counts a request in flight, or `None` at `max_concurrent`.
    pub fn admit(&self) -> Option<InFlight<'_>> {
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        let admitted = InFlight(&self.in_flight);
        (before < self.max_concurrent).then_some(admitted)
    }

    /// How many endpoints there are (the most attempts a request makes).
    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// The next endpoint round robin, passing over those down (all down:
    /// the next one anyway: better a try than a certain refusal).
    pub fn pick(&self) -> &HttpEndpoint {
        let now = self.now_ms();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.endpoints.len();
        (0..count)
            .map(|i| &self.endpoints[(start + i) % count])
            .find(|e| e.down_until.load(Ordering::Relaxed) <= now)
            .unwrap_or(&self.endpoints[start % count])
    }

    /// `endpoint` refused a connection: pass it over for `connect_timeout`
    /// (at least a second).
    pub fn mark_down(&self, endpoint: &HttpEndpoint) {
        let pause = self.connect_timeout.max(Duration::from_secs(1));
        let until = self.now_ms() + pause.as_millis() as u64;
        endpoint.down_until.store(until, Ordering::Relaxed);
    }

    /// The admin API's view: endpoints (and whether each is passed over
    /// now), requests in flight.
    pub fn status(&self) -> serde_json::Value {
        let now = self.now_ms();
        let endpoints: Vec<serde_json::Value> = self
            .endpoints
            .iter()
            .map(|e| {
                serde_json::json!({
                    "endpoint": format!("{}://{}", e.scheme, e.authority),
                    "passed_over": e.down_until.load(Ordering::Relaxed) > now,
                })
            })
            .collect();
        serde_json::json!({
            "name": self.name,
            "in_flight": self.in_flight.load(Ordering::Relaxed),
            "max_concurrent": self.max_concurrent,
            "endpoints": endpoints,
        })
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }
}

fn endpoint(raw: &str, idle: Arc<IdleConns>) -> Result<HttpEndpoint, String> {
    let bad = |why: &str| format!("{raw:?} is not an endpoint: {why}; write http://host:port");
    let uri: Uri = raw.parse().map_err(|_| bad("not a URI"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => http::uri::Scheme::HTTP,
        Some("https") => http::uri::Scheme::HTTPS,
        _ => return Err(bad("the scheme must be http:// or https://")),
    };
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return Err(bad("no path: set `rewrite_prefix` on the proxy instead"));
    }
    let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
    if authority.as_str().contains('@') {
        return Err(bad("no user information"));
    }
    let origin = Uri::builder()
        .scheme(scheme.clone())
        .authority(authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|_| bad("not a URI"))?;
    let host = http::HeaderValue::from_str(authority.as_str()).map_err(|_| bad("not a host"))?;
    Ok(HttpEndpoint {
        scheme,
        origin,
        host,
        authority,
        idle,
        down_until: AtomicU64::new(0),
    })
}

/// The connector of every endpoint: TCP with `TCP_NODELAY`, and TLS by
/// `tls` for the `https://` ones (HTTP/1.1 by ALPN).
fn connector(tls: &ClientTls) -> Connector {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    // `https://` URIs pass through to it, for the TLS layer to wrap.
    connector.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.config.clone())
        .https_or_http();
    let builder = match &tls.server_name {
        Some(name) => builder
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name.clone())),
        None => builder,
    };
    builder.enable_http1().wrap_connector(connector)
}

/// Shared by the proxies naming it.
pub type SharedPool = Arc<HttpPool>;

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> ClientTls {
        ClientTls {
            config: crate::upstream::tls::client_config(&Default::default(), |p| p.into())
                .expect("default TLS settings"),
            server_name: None,
        }
    }

    fn config(endpoints: &[&str]) -> HttpUpstream {
        serde_json::from_value(serde_json::json!({ "endpoints": endpoints })).expect("config")
    }

    #[test]
    fn endpoints_must_be_plain_http_origins() {
        for (raw, expected) in [
            ("ftp://a:1", "the scheme must be http://"),
            ("http://a:1/base", "no path"),
            ("http://u@a:1", "no user information"),
            ("a:1", "the scheme must be http://"),
        ] {
            let err = HttpPool::new("u", &config(&[raw]), tls(), 1)
                .err()
                .unwrap_or_else(|| panic!("{raw} accepted"));
            assert!(err.contains(expected), "{raw}: {err}");
        }
        assert!(HttpPool::new("u", &config(&[]), tls(), 1).is_err());
        assert!(HttpPool::new("u", &config(&["http://127.0.0.1:8000/"]), tls(), 1).is_ok());
        assert!(HttpPool::new("u", &config(&["https://a.example:443"]), tls(), 1).is_ok());
    }

    #[test]
    fn round_robin_passes_over_an_endpoint_marked_down() {
        let pool =
            HttpPool::new("u", &config(&["http://a:1", "http://b:2"]), tls(), 2).expect("pool");
        let picks: Vec<String> = (0..4).map(|_| pool.pick().authority.to_string()).collect();
        assert_eq!(picks, ["a:1", "b:2", "a:1", "b:2"]);
        pool.mark_down(&pool.endpoints[0]);
        for _ in 0..4 {
            assert_eq!(pool.pick().authority.as_str(), "b:2");
        }
        // Every endpoint down: still one to try.
        pool.mark_down(&pool.endpoints[1]);
        let _ = pool.pick();
    }

    #[test]
    fn admission_stops_at_max_concurrent_and_frees_on_drop() {
        let mut config = config(&["http://a:1"]);
        config.max_concurrent = 2;
        let pool = HttpPool::new("u", &config, tls(), 1).expect("pool");
        let first = pool.admit().expect("first");
        let second = pool.admit().expect("second");
        assert!(pool.admit().is_none());
        drop(first);
        assert!(pool.admit().is_some());
        drop(second);
    }
}
