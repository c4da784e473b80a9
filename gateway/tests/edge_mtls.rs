//! Mutual TLS on a listener: client certificates verified against the
//! listener's CA bundle (required or optional), their identity the consumer
//! of `auth`'s `mtls` method. Certificates are made at test time (rcgen);
//! the clients are tokio-rustls with hyper, and `curl`.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::pki::{ClientSpec, Issuer, Pki, gateway, gateway_with_users, get, get_with};
use common::scripted::{self, Handler};
use prost_reflect::{DynamicMessage, Value};
use rcgen::SanType;

/// Every route needs a certificate naming `partner-a` (by its CN).
const ONLY_PARTNER_A: &str =
    ", plugins: [{ auth: { methods: [{ mtls: {} }], allow: { consumers: [partner-a] } } }]";

fn client(pki: &Pki, file: &str, cn: &str, issuer: Issuer, expired: bool) {
    pki.client(
        file,
        ClientSpec {
            cn,
            sans: Vec::new(),
            issuer,
            expired,
        },
    );
}

/// GET /v1/users/1 presenting `<client>.pem` (or none): the status, or
/// the error of a refused handshake.
async fn call(pki: &Pki, addr: std::net::SocketAddr, client: Option<&str>) -> Result<u16, String> {
    let stream = pki
        .connect_with(
            addr,
            "api.example.test",
            &[b"h2"],
            rustls::DEFAULT_VERSIONS,
            client,
        )
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    get(stream, "/v1/users/1").await.map(|(status, _)| status)
}

