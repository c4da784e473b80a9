//! Certificates made at test time (rcgen), written as PEM files, and a real
//! TLS client (tokio-rustls, then hyper over HTTP/1.1 or HTTP/2 by ALPN).
//!
//! Server side: a CA and two leaves it signed, `api.pem`
//! (`api.example.test`) and `partner.pem` (`*.partner.test`). Client side:
//! a clients' CA (`clients-ca.pem`) and client certificates made with
//! [`Pki::client`]; a second CA (`other-ca.pem`) signs ones no listener
//! trusts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Which CA signs a client certificate.
#[derive(Clone, Copy, Debug)]
pub enum Issuer {
    /// `clients-ca.pem`: the one listeners trust.
    Clients,
    /// `other-ca.pem`: one no listener trusts.
    Other,
}

/// A client certificate to make.
pub struct ClientSpec<'a> {
    pub cn: &'a str,
    pub sans: Vec<SanType>,
    pub issuer: Issuer,
    /// Valid in 2000 only.
    pub expired: bool,
}

pub struct Pki {
    pub dir: PathBuf,
    pub ca: CertificateDer<'static>,
    pub api: CertificateDer<'static>,
    pub partner: CertificateDer<'static>,
    server_ca: CertifiedIssuer<'static, KeyPair>,
    clients_ca: CertifiedIssuer<'static, KeyPair>,
    other_ca: CertifiedIssuer<'static, KeyPair>,
}

/// A self-signed CA named `name`, written to `dir/file`.
fn ca(dir: &std::path::Path, file: &str, name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: OpenSSL takes a leaf whose issuer is its own subject
    // (rcgen's default for both) for a self-signed one.
    params.distinguished_name.push(DnType::CommonName, name);
    let ca =
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("ca key")).expect("ca");
    std::fs::write(dir.join(file), ca.pem()).expect("write ca");
    ca
}

/// Signs `params` with `issuer`; writes `dir/<file>.pem` and
/// `dir/<file>-key.pem`.
fn leaf(
    dir: &std::path::Path,
    file: &str,
    mut params: CertificateParams,
    cn: &str,
    issuer: &CertifiedIssuer<'static, KeyPair>,
) -> CertificateDer<'static> {
    params.distinguished_name.push(DnType::CommonName, cn);
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("sign");
    std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).expect("write cert");
    std::fs::write(dir.join(format!("{file}-key.pem")), key.serialize_pem()).expect("write key");
    cert.der().clone()
}

/// A server certificate for `name` signed by `ca`.
fn server_leaf(
    dir: &std::path::Path,
    file: &str,
    name: &str,
    ca: &CertifiedIssuer<'static, KeyPair>,
) -> CertificateDer<'static> {
    let params = CertificateParams::new(vec![name.to_owned()]).expect("params");
    leaf(dir, file, params, name, ca)
}

impl Pki {
    pub fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("switchyard-tls-{:x}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let server_ca = ca(&dir, "ca.pem", "Switchyard test CA");
        let server = |file: &str, name: &str| server_leaf(&dir, file, name, &server_ca);
        let api = server("api", "api.example.test");
        let partner = server("partner", "*.partner.test");
        let clients_ca = ca(&dir, "clients-ca.pem", "Switchyard test clients CA");
        let other_ca = ca(&dir, "other-ca.pem", "Someone else's CA");
        Pki {
            ca: server_ca.der().clone(),
            dir,
            api,
            partner,
            server_ca,
            clients_ca,
            other_ca,
        }
    }

