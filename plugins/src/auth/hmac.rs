//! Method `hmac`: requests signed by a partner with a shared secret.
//!
//! The public contract (for partners: `docs/partner-signing.md`, with a
//! worked example that the tests check):
//!
//! ```text
//! x-sy-key-id:         <key id>
//! x-sy-timestamp:      <unix seconds, decimal digits>
//! x-sy-content-sha256: <lowercase hex SHA-256 of the raw body; of "" for none>
//! x-sy-signature:      v1=<lowercase hex HMAC-SHA256(secret, string_to_sign)>
//!
//! string_to_sign = METHOD "\n" PATH "\n" CANONICAL_QUERY "\n" TIMESTAMP "\n" CONTENT_SHA256
//! ```
//!
//! PATH is the request path exactly as sent (still percent-encoded);
//! CANONICAL_QUERY is the raw query string split on `&`, the pieces sorted
//! bytewise and joined with `&` (nothing decoded, nothing dropped; empty when
//! there is no query). TIMESTAMP and CONTENT_SHA256 are the header values.
//! The secret is the configured string's bytes, used as they are.
//!
//! Checks, in order; every refusal is 401:
//! 1. the four headers, each exactly once and well-formed, else `invalid
//!    credentials`; no `x-sy-signature` at all is "no credentials" (another
//!    method may admit the request);
//! 2. `x-sy-content-sha256` equals the SHA-256 of the body the gateway read
//!    (the auth stage buffers signed bodies, up to `max_body`, 413 beyond);
//! 3. the key id is configured and the signature matches, compared in
//!    constant time; else `invalid credentials` (the client is not told which);
//! 4. the timestamp is within ±`window` of the gateway's clock, else
//!    `timestamp outside the allowed window` (only said to a valid signer);
//! 5. the signature was not already accepted inside its window, else
//!    `replayed` (see [`replay`]; a full cache answers 503).
//!
//! Key ids are unique; a consumer may hold several keys (rotation: add the
//! new key, move the partner to it, remove the old one). Secrets must be at
//! least 32 bytes, checked at load. Once admitted, the four headers are
//! removed: the upstream never sees them.
//!
//! The replay cache lives in the gateway process, one per route: several
//! gateway replicas, or a restart, each have their own memory of signatures.

mod replay;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use ::hmac::Mac;
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::Deserialize;

pub use crate::units::ByteSize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::{BodyDigest, Identity, Method, Outcome};
use crate::stage::OriginalUri;
use replay::{Insert, ReplayCache};

type HmacSha256 = ::hmac::Hmac<Sha256>;

/// The partner's key id.
pub const KEY_ID: HeaderName = HeaderName::from_static("x-sy-key-id");
/// Unix seconds when the partner signed the request.
pub const TIMESTAMP: HeaderName = HeaderName::from_static("x-sy-timestamp");
/// Lowercase hex SHA-256 of the raw body.
pub const CONTENT_SHA256: HeaderName = HeaderName::from_static("x-sy-content-sha256");
/// `v1=<lowercase hex HMAC-SHA256>`.
pub const SIGNATURE: HeaderName = HeaderName::from_static("x-sy-signature");

const INVALID: &str = "invalid credentials";
const STALE: &str = "timestamp outside the allowed window";
const REPLAYED: &str = "replayed";
const CACHE_FULL: &str = "unavailable: too many signed requests, retry shortly";

/// Shortest secret, in bytes (the HMAC-SHA256 output size).
const MIN_SECRET_LEN: usize = 32;
/// Longest key id and consumer name.
const MAX_NAME_LEN: usize = 128;
const DEFAULT_WINDOW: Duration = Duration::from_secs(5 * 60);
const MAX_WINDOW: Duration = Duration::from_secs(60 * 60);
const DEFAULT_REPLAY_CACHE_SIZE: usize = 100_000;
const DEFAULT_MAX_BODY: usize = 1 << 20;
/// Longest accepted `x-sy-timestamp`, in digits.
const MAX_TIMESTAMP_DIGITS: usize = 12;

/// Settings of the `hmac` method.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// The partners' keys; at least one. Ids are unique; a consumer may hold
    /// several keys (rotation).
    pub keys: Vec<HmacKey>,
    /// How far `x-sy-timestamp` may be from the gateway's clock, either way;
    /// `5m` by default, at most `1h`.
    #[serde(default)]
    pub window: Option<String>,
    /// How many accepted signatures are remembered (for their window) to
    /// refuse replays; `100000` by default. When full, new signed requests get
    /// 503 until entries expire.
    #[serde(default)]
    pub replay_cache_size: Option<usize>,
    /// The largest signed body the gateway reads to check its digest
    /// (`1MiB` by default); larger signed requests get 413.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
}

