//! Plain HTTP reverse proxying (`proxies:`, docs/proxying.md) through the
//! real gateway to a real HTTP/1.1 service on an ephemeral port, which
//! answers with what it received.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::{TestGateway, assert_refused, demo_config};
use http::Method;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// An HTTP/1.1 service that answers every request with JSON describing it
/// (`/slow/…` after two seconds), counting what it received.
struct Echo {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
}

impl Echo {
    async fn start() -> Echo {
        Echo::start_with(None).await
    }

    /// Over TLS, serving `pki`'s `<file>.pem` (issued for `name`).
    async fn start_tls(pki: &common::pki::Pki, file: &str, name: &str) -> Echo {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        pki.reissue_server(file, name);
        let chain = CertificateDer::pem_file_iter(pki.dir.join(format!("{file}.pem")))
            .expect("pem")
            .collect::<Result<Vec<_>, _>>()
            .expect("pem");
        let key =
            PrivateKeyDer::from_pem_file(pki.dir.join(format!("{file}-key.pem"))).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        Echo::start_with(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Echo {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        let accepted = connections.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (counted, tls) = (counted.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        async move { Ok::<_, Infallible>(echo(req).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                });
            }
        });
        Echo {
            addr,
            requests,
            connections,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn echo(req: hyper::Request<hyper::body::Incoming>) -> http::Response<Full<Bytes>> {
    if req.uri().path().starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").into()))
        .collect();
    let json = serde_json::json!({
        "method": parts.method.as_str(),
        "uri": parts.uri.to_string(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    // `/close…`: the service ends the connection after this answer.
    let connection = if parts.uri.path().starts_with("/close") {
        "close"
    } else {
        "keep-alive, x-hop"
    };
    http::Response::builder()
        .header("content-type", "application/json")
        .header("x-upstream", "echo")
        .header("connection", connection)
        .header("x-hop", "connection-scoped")
        .body(Full::new(Bytes::from(json.to_string())))
        .expect("response")
}

/// The demo gateway with `http_upstreams: { web: <echo> }` and `proxies`.
async fn gateway(echo: &Echo, proxies: &str) -> TestGateway {
    let top = format!(
        "http_upstreams:\n  web: {{ endpoints: [\"{}\"] }}\nproxies:\n{proxies}",
        echo.url()
    );
    TestGateway::demo_with("", &top).await
}

#[tokio::test]
async fn a_proxied_request_reaches_the_service_with_its_prefix_rewritten_and_forwarding_headers() {
    let echo = Echo::start().await;
    let gw = gateway(
        &echo,
        "  - { name: legacy, prefix: /legacy, upstream: web, rewrite_prefix: / }\n",
    )
    .await;
    let reply = gw
        .send(
            Method::GET,
            "/legacy/items/7?color=red",
            &[
                ("x-forwarded-for", "6.6.6.6"),
                ("x-forwarded-host", "evil.example"),
                ("connection", "x-private"),
                ("x-private", "hop"),
                ("authorization", "Bearer t"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = reply.json();
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["uri"], "/items/7?color=red");
    let headers = &seen["headers"];
    assert_eq!(
        headers["x-forwarded-for"], "127.0.0.1",
        "the spoofed chain is replaced"
    );
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], format!("{}", gw.addr));
    assert_eq!(
        headers["host"],
        echo.addr.to_string(),
        "the upstream's own host by default"
    );
    assert_eq!(
        headers["authorization"], "Bearer t",
        "end-to-end headers cross"
    );
    assert!(
        headers.get("x-private").is_none(),
        "a header `Connection` names is hop-by-hop"
    );
    // The answer: the service's headers, less its hop-by-hop ones.
    assert_eq!(reply.headers["x-upstream"], "echo");
    assert!(reply.headers.get("x-hop").is_none());
    assert_eq!(
        gw.metric("switchyard_http_requests_total{method=\"GET\",route=\"legacy\",status=\"200\"}")
            .await,
        Some(1.0)
    );
    gw.stop().await;
}

#[tokio::test]
async fn routes_are_matched_first_and_a_root_proxy_takes_the_rest() {
    let echo = Echo::start().await;
    let gw = gateway(
        &echo,
        "  - { name: site, prefix: /, upstream: web, preserve_host: true }\n",
    )
    .await;
    let user = gw.get("/v1/users/1").await;
    assert_eq!(user.status, 200);
    assert!(
        user.json().get("uri").is_none(),
        "a transcoded route answered: {}",
        user.text()
    );
    assert_eq!(echo.requests(), 0);
    // A method the route does not bind on that path goes to the proxy too.
    let other = gw
        .send(Method::DELETE, "/v1/users", &[], Bytes::new())
        .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.json()["uri"], "/v1/users");
    let page = gw.get("/about/team").await;
    assert_eq!(page.json()["uri"], "/about/team");
    assert_eq!(
        page.json()["headers"]["host"],
        gw.addr.to_string(),
        "preserve_host"
    );
    assert_eq!(echo.requests(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn the_longest_prefix_wins_and_prefixes_match_whole_segments() {
    let echo = Echo::start().await;
    let other = Echo::start().await;
    let top = format!(
        "http_upstreams:\n  web: {{ endpoints: [\"{}\"] }}\n  api: {{ endpoints: [\"{}\"] }}\nproxies:\n  - {{ name: site, prefix: /, upstream: web }}\n  - {{ name: api, prefix: /api, upstream: api }}\n",
        echo.url(),
        other.url()
    );
    let gw = TestGateway::demo_with("", &top).await;
    assert_eq!(gw.get("/api/x").await.json()["uri"], "/api/x");
    assert_eq!(gw.get("/api").await.json()["uri"], "/api");
    assert_eq!(other.requests(), 2);
    gw.get("/apix").await;
    gw.get("/").await;
    assert_eq!(echo.requests(), 2, "/apix is not under /api");
    gw.stop().await;
}

#[tokio::test]
async fn a_dot_segment_cannot_climb_out_of_a_proxys_prefix() {
    let echo = Echo::start().await;
    let gw = gateway(
        &echo,
        "  - { name: public, prefix: /public, upstream: web }\n",
    )
    .await;
    for path in [
        "/public/../private",
        "/public/%2e%2e/private",
        "/public/./../private",
    ] {
        let reply = gw.get(path).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text());
    }
    // Normalised, a path that stays under the prefix goes through as such.
    let reply = gw.get("/public/a/../b").await;
    assert_eq!(reply.json()["uri"], "/public/b");
    assert_eq!(echo.requests(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn request_bodies_stream_through_and_over_the_limit_are_refused_with_413() {
    let echo = Echo::start().await;
    let gw = gateway(
        &echo,
        "  - { name: forms, prefix: /forms, upstream: web, max_request_body: 16B }\n",
    )
    .await;
    let reply = gw
        .send(
            Method::POST,
            "/forms/a",
            &[("content-type", "text/plain")],
            Bytes::from("hello"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body"], "hello");
    assert_eq!(reply.json()["headers"]["content-length"], "5");
    // Declared too large: refused before the service is called.
    let reply = gw
        .send(Method::POST, "/forms/a", &[], Bytes::from("x".repeat(17)))
        .await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.error().0, 3);
    assert_eq!(echo.requests(), 1);
    // Chunked, growing over the limit: cut, and 413.
    let mut stream = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let request = "POST /forms/b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n\
                   a\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n";
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    gw.stop().await;
}

#[tokio::test]
async fn a_refusing_endpoint_is_passed_over_and_none_left_is_502() {
    let echo = Echo::start().await;
    // A port nothing listens on: connections are refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let top = format!(
        "http_upstreams:\n  web: {{ endpoints: [\"http://{dead}\", \"{}\"], connect_timeout: 500ms }}\n  gone: {{ endpoints: [\"http://{dead}\"] }}\nproxies:\n  - {{ name: web, prefix: /web, upstream: web }}\n  - {{ name: gone, prefix: /gone, upstream: gone }}\n",
        echo.url()
    );
    let gw = TestGateway::demo_with("", &top).await;
    for _ in 0..4 {
        assert_eq!(gw.get("/web/x").await.status, 200);
    }
    assert_eq!(echo.requests(), 4);
    let reply = gw.get("/gone/x").await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    let (code, message) = reply.error();
    assert_eq!(code, 14);
    assert!(
        message.contains("cannot connect to upstream gone"),
        "{message}"
    );
    assert!(message.contains("refused"), "{message}");
    assert_eq!(
        gw.metric("switchyard_proxy_upstream_errors_total{kind=\"connect\",proxy=\"gone\"}")
            .await,
        Some(1.0)
    );
    // The admin API shows the proxies and which endpoints are passed over.
    let upstreams = gw.admin_get("/admin/upstreams").await.json();
    let gone = upstreams["http_upstreams"]
        .as_array()
        .and_then(|all| all.iter().find(|u| u["name"] == "gone"))
        .unwrap_or_else(|| panic!("no `gone` in {upstreams}"));
    assert_eq!(gone["endpoints"][0]["endpoint"], format!("http://{dead}"));
    assert_eq!(gone["endpoints"][0]["passed_over"], true, "{gone}");
    assert_eq!(gone["in_flight"], 0);
    let routes = gw.admin_get("/admin/routes").await.json();
    let names: Vec<&str> = routes["proxies"]
        .as_array()
        .map(|all| all.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["web", "gone"], "{routes}");
    assert_eq!(routes["proxies"][0]["prefix"], "/web");
    gw.stop().await;
}

#[tokio::test]
async fn an_upstream_slower_than_the_timeout_is_504() {
    let echo = Echo::start().await;
    let gw = gateway(
        &echo,
        "  - { name: slow, prefix: /slow, upstream: web, timeout: 200ms }\n",
    )
    .await;
    let reply = gw.get("/slow/page").await;
    assert_eq!(reply.status, 504);
    assert!(reply.error().1.contains("did not answer within 200ms"));
    assert_eq!(
        gw.metric("switchyard_proxy_upstream_errors_total{kind=\"timeout\",proxy=\"slow\"}")
            .await,
        Some(1.0)
    );
    gw.stop().await;
}

#[tokio::test]
async fn a_proxys_plugins_run_before_the_service_is_called() {
    let echo = Echo::start().await;
    let gw = gateway(
        &echo,
        r#"  - name: partners
    prefix: /partners
    upstream: web
    plugins:
      - auth:
          methods:
            - api_key:
                header: x-api-key
                keys:
                  - consumer: demo-partner
                    sha256: a52782e3a2d4dd2f95f640b9abfb3b2a6b8e722c65f55be830f6e5f619f7f873
"#,
    )
    .await;
    assert_eq!(gw.get("/partners/x").await.status, 401);
    assert_eq!(echo.requests(), 0);
    let reply = gw
        .send(
            Method::GET,
            "/partners/x",
            &[("x-api-key", "demo-key-123")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(echo.requests(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn bad_proxy_configs_are_refused_at_their_key() {
    let demo = switchyard_demo::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        "127.0.0.1:0".parse().expect("addr"),
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("demo");
    let yaml = |fragment: &str| {
        demo_config(
            &demo,
            "",
            &format!(
                "http_upstreams:\n  web: {{ endpoints: [\"http://127.0.0.1:9\"] }}\n  plain: {{ endpoints: [\"http://127.0.0.1:9\"], tls: {{ server_name: x.test }} }}\nproxies:\n  - {{ name: a, prefix: /a, upstream: web }}\n{fragment}"
            ),
        )
    };
    let cases = [
        (
            "  - { name: b, prefix: /b, upstream: nope }",
            "[1].upstream",
            "unknown HTTP upstream `nope`",
        ),
        (
            "  - { name: b, prefix: b, upstream: web }",
            "[1].prefix",
            "not an absolute path",
        ),
        (
            "  - { name: b, prefix: /a/, upstream: web }",
            "[1].prefix",
            "already served",
        ),
        (
            "  - { name: a, prefix: /b, upstream: web }",
            "[1].name",
            "used twice",
        ),
        (
            "  - { name: users, prefix: /b, upstream: web }",
            "[1].name",
            "also a route",
        ),
        (
            "  - { name: b, prefix: /b/../c, upstream: web }",
            "[1].prefix",
            "normal form",
        ),
    ];
    // TLS settings on an upstream without https:// endpoints are refused
    // first, whatever the proxies say.
    let error = common::config_error(&yaml("")).await;
    assert!(error.contains("http_upstreams.plain.tls"), "{error}");
    assert!(error.contains("applies to https:// endpoints"), "{error}");
    let yaml = |fragment: &str| yaml(fragment).replace(", tls: { server_name: x.test }", "");
    assert_refused(yaml, "proxies", &cases).await;
}

#[tokio::test]
async fn a_body_slower_than_the_body_read_timeout_is_408() {
    let echo = Echo::start().await;
    let top = format!(
        "limits: {{ body_read_timeout: 300ms }}\nhttp_upstreams:\n  web: {{ endpoints: [\"{}\"] }}\nproxies:\n  - {{ name: uploads, prefix: /uploads, upstream: web }}\n",
        echo.url()
    );
    let gw = TestGateway::demo_with("", &top).await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let head = "POST /uploads/a HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nab";
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    gw.stop().await;
}

#[tokio::test]
async fn an_https_service_is_reached_over_tls_verified_against_the_configured_ca() {
    let pki = common::pki::Pki::new();
    let echo = Echo::start_tls(&pki, "web", "web.internal.test").await;
    let top = |ca: &str| {
        format!(
            "http_upstreams:\n  web: {{ endpoints: [\"https://{}\"], tls: {{ ca: \"{}\", server_name: web.internal.test }} }}\nproxies:\n  - {{ name: web, prefix: /, upstream: web }}\n",
            echo.addr,
            pki.path(ca)
        )
    };
    let gw = TestGateway::demo_with("", &top("ca.pem")).await;
    let reply = gw.get("/secure/page").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["uri"], "/secure/page");
    gw.stop().await;
    // A certificate from a CA the upstream's `tls.ca` does not hold: no
    // connection, 502, and the service never sees the request.
    let gw = TestGateway::demo_with("", &top("other-ca.pem")).await;
    let reply = gw.get("/secure/page").await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert!(
        reply.error().1.contains("cannot connect"),
        "{}",
        reply.text()
    );
    assert_eq!(echo.requests(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_proxied_request_is_logged_as_such_and_carries_the_trace_context() {
    let echo = Echo::start().await;
    let log = common::scratch_dir("proxy-access").join("access.jsonl");
    let top = format!(
        "access_log: {{ output: \"{}\" }}\nhttp_upstreams:\n  web: {{ endpoints: [\"{}\"] }}\nproxies:\n  - {{ name: legacy, prefix: /legacy, upstream: web }}\n",
        log.display(),
        echo.url()
    );
    let gw = TestGateway::demo_with("", &top).await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let reply = gw
        .send(
            Method::GET,
            "/legacy/a/secret-id",
            &[("traceparent", traceparent)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.json()["headers"]["traceparent"], traceparent);
    // Without one, the gateway starts a trace and the service gets it.
    let started = gw.get("/legacy/b").await.json()["headers"]["traceparent"].clone();
    assert_eq!(started.as_str().map(str::len), Some(55), "{started}");
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.lines().count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a line")).expect("JSON");
    assert_eq!(line["route"], "legacy");
    assert_eq!(line["protocol"], "proxy");
    assert_eq!(line["path"], "/legacy", "the prefix, not the raw path");
    assert_eq!(line["upstream"], "web");
    assert_eq!(line["status"], 200);
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(!text.contains("secret-id"), "{text}");
    gw.stop().await;
}

#[tokio::test]
async fn a_reload_moves_a_proxy_to_another_upstream_and_a_bad_one_keeps_the_old() {
    let (old, new) = (Echo::start().await, Echo::start().await);
    let demo = common::spawn_demo().await;
    let file = common::scratch_dir("proxy-reload").join("gateway.yaml");
    // The demo routes, then this test's top-level keys.
    let base = demo_config(&demo, "", "");
    let write = |echo: &Echo, prefix: &str| {
        let yaml = format!(
            "{base}reload: {{ watch_interval: 0s }}\nhttp_upstreams:\n  web: {{ endpoints: [\"{}\"] }}\nproxies:\n  - {{ name: site, prefix: {prefix}, upstream: web }}\n",
            echo.url()
        );
        std::fs::write(&file, yaml).expect("write the config");
    };
    write(&old, "/");
    let gw = TestGateway::start_file(demo, &file, Default::default()).await;
    assert_eq!(gw.get("/page").await.status, 200);
    write(&new, "/");
    let reloaded = gw.admin_send(Method::POST, "/admin/reload", &[]).await;
    assert_eq!(reloaded.status, 200, "{}", reloaded.text());
    assert_eq!(gw.get("/page").await.status, 200);
    assert_eq!((old.requests(), new.requests()), (1, 1));
    // A prefix that is not a path: refused, the running version serves on.
    write(&old, "page");
    let refused = gw.admin_send(Method::POST, "/admin/reload", &[]).await;
    assert_eq!(refused.status, 422, "{}", refused.text());
    assert!(
        refused.text().contains("proxies[0].prefix"),
        "{}",
        refused.text()
    );
    assert_eq!(gw.get("/page").await.status, 200);
    assert_eq!((old.requests(), new.requests()), (1, 2));
    gw.stop().await;
}

#[tokio::test]
async fn escaped_slashes_pass_only_where_a_proxy_allows_them() {
    let echo = Echo::start().await;
    let gw = gateway(
        &echo,
        "  - { name: strict, prefix: /strict, upstream: web }\n  - { name: ids, prefix: /ids, upstream: web, reject_ambiguous_paths: false }\n",
    )
    .await;
    let refused = gw.get("/strict/group%2Fproject").await;
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.error().1.contains("reject_ambiguous_paths"));
    let passed = gw.get("/ids/group%2Fproject;v=2").await;
    assert_eq!(passed.status, 200, "{}", passed.text());
    assert_eq!(passed.json()["uri"], "/ids/group%2Fproject;v=2");
    assert_eq!(echo.requests(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn an_http2_client_is_proxied_to_an_http1_service() {
    let echo = Echo::start().await;
    let gw = gateway(
        &echo,
        "  - { name: site, prefix: /, upstream: web, preserve_host: true }\n",
    )
    .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let req = http::Request::post(format!("http://{}/h2/path?q=1", gw.addr))
        .header("te", "trailers")
        .body(Full::new(Bytes::from("over h2c")))
        .expect("request");
    let res = client
        .request(req)
        .await
        .expect("the gateway answers over h2c");
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-upstream"], "echo");
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let seen: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["uri"], "/h2/path?q=1");
    assert_eq!(seen["body"], "over h2c");
    assert_eq!(
        seen["headers"]["host"],
        gw.addr.to_string(),
        ":authority kept"
    );
    assert!(seen["headers"].get("te").is_none(), "TE is hop-by-hop");
    gw.stop().await;
}

#[tokio::test]
async fn connections_are_kept_alive_and_one_the_service_closes_is_not_reused() {
    let echo = Echo::start().await;
    let gw = gateway(&echo, "  - { name: site, prefix: /, upstream: web }\n").await;
    // The gateway has one worker per CPU; requests from one client
    // connection stay on one worker, so they share its idle connection.
    for _ in 0..5 {
        assert_eq!(gw.get("/page").await.status, 200);
    }
    assert_eq!(echo.connections(), 1, "one keep-alive connection");
    let head = gw.send(Method::HEAD, "/page", &[], Bytes::new()).await;
    assert_eq!(head.status, 200);
    assert_eq!(gw.get("/page").await.status, 200);
    assert_eq!(
        echo.connections(),
        1,
        "a bodiless answer frees its connection too"
    );
    // An answer with `Connection: close`: the next request gets a new one.
    assert_eq!(gw.get("/close/now").await.status, 200);
    for _ in 0..3 {
        assert_eq!(gw.get("/page").await.status, 200);
    }
    assert_eq!(echo.connections(), 2);
    assert_eq!(echo.requests(), 11);
    gw.stop().await;
}
