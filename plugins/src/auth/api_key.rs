//! Method `api_key`: a shared secret in a request header or a query parameter.
//!
//! Only SHA-256 digests of the issued keys are configured, inline (`keys`)
//! and/or in a file (`keys_file`), each naming the consumer who holds the key.
//! A presented key is hashed and its digest compared, in constant time, with
//! **every** configured digest, without early exit: how long the check takes
//! does not depend on whether, or which, key matched. (Comparing digests
//! rather than keys also means a timing leak could only ever reveal bits of a
//! digest, never of a key.)
//!
//! Rules chosen here:
//! - with both `header` and `query` configured, a non-empty header wins; the
//!   query parameter is read only when the header is absent or empty;
//! - an empty header or parameter counts as absent (401 "missing credentials");
//! - the header sent twice, the parameter sent twice, or a malformed
//!   percent-escape in the parameter is refused (401 "invalid credentials"),
//!   never guessed at;
//! - query parameters are `application/x-www-form-urlencoded` (`+` is a space,
//!   `%XX` is decoded), as everywhere else in the gateway; the key is compared
//!   as the bytes that result;
//! - once the request is admitted the header and the parameter are removed,
//!   whichever method admitted it, so the key never reaches the upstream (nor
//!   the transcoder, which would reject an unknown query parameter).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use http::request::Parts;
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Uri};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

use super::{Identity, Method, Outcome};

#[cfg(test)]
mod tests;

/// The header read when neither `header` nor `query` is configured.
pub const DEFAULT_HEADER: &str = "x-api-key";

/// The short code for a presented key that is not accepted.
const INVALID: &str = "invalid credentials";

/// How to compute a digest, for error messages.
const HOW_TO_HASH: &str = "the SHA-256 of the key, e.g. `printf %s 'the-key' | sha256sum`";

/// Longest consumer name.
const MAX_CONSUMER_LEN: usize = 128;

/// Settings of the `api_key` method.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The request header carrying the key. When neither `header` nor `query`
    /// is set, the key is read from `x-api-key`.
    #[serde(default)]
    pub header: Option<String>,
    /// The query parameter carrying the key (e.g. `api_key`); letters, digits
    /// and `-._~` only. With `header` also set, the header is read first.
    /// Keys in URLs end up in access logs and browser histories: prefer a header.
    #[serde(default)]
    pub query: Option<String>,
    /// Issued keys, each as the consumer holding it and the SHA-256 digest of
    /// the key (never the key itself).
    #[serde(default)]
    pub keys: Vec<KeyEntry>,
    /// A file of more keys: one `consumer:sha256hex` per line; blank lines and
    /// lines starting with `#` are skipped. Read when the config is loaded
    /// (and again on every reload). A relative path is resolved against the
    /// gateway's working directory.
    #[serde(default)]
    pub keys_file: Option<PathBuf>,
}

/// One issued API key.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Who holds the key: the consumer name used by `allow` rules,
    /// per-consumer rate limits and metrics. 1 to 128 visible ASCII
    /// characters. A consumer may hold several keys (rotation).
    pub consumer: String,
    /// The SHA-256 digest of the key as 64 hex digits, as printed by
    /// `printf %s 'the-key' | sha256sum`. Each digest may appear only once.
    pub sha256: String,
}

/// The built method.
pub(super) struct ApiKey {
    header: Option<HeaderName>,
    query: Option<String>,
    /// Digests and their consumers, same order.
    digests: Vec<[u8; 32]>,
    consumers: Vec<String>,
    challenge: HeaderValue,
}

/// A key on its way in from the config, with where it came from for errors.
struct Entry {
    origin: String,
    consumer: String,
    digest: [u8; 32],
}

/// The key parameter in a query string.
#[derive(Debug, PartialEq, Eq)]
enum Param<'a> {
    Absent,
    Found(Cow<'a, [u8]>),
    /// Sent twice, or with a malformed escape.
    Invalid,
}