    /// A new server certificate (and key) for `name`, from the same CA,
    /// written over `<file>.pem` and `<file>-key.pem`.
    pub fn reissue_server(&self, file: &str, name: &str) -> CertificateDer<'static> {
        server_leaf(&self.dir, file, name, &self.server_ca)
    }

    pub fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// Makes a client certificate: `<file>.pem` and `<file>-key.pem`.
    pub fn client(&self, file: &str, spec: ClientSpec<'_>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.subject_alt_names = spec.sans;
        if spec.expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2000, 12, 31);
        }
        let issuer = match spec.issuer {
            Issuer::Clients => &self.clients_ca,
            Issuer::Other => &self.other_ca,
        };
        leaf(&self.dir, file, params, spec.cn, issuer);
    }

    /// A TLS connection to `addr` asking for `server_name`, offering `alpn`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        server_name: &str,
        alpn: &[&[u8]],
    ) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
        self.connect_with(addr, server_name, alpn, rustls::DEFAULT_VERSIONS, None)
            .await
    }

    /// [`Pki::connect`] offering only `versions` of TLS, and presenting the
    /// client certificate `<client>.pem` when given.
    pub async fn connect_with(
        &self,
        addr: SocketAddr,
        server_name: &str,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
        client: Option<&str>,
    ) -> std::io::Result<TlsStream<tokio::net::TcpStream>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).expect("root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots);
        let mut config = match client {
            None => builder.with_no_client_auth(),
            Some(file) => {
                let chain = CertificateDer::pem_file_iter(self.dir.join(format!("{file}.pem")))
                    .expect("client cert")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client cert");
                let key = PrivateKeyDer::from_pem_file(self.dir.join(format!("{file}-key.pem")))
                    .expect("client key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client auth")
            }
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let name = ServerName::try_from(server_name.to_owned()).expect("server name");
        TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The leaf certificate the server sent.
pub fn served(stream: &TlsStream<tokio::net::TcpStream>) -> CertificateDer<'static> {
    let (_, connection) = stream.get_ref();
    connection.peer_certificates().expect("a certificate")[0].clone()
}

/// GET `path` over `stream` with HTTP/2 when ALPN chose it, else HTTP/1.1:
/// the status and body, or the error (a refused client certificate shows
/// here under TLS 1.3, where the client's handshake ends before the
/// server has checked it).
pub async fn get(
    stream: TlsStream<tokio::net::TcpStream>,
    path: &str,
) -> Result<(u16, String), String> {
    get_with(stream, path, &[]).await
}

/// [`get`] with extra request headers.
pub async fn get_with(
    stream: TlsStream<tokio::net::TcpStream>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), String> {
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let mut request = http::Request::get(format!("https://api.example.test{path}"))
        .header("host", "api.example.test");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::<Bytes>::new()).expect("request");
    let io = TokioIo::new(stream);
    let response = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2 handshake: {e:?}"))?;
        tokio::spawn(conn);
        sender.send_request(request).await
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| format!("http1 handshake: {e:?}"))?;
        tokio::spawn(conn);
        sender.send_request(request).await
    }
    .map_err(|e| format!("request: {e:?}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e:?}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The demo gateway behind one TLS listener serving both server
/// certificates; `tls_extra` adds keys to its `tls:` (flow style, e.g.
/// `unknown_server_name: reject`), `route_extra` to every route and
/// `top_extra` to the top level.
pub async fn gateway(
    pki: &Pki,
    tls_extra: &str,
    route_extra: &str,
    top_extra: &str,
) -> super::TestGateway {
    gateway_with_users(pki, tls_extra, route_extra, top_extra, None).await
}

/// [`gateway`], with the `users` upstream at `users` (a URL) instead of the
/// demo's users service when given.
pub async fn gateway_with_users(
    pki: &Pki,
    tls_extra: &str,
    route_extra: &str,
    top_extra: &str,
    users: Option<&str>,
) -> super::TestGateway {
    let comma = if tls_extra.is_empty() { "" } else { ", " };
    let listener = format!(
        r#"listeners:
  - address: "127.0.0.1:0"
    tls: {{ certificates: [{{ cert: "{api}", key: "{api}-key" }}, {{ cert: "{partner}", key: "{partner}-key" }}]{comma}{tls_extra} }}"#,
        api = pki.path("api.pem"),
        partner = pki.path("partner.pem"),
    )
    .replace(".pem-key", "-key.pem");
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let demo = switchyard_demo::spawn(any, any, any)
        .await
        .expect("demo services start");
    let mut yaml = super::demo_config(&demo, route_extra, top_extra)
        .replace(r#"listeners: [{ address: "127.0.0.1:0" }]"#, &listener);
    if let Some(users) = users {
        yaml = yaml.replace(&demo.url(switchyard_demo::Service::Users), users);
    }
    super::TestGateway::start_yaml(demo, &yaml).await
}
