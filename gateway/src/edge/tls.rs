//! TLS on a listener: rustls on ring (the gateway's one crypto provider),
//! TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, the certificate chosen by the
//! client's server name (SNI).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::{ConfigError, KeyPath, ListenerTls, LoadedConfig, UnknownServerName};

/// The ALPN protocols offered, in the server's order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The TLS acceptor of each listener, in `listeners:` order (`None`: plain
/// HTTP). Errors name the listener's `tls` key, the file and what is wrong.
pub fn acceptors(loaded: &LoadedConfig) -> Result<Vec<Option<TlsAcceptor>>, ConfigError> {
    let source = &loaded.source;
    let mut acceptors = Vec::with_capacity(loaded.config.listeners.len());
    for (i, listener) in loaded.config.listeners.iter().enumerate() {
        let Some(tls) = &listener.tls else {
            acceptors.push(None);
            continue;
        };
        let acceptor = acceptor(tls, |path| source.resolve(path)).map_err(|e| {
            source.error_at(&KeyPath::root().key("listeners").index(i).key("tls"), e)
        })?;
        acceptors.push(Some(acceptor));
    }
    Ok(acceptors)
}

/// Builds the acceptor of a listener's `tls:`; `resolve` turns a path of
/// the config into a file path. Errors name the file and what is wrong.
pub fn acceptor(
    tls: &ListenerTls,
    resolve: impl Fn(&str) -> std::path::PathBuf,
) -> Result<TlsAcceptor, String> {
    if tls.certificates.is_empty() {
        return Err("`certificates` is empty: at least one certificate is needed".to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut certificates = Vec::with_capacity(tls.certificates.len());
    for (i, certificate) in tls.certificates.iter().enumerate() {
        let chain = load_chain(&resolve(&certificate.cert))
            .map_err(|e| format!("certificates[{i}].cert: {e}"))?;
        let key = load_key(&resolve(&certificate.key))
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
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The certificate chain of a PEM file, leaf first.
fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{shown}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown}: {e}"))?;
    if chain.is_empty() {
        return Err(format!(
            "{shown}: no certificate in it (PEM `CERTIFICATE` blocks expected)"
        ));
    }
    Ok(chain)
}

/// The private key of a PEM file.
fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let shown = path.display();
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => format!(
            "{shown}: no private key in it (a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block expected)"
        ),
        e => format!("{shown}: {e}"),
    })
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
