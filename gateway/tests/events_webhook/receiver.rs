//! The webhook endpoint the tests run: a hyper server on an ephemeral port
//! that records every delivery attempt and answers from a script.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::sync::Notify;
/// One delivery attempt the receiver got.
#[derive(Clone, Debug)]
pub struct Hit {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Hit {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .expect("text header")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// What the receiver answers: status and headers.
pub type Answer = (u16, &'static [(&'static str, &'static str)]);

/// A webhook endpoint answering the n-th request with `answers[n]` (the
/// last one once they run out).
pub struct Receiver {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    arrived: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(answers: &'static [Answer]) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the receiver");
        let addr = listener.local_addr().expect("its address");
        let hits = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let (log, notify) = (hits.clone(), arrived.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (log, notify) = (log.clone(), notify.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (log, notify) = (log.clone(), notify.clone());
                    async move { Ok::<_, Infallible>(answer(request, answers, &log, &notify).await) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            hits,
            arrived,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }

    /// Waits until `n` requests arrived; panics after `within`.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Hit> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            let hits = self.hits();
            if hits.len() >= n {
                return hits;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "{n} deliveries expected within {within:?}, got {}",
                    hits.len()
                );
            }
        }
    }
}

async fn answer(
    request: Request<Incoming>,
    answers: &[Answer],
    log: &Mutex<Vec<Hit>>,
    arrived: &Notify,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let n = {
        let mut log = log.lock().expect("hits");
        log.push(Hit {
            at: Instant::now(),
            path: parts.uri.to_string(),
            headers: parts.headers,
            body,
        });
        log.len()
    };
    arrived.notify_waiters();
    let (status, headers) = answers[(n - 1).min(answers.len() - 1)];
    let mut response = Response::new(Full::new(Bytes::from_static(b"receiver says hi")));
    *response.status_mut() = StatusCode::from_u16(status).expect("status");
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(*name, value.parse().expect("header value"));
    }
    response
}

// === the Python verifier ===
