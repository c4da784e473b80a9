//! TLS settings of a public listener.

use schemars::JsonSchema;
use serde::Deserialize;

use super::units::HumanDuration;

/// TLS on a listener: it then accepts only TLS (1.2 and 1.3), offering
/// HTTP/2 and HTTP/1.1 by ALPN.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// The certificates served, at least one. For the server name a client
    /// asks for (SNI), the first certificate valid for that name is served
    /// (its DNS names, wildcards included, checked as clients check them).
    pub certificates: Vec<TlsCertificate>,
    /// A client whose server name no certificate covers, or who sends none:
    /// `first` (default) gets the first certificate; `reject` gets none (the
    /// handshake fails with an `access_denied` alert).
    #[serde(default)]
    pub unknown_server_name: UnknownServerName,
    /// Mutual TLS: ask clients for a certificate and verify it against
    /// these CAs (chain, validity dates, client-auth usage). The verified
    /// certificate's subject CN and SANs are the identity `auth`'s `mtls`
    /// method reads. Absent: no client certificate is asked for.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// How often the certificate, key and CA files are read again: when
    /// one changed, new connections get the new files (existing ones keep
    /// theirs); files that do not load (a half-written pair, a bad PEM) are
    /// logged and the running ones kept. Default 10s; `0s`: never.
    #[serde(default = "reload_interval_default")]
    pub reload_interval: HumanDuration,
}

/// How a listener verifies client certificates.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientAuth {
    /// PEM file with the CA certificates client certificates must chain to
    /// (relative paths are relative to the config file).
    pub ca: String,
    /// `true` (default): a client without a valid certificate is refused
    /// during the handshake. `false`: a client without one is served,
    /// without an identity (routes that need one answer 401 through `auth`);
    /// a client that presents an invalid one is still refused.
    #[serde(default = "required_default")]
    pub required: bool,
}

fn reload_interval_default() -> HumanDuration {
    HumanDuration::from_secs(10)
}

fn required_default() -> bool {
    true
}

/// One certificate and its private key.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsCertificate {
    /// PEM file with the certificate chain, leaf first (relative paths are
    /// relative to the config file).
    pub cert: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1; RSA, ECDSA or
    /// Ed25519).
    pub key: String,
}

/// What a client gets whose server name no certificate covers.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnknownServerName {
    /// The first certificate.
    #[default]
    First,
    /// No certificate: the handshake fails.
    Reject,
}

/// TLS to an upstream's `https://` endpoints: rustls, TLS 1.2 and 1.3,
/// HTTP/2 by ALPN (HTTP/1.1 for `http_upstreams`).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// PEM file with the CA certificates the upstream's certificate must
    /// chain to (relative paths are relative to the config file). Absent:
    /// the public web roots built into the gateway.
    #[serde(default)]
    pub ca: Option<String>,
    /// PEM file with a client certificate chain to present, for upstreams
    /// that require mutual TLS; with `key`.
    #[serde(default)]
    pub cert: Option<String>,
    /// PEM file with the client certificate's private key; with `cert`.
    #[serde(default)]
    pub key: Option<String>,
    /// The name the upstream's certificate must be valid for, also sent as
    /// the server name (SNI). Absent: each endpoint's host.
    #[serde(default)]
    pub server_name: Option<String>,
}
