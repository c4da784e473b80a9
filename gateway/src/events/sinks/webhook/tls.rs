//! TLS for `https://` endpoints: rustls on ring (the gateway's one crypto
//! provider), TLS 1.2 and 1.3, the server checked against the public web
//! roots built into the gateway (webpki-roots), or against the CAs of the
//! sink's `ca_file` instead, over the guarded connector
//! (the certificate is checked for the URL's host, the TCP connection goes
//! to the address the SSRF guard checked). HTTP/1.1 only: one delivery at a
//! time per sink needs no multiplexing.

use std::path::Path;
use std::sync::Arc;

use hyper_rustls::HttpsConnector;

use super::connector::GuardedConnector;

/// The client's connector: TLS (for `https://`) over the guarded TCP one.
pub type Connector = HttpsConnector<GuardedConnector>;

/// Whether `https://` URLs can be served.
pub const HTTPS: bool = true;

/// The connector for the sink's client: the CAs of `ca_file`, else the
/// built-in public roots.
pub fn connector(inner: GuardedConnector, ca_file: Option<&Path>) -> Result<Connector, String> {
    let roots = match ca_file {
        Some(path) => crate::pem::roots(path).map_err(|e| format!("`ca_file` {e}"))?,
        None => {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            roots
        }
    };
    let config = client_config(roots)?;
    Ok(with_config(inner, config))
}

/// The TLS client settings: ring, safe default versions, `roots`.
pub fn client_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("webhook sink: cannot set up TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// `inner` wrapped in TLS with `config` (tests use their own roots).
pub fn with_config(inner: GuardedConnector, config: rustls::ClientConfig) -> Connector {
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(inner)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls::pki_types::PrivateKeyDer;

    use super::*;
    use crate::events::sinks::webhook::connector::{ConnectError, find_connect_error};
    use crate::events::sinks::webhook::ssrf::Guard;

    /// An https server on 127.0.0.1 with a self-signed certificate for
    /// `name`; its port and the certificate, to trust as the root.
    async fn server(name: &str) -> (u16, rcgen::Certificate) {
        let ca = rcgen::generate_simple_self_signed(vec![name.to_owned()]).expect("cert");
        let key = PrivateKeyDer::Pkcs8(ca.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![ca.cert.der().clone()], key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(|_req| async {
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from("ok"))))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (port, ca.cert)
    }

    fn client(root: &rcgen::Certificate, allow: &[&str]) -> Client<Connector, Full<Bytes>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root.der().clone()).expect("root");
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        let guard = Arc::new(Guard::new(&allow).expect("guard"));
        let inner = GuardedConnector::new(guard, Duration::from_secs(5));
        let connector = with_config(inner, client_config(roots).expect("client config"));
        Client::builder(TokioExecutor::new()).build(connector)
    }

    async fn post(
        client: &Client<Connector, Full<Bytes>>,
        url: &str,
    ) -> Result<http::StatusCode, hyper_util::client::legacy::Error> {
        let request = http::Request::post(url)
            .body(Full::new(Bytes::from("{}")))
            .expect("request");
        client.request(request).await.map(|r| r.status())
    }

    #[tokio::test]
    async fn https_goes_through_the_guard_and_checks_the_certificate() {
        let (port, root) = server("localhost").await;
        let trusted = client(&root, &["127.0.0.1", "::1"]);
        let status = post(&trusted, &format!("https://localhost:{port}/in"))
            .await
            .expect("delivered over TLS");
        assert_eq!(status, http::StatusCode::OK);

        // The guard still decides, below TLS.
        let guarded = client(&root, &[]);
        let err = post(&guarded, &format!("https://localhost:{port}/in"))
            .await
            .expect_err("loopback not allowed");
        assert!(
            matches!(find_connect_error(&err), Some(ConnectError::Blocked(m)) if m.contains("loopback")),
            "{err:?}"
        );

        // The certificate is for `localhost`, not 127.0.0.1.
        let err = post(&trusted, &format!("https://127.0.0.1:{port}/in"))
            .await
            .expect_err("name mismatch");
        assert!(find_connect_error(&err).is_none(), "{err:?}");
    }

    #[tokio::test]
    async fn an_unknown_certificate_authority_is_refused() {
        let (port, _) = server("localhost").await;
        let (_, other_root) = server("localhost").await;
        let client = client(&other_root, &["127.0.0.1", "::1"]);
        let err = post(&client, &format!("https://localhost:{port}/"))
            .await
            .expect_err("untrusted");
        // Same subject, another key: the chain does not verify.
        let chain = format!("{err:?}");
        assert!(chain.contains("InvalidCertificate"), "{chain}");
    }

    #[test]
    fn the_public_roots_load() {
        let inner = GuardedConnector::new(Arc::new(Guard::default()), Duration::from_secs(1));
        assert!(connector(inner, None).is_ok());
    }

    /// A client over `connector(…, ca_file)` allowed to reach loopback.
    fn client_with_ca_file(ca_file: Option<&Path>) -> Client<Connector, Full<Bytes>> {
        let allow = vec!["127.0.0.1".to_owned(), "::1".to_owned()];
        let guard = Arc::new(Guard::new(&allow).expect("guard"));
        let inner = GuardedConnector::new(guard, Duration::from_secs(5));
        Client::builder(TokioExecutor::new()).build(connector(inner, ca_file).expect("connector"))
    }

    #[tokio::test]
    async fn a_ca_file_replaces_the_public_roots() {
        let (port, root) = server("localhost").await;
        let dir = std::env::temp_dir().join(format!("switchyard-ca-{:x}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let pem = dir.join("ca.pem");
        std::fs::write(&pem, root.pem()).unwrap();
        let url = format!("https://localhost:{port}/in");
        let status = post(&client_with_ca_file(Some(&pem)), &url)
            .await
            .expect("trusted through the ca_file");
        assert_eq!(status, http::StatusCode::OK);
        // The public roots do not know this CA.
        let err = post(&client_with_ca_file(None), &url)
            .await
            .expect_err("untrusted without the ca_file");
        assert!(format!("{err:?}").contains("InvalidCertificate"), "{err:?}");

        let inner = || GuardedConnector::new(Arc::new(Guard::default()), Duration::from_secs(1));
        let missing = dir.join("missing.pem");
        let e = connector(inner(), Some(&missing)).err().unwrap();
        assert!(e.contains("`ca_file`") && e.contains("missing.pem"), "{e}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = connector(inner(), Some(&empty)).err().unwrap();
        assert!(e.contains("no certificate in it"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