#[cfg(test)]
thread_local! {
    /// Digest comparisons made on this thread: tests check that every
    /// configured digest is compared, whatever the key.
    static COMPARISONS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

// === impl ApiKey ===

impl ApiKey {
    /// Validates the config and loads `keys_file`. Errors are fit for a
    /// config error message: they name the key's origin, never a digest.
    pub(super) fn new(config: &ApiKeyConfig) -> Result<ApiKey, String> {
        let header = match (&config.header, &config.query) {
            (None, None) => Some(HeaderName::from_static(DEFAULT_HEADER)),
            (None, Some(_)) => None,
            (Some(name), _) => Some(parse_header_name(name)?),
        };
        let query = match &config.query {
            None => None,
            Some(name) => Some(check_param_name(name)?),
        };

        let mut entries = Vec::with_capacity(config.keys.len());
        for (i, key) in config.keys.iter().enumerate() {
            let origin = format!("keys[{i}]");
            check_consumer(&key.consumer).map_err(|e| format!("{origin}: {e}"))?;
            let digest = parse_sha256_hex(&key.sha256)
                .map_err(|e| format!("{origin} (consumer `{}`): {e}", key.consumer))?;
            entries.push(Entry {
                origin,
                consumer: key.consumer.clone(),
                digest,
            });
        }
        if let Some(path) = &config.keys_file {
            read_keys_file(path, &mut entries)?;
        }
        if entries.is_empty() {
            return Err(match &config.keys_file {
                None => "no keys: set `keys` and/or `keys_file`".to_owned(),
                Some(path) => format!(
                    "no keys: `keys` is empty and keys_file `{}` lists none",
                    path.display()
                ),
            });
        }

        let empty: [u8; 32] = Sha256::digest(b"").into();
        let mut seen: HashMap<[u8; 32], &Entry> = HashMap::with_capacity(entries.len());
        for entry in &entries {
            if entry.digest == empty {
                return Err(format!(
                    "{} (consumer `{}`): `sha256` is the digest of the empty string; \
                     it must be {HOW_TO_HASH}",
                    entry.origin, entry.consumer
                ));
            }
            if let Some(first) = seen.insert(entry.digest, entry) {
                return Err(format!(
                    "{} (consumer `{}`) has the same digest as {} (consumer `{}`): \
                     each key may be listed once",
                    entry.origin, entry.consumer, first.origin, first.consumer
                ));
            }
        }

        let challenge = challenge(header.as_ref(), query.as_deref());
        let (digests, consumers) = entries.into_iter().map(|e| (e.digest, e.consumer)).unzip();
        Ok(ApiKey {
            header,
            query,
            digests,
            consumers,
            challenge,
        })
    }

    /// Hashes the presented key and compares the digest with every configured
    /// digest, in constant time and without early exit.
    fn check(&self, key: &[u8]) -> Outcome {
        let presented: [u8; 32] = Sha256::digest(key).into();
        let mut found = Choice::from(0);
        let mut index = 0u64;
        for (i, digest) in (0u64..).zip(&self.digests) {
            let equal = digest[..].ct_eq(&presented[..]);
            index.conditional_assign(&i, equal);
            found |= equal;
            #[cfg(test)]
            COMPARISONS.with(|n| n.set(n.get() + 1));
        }
        // Digests are unique (checked at load), so at most one matched.
        if bool::from(found) {
            let consumer = usize::try_from(index)
                .ok()
                .and_then(|i| self.consumers.get(i));
            if let Some(consumer) = consumer {
                return Outcome::Authenticated(Identity {
                    consumer: consumer.clone(),
                    headers: Vec::new(),
                    claims: None,
                });
            }
        }
        Outcome::Rejected(INVALID)
    }
}

impl Method for ApiKey {
    fn challenge(&self) -> &HeaderValue {
        &self.challenge
    }

    fn authenticate(&self, parts: &Parts) -> Outcome {
        if let Some(name) = &self.header {
            let mut values = parts.headers.get_all(name).iter();
            if let Some(value) = values.next() {
                if values.next().is_some() {
                    return Outcome::Rejected(INVALID);
                }
                if !value.is_empty() {
                    return self.check(value.as_bytes());
                }
            }
        }
        if let Some(name) = &self.query {
            match find_param(parts.uri.query(), name) {
                Param::Absent => {}
                Param::Invalid => return Outcome::Rejected(INVALID),
                Param::Found(key) if key.is_empty() => {}
                Param::Found(key) => return self.check(&key),
            }
        }
        Outcome::Absent
    }

    fn strip(&self, parts: &mut Parts) {
        if let Some(name) = &self.header {
            parts.headers.remove(name);
        }
        if let Some(name) = &self.query
            && let Some(uri) = without_param(&parts.uri, name)
        {
            parts.uri = uri;
        }
    }
}

// === config helpers ===

fn parse_header_name(name: &str) -> Result<HeaderName, String> {
    if name.is_empty() {
        return Err("`header` is empty: name the header carrying the key".to_owned());
    }
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`header`: {name:?} is not a valid header name"))
}

fn check_param_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("`query` is empty: name the query parameter carrying the key".to_owned());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
    {
        return Err(format!(
            "`query`: {name:?} is not a plain parameter name (letters, digits and `-._~` only)"
        ));
    }
    Ok(name.to_owned())
}