/// One partner key.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HmacKey {
    /// Sent by the partner as `x-sy-key-id`.
    pub id: String,
    /// The consumer the key authenticates.
    pub consumer: String,
    /// The shared secret (its bytes as written; at least 32), e.g.
    /// `"${PARTNER_A_SECRET}"`.
    pub secret: String,
}

/// One configured key, ready to sign.
struct Key {
    id: String,
    consumer: String,
    /// The HMAC state after absorbing the secret; cloned per request.
    mac: HmacSha256,
}

/// The built method.
pub(super) struct Hmac {
    /// Key id → index in `keys`.
    by_id: HashMap<String, usize>,
    keys: Vec<Key>,
    window: u64,
    max_body: usize,
    replay: ReplayCache,
    challenge: HeaderValue,
}

// === impl HmacKey ===

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HmacKey")
            .field("id", &self.id)
            .field("consumer", &self.consumer)
            .field("secret", &"<redacted>")
            .finish()
    }
}

// === impl Hmac ===

impl Hmac {
    pub(super) fn new(config: &HmacConfig) -> Result<Self, String> {
        if config.keys.is_empty() {
            return Err("`keys` is empty: list at least one partner key".to_owned());
        }
        let mut by_id = HashMap::with_capacity(config.keys.len());
        let mut keys = Vec::with_capacity(config.keys.len());
        for (i, key) in config.keys.iter().enumerate() {
            check_name("id", &key.id).map_err(|e| format!("keys[{i}]: {e}"))?;
            check_name("consumer", &key.consumer)
                .map_err(|e| format!("keys[{i}] (id `{}`): {e}", key.id))?;
            // Never echo the secret, not even its length.
            if key.secret.len() < MIN_SECRET_LEN {
                return Err(format!(
                    "keys[{i}] (id `{}`): `secret` is shorter than {MIN_SECRET_LEN} bytes \
                     (is its environment variable set?)",
                    key.id
                ));
            }
            if by_id.insert(key.id.clone(), i).is_some() {
                return Err(format!(
                    "keys[{i}]: id `{}` is listed twice; ids must be unique (give a rotated key a new id)",
                    key.id
                ));
            }
            let mac = HmacSha256::new_from_slice(key.secret.as_bytes())
                .map_err(|_| format!("keys[{i}] (id `{}`): unusable secret", key.id))?;
            keys.push(Key {
                id: key.id.clone(),
                consumer: key.consumer.clone(),
                mac,
            });
        }
        let window = match &config.window {
            None => DEFAULT_WINDOW,
            Some(text) => humantime::parse_duration(text).map_err(|e| {
                format!("`window`: invalid duration {text:?} ({e}); expected e.g. \"5m\"")
            })?,
        };
        if window < Duration::from_secs(1) || window > MAX_WINDOW {
            return Err("`window` must be between 1s and 1h".to_owned());
        }
        let replay_cache_size = config
            .replay_cache_size
            .unwrap_or(DEFAULT_REPLAY_CACHE_SIZE);
        if replay_cache_size == 0 {
            return Err("`replay_cache_size` is 0: no signed request could pass".to_owned());
        }
        let max_body = match &config.max_body {
            None => DEFAULT_MAX_BODY,
            Some(size) => size.bytes("max_body")?,
        };
        Ok(Hmac {
            by_id,
            keys,
            window: window.as_secs(),
            max_body,
            replay: ReplayCache::new(replay_cache_size),
            challenge: HeaderValue::from_static("SyHmac version=\"v1\""),
        })
    }

