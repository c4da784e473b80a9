//! TLS on a public listener, with certificates made at test time (rcgen)
//! and real TLS clients: tokio-rustls with hyper (HTTP/1.1 and HTTP/2 by
//! ALPN) and `curl`.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use common::{TestGateway, demo_config};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A CA and two leaf certificates it signed, as PEM files in `dir`:
/// `api.pem` (`api.example.test`) and `partner.pem` (`*.partner.test`),
/// each with its `-key.pem`.
struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    api: CertificateDer<'static>,
    partner: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("switchyard-tls-{:x}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Distinct names: OpenSSL takes a leaf whose issuer is its own
        // subject (rcgen's default for both) for a self-signed one.
        params
            .distinguished_name
            .push(DnType::CommonName, "Switchyard test CA");
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key")).expect("ca");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca");
        let leaf = |file: &str, name: &str| {
            let key = KeyPair::generate().expect("key");
            let mut params = CertificateParams::new(vec![name.to_owned()]).expect("params");
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.signed_by(&key, &ca).expect("sign");
            std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).expect("write cert");
            std::fs::write(dir.join(format!("{file}-key.pem")), key.serialize_pem())
                .expect("write key");
            cert.der().clone()
        };
        let api = leaf("api", "api.example.test");
        let partner = leaf("partner", "*.partner.test");
        let ca = ca.der().clone();
        Pki {
            dir,
            ca,
            api,
            partner,
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// The demo gateway with one TLS listener serving both certificates.
    async fn gateway(&self, unknown_server_name: &str) -> TestGateway {
        self.gateway_with(unknown_server_name, "").await
    }

    /// [`Pki::gateway`] with `top_extra` YAML at the top level.
    async fn gateway_with(&self, unknown_server_name: &str, top_extra: &str) -> TestGateway {
        let listener = format!(
            r#"listeners:
  - address: "127.0.0.1:0"
    tls:
      unknown_server_name: {unknown_server_name}
      certificates:
        - {{ cert: "{api}", key: "{api_key}" }}
        - {{ cert: "{partner}", key: "{partner_key}" }}"#,
            api = self.path("api.pem"),
            api_key = self.path("api-key.pem"),
            partner = self.path("partner.pem"),
            partner_key = self.path("partner-key.pem"),
        );
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let demo = switchyard_demo::spawn(any, any, any)
            .await
            .expect("demo services start");
        let yaml = demo_config(&demo, "", top_extra)
            .replace(r#"listeners: [{ address: "127.0.0.1:0" }]"#, &listener);
        TestGateway::start_yaml(demo, &yaml).await
    }

    /// A TLS connection to `addr` asking for `server_name`, offering `alpn`.
    async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
        alpn: &[&[u8]],
    ) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
        self.connect_with(addr, server_name, alpn, rustls::DEFAULT_VERSIONS)
            .await
    }

    /// [`Pki::connect`] offering only `versions` of TLS.
    async fn connect_with(
        &self,
        addr: SocketAddr,
        server_name: &str,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from(server_name.to_owned()).expect("server name");
        TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The leaf certificate the server sent.
fn served(stream: &TlsStream<tokio::net::TcpStream>) -> CertificateDer<'static> {
    let (_, connection) = stream.get_ref();
    connection.peer_certificates().expect("a certificate")[0].clone()
}

/// GET `path` over `stream` with HTTP/2 when ALPN chose it, else HTTP/1.1:
/// the status and body.
async fn get(stream: TlsStream<tokio::net::TcpStream>, path: &str) -> (u16, String) {
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let request = http::Request::get(format!("https://api.example.test{path}"))
        .header("host", "api.example.test")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let io = TokioIo::new(stream);
    let response = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .expect("h2 handshake");
        tokio::spawn(conn);
        sender.send_request(request).await.expect("h2 response")
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("http1 handshake");
        tokio::spawn(conn);
        sender.send_request(request).await.expect("http1 response")
    };
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn each_server_name_gets_the_certificate_that_covers_it() {
    let pki = Pki::new();
    let gw = pki.gateway("first").await;
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
    let gw = pki.gateway("first").await;
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
        let (status, body) = get(stream, "/v1/users/1").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("\"id\""), "{body}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn clients_of_tls_1_2_and_of_tls_1_3_are_both_served() {
    let pki = Pki::new();
    let gw = pki.gateway("first").await;
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let stream = pki
            .connect_with(gw.addr, "api.example.test", &[b"h2"], &[version])
            .await
            .expect("handshake");
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
        let (status, body) = get(stream, "/v1/users/1").await;
        assert_eq!(status, 200, "{body}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_unknown_server_name_gets_the_first_certificate_or_no_handshake_as_configured() {
    let pki = Pki::new();
    let lenient = pki.gateway("first").await;
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

    let strict = pki.gateway("reject").await;
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
    strict.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_is_closed_after_the_header_read_timeout() {
    use tokio::io::AsyncReadExt;
    let pki = Pki::new();
    let gw = pki
        .gateway_with("first", "limits: { header_read_timeout: 300ms }")
        .await;
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
    gw.stop().await;
}

#[tokio::test]
async fn curl_gets_a_route_over_tls() {
    let Ok(version) = std::process::Command::new("curl").arg("--version").output() else {
        panic!("this test needs curl (scripts/test.sh installs it)");
    };
    let http2 = String::from_utf8_lossy(&version.stdout).contains("HTTP2");
    let pki = Pki::new();
    let gw = pki.gateway("reject").await;
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