fn check_consumer(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > MAX_CONSUMER_LEN
        || !name.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(format!(
            "consumer {name:?} must be 1 to {MAX_CONSUMER_LEN} visible ASCII characters (no spaces)"
        ));
    }
    Ok(())
}

/// 64 hex digits (either case) → 32 bytes.
fn parse_sha256_hex(hex: &str) -> Result<[u8; 32], String> {
    if hex.len() != 64 {
        return Err(format!(
            "`sha256` must be 64 hex digits ({HOW_TO_HASH}), got {} characters",
            hex.chars().count()
        ));
    }
    crate::hex::decode32(hex).ok_or_else(|| {
        format!(
            "`sha256` must be 64 hex digits ({HOW_TO_HASH}), found a character other than 0-9, a-f"
        )
    })
}

/// Appends the keys of a `consumer:sha256hex` file. Errors name the file and
/// the line, never the line's text (it may hold a key pasted by mistake).
fn read_keys_file(path: &Path, entries: &mut Vec<Entry>) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("keys_file `{}`: cannot read it: {e}", path.display()))?;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let origin = format!("keys_file `{}` line {}", path.display(), n + 1);
        let Some((consumer, hex)) = line.rsplit_once(':') else {
            return Err(format!("{origin}: expected `consumer:sha256hex`"));
        };
        let (consumer, hex) = (consumer.trim(), hex.trim());
        check_consumer(consumer).map_err(|e| format!("{origin}: {e}"))?;
        let digest =
            parse_sha256_hex(hex).map_err(|e| format!("{origin} (consumer `{consumer}`): {e}"))?;
        entries.push(Entry {
            origin,
            consumer: consumer.to_owned(),
            digest,
        });
    }
    Ok(())
}

/// `ApiKey header="x-api-key", query="api_key"`; both names are tokens, so
/// they need no escaping inside the quotes.
fn challenge(header: Option<&HeaderName>, query: Option<&str>) -> HeaderValue {
    let mut params = Vec::with_capacity(2);
    if let Some(header) = header {
        params.push(format!("header=\"{}\"", header.as_str()));
    }
    if let Some(query) = query {
        params.push(format!("query=\"{query}\""));
    }
    HeaderValue::try_from(format!("ApiKey {}", params.join(", ")))
        .unwrap_or_else(|_| HeaderValue::from_static("ApiKey"))
}

// === query helpers ===

/// The (decoded) value of parameter `name`, which must appear at most once.
fn find_param<'a>(query: Option<&'a str>, name: &str) -> Param<'a> {
    let Some(query) = query else {
        return Param::Absent;
    };
    let mut found = Param::Absent;
    for piece in query.split('&') {
        let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
        if !name_matches(key, name) {
            continue;
        }
        if found != Param::Absent {
            return Param::Invalid;
        }
        found = match form_decode(value) {
            Some(value) => Param::Found(value),
            None => return Param::Invalid,
        };
    }
    found
}

/// Whether a raw (encoded) query key is `name`.
fn name_matches(raw: &str, name: &str) -> bool {
    form_decode(raw).is_some_and(|decoded| *decoded == *name.as_bytes())
}

/// `application/x-www-form-urlencoded` decoding of one key or value: `+` is a
/// space, `%XX` a byte; `None` for a malformed escape.
fn form_decode(raw: &str) -> Option<Cow<'_, [u8]>> {
    if !raw.contains(['%', '+']) {
        return Some(Cow::Borrowed(raw.as_bytes()));
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        out.push(match b {
            b'+' => b' ',
            b'%' => {
                let hi = crate::hex::digit(bytes.next()?)?;
                let lo = crate::hex::digit(bytes.next()?)?;
                (hi << 4) | lo
            }
            other => other,
        });
    }
    Some(Cow::Owned(out))
}

/// `uri` without any `name` parameter (and without empty `&&` pieces), or
/// `None` when it has none.
fn without_param(uri: &Uri, name: &str) -> Option<Uri> {
    let query = uri.query()?;
    let is_param =
        |piece: &&str| name_matches(piece.split_once('=').map_or(*piece, |(k, _)| k), name);
    if !query.split('&').any(|piece| is_param(&piece)) {
        return None;
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|piece| !piece.is_empty() && !is_param(piece))
        .collect();
    let path = uri.path();
    let rebuilt = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    // Pieces of a valid query after a valid path make a valid path-and-query.
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(rebuilt).ok()?);
    Uri::from_parts(parts).ok()
}