#[tokio::test]
async fn a_required_client_certificate_must_chain_to_the_ca_and_be_in_date() {
    let pki = Pki::new();
    client(&pki, "a", "partner-a", Issuer::Clients, false);
    client(&pki, "b", "partner-b", Issuer::Clients, false);
    client(&pki, "stranger", "partner-a", Issuer::Other, false);
    client(&pki, "expired", "partner-a", Issuer::Clients, true);
    let tls = format!("client_auth: {{ ca: \"{}\" }}", pki.path("clients-ca.pem"));
    let gw = gateway(&pki, &tls, ONLY_PARTNER_A, "").await;

    assert_eq!(call(&pki, gw.addr, Some("a")).await, Ok(200));
    // Verified, but not a consumer the route allows.
    assert_eq!(call(&pki, gw.addr, Some("b")).await, Ok(403));
    for refused in [None, Some("stranger"), Some("expired")] {
        let outcome = call(&pki, gw.addr, refused).await;
        assert!(
            outcome.is_err(),
            "{refused:?}: refused at the handshake, got {outcome:?}"
        );
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_optional_client_certificate_lets_clients_without_one_in_without_an_identity() {
    let pki = Pki::new();
    client(&pki, "a", "partner-a", Issuer::Clients, false);
    client(&pki, "stranger", "partner-a", Issuer::Other, false);
    let tls = format!(
        "client_auth: {{ ca: \"{}\", required: false }}",
        pki.path("clients-ca.pem")
    );
    let gw = gateway(&pki, &tls, ONLY_PARTNER_A, "").await;

    assert_eq!(call(&pki, gw.addr, Some("a")).await, Ok(200));
    // In, but `auth` finds no identity: 401.
    assert_eq!(call(&pki, gw.addr, None).await, Ok(401));
    // A certificate that does not verify is still refused.
    let outcome = call(&pki, gw.addr, Some("stranger")).await;
    assert!(outcome.is_err(), "{outcome:?}");
    gw.stop().await;
}

#[tokio::test]
async fn the_consumer_can_be_the_certificates_first_san() {
    let pki = Pki::new();
    pki.client(
        "workload",
        ClientSpec {
            cn: "ignored",
            sans: vec![
                SanType::URI("spiffe://acme/orders".try_into().expect("uri")),
                SanType::DnsName("orders.acme.test".try_into().expect("dns")),
            ],
            issuer: Issuer::Clients,
            expired: false,
        },
    );
    let tls = format!("client_auth: {{ ca: \"{}\" }}", pki.path("clients-ca.pem"));
    let allow_workload = ", plugins: [{ auth: { methods: [{ mtls: { consumer_from: san } }], allow: { consumers: [\"spiffe://acme/orders\"] } } }]";
    let gw = gateway(&pki, &tls, allow_workload, "").await;
    assert_eq!(call(&pki, gw.addr, Some("workload")).await, Ok(200));
    gw.stop().await;
}

/// A users upstream that records the metadata of every call and answers
/// `GetUser` with an empty user.
async fn recording_users() -> scripted::Scripted {
    let pool = scripted::pool(common::repo_root().join("proto"));
    let user = pool
        .get_message_by_name("demo.users.v1.User")
        .expect("User");
    let get: Handler = Arc::new(move |req: &DynamicMessage| {
        let mut reply = DynamicMessage::new(user.clone());
        reply.set_field_by_name("id", req.get_field_by_name("id").unwrap().into_owned());
        reply.set_field_by_name("name", Value::String("from the recorder".into()));
        reply
    });
    scripted::start(pool, HashMap::from([("GetUser", get)])).await
}

#[tokio::test]
async fn the_certificates_identity_reaches_the_upstream_as_metadata_and_cannot_be_forged() {
    let pki = Pki::new();
    pki.client(
        "a",
        ClientSpec {
            cn: "partner-a",
            sans: vec![
                SanType::DnsName("a.partners.test".try_into().expect("dns")),
                SanType::URI("spiffe://acme/partner-a".try_into().expect("uri")),
            ],
            issuer: Issuer::Clients,
            expired: false,
        },
    );
    let users = recording_users().await;
    let tls = format!(
        "client_auth: {{ ca: \"{}\", required: false }}",
        pki.path("clients-ca.pem")
    );
    let route = ", headers: { forward: [x-client-cn, x-client-sans] }, plugins: [{ auth: { methods: [{ mtls: { identity_to_metadata: { subject_cn: x-client-cn, sans: x-client-sans } } }] } }]";
    let url = format!("http://{}", users.addr);
    let gw = gateway_with_users(&pki, &tls, route, "", Some(&url)).await;

    let forged = [("x-client-cn", "admin"), ("x-client-sans", "admin.example")];
    let stream = pki
        .connect_with(
            gw.addr,
            "api.example.test",
            &[b"h2"],
            rustls::DEFAULT_VERSIONS,
            Some("a"),
        )
        .await
        .expect("handshake");
    let (status, body) = get_with(stream, "/v1/users/7", &forged)
        .await
        .expect("call");
    assert_eq!(status, 200, "{body}");
    let calls = users.recorded("GetUser");
    assert_eq!(calls.len(), 1);
    let metadata = &calls[0].metadata;
    assert_eq!(
        metadata.get_all("x-client-cn").iter().collect::<Vec<_>>(),
        ["partner-a"]
    );
    assert_eq!(
        metadata.get_all("x-client-sans").iter().collect::<Vec<_>>(),
        ["a.partners.test,spiffe://acme/partner-a"]
    );

    // Without a certificate the forged headers do not pass either: the
    // request is refused before the upstream.
    let stream = pki
        .connect_with(
            gw.addr,
            "api.example.test",
            &[b"h2"],
            rustls::DEFAULT_VERSIONS,
            None,
        )
        .await
        .expect("handshake");
    let (status, _) = get_with(stream, "/v1/users/7", &forged)
        .await
        .expect("call");
    assert_eq!(status, 401);
    assert_eq!(users.recorded("GetUser").len(), 1);
    gw.stop().await;
}

#[tokio::test]
async fn without_client_auth_no_certificate_is_asked_for_and_mtls_routes_answer_401() {
    let pki = Pki::new();
    client(&pki, "a", "partner-a", Issuer::Clients, false);
    let gw = gateway(&pki, "", ONLY_PARTNER_A, "").await;
    // The client offers its certificate only when asked: never here.
    assert_eq!(call(&pki, gw.addr, Some("a")).await, Ok(401));
    gw.stop().await;
}

#[tokio::test]
async fn curl_with_a_client_certificate_is_let_in_and_without_one_is_refused() {
    let pki = Pki::new();
    client(&pki, "a", "partner-a", Issuer::Clients, false);
    let tls = format!("client_auth: {{ ca: \"{}\" }}", pki.path("clients-ca.pem"));
    let gw = gateway(&pki, &tls, ONLY_PARTNER_A, "").await;
    let port = gw.addr.port();
    let curl = |with_cert: bool| {
        let mut command = tokio::process::Command::new("curl");
        command
            .args(["-sS", "--max-time", "20", "--cacert", &pki.path("ca.pem")])
            .args(["--resolve", &format!("api.example.test:{port}:127.0.0.1")])
            .args(["-o", "/dev/null", "-w", "%{http_code}"]);
        if with_cert {
            command.args([
                "--cert",
                &pki.path("a.pem"),
                "--key",
                &pki.path("a-key.pem"),
            ]);
        }
        command.arg(format!("https://api.example.test:{port}/v1/users/1"));
        command
    };
    let out = curl(true).output().await.expect("curl runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = curl(false).output().await.expect("curl runs");
    assert!(!out.status.success(), "refused without a certificate");
    gw.stop().await;
}

#[tokio::test]
async fn a_missing_client_ca_file_is_a_config_error_at_the_listener() {
    let pki = Pki::new();
    let path = pki.dir.join("gateway.yaml");
    let yaml = format!(
        r#"
listeners:
  - address: "127.0.0.1:0"
    tls:
      certificates: [{{ cert: api.pem, key: api-key.pem }}]
      client_auth: {{ ca: no-such-ca.pem }}
protos: {{ sources: ["{proto}"] }}
"#,
        proto = common::repo_root().join("proto").display(),
    );
    std::fs::write(&path, yaml).expect("write config");
    let loaded = switchyard::config::load(&path).unwrap_or_else(|e| panic!("config: {e}"));
    let err = match switchyard::app::start(loaded).await {
        Ok(_) => panic!("the gateway started"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("listeners[0].tls"), "{err}");
    assert!(err.contains("client_auth.ca"), "{err}");
    assert!(err.contains("no-such-ca.pem"), "{err}");
}