    /// Checks a signed request at time `now` (unix seconds).
    fn verify(&self, parts: &Parts, now: u64) -> Result<Identity, Outcome> {
        let invalid = Outcome::Rejected(INVALID);
        let signature = single(parts, &SIGNATURE)
            .and_then(|v| v.strip_prefix("v1="))
            .and_then(parse_hex32)
            .ok_or(invalid.clone())?;
        let key_id = single(parts, &KEY_ID).ok_or(invalid.clone())?;
        let timestamp_text = single(parts, &TIMESTAMP).ok_or(invalid.clone())?;
        let timestamp = parse_timestamp(timestamp_text).ok_or(invalid.clone())?;
        let content_sha256 = single(parts, &CONTENT_SHA256).ok_or(invalid.clone())?;
        let Some(BodyDigest(digest)) = parts.extensions.get::<BodyDigest>() else {
            return Err(invalid);
        };
        if content_sha256 != hex(digest) {
            return Err(invalid);
        }
        let Some(&index) = self.by_id.get(key_id) else {
            return Err(invalid);
        };
        let key = &self.keys[index];
        // The path and query as the client sent them, before the edge's
        // normalisation: the signature covers the bytes on the wire.
        let signed_uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |original| &original.0);
        let mut mac = key.mac.clone();
        mac.update(
            string_to_sign(
                parts.method.as_str(),
                signed_uri.path(),
                signed_uri.query(),
                timestamp_text,
                content_sha256,
            )
            .as_bytes(),
        );
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        if !bool::from(expected.ct_eq(&signature)) {
            return Err(invalid);
        }
        if now.abs_diff(timestamp) > self.window {
            tracing::debug!(key_id = %key.id, timestamp, now, "hmac: timestamp outside window");
            return Err(Outcome::Rejected(STALE));
        }
        match self
            .replay
            .insert((index, signature), timestamp + self.window, now)
        {
            Insert::Fresh => Ok(Identity {
                consumer: key.consumer.clone(),
                headers: Vec::new(),
                claims: None,
            }),
            Insert::Replayed => Err(Outcome::Rejected(REPLAYED)),
            Insert::Full => {
                tracing::warn!("hmac: replay cache full, refusing signed requests");
                Err(Outcome::Unavailable(CACHE_FULL))
            }
        }
    }
}

impl Method for Hmac {
    fn challenge(&self) -> &HeaderValue {
        &self.challenge
    }

    fn authenticate(&self, parts: &Parts) -> Outcome {
        if !parts.headers.contains_key(&SIGNATURE) {
            return Outcome::Absent;
        }
        match self.verify(parts, now()) {
            Ok(identity) => Outcome::Authenticated(identity),
            Err(outcome) => outcome,
        }
    }

    fn body_limit(&self, parts: &Parts) -> Option<usize> {
        parts
            .headers
            .contains_key(&SIGNATURE)
            .then_some(self.max_body)
    }

    fn strip(&self, parts: &mut Parts) {
        for name in [&KEY_ID, &TIMESTAMP, &CONTENT_SHA256, &SIGNATURE] {
            parts.headers.remove(name);
        }
    }
}

// === the signing scheme ===

/// `METHOD\nPATH\nCANONICAL_QUERY\nTIMESTAMP\nCONTENT_SHA256`.
pub(super) fn string_to_sign(
    method: &str,
    path: &str,
    query: Option<&str>,
    timestamp: &str,
    content_sha256: &str,
) -> String {
    let query = canonical_query(query);
    format!("{method}\n{path}\n{query}\n{timestamp}\n{content_sha256}")
}

/// The raw query's `&`-separated pieces, sorted bytewise, joined with `&`.
pub(super) fn canonical_query(query: Option<&str>) -> String {
    let mut pieces: Vec<&str> = query.unwrap_or("").split('&').collect();
    pieces.sort_unstable();
    pieces.join("&")
}

/// Lowercase hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    crate::hex::encode(bytes)
}

// === helpers ===

/// The header's value, when it is present exactly once and visible ASCII.
fn single<'a>(parts: &'a Parts, name: &HeaderName) -> Option<&'a str> {
    let mut values = parts.headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

/// Exactly 64 lowercase hex digits → 32 bytes.
fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.bytes().any(|c| c.is_ascii_uppercase()) {
        return None;
    }
    crate::hex::decode32(text)
}

/// Decimal digits only (no sign, no spaces), at most 12 of them.
fn parse_timestamp(text: &str) -> Option<u64> {
    if text.is_empty()
        || text.len() > MAX_TIMESTAMP_DIGITS
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse().ok()
}

fn check_name(field: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "`{field}` {name:?} must be 1 to {MAX_NAME_LEN} visible ASCII characters (no spaces)"
        ));
    }
    Ok(())
}

#[cfg(test)]
thread_local! {
    /// The clock in tests (unix seconds), when set.
    static FAKE_NOW: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Unix seconds.
fn now() -> u64 {
    #[cfg(test)]
    if let Some(now) = FAKE_NOW.with(|n| n.get()) {
        return now;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
