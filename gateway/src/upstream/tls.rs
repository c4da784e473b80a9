//! TLS to upstreams (`https://` endpoints): rustls on ring, TLS 1.2 and
//! 1.3, ALPN `h2`; the upstream's certificate checked against the
//! configured CAs or the public web roots built into the gateway, for the
//! configured name or the endpoint's host; a client certificate presented
//! when configured.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::config::UpstreamTls;
use crate::pem;

/// An upstream's TLS settings, shared by its endpoints.
#[derive(Clone)]
pub struct TlsSettings {
    pub connector: TlsConnector,
    /// The name to verify instead of each endpoint's host.
    pub server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Builds the settings; `resolve` turns a path of the config into a
    /// file path. Errors name the setting, the file and what is wrong.
    pub fn new(
        tls: &UpstreamTls,
        resolve: impl Fn(&str) -> std::path::PathBuf,
    ) -> Result<TlsSettings, String> {
        let mut config = client_config(tls, resolve)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(TlsSettings {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: server_name(tls)?,
        })
    }

    /// The name to verify for an endpoint on `host`.
    pub fn name_for(&self, host: &str) -> Result<ServerName<'static>, String> {
        if let Some(name) = &self.server_name {
            return Ok(name.clone());
        }
        // `[::1]` in a URI is `::1` as a name.
        let host = host.trim_start_matches('[').trim_end_matches(']');
        ServerName::try_from(host.to_owned()).map_err(|e| {
            format!("{host:?} cannot be a TLS server name ({e}); set `tls.server_name`")
        })
    }
}

/// The TLS client settings of `tls` (no ALPN): rustls on ring, TLS 1.2 and
/// 1.3, its CAs or the public web roots, its client certificate; `resolve`
/// turns a path of the config into a file path.
pub fn client_config(
    tls: &UpstreamTls,
    resolve: impl Fn(&str) -> std::path::PathBuf,
) -> Result<rustls::ClientConfig, String> {
    let roots = match &tls.ca {
        Some(ca) => pem::roots(&resolve(ca)).map_err(|e| format!("ca: {e}"))?,
        None => {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            roots
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_root_certificates(roots);
    let config = match (&tls.cert, &tls.key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = pem::certificates(&resolve(cert)).map_err(|e| format!("cert: {e}"))?;
            let key = pem::private_key(&resolve(key)).map_err(|e| format!("key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("cert and key: {e}"))?
        }
        _ => return Err("`cert` and `key` go together: give both or neither".to_owned()),
    };
    Ok(config)
}

/// `tls.server_name`, checked.
pub fn server_name(tls: &UpstreamTls) -> Result<Option<ServerName<'static>>, String> {
    tls.server_name
        .as_ref()
        .map(|name| {
            ServerName::try_from(name.clone()).map_err(|e| format!("server_name {name:?}: {e}"))
        })
        .transpose()
}

/// What one `https://` endpoint connects with.
#[derive(Clone)]
pub struct EndpointTls {
    pub connector: TlsConnector,
    /// The name its certificate must be valid for (and the SNI).
    pub name: ServerName<'static>,
}

impl std::fmt::Debug for EndpointTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointTls")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
