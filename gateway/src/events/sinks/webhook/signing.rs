//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256
//! of "{webhook-id}.{webhook-timestamp}.{body}">`, one signature per
//! secret, space-separated, so a receiver can roll its secret: the sink
//! signs with the old and the new one while the receiver switches over.
//!
//! The MAC is `crate::webhooks::mac` (the `hmac` crate), shared with
//! inbound webhook verification; the unit tests pin the signature to the
//! spec's own example, and the end-to-end test has the official Python
//! library verify it.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};

use crate::webhooks::mac::HmacKey;

/// The prefix of secrets in the spec's format.
const PREFIX: &str = "whsec_";

/// The spec asks for secrets of 24 to 64 random bytes.
const MIN_SECRET_BYTES: usize = 24;

/// Standard base64, padded or not (secrets are pasted from dashboards).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// One signing key, keyed once at load (never shown: `Debug` prints its
/// length only).
#[derive(Clone)]
pub struct Secret {
    key: HmacKey,
    len: usize,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.len)
    }
}

impl Secret {
    /// Reads `whsec_<base64>`. Errors never repeat the secret.
    pub fn parse(text: &str) -> Result<Secret, String> {
        let text = text.trim();
        let Some(encoded) = text.strip_prefix(PREFIX) else {
            return Err(format!(
                "a secret must be `{PREFIX}` followed by base64 (the Standard Webhooks format), e.g. `{PREFIX}$(openssl rand -base64 32)`{}",
                if text.is_empty() {
                    "; this one is empty (an unset environment variable?)"
                } else {
                    ""
                }
            ));
        };
        let key = LENIENT.decode(encoded).map_err(|e| {
            format!("a secret's part after `{PREFIX}` must be standard base64: {e}")
        })?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "a secret must hold at least {MIN_SECRET_BYTES} random bytes (Standard Webhooks asks for 24 to 64); this one has {}",
                key.len()
            ));
        }
        Ok(Secret {
            key: HmacKey::new(&key),
            len: key.len(),
        })
    }
}

/// Signs with every configured secret.
#[derive(Clone, Debug)]
pub struct Signer {
    secrets: Vec<Secret>,
}

impl Signer {
    /// A signer over `secrets` (at least one; the order is kept in the header).
    pub fn new(secrets: Vec<Secret>) -> Result<Signer, String> {
        if secrets.is_empty() {
            return Err("`secrets` must hold at least one `whsec_…` secret: Standard Webhooks deliveries are signed".to_owned());
        }
        Ok(Signer { secrets })
    }

    /// The `webhook-signature` value for one attempt.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let timestamp = timestamp.to_string();
        let message: [&[u8]; 5] = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body];
        self.secrets
            .iter()
            .map(|secret| {
                let mac = secret.key.sign(&message);
                format!("v1,{}", general_purpose::STANDARD.encode(mac))
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_like_the_specs_example() {
        let signer = Signer::new(vec![
            Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret"),
        ])
        .expect("signer");
        assert_eq!(
            signer.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn every_secret_signs_in_order() {
        let old = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("old");
        let new = Secret::parse(&format!(
            "whsec_{}",
            general_purpose::STANDARD.encode([7u8; 32])
        ))
        .expect("new");
        let both = Signer::new(vec![old.clone(), new.clone()]).expect("signer");
        let (one, two) = (
            Signer::new(vec![old]).expect("old"),
            Signer::new(vec![new]).expect("new"),
        );
        let sig = both.sign("id", 1, b"{}");
        assert_eq!(
            sig,
            format!("{} {}", one.sign("id", 1, b"{}"), two.sign("id", 1, b"{}"))
        );
        assert_ne!(one.sign("id", 1, b"{}"), one.sign("id", 2, b"{}"));
    }

    #[test]
    fn secrets_are_checked_without_being_repeated() {
        // Unpadded base64 is accepted (32 chars: 24 bytes).
        assert!(Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        let padded = format!("whsec_{}", general_purpose::STANDARD.encode([1u8; 25]));
        assert!(padded.ends_with('='));
        assert!(Secret::parse(&padded).is_ok());
        for (text, expected) in [
            ("", "unset environment variable"),
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_"),
            ("whsec_not*base64*at*all", "base64"),
            ("whsec_c2hvcnQ=", "at least 24"),
        ] {
            let err = Secret::parse(text).expect_err(text);
            assert!(err.contains(expected), "{text:?}: {err}");
            if text.len() > 6 {
                assert!(!err.contains(&text[6..]), "the secret leaked: {err}");
            }
        }
        assert!(
            Signer::new(Vec::new())
                .unwrap_err()
                .contains("at least one")
        );
        let debug = format!(
            "{:?}",
            Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("secret")
        );
        assert_eq!(debug, "Secret(24 bytes)");
    }
}
