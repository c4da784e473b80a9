//! JWKS: fetch, cache by `kid`, single-flight refetch with cooldown, rotation, outages.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::auth::jwt::tests::{EC_A, RSA_A, RSA_B, call, claims, rsa, sign, stack};
use crate::stage::HttpService;

/// A JWKS endpoint on 127.0.0.1 that counts its requests and can go down (503).
struct JwksServer {
    url: String,
    body: Arc<Mutex<String>>,
    fetches: Arc<AtomicUsize>,
    up: Arc<AtomicBool>,
}

impl JwksServer {
    async fn start(keys: &[(&str, &EncodingKey, Algorithm)]) -> JwksServer {
        JwksServer::start_with(keys, None).await
    }

    /// The same over https, with a self-signed certificate for 127.0.0.1;
    /// returns that certificate as a PEM file, to trust as the root.
    async fn start_tls(
        keys: &[(&str, &EncodingKey, Algorithm)],
    ) -> (JwksServer, std::path::PathBuf) {
        let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let key = rustls_pki_types::PrivateKeyDer::Pkcs8(ca.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ca.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let server = JwksServer::start_with(keys, Some(acceptor)).await;
        let path = std::env::temp_dir().join(format!(
            "switchyard-jwks-ca-{}-{}.pem",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::write(&path, ca.cert.pem()).unwrap();
        (server, path)
    }

    async fn start_with(
        keys: &[(&str, &EncodingKey, Algorithm)],
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> JwksServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = JwksServer {
            url: format!("{scheme}://{}/jwks.json", listener.local_addr().unwrap()),
            body: Arc::new(Mutex::new(String::new())),
            fetches: Arc::new(AtomicUsize::new(0)),
            up: Arc::new(AtomicBool::new(true)),
        };
        server.publish(keys);
        let (body, fetches, up) = (
            server.body.clone(),
            server.fetches.clone(),
            server.up.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (body, fetches, up) = (body.clone(), fetches.clone(), up.clone());
                let service = service_fn(move |_req| {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    let mut response = http::Response::new(Full::new(bytes::Bytes::from(
                        body.lock().unwrap().clone(),
                    )));
                    if !up.load(Ordering::SeqCst) {
                        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    }
                    async { Ok::<_, Infallible>(response) }
                });
                let tls = tls.clone();
                tokio::spawn(async move {
                    let builder = http1::Builder::new();
                    match tls {
                        None => {
                            builder
                                .serve_connection(TokioIo::new(stream), service)
                                .await
                        }
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => {
                                builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await
                            }
                            Err(_) => Ok(()), // a client that does not trust us
                        },
                    }
                });
            }
        });
        server
    }

