//! TLS to upstreams: `https://` endpoints verified against a CA bundle,
//! with a client certificate for upstreams that require mutual TLS. The
//! upstream is the real demo gRPC service behind a TLS terminator made
//! here (rustls, ALPN h2), which pipes each connection's bytes to it.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TestGateway;
use common::pki::Pki;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use switchyard_demo::Service;

/// A TLS terminator on 127.0.0.1 in front of `backend`, serving the
/// certificate `<file>.pem`; with `clients_ca`, it requires client
/// certificates from it. Counts completed handshakes.
struct Terminator {
    addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
}

impl Terminator {
    async fn start(
        pki: &Pki,
        file: &str,
        clients_ca: Option<&str>,
        backend: SocketAddr,
    ) -> Terminator {
        let load = |name: &str| -> Vec<CertificateDer<'static>> {
            CertificateDer::pem_file_iter(pki.dir.join(name))
                .expect("pem")
                .collect::<Result<_, _>>()
                .expect("pem")
        };
        let chain = load(&format!("{file}.pem"));
        let key =
            PrivateKeyDer::from_pem_file(pki.dir.join(format!("{file}-key.pem"))).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions");
        let builder = match clients_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in load(ca) {
                    roots.add(cert).expect("root");
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("verifier");
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_single_cert(chain, key).expect("server config");
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = handshakes.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Terminator { addr, handshakes }
    }
}

/// The demo services, a terminator in front of `users` (serving
/// `upstream.pem`, requiring client certificates from `clients_ca` when
/// given), and the demo routes with `users` through it with `tls` settings.
async fn setup(pki: &Pki, clients_ca: Option<&str>, tls: &str) -> (TestGateway, Terminator) {
    pki.reissue_server("upstream", "users.internal.test");
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let demo = switchyard_demo::spawn(any, any, any)
        .await
        .expect("demo services start");
    let terminator =
        Terminator::start(pki, "upstream", clients_ca, demo.addr(Service::Users)).await;
    let users = demo.url(Service::Users);
    let yaml = common::demo_config(&demo, "", "").replace(
        &format!("users: {{ endpoints: [\"{users}\"], timeout: 2s }}"),
        &format!(
            "users: {{ endpoints: [\"https://{}\"], timeout: 2s, retry: {{ attempts: 1 }}, tls: {{ {tls} }} }}",
            terminator.addr
        ),
    );
    assert!(
        yaml.contains("https://"),
        "the users upstream was rewritten: {yaml}"
    );
    (TestGateway::start_yaml(demo, &yaml).await, terminator)
}

#[tokio::test]
async fn an_https_upstream_is_called_over_tls_verified_against_the_ca() {
    let pki = Pki::new();
    let tls = format!(
        "ca: \"{}\", server_name: users.internal.test",
        pki.path("ca.pem")
    );
    let (gw, terminator) = setup(&pki, None, &tls).await;
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.text().contains("\"id\""), "{}", reply.text());
    assert_eq!(
        terminator.handshakes.load(Ordering::SeqCst),
        1,
        "one TLS connection, reused"
    );
    let again = gw.get("/v1/users/2").await;
    assert_eq!(again.status, 200);
    assert_eq!(terminator.handshakes.load(Ordering::SeqCst), 1);
    gw.stop().await;
}

#[tokio::test]
async fn an_upstream_certificate_from_another_ca_or_for_another_name_is_refused() {
    let pki = Pki::new();
    for tls in [
        format!(
            "ca: \"{}\", server_name: users.internal.test",
            pki.path("other-ca.pem")
        ),
        format!(
            "ca: \"{}\", server_name: orders.internal.test",
            pki.path("ca.pem")
        ),
    ] {
        let (gw, terminator) = setup(&pki, None, &tls).await;
        let reply = gw.get("/v1/users/1").await;
        assert_eq!(reply.status, 503, "{tls}: {}", reply.text());
        assert!(
            reply.text().contains("TLS handshake failed"),
            "{}",
            reply.text()
        );
        assert_eq!(terminator.handshakes.load(Ordering::SeqCst), 0);
        gw.stop().await;
    }
}

#[tokio::test]
async fn an_upstream_that_requires_a_client_certificate_gets_the_configured_one() {
    let pki = Pki::new();
    pki.client(
        "gateway",
        common::pki::ClientSpec {
            cn: "switchyard",
            sans: Vec::new(),
            issuer: common::pki::Issuer::Clients,
            expired: false,
        },
    );
    let with_cert = format!(
        "ca: \"{}\", server_name: users.internal.test, cert: \"{}\", key: \"{}\"",
        pki.path("ca.pem"),
        pki.path("gateway.pem"),
        pki.path("gateway-key.pem"),
    );
    let (gw, _) = setup(&pki, Some("clients-ca.pem"), &with_cert).await;
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    gw.stop().await;

    let without = format!(
        "ca: \"{}\", server_name: users.internal.test",
        pki.path("ca.pem")
    );
    let (gw, _) = setup(&pki, Some("clients-ca.pem"), &without).await;
    let reply = gw.get("/v1/users/1").await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    gw.stop().await;
}

#[tokio::test]
async fn tls_settings_on_plain_endpoints_and_half_a_client_certificate_are_config_errors() {
    let pki = Pki::new();
    let proto = common::repo_root().join("proto");
    for (upstream, expected) in [
        (
            format!(
                "{{ endpoints: [\"http://127.0.0.1:1\"], tls: {{ ca: \"{}\" }} }}",
                pki.path("ca.pem")
            ),
            "https://",
        ),
        (
            format!(
                "{{ endpoints: [\"https://127.0.0.1:1\"], tls: {{ cert: \"{}\" }} }}",
                pki.path("api.pem")
            ),
            "`cert` and `key` go together",
        ),
        (
            "{ endpoints: [\"https://127.0.0.1:1\"], tls: { ca: no-such-ca.pem } }".to_owned(),
            "no-such-ca.pem",
        ),
    ] {
        let yaml = format!(
            "protos: {{ sources: [\"{}\"] }}\nupstreams:\n  users: {upstream}\nroutes:\n  - {{ service: demo.users.v1.UserService, upstream: users }}\n",
            proto.display()
        );
        let err = common::config_error(&yaml).await;
        assert!(err.contains("upstreams.users"), "{err}");
        assert!(err.contains(expected), "{expected}: {err}");
    }
}
