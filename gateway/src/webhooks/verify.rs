//! Signature checks of the two schemes, as pure functions of the headers,
//! the raw body bytes and the clock.
//!
//! - **Standard Webhooks** (standardwebhooks.com): `webhook-id`,
//!   `webhook-timestamp` (unix seconds) and `webhook-signature` (one or more
//!   space-separated `v1,<base64 HMAC-SHA256>`), signed content
//!   `{id}.{timestamp}.{body}`, secret `whsec_<base64 of the key>`.
//! - **Stripe**: `Stripe-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>…]`
//!   (other schemes such as `v0` ignored), signed content `{t}.{body}`, the
//!   secret string's bytes (`whsec_…` included) being the key.
//!
//! The signature is checked first (every configured secret, every sent
//! signature, each comparison in constant time), the timestamp second: a
//! caller without a secret learns nothing about the clock window.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::{HeaderMap, HeaderName};

use super::mac::{HmacKey, ct_eq};

/// Base64 with or without padding (secrets are written both ways).
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
pub const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
pub const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
/// Stripe's header, the default of `signature_header`.
pub const STRIPE_SIGNATURE: &str = "stripe-signature";

/// Shortest accepted secret (decoded key bytes, or Stripe secret text).
const MIN_SECRET_LEN: usize = 16;
/// Longest accepted timestamp, in digits.
const MAX_TIMESTAMP_DIGITS: usize = 12;
/// Longest accepted `webhook-id`.
pub const MAX_ID_LEN: usize = 256;

/// How deliveries are signed.
#[derive(Clone, Debug)]
pub enum Scheme {
    StandardWebhooks,
    Stripe { header: HeaderName },
}

/// An endpoint's signature check.
#[derive(Debug)]
pub struct Verifier {
    scheme: Scheme,
    keys: Vec<HmacKey>,
    tolerance: u64,
}

/// What a verified delivery says about itself.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// `webhook-id` (Standard Webhooks); Stripe's id is in the body.
    pub id: Option<String>,
    /// The signature that matched.
    pub signature: [u8; 32],
}

/// Why a delivery is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    /// A signature header is missing or malformed (401).
    Malformed(String),
    /// No sent signature matches any secret (401).
    BadSignature,
    /// Signed more than the tolerance ago (400); seconds.
    TooOld { age: u64, tolerance: u64 },
    /// Signed more than the tolerance in the future (400); seconds.
    TooNew { ahead: u64, tolerance: u64 },
}

// === impl Verifier ===

impl Verifier {
    /// The check for `secrets` (at least one). An error names the index of
    /// the secret it is about (never its text).
    pub fn new(
        scheme: Scheme,
        secrets: &[String],
        tolerance: Duration,
    ) -> Result<Verifier, (Option<usize>, String)> {
        if secrets.is_empty() {
            return Err((None, "list at least one secret".to_owned()));
        }
        let mut keys = Vec::with_capacity(secrets.len());
        for (i, secret) in secrets.iter().enumerate() {
            let key = match scheme {
                Scheme::StandardWebhooks => standard_key(secret),
                Scheme::Stripe { .. } => Ok(secret.as_bytes().to_vec()),
            }
            .map_err(|e| (Some(i), e))?;
            if key.len() < MIN_SECRET_LEN {
                return Err((
                    Some(i),
                    format!(
                        "the secret is shorter than {MIN_SECRET_LEN} bytes (is its environment variable set?)"
                    ),
                ));
            }
            keys.push(HmacKey::new(&key));
        }
        Ok(Verifier {
            scheme,
            keys,
            tolerance: tolerance.as_secs(),
        })
    }

