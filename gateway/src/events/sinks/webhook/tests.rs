//! The sink against a real HTTP server on loopback (allowed explicitly):
//! what is sent, how answers are read, what the guard refuses.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use http::{Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prometheus::Opts;

use super::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One request the server received.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

/// What the server answers: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

/// A server answering each request with the next of `answers` (the last
/// one again when they run out), recording what it received.
struct Server {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn server(answers: Vec<Answer>) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received = Arc::new(Mutex::new(Vec::new()));
    let (log, answers) = (received.clone(), Arc::new(answers));
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (log, answers) = (log.clone(), answers.clone());
            let service = service_fn(move |request: Request<Incoming>| {
                let (log, answers) = (log.clone(), answers.clone());
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .unwrap_or_default();
                    let mut log = log.lock().expect("log");
                    log.push(Received {
                        path: parts.uri.to_string(),
                        headers: parts.headers,
                        body,
                    });
                    let (status, headers, body) =
                        answers[(log.len() - 1).min(answers.len() - 1)].clone();
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    *response.status_mut() = StatusCode::from_u16(status).expect("status");
                    for (name, value) in headers {
                        response
                            .headers_mut()
                            .insert(name, value.parse().expect("value"));
                    }
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Server {
        addr,
        received,
        task,
    }
}

impl Server {
    fn received(&self) -> Vec<Received> {
        self.received.lock().expect("log").clone()
    }
}

fn config(url: &str) -> WebhookSinkConfig {
    serde_json::from_value(serde_json::json!({
        "url": url,
        "secrets": [SECRET],
        "allow_networks": ["127.0.0.1"],
    }))
    .expect("config")
}

fn counter() -> IntCounterVec {
    IntCounterVec::new(Opts::new("deliveries", "test"), &["sink", "status"]).expect("counter")
}

async fn sink(config: &WebhookSinkConfig) -> (WebhookSink, IntCounterVec) {
    let deliveries = counter();
    let sink = WebhookSink::connect("hooks", config, Path::new("."), deliveries.clone())
        .await
        .expect("sink");
    (sink, deliveries)
}

fn count(deliveries: &IntCounterVec, status: &str) -> u64 {
    deliveries.with_label_values(&["hooks", status]).get()
}

fn event(destination: &str) -> Outgoing {
    Outgoing {
        id: "evt-1".to_owned(),
        destination: destination.to_owned(),
        event_type: "com.example.order.created".to_owned(),
        subject: Some("orders/7".to_owned()),
        body: br#"{"specversion":"1.0","id":"evt-1","source":"/s","type":"com.example.order.created","subject":"orders/7","time":"2026-01-01T00:00:00.000Z","datacontenttype":"application/json","data":{"id":"7"}}"#.to_vec(),
    }
}

fn ok() -> Answer {
    (204, Vec::new(), Vec::new())
}

#[tokio::test]
async fn a_structured_delivery_is_signed_with_every_secret() {
    let server = server(vec![ok()]).await;
    let other = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    let mut config = config(&format!("http://{}/in?tenant=7", server.addr));
    config.secrets.push(other.clone());
    config
        .headers
        .insert("Authorization".to_owned(), "Bearer t0k3n".to_owned());
    let (sink, deliveries) = sink(&config).await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("now")
        .as_secs();
    sink.publish(&event("orders/7")).await.expect("delivered");

    let got = server.received();
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert_eq!(request.path, "/in/orders/7?tenant=7");
    assert_eq!(request.body.as_ref(), event("").body.as_slice());
    let header = |name: &str| request.headers[name].to_str().expect("text").to_owned();
    assert_eq!(header("content-type"), "application/cloudevents+json");
    assert_eq!(header("webhook-id"), "evt-1");
    assert_eq!(header("authorization"), "Bearer t0k3n");
    assert!(header("user-agent").starts_with("switchyard/"));
    let timestamp: u64 = header("webhook-timestamp").parse().expect("unix seconds");
    assert!(
        timestamp >= before && timestamp <= before + 5,
        "{timestamp}"
    );
    let expected: Vec<String> = [SECRET, other.as_str()]
        .iter()
        .map(|s| {
            let signer = Signer::new(vec![Secret::parse(s).expect("secret")]).expect("signer");
            signer.sign("evt-1", timestamp, &request.body)
        })
        .collect();
    assert_eq!(header("webhook-signature"), expected.join(" "));
    assert_eq!(count(&deliveries, "204"), 1);
}

#[tokio::test]
async fn binary_mode_sends_the_data_with_ce_headers() {
    let server = server(vec![ok()]).await;
    let mut config = config(&format!("http://{}/", server.addr));
    config.mode = ContentMode::Binary;
    let (sink, _) = sink(&config).await;
    sink.publish(&event("")).await.expect("delivered");
    let request = &server.received()[0];
    assert_eq!(request.path, "/");
    assert_eq!(request.body.as_ref(), br#"{"id":"7"}"#);
    let header = |name: &str| request.headers[name].to_str().expect("text").to_owned();
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(header("ce-id"), "evt-1");
    assert_eq!(header("ce-specversion"), "1.0");
    assert_eq!(header("ce-type"), "com.example.order.created");
    assert_eq!(header("ce-subject"), "orders/7");
    assert!(request.headers.get("ce-data").is_none());
    // The signature covers the body actually sent.
    let signer = Signer::new(vec![Secret::parse(SECRET).expect("secret")]).expect("signer");
    let timestamp: u64 = header("webhook-timestamp").parse().expect("ts");
    assert_eq!(
        header("webhook-signature"),
        signer.sign("evt-1", timestamp, br#"{"id":"7"}"#)
    );
}

#[tokio::test]
async fn answers_decide_retry_dead_letter_or_wait() {
    let server = server(vec![
        (500, Vec::new(), b"database down".to_vec()),
        (503, vec![("retry-after", "3".to_owned())], Vec::new()),
        (410, Vec::new(), Vec::new()),
        (302, vec![("location", "/elsewhere".to_owned())], Vec::new()),
    ])
    .await;
    let (sink, deliveries) = sink(&config(&format!("http://{}/in", server.addr))).await;
    let err = sink.publish(&event("")).await.expect_err("500");
    assert!(
        matches!(&err, SinkError::Transient(m) if m.contains("HTTP 500") && m.contains("database down") && m.contains("/in")),
        "{err:?}"
    );
    let err = sink.publish(&event("")).await.expect_err("503");
    assert!(
        matches!(err, SinkError::RetryAfter { after, .. } if after == Duration::from_secs(3)),
        "{err:?}"
    );
    let err = sink.publish(&event("")).await.expect_err("410");
    assert!(matches!(err, SinkError::Permanent(_)), "{err:?}");
    let err = sink.publish(&event("")).await.expect_err("302");
    assert!(
        err.to_string().contains("redirects are not followed"),
        "{err}"
    );
    assert_eq!(server.received().len(), 4, "the redirect was not followed");
    for status in ["500", "503", "410", "302"] {
        assert_eq!(count(&deliveries, status), 1, "{status}");
    }
}

#[tokio::test]
async fn a_large_answer_is_read_only_in_part() {
    let server = server(vec![(500, Vec::new(), vec![b'x'; 4 * 1024 * 1024])]).await;
    let (sink, _) = sink(&config(&format!("http://{}/", server.addr))).await;
    let err = sink.publish(&event("")).await.expect_err("500");
    let text = err.to_string();
    assert!(
        text.contains("HTTP 500") && text.len() < 400,
        "{}",
        &text[..text.len().min(400)]
    );
}

#[tokio::test]
async fn no_answer_in_time_is_a_transient_error() {
    // Accepts connections, never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let _held = std::thread::spawn(move || listener.incoming().collect::<Vec<_>>());
    let mut config = config(&format!("http://{addr}/"));
    config.timeout = HumanDuration::from_millis(300);
    let (sink, deliveries) = sink(&config).await;
    let started = Instant::now();
    let err = sink.publish(&event("")).await.expect_err("timeout");
    assert!(
        matches!(&err, SinkError::Transient(m) if m.contains("no answer within")),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(count(&deliveries, "error"), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_transient_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let (sink, deliveries) = sink(&config(&format!("http://127.0.0.1:{port}/"))).await;
    let err = sink.publish(&event("")).await.expect_err("refused");
    assert!(
        matches!(&err, SinkError::Transient(m) if m.contains("cannot connect")),
        "{err:?}"
    );
    assert_eq!(count(&deliveries, "error"), 1);
}

#[tokio::test]
async fn a_name_resolving_to_a_blocked_address_is_refused_before_connecting() {
    let server = server(vec![ok()]).await;
    let port = server.addr.port();
    let mut config = config(&format!("http://localhost:{port}/"));
    config.allow_networks.clear();
    let (sink, deliveries) = sink(&config).await;
    let err = sink.publish(&event("")).await.expect_err("blocked");
    let text = err.to_string();
    assert!(matches!(err, SinkError::Transient(_)), "{err:?}");
    assert!(
        text.contains("SSRF guard")
            && text.contains("localhost resolves to")
            && text.contains("loopback"),
        "{text}"
    );
    assert!(server.received().is_empty(), "nothing was sent");
    assert_eq!(count(&deliveries, "error"), 1);
}

#[tokio::test]
async fn events_that_cannot_make_a_request_are_permanent() {
    let server = server(vec![ok()]).await;
    let mut config = config(&format!("http://{}/", server.addr));
    let (structured, _) = sink(&config).await;
    let err = structured
        .publish(&event("../admin"))
        .await
        .expect_err("dot segments");
    assert!(matches!(err, SinkError::Permanent(_)), "{err:?}");
    let mut bad_id = event("");
    bad_id.id = "evt\n1".to_owned();
    let err = structured.publish(&bad_id).await.expect_err("bad id");
    assert!(matches!(err, SinkError::Permanent(_)), "{err:?}");
    config.mode = ContentMode::Binary;
    let (binary, _) = sink(&config).await;
    let mut not_json = event("");
    not_json.body = b"not json".to_vec();
    let err = binary.publish(&not_json).await.expect_err("not JSON");
    assert!(matches!(err, SinkError::Permanent(_)), "{err:?}");
    assert!(server.received().is_empty());
}

#[tokio::test]
async fn config_is_checked_at_connect() {
    let base = || config("http://hooks.example.com/in");
    let refused = |mutate: fn(&mut WebhookSinkConfig), expected: &'static str| {
        let mut config = base();
        mutate(&mut config);
        async move {
            let err = WebhookSink::connect("hooks", &config, Path::new("."), counter())
                .await
                .expect_err(expected);
            assert!(err.contains(expected), "expected {expected:?} in {err}");
            assert!(err.starts_with("webhook sink: "), "{err}");
        }
    };
    refused(|c| c.url = "http://127.0.0.2/".into(), "loopback").await;
    refused(|c| c.url = "http://10.0.0.1/".into(), "private").await;
    refused(|c| c.url = "http://2130706433/".into(), "non-standard").await;
    refused(|c| c.url = "ftp://hooks.example.com/".into(), "https://").await;
    refused(|c| c.secrets.clear(), "at least one").await;
    refused(|c| c.secrets = vec!["hunter2".into()], "secrets[0]").await;
    refused(|c| c.timeout = HumanDuration::from_secs(0), "timeout").await;
    refused(
        |c| c.ca_file = Some("ca.pem".into()),
        "`ca_file` is for an https:// `url`",
    )
    .await;
    refused(
        |c| c.allow_networks = vec!["10.0.0.1/8".into()],
        "allow_networks",
    )
    .await;
    refused(
        |c| {
            c.headers.insert("webhook-id".into(), "x".into());
        },
        "webhook-id",
    )
    .await;
    if !tls::HTTPS {
        refused(|c| c.url = "https://hooks.example.com/".into(), "https://").await;
    }
    assert!(
        WebhookSink::connect("hooks", &base(), Path::new("."), counter())
            .await
            .is_ok()
    );
}

#[test]
fn config_defaults_and_redaction() {
    let config: WebhookSinkConfig = serde_json::from_value(serde_json::json!({
        "url": "https://hooks.example.com/in?token=abc",
        "secrets": [SECRET],
        "headers": {"authorization": "Bearer t0k3n"},
    }))
    .expect("config");
    assert_eq!(config.mode, ContentMode::Structured);
    assert_eq!(config.timeout, HumanDuration::from_secs(10));
    assert_eq!(config.connect_timeout, HumanDuration::from_secs(10));
    let schedule: Vec<u64> = config
        .retry_schedule
        .iter()
        .map(|d| d.0.as_secs())
        .collect();
    assert_eq!(schedule, [5, 300, 1800, 7200, 18000, 36000, 36000]);
    let debug = format!("{config:?}");
    for secret in [SECRET, "t0k3n", "token=abc"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    let err = serde_json::from_value::<WebhookSinkConfig>(serde_json::json!({
        "url": "https://hooks.example.com/", "secrets": [SECRET], "secret": SECRET
    }))
    .unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}