    fn publish(&self, keys: &[(&str, &EncodingKey, Algorithm)]) {
        let keys = keys
            .iter()
            .map(|(kid, key, alg)| {
                let mut jwk = Jwk::from_encoding_key(key, *alg).unwrap();
                jwk.common.key_id = Some((*kid).to_owned());
                jwk
            })
            .collect();
        *self.body.lock().unwrap() = serde_json::to_string(&JwkSet { keys }).unwrap();
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    fn config(&self, cooldown: &str) -> Value {
        json!({ "algorithms": ["RS256", "ES256"], "keys": { "jwks": self.url, "unknown_kid_cooldown": cooldown } })
    }
}

/// Calls until `want` or 5 s pass.
async fn eventually(service: &HttpService, token: &str, want: StatusCode) {
    for _ in 0..100 {
        if call(service, token, &[]).await == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never got {want}");
}

#[tokio::test]
async fn jwks_rsa_and_ec_keys_by_kid() {
    let (a, ec) = (
        rsa(RSA_A),
        EncodingKey::from_ec_pem(EC_A.as_bytes()).unwrap(),
    );
    let server =
        JwksServer::start(&[("a", &a, Algorithm::RS256), ("e", &ec, Algorithm::ES256)]).await;
    let (service, _) = stack(server.config("30s")).await;
    assert_eq!(server.fetches(), 1, "initial fetch");
    assert_eq!(
        call(
            &service,
            &sign(Algorithm::RS256, &a, Some("a"), &claims()),
            &[]
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        call(
            &service,
            &sign(Algorithm::ES256, &ec, Some("e"), &claims()),
            &[]
        )
        .await,
        StatusCode::OK
    );
    // Right key, wrong kid: the EC key cannot check an RS256 token.
    assert_eq!(
        call(
            &service,
            &sign(Algorithm::RS256, &a, Some("e"), &claims()),
            &[]
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // No kid: refused.
    assert_eq!(
        call(&service, &sign(Algorithm::RS256, &a, None, &claims()), &[]).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn unknown_kid_refetches_once_then_cooldown_stops_a_storm() {
    let (a, b) = (rsa(RSA_A), rsa(RSA_B));
    let server = JwksServer::start(&[("a", &a, Algorithm::RS256)]).await;
    let (service, _) = stack(server.config("30s")).await;
    assert_eq!(server.fetches(), 1);
    server.publish(&[("a", &a, Algorithm::RS256), ("b", &b, Algorithm::RS256)]);
    let token_b = sign(Algorithm::RS256, &b, Some("b"), &claims());
    assert_eq!(
        call(&service, &token_b, &[]).await,
        StatusCode::UNAUTHORIZED
    );
    eventually(&service, &token_b, StatusCode::OK).await;
    assert_eq!(server.fetches(), 2, "one refetch for the unknown kid");
    for _ in 0..100 {
        let kid = format!("random-{}", fastrand::u64(..));
        let token = sign(Algorithm::RS256, &a, Some(&kid), &claims());
        assert_eq!(call(&service, &token, &[]).await, StatusCode::UNAUTHORIZED);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.fetches(), 2, "no refetch during the cooldown");
}

#[tokio::test]
async fn key_rotation_and_endpoint_outage() {
    let (a, b) = (rsa(RSA_A), rsa(RSA_B));
    let server = JwksServer::start(&[("a", &a, Algorithm::RS256)]).await;
    let (service, _) = stack(server.config("0s")).await;
    let (token_a, token_b) = (
        sign(Algorithm::RS256, &a, Some("a"), &claims()),
        sign(Algorithm::RS256, &b, Some("b"), &claims()),
    );
    assert_eq!(call(&service, &token_a, &[]).await, StatusCode::OK);
    // Rotation: b replaces a.
    server.publish(&[("b", &b, Algorithm::RS256)]);
    eventually(&service, &token_b, StatusCode::OK).await;
    assert_eq!(
        call(&service, &token_a, &[]).await,
        StatusCode::UNAUTHORIZED,
        "a was retired"
    );
    // Outage: refetches fail, cached b keeps working.
    server.up.store(false, Ordering::SeqCst);
    let before = server.fetches();
    let _ = call(
        &service,
        &sign(Algorithm::RS256, &a, Some("zzz"), &claims()),
        &[],
    )
    .await;
    for _ in 0..100 {
        if server.fetches() > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(server.fetches() > before, "a refetch was attempted");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(call(&service, &token_b, &[]).await, StatusCode::OK);
}

#[tokio::test]
async fn endpoint_down_at_startup_starts_empty_and_recovers() {
    let a = rsa(RSA_A);
    let server = JwksServer::start(&[("a", &a, Algorithm::RS256)]).await;
    server.up.store(false, Ordering::SeqCst);
    let (service, _) = stack(server.config("0s")).await;
    let token = sign(Algorithm::RS256, &a, Some("a"), &claims());
    assert_eq!(call(&service, &token, &[]).await, StatusCode::UNAUTHORIZED);
    server.up.store(true, Ordering::SeqCst);
    eventually(&service, &token, StatusCode::OK).await;
}

/// A number that differs between calls, for unique file names.
fn rand_suffix() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

#[tokio::test]
async fn jwks_over_https_is_trusted_through_the_configured_ca_file() {
    let a = rsa(RSA_A);
    let (server, ca) = JwksServer::start_tls(&[("a", &a, Algorithm::RS256)]).await;
    assert!(server.url.starts_with("https://127.0.0.1:"));
    let mut config = server.config("30s");
    config["keys"]["jwks_ca_file"] = json!(ca);
    let (service, _) = stack(config).await;
    assert_eq!(server.fetches(), 1, "fetched over TLS");
    assert_eq!(
        call(
            &service,
            &sign(Algorithm::RS256, &a, Some("a"), &claims()),
            &[]
        )
        .await,
        StatusCode::OK
    );
    let _ = std::fs::remove_file(ca);
}

#[tokio::test]
async fn an_https_jwks_server_outside_the_trusted_roots_gets_no_request() {
    let a = rsa(RSA_A);
    let (server, ca) = JwksServer::start_tls(&[("a", &a, Algorithm::RS256)]).await;
    // The built-in public roots do not include the server's own CA: the
    // handshake fails, no key is taken, the token is refused.
    let (service, _) = stack(server.config("30s")).await;
    assert_eq!(server.fetches(), 0, "no request after a failed handshake");
    assert_eq!(
        call(
            &service,
            &sign(Algorithm::RS256, &a, Some("a"), &claims()),
            &[]
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let _ = std::fs::remove_file(ca);
}
