//! Auth method `mtls`: the consumer is the client certificate's identity.
//!
//! The TLS edge verifies the client certificate during the handshake (a
//! listener's `tls.client_auth`) and puts its identity on each request as
//! [`ClientCertificate`]; this method only reads it. A request without one
//! (plain HTTP, a listener without `client_auth`, or an optional
//! certificate not presented) is "absent": 401 unless another method admits
//! the request.

use http::HeaderValue;
use http::request::Parts;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{Identity, Method, Outcome};
use crate::stage::ClientCertificate;

/// Configuration of the `mtls` method.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MtlsConfig {
    /// Which part of the certificate names the consumer: `subject_cn` (the
    /// subject's common name, the default) or `san` (the first DNS or URI
    /// subject alternative name).
    #[serde(default)]
    pub consumer_from: ConsumerFrom,
}

/// Where the consumer's name comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsumerFrom {
    #[default]
    SubjectCn,
    San,
}

/// The built method.
pub(super) struct Mtls {
    consumer_from: ConsumerFrom,
    challenge: HeaderValue,
}

// === impl Mtls ===

impl Mtls {
    pub(super) fn new(config: &MtlsConfig) -> Mtls {
        Mtls {
            consumer_from: config.consumer_from,
            challenge: HeaderValue::from_static("Mutual-TLS"),
        }
    }
}

impl Method for Mtls {
    fn challenge(&self) -> &HeaderValue {
        &self.challenge
    }

    fn authenticate(&self, parts: &Parts) -> Outcome {
        let Some(cert) = parts.extensions.get::<ClientCertificate>() else {
            return Outcome::Absent;
        };
        let name = match self.consumer_from {
            ConsumerFrom::SubjectCn => cert.subject_cn.as_deref(),
            ConsumerFrom::San => cert.sans.first().map(String::as_str),
        };
        match name.filter(|n| !n.is_empty()) {
            Some(name) => Outcome::Authenticated(Identity {
                consumer: name.to_owned(),
                headers: Vec::new(),
                claims: None,
            }),
            None => Outcome::Rejected("invalid credentials"),
        }
    }

    /// Nothing to strip: the certificate is not a header.
    fn strip(&self, _parts: &mut Parts) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(cert: Option<ClientCertificate>) -> Parts {
        let mut req = http::Request::new(());
        if let Some(cert) = cert {
            req.extensions_mut().insert(cert);
        }
        req.into_parts().0
    }

    fn cert(cn: Option<&str>, sans: &[&str]) -> ClientCertificate {
        ClientCertificate {
            subject_cn: cn.map(str::to_owned),
            sans: sans.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_consumer_is_the_certificates_common_name_or_san() {
        let by_cn = Mtls::new(&MtlsConfig::default());
        match by_cn.authenticate(&parts(Some(cert(Some("partner-a"), &["a.example"])))) {
            Outcome::Authenticated(id) => assert_eq!(id.consumer, "partner-a"),
            other => panic!("{other:?}"),
        }
        let by_san = Mtls::new(&MtlsConfig {
            consumer_from: ConsumerFrom::San,
        });
        match by_san.authenticate(&parts(Some(cert(Some("x"), &["spiffe://acme/orders"])))) {
            Outcome::Authenticated(id) => assert_eq!(id.consumer, "spiffe://acme/orders"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_certificate_is_absent_and_an_unnamed_one_is_rejected() {
        let m = Mtls::new(&MtlsConfig::default());
        assert_eq!(m.authenticate(&parts(None)), Outcome::Absent);
        assert_eq!(
            m.authenticate(&parts(Some(cert(None, &["a.example"])))),
            Outcome::Rejected("invalid credentials")
        );
    }
}
