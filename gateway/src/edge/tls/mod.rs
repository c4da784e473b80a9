//! TLS on a listener: rustls on ring (the gateway's one crypto provider),
//! TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, the certificate chosen by the
//! client's server name (SNI), and with `client_auth` client certificates
//! verified against the listener's CAs, their identity read for `auth`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use switchyard_plugins::stage::ClientCertificate;
use x509_parser::extensions::GeneralName;

use crate::config::{ConfigError, KeyPath, ListenerTls, LoadedConfig, UnknownServerName};
use crate::pem;

mod reload;

pub use reload::TlsListener;

/// The ALPN protocols offered, in the server's order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The TLS side of each listener, in `listeners:` order (`None`: plain
/// HTTP). Errors name the listener's `tls` key, the file and what is wrong.
pub fn listeners(loaded: &LoadedConfig) -> Result<Vec<Option<Arc<TlsListener>>>, ConfigError> {
    let source = &loaded.source;
    let mut listeners = Vec::with_capacity(loaded.config.listeners.len());
    for (i, listener) in loaded.config.listeners.iter().enumerate() {
        let Some(tls) = &listener.tls else {
            listeners.push(None);
            continue;
        };
        let built =
            TlsListener::new(&listener.name, tls, |path| source.resolve(path)).map_err(|e| {
                source.error_at(&KeyPath::root().key("listeners").index(i).key("tls"), e)
            })?;
        listeners.push(Some(Arc::new(built)));
    }
    Ok(listeners)
}

/// The rustls settings of a listener's `tls:`, its paths already resolved.
/// Errors name the file and what is wrong.
fn server_config(tls: &ListenerTls) -> Result<Arc<rustls::ServerConfig>, String> {
    if tls.certificates.is_empty() {
        return Err("`certificates` is empty: at least one certificate is needed".to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut certificates = Vec::with_capacity(tls.certificates.len());
    for (i, certificate) in tls.certificates.iter().enumerate() {
        let chain = pem::certificates(Path::new(&certificate.cert))
            .map_err(|e| format!("certificates[{i}].cert: {e}"))?;
        let key = pem::private_key(Path::new(&certificate.key))
            .map_err(|e| format!("certificates[{i}].key: {e}"))?;
        let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
            format!("certificates[{i}]: the key does not go with the certificate ({e})")
        })?;
        certificates.push(Arc::new(certified));
    }
    let resolver = SniResolver {
        certificates,
        unknown: tls.unknown_server_name,
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let builder = match &tls.client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let roots =
                pem::roots(Path::new(&auth.ca)).map_err(|e| format!("client_auth.ca: {e}"))?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth.required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(
                verifier.build().map_err(|e| format!("client_auth: {e}"))?,
            )
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Serves, for a client's server name, the first certificate valid for it.
struct SniResolver {
    certificates: Vec<Arc<CertifiedKey>>,
    unknown: UnknownServerName,
}

impl SniResolver {
    fn covering(&self, name: &str) -> Option<&Arc<CertifiedKey>> {
        let name = ServerName::try_from(name).ok()?;
        self.certificates.iter().find(|certified| {
            certified.end_entity_cert().ok().is_some_and(|leaf| {
                webpki::EndEntityCert::try_from(leaf)
                    .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
            })
        })
    }
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniResolver")
            .field("certificates", &self.certificates.len())
            .field("unknown", &self.unknown)
            .finish()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(certified) = hello.server_name().and_then(|name| self.covering(name)) {
            return Some(certified.clone());
        }
        match self.unknown {
            UnknownServerName::First => self.certificates.first().cloned(),
            UnknownServerName::Reject => {
                tracing::debug!(
                    server_name = hello.server_name().unwrap_or_default(),
                    "TLS: no certificate for the server name; handshake refused"
                );
                None
            }
        }
    }
}

/// The identity of the client certificate `connection` verified, if the
/// client presented one: the subject's common name and the DNS and URI
/// subject alternative names, in certificate order.
pub fn client_certificate(connection: &rustls::ServerConnection) -> Option<ClientCertificate> {
    let leaf = connection.peer_certificates()?.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let subject_cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let sans = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    GeneralName::URI(uri) => Some((*uri).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ClientCertificate { subject_cn, sans })
}