    /// Checks a delivery received at `now` (unix seconds).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<Verified, Rejection> {
        let (verified, timestamp) = match &self.scheme {
            Scheme::StandardWebhooks => self.standard(headers, body)?,
            Scheme::Stripe { header } => self.stripe(headers, header, body)?,
        };
        let tolerance = self.tolerance;
        if timestamp + tolerance < now {
            return Err(Rejection::TooOld {
                age: now - timestamp,
                tolerance,
            });
        }
        if timestamp > now + tolerance {
            return Err(Rejection::TooNew {
                ahead: timestamp - now,
                tolerance,
            });
        }
        Ok(verified)
    }

    fn standard(&self, headers: &HeaderMap, body: &[u8]) -> Result<(Verified, u64), Rejection> {
        let id = single(headers, &WEBHOOK_ID)?;
        if !valid_id(id) {
            return Err(malformed(&WEBHOOK_ID));
        }
        let timestamp_text = single(headers, &WEBHOOK_TIMESTAMP)?;
        let timestamp =
            parse_timestamp(timestamp_text).ok_or_else(|| malformed(&WEBHOOK_TIMESTAMP))?;
        let sent: Vec<[u8; 32]> = single(headers, &WEBHOOK_SIGNATURE)?
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|b64| BASE64.decode(b64).ok()?.try_into().ok())
            .collect();
        if sent.is_empty() {
            return Err(malformed(&WEBHOOK_SIGNATURE));
        }
        let content = [id.as_bytes(), b".", timestamp_text.as_bytes(), b".", body];
        let signature = self.matching(&content, &sent)?;
        Ok((
            Verified {
                id: Some(id.to_owned()),
                signature,
            },
            timestamp,
        ))
    }

    fn stripe(
        &self,
        headers: &HeaderMap,
        header: &HeaderName,
        body: &[u8],
    ) -> Result<(Verified, u64), Rejection> {
        let value = single(headers, header)?;
        let mut timestamp_text = None;
        let mut sent = Vec::new();
        for item in value.split(',') {
            match item.trim().split_once('=') {
                Some(("t", t)) if timestamp_text.is_none() => timestamp_text = Some(t),
                Some(("v1", hex)) => sent
                    .push(switchyard_plugins::hex::decode32(hex).ok_or_else(|| malformed(header))?),
                _ => {}
            }
        }
        let timestamp_text = timestamp_text.ok_or_else(|| malformed(header))?;
        let timestamp = parse_timestamp(timestamp_text).ok_or_else(|| malformed(header))?;
        if sent.is_empty() {
            return Err(malformed(header));
        }
        let signature = self.matching(&[timestamp_text.as_bytes(), b".", body], &sent)?;
        Ok((
            Verified {
                id: None,
                signature,
            },
            timestamp,
        ))
    }

    /// The first sent signature that one of the keys makes over `content`.
    fn matching(&self, content: &[&[u8]], sent: &[[u8; 32]]) -> Result<[u8; 32], Rejection> {
        for key in &self.keys {
            let expected = key.sign(content);
            if let Some(found) = sent.iter().find(|s| ct_eq(&expected, *s)) {
                return Ok(*found);
            }
        }
        Err(Rejection::BadSignature)
    }
}

// === impl Rejection ===

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Malformed(message) => f.write_str(message),
            Rejection::BadSignature => f.write_str("invalid webhook signature"),
            Rejection::TooOld { age, tolerance } => write!(
                f,
                "webhook timestamp too old: signed {age}s ago, the tolerance is {tolerance}s (a replay, or a clock far off)"
            ),
            Rejection::TooNew { ahead, tolerance } => write!(
                f,
                "webhook timestamp too new: signed {ahead}s in the future, the tolerance is {tolerance}s (a clock far off)"
            ),
        }
    }
}

// === helpers ===

/// Whether `id` can identify a delivery (a Redis key, a broker message id):
/// 1 to [`MAX_ID_LEN`] visible ASCII characters, no spaces.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A Standard Webhooks secret: `whsec_` (optional) then base64.
fn standard_key(secret: &str) -> Result<Vec<u8>, String> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    BASE64
        .decode(b64)
        .map_err(|_| "the secret is not `whsec_` followed by base64".to_owned())
}

/// The header's value when sent exactly once, as text.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, Rejection> {
    let mut values = headers.get_all(name).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(Rejection::Malformed(format!(
            "missing `{name}` header (or sent more than once)"
        )));
    };
    value.to_str().map_err(|_| malformed(name))
}

fn malformed(name: &HeaderName) -> Rejection {
    Rejection::Malformed(format!("malformed `{name}` header"))
}

/// Unix seconds as decimal digits.
fn parse_timestamp(text: &str) -> Option<u64> {
    if text.is_empty()
        || text.len() > MAX_TIMESTAMP_DIGITS
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests;
