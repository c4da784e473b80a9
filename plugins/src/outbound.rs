//! Outbound HTTP(S) clients of plugins (`jwt`'s JWK Sets, `wasm`'s HTTP
//! callouts): rustls on ring (the one crypto provider), TLS 1.2 and 1.3.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// TLS client settings trusting the CAs of `ca_file` (PEM), or the
/// built-in public roots; errors name the config key `field`.
pub fn tls_config(ca_file: Option<&Path>, field: &str) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(path) => {
            let shown = path.display();
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("`{field}` {shown}: {e}"))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("`{field}` {shown}: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "`{field}` {shown}: no CA certificate in it (PEM `CERTIFICATE` blocks expected)"
                ));
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
