//! TLS on a public listener, with certificates made at test time (rcgen)
//! and real TLS clients: tokio-rustls with hyper (HTTP/1.1 and HTTP/2 by
//! ALPN) and `curl`.

mod common;

use std::path::Path;

use common::pki::{Pki, gateway, get, served};

#[tokio::test]
async fn each_server_name_gets_the_certificate_that_covers_it() {
    let pki = Pki::new();
    let gw = gateway(&pki, "", "", "").await;
    let api = pki
        .connect(gw.addr, "api.example.test", &[])
        .await
        .expect("handshake for api.example.test");
    assert_eq!(served(&api), pki.api);
    let partner = pki
        .connect(gw.addr, "acme.partner.test", &[])
        .await
        .expect("handshake for a name under the wildcard");
    assert_eq!(served(&partner), pki.partner);
    gw.stop().await;
}

#[tokio::test]
async fn alpn_chooses_http2_or_http1_and_both_serve_the_routes() {
    let pki = Pki::new();
    let gw = gateway(&pki, "", "", "").await;
    for (offered, expected) in [
        (&[b"h2".as_slice(), b"http/1.1"][..], Some(b"h2".as_slice())),
        (&[b"http/1.1".as_slice()][..], Some(b"http/1.1".as_slice())),
        (&[][..], None),
    ] {
        let stream = pki
            .connect(gw.addr, "api.example.test", offered)
            .await
            .expect("handshake");
        assert_eq!(stream.get_ref().1.alpn_protocol(), expected);
        let (status, body) = get(stream, "/v1/users/1").await.expect("response");
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"id\""), "{body}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn clients_of_tls_1_2_and_of_tls_1_3_are_both_served() {
    let pki = Pki::new();
    let gw = gateway(&pki, "", "", "").await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let stream = pki
            .connect_with(gw.addr, "api.example.test", &[b"h2"], &[version], None)
            .await
            .expect("handshake");
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
        let (status, body) = get(stream, "/v1/users/1").await.expect("response");
        assert_eq!(status, 200, "{body}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_unknown_server_name_gets_the_first_certificate_or_no_handshake_as_configured() {
    let pki = Pki::new();
    let lenient = gateway(&pki, "", "", "").await;
    // The server sends the first certificate; the client, asking for
    // another name, refuses it: proof that one was sent.
    let err = pki
        .connect(lenient.addr, "unknown.example.test", &[])
        .await
        .expect_err("the first certificate does not cover the name");
    assert!(
        err.to_string()
            .contains(r#"only valid for DnsName("api.example.test")"#),
        "the server sent the first certificate, which the client refused: {err}"
    );
    lenient.stop().await;

    let strict = gateway(&pki, "unknown_server_name: reject", "", "").await;
    let err = pki
        .connect(strict.addr, "unknown.example.test", &[])
        .await
        .expect_err("no certificate for the name");
    assert!(
        err.to_string().contains("AccessDenied"),
        "the server refused the handshake: {err}"
    );
    // Known names still work.
    pki.connect(strict.addr, "api.example.test", &[])
        .await
        .expect("a known name");
    // Counted by outcome (the server finishes its side a moment after the
    // client).
    for _ in 0..50 {
        if strict
            .metric("switchyard_tls_handshakes_total{outcome=\"ok\"}")
            .await
            == Some(1.0)
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        strict
            .metric("switchyard_tls_handshakes_total{outcome=\"ok\"}")
            .await,
        Some(1.0)
    );
    assert_eq!(
        strict
            .metric("switchyard_tls_handshakes_total{outcome=\"failed\"}")
            .await,
        Some(1.0)
    );
    strict.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_closed_after_the_header_read_timeout() {
    use tokio::io::AsyncReadExt;
    let pki = Pki::new();
    let gw = gateway(&pki, "", "", "limits: { header_read_timeout: 300ms }").await;
    let mut silent = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("closed well before 5 s");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed, nothing sent: {read:?}"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        gw.metric("switchyard_tls_handshakes_total{outcome=\"timeout\"}")
            .await,
        Some(1.0)
    );
    gw.stop().await;
}

#[tokio::test]
async fn replaced_files_reach_new_connections_while_open_ones_keep_going() {
    use http_body_util::Empty;
    use hyper_util::rt::TokioIo;

    let pki = Pki::new();
    let gw = gateway(&pki, "reload_interval: 50ms", "", "").await;
    let reloads = |outcome: &'static str| {
        let gw = &gw;
        async move {
            gw.metric(&format!(
                "switchyard_tls_reloads_total{{listener=\"public\",outcome=\"{outcome}\"}}"
            ))
            .await
            .unwrap_or(0.0)
        }
    };
    let open = pki
        .connect(gw.addr, "api.example.test", &[b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(served(&open), pki.api);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(open))
        .await
        .expect("http1");
    tokio::spawn(conn);
    let request = || {
        http::Request::get("/v1/users/1")
            .header("host", "api.example.test")
            .body(Empty::<bytes::Bytes>::new())
            .expect("request")
    };
    let first = sender.send_request(request()).await.expect("response");
    assert_eq!(first.status(), 200);

    // A file that does not load: counted, the running certificate kept.
    std::fs::write(pki.dir.join("api.pem"), "not a certificate").expect("write");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while reloads("failed").await < 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no failed reload seen"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let still = pki
        .connect(gw.addr, "api.example.test", &[])
        .await
        .expect("handshake while the files are bad");
    assert_eq!(served(&still), pki.api, "the previous certificate stays");

    // A new certificate and key: new connections get them.
    let renewed = pki.reissue_server("api", "api.example.test");
    assert_ne!(renewed, pki.api);
    loop {
        let stream = pki
            .connect(gw.addr, "api.example.test", &[])
            .await
            .expect("handshake");
        if served(&stream) == renewed {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the new certificate never served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(reloads("reloaded").await >= 1.0);
    // The connection opened before goes on.
    let again = sender.send_request(request()).await.expect("response");
    assert_eq!(again.status(), 200);
    gw.stop().await;
}

#[tokio::test]
async fn curl_gets_a_route_over_tls() {
    let Ok(version) = std::process::Command::new("curl").arg("--version").output() else {
        panic!("this test needs curl (scripts/test.sh installs it)");
    };
    let http2 = String::from_utf8_lossy(&version.stdout).contains("HTTP2");
    let pki = Pki::new();
    let gw = gateway(&pki, "unknown_server_name: reject", "", "").await;
    let port = gw.addr.port();
    // Not std's Command: the gateway's accept loop runs on this test's
    // runtime, which must keep running meanwhile.
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--cacert", &pki.path("ca.pem")])
        .args(["--resolve", &format!("api.example.test:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_code} %{http_version}"])
        .arg(format!("https://api.example.test:{port}/v1/users/1"))
        .args(["--max-time", "20"])
        .output()
        .await
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (body, status) = stdout.rsplit_once('\n').expect("status line");
    assert!(body.contains("\"id\""), "{body}");
    let expected = if http2 { "200 2" } else { "200 1.1" };
    assert_eq!(status, expected);
    gw.stop().await;
}

#[tokio::test]
async fn a_key_that_does_not_go_with_its_certificate_is_a_config_error() {
    let pki = Pki::new();
    let yaml = format!(
        r#"
listeners:
  - address: "127.0.0.1:0"
    tls:
      certificates:
        - {{ cert: "{cert}", key: "{key}" }}
protos: {{ sources: ["{proto}"] }}
"#,
        proto = common::repo_root().join("proto").display(),
        cert = pki.path("api.pem"),
        key = pki.path("partner-key.pem"),
    );
    let err = start_error(&pki.dir, &yaml).await;
    assert!(err.contains("listeners[0].tls"), "{err}");
    assert!(
        err.contains("the key does not go with the certificate"),
        "{err}"
    );

    let yaml = yaml.replace("partner-key.pem", "missing-key.pem");
    let err = start_error(&pki.dir, &yaml).await;
    assert!(err.contains("certificates[0].key"), "{err}");
    assert!(err.contains("missing-key.pem"), "{err}");
}

/// The error starting a gateway from `yaml` (written to `dir`).
async fn start_error(dir: &Path, yaml: &str) -> String {
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, yaml).expect("write config");
    let loaded = switchyard::config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
    match switchyard::app::start(loaded).await {
        Ok(_) => panic!("the gateway started"),
        Err(e) => e.to_string(),
    }
}
