//! Auth method `mtls`: the consumer is the client certificate's identity.
//!
//! The TLS edge verifies the client certificate during the handshake (a
//! listener's `tls.client_auth`) and puts its identity on each request as
//! [`ClientCertificate`]; this method only reads it. A request without one
//! (plain HTTP, a listener without `client_auth`, or an optional
//! certificate not presented) is "absent": 401 unless another method admits
//! the request.
//!
//! `identity_to_metadata` sets request headers from the certificate once the
//! request is admitted (the subject CN, the SANs comma-separated), so
//! upstreams learn who called when the route forwards those headers
//! (`headers.forward`). Client-sent copies of those headers are removed from
//! every request the plugin admits: only the verified certificate sets them.

use http::request::Parts;
use http::{HeaderName, HeaderValue};
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
    /// Request headers set from the certificate for the upstream.
    #[serde(default)]
    pub identity_to_metadata: IdentityMetadata,
}

/// Which headers carry the certificate's identity upstream (none by default).
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentityMetadata {
    /// Header set to the subject's common name, e.g. `x-client-cn`.
    #[serde(default)]
    pub subject_cn: Option<String>,
    /// Header set to the DNS and URI SANs, comma-separated in certificate
    /// order, e.g. `x-client-sans`.
    #[serde(default)]
    pub sans: Option<String>,
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
    cn_header: Option<HeaderName>,
    sans_header: Option<HeaderName>,
    challenge: HeaderValue,
}

// === impl Mtls ===

impl Mtls {
    pub(super) fn new(config: &MtlsConfig) -> Result<Mtls, String> {
        let header = |field: &str, name: &Option<String>| {
            name.as_deref()
                .map(|name| {
                    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                        format!(
                            "`identity_to_metadata.{field}`: {name:?} is not a valid header name"
                        )
                    })
                })
                .transpose()
        };
        let metadata = &config.identity_to_metadata;
        let cn_header = header("subject_cn", &metadata.subject_cn)?;
        let sans_header = header("sans", &metadata.sans)?;
        if cn_header.is_some() && cn_header == sans_header {
            return Err(
                "`identity_to_metadata`: `subject_cn` and `sans` name the same header".into(),
            );
        }
        Ok(Mtls {
            consumer_from: config.consumer_from,
            cn_header,
            sans_header,
            challenge: HeaderValue::from_static("Mutual-TLS"),
        })
    }

    /// The headers naming the certificate for the upstream; a value that
    /// cannot be a header (not visible ASCII) is left out.
    fn metadata(&self, cert: &ClientCertificate) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::new();
        let mut set = |name: &Option<HeaderName>, text: Option<String>| {
            if let (Some(name), Some(text)) = (name, text.filter(|t| !t.is_empty()))
                && let Ok(value) = HeaderValue::try_from(text)
            {
                headers.push((name.clone(), value));
            }
        };
        set(&self.cn_header, cert.subject_cn.clone());
        set(&self.sans_header, Some(cert.sans.join(",")));
        headers
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
                headers: self.metadata(cert),
                claims: None,
            }),
            None => Outcome::Rejected("invalid credentials"),
        }
    }

    /// The certificate is not a header; removes client-sent copies of the
    /// identity headers, so only a verified certificate sets them.
    fn strip(&self, parts: &mut Parts) {
        for name in [&self.cn_header, &self.sans_header].into_iter().flatten() {
            parts.headers.remove(name);
        }
    }
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
        let by_cn = Mtls::new(&MtlsConfig::default()).unwrap();
        match by_cn.authenticate(&parts(Some(cert(Some("partner-a"), &["a.example"])))) {
            Outcome::Authenticated(id) => assert_eq!(id.consumer, "partner-a"),
            other => panic!("{other:?}"),
        }
        let by_san = Mtls::new(&MtlsConfig {
            consumer_from: ConsumerFrom::San,
            ..MtlsConfig::default()
        })
        .unwrap();
        match by_san.authenticate(&parts(Some(cert(Some("x"), &["spiffe://acme/orders"])))) {
            Outcome::Authenticated(id) => assert_eq!(id.consumer, "spiffe://acme/orders"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_certificate_is_absent_and_an_unnamed_one_is_rejected() {
        let m = Mtls::new(&MtlsConfig::default()).unwrap();
        assert_eq!(m.authenticate(&parts(None)), Outcome::Absent);
        assert_eq!(
            m.authenticate(&parts(Some(cert(None, &["a.example"])))),
            Outcome::Rejected("invalid credentials")
        );
    }

    fn with_metadata(cn: Option<&str>, sans: Option<&str>) -> Result<Mtls, String> {
        Mtls::new(&MtlsConfig {
            identity_to_metadata: IdentityMetadata {
                subject_cn: cn.map(str::to_owned),
                sans: sans.map(str::to_owned),
            },
            ..MtlsConfig::default()
        })
    }

    #[test]
    fn identity_to_metadata_sets_the_cn_and_the_sans_and_strips_client_copies() {
        let m = with_metadata(Some("x-client-cn"), Some("x-client-sans")).unwrap();
        let Outcome::Authenticated(id) = m.authenticate(&parts(Some(cert(
            Some("partner-a"),
            &["a.example", "spiffe://acme/a"],
        )))) else {
            panic!("not admitted");
        };
        assert_eq!(
            id.headers,
            vec![
                (
                    HeaderName::from_static("x-client-cn"),
                    HeaderValue::from_static("partner-a")
                ),
                (
                    HeaderName::from_static("x-client-sans"),
                    HeaderValue::from_static("a.example,spiffe://acme/a")
                ),
            ]
        );
        let mut forged = http::Request::builder()
            .header("x-client-cn", "admin")
            .header("x-client-sans", "admin.example")
            .header("x-other", "kept")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        m.strip(&mut forged);
        assert!(forged.headers.get("x-client-cn").is_none());
        assert!(forged.headers.get("x-client-sans").is_none());
        assert_eq!(forged.headers["x-other"], "kept");
        // A certificate without SANs sets no SAN header.
        let Outcome::Authenticated(id) = m.authenticate(&parts(Some(cert(Some("b"), &[])))) else {
            panic!("not admitted");
        };
        assert_eq!(id.headers.len(), 1);
    }

    #[test]
    fn identity_to_metadata_refuses_bad_or_shared_header_names() {
        let err = with_metadata(Some("bad header"), None).err().unwrap();
        assert!(err.contains("identity_to_metadata.subject_cn"), "{err}");
        let err = with_metadata(Some("x-id"), Some("x-id")).err().unwrap();
        assert!(err.contains("same header"), "{err}");
    }
}
