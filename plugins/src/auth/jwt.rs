//! Method `jwt`: a signed JSON Web Token, by default `Authorization: Bearer <token>`.
//!
//! Validation (with `jsonwebtoken`, RustCrypto backend):
//! - the header's `alg` must be in the configured `algorithms` allow-list
//!   **and** belong to the family of the key that checks it: `alg: none` is
//!   never accepted (it cannot even be configured), and an HS* token is only
//!   ever checked against a configured `hs256_secret`, never against a public
//!   key (the classic HS/RS confusion is refused twice: at load, an HS
//!   algorithm with a `pem` or `jwks` key is a config error; per token, a key
//!   is only used for algorithms of its own family, and JWKS `oct` keys are
//!   ignored);
//! - `exp` is required; `nbf` is checked when present; both with `leeway`;
//! - with `issuer` set, `iss` is required and must match; with `audiences`
//!   set, `aud` is required and must contain one of them;
//! - the consumer is the string claim `consumer_claim` (`sub` by default): a
//!   token without it is refused.
//!
//! On success the claims listed in `claims_to_metadata` are set as request
//! headers (strings as they are, other JSON values as JSON text); the same
//! header names are first removed from every request the plugin admits, so a
//! client cannot forge them. All the token's claims go with the identity
//! (and are remembered with it by the token cache): the `allow` rules check
//! them, and the request carries them as [`Claims`](crate::stage::Claims). The `Authorization` header is **kept**: upstreams
//! may want the token itself (to read more claims, or to call on).
//!
//! Keys come from an inline PEM, a shared secret, or a JWKS URL (see
//! [`jwks`]). Every refusal is 401 `invalid credentials`; the reason is only
//! logged, at debug level, without the token.

mod cache;
mod jwks;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderName, HeaderValue, header};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Identity, Method, Outcome};

/// The short code for a presented token that is not accepted.
const INVALID: &str = "invalid credentials";
/// Shortest `hs256_secret`, in bytes (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_LEN: usize = 32;
/// Longest consumer name taken from a claim.
const MAX_CONSUMER_LEN: usize = 256;

/// Settings of the `jwt` method.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The expected `iss`; when set, tokens without it are refused.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted `aud` values; when set, the token's `aud` must contain one.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The signature algorithms accepted (allow-list, required), e.g.
    /// `[RS256, ES256]`. They must all suit the configured key: HS* only with
    /// `hs256_secret`, the others only with `pem` or `jwks`.
    pub algorithms: Vec<Alg>,
    /// Where the verification keys come from.
    pub keys: KeysConfig,
    /// Clock skew tolerated on `exp` and `nbf`; `30s` by default.
    #[serde(default)]
    pub leeway: Option<String>,
    /// The request header carrying the token; `authorization` (as `Bearer
    /// <token>`) by default. Any other header carries the bare token (an
    /// optional `Bearer ` prefix is accepted).
    #[serde(default)]
    pub header: Option<String>,
    /// Claims copied into request headers, claim name → header name (e.g.
    /// `sub: x-user-id`). Add those names to the route's `headers.forward` to
    /// send them upstream as metadata.
    #[serde(default)]
    pub claims_to_metadata: BTreeMap<String, String>,
    /// The string claim naming the consumer; `sub` by default.
    #[serde(default)]
    pub consumer_claim: Option<String>,
    /// Verified tokens are remembered (until `exp`, at most `max_ttl_seconds`)
    /// so repeat requests skip the signature check.
    #[serde(default)]
    pub cache: cache::CacheConfig,
}

/// Where verification keys come from: exactly one of `pem`, `jwks`, `hs256_secret`.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// One public key (RSA, EC or Ed25519) in PEM, inline.
    #[serde(default)]
    pub pem: Option<String>,
    /// A JWK Set URL (`https://`, or `http://` on a trusted network), fetched
    /// at startup and every `refresh`, keys picked by the token's `kid`.
    #[serde(default)]
    pub jwks: Option<String>,
    /// A PEM file of the CA certificates trusted for an `https` JWK Set URL
    /// (a private identity provider), relative to the config file; the
    /// public web roots built into the gateway (Mozilla's) when omitted.
    /// Only with `jwks`.
    #[serde(default)]
    pub jwks_ca_file: Option<std::path::PathBuf>,
    /// How often the JWK Set is refetched; `5m` by default. Only with `jwks`.
    #[serde(default)]
    pub refresh: Option<String>,
    /// After a token names an unknown `kid`, the JWK Set is refetched at most
    /// once per this period (`30s` by default). Only with `jwks`.
    #[serde(default)]
    pub unknown_kid_cooldown: Option<String>,
    /// A shared HMAC secret (at least 32 bytes) for HS256/HS384/HS512 tokens.
    #[serde(default)]
    pub hs256_secret: Option<String>,
}

/// A JWS signature algorithm (`none` is not one).
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
pub enum Alg {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// A verification key and what it may check.
#[derive(Clone)]
pub(super) struct Key {
    decoding: DecodingKey,
    family: AlgorithmFamily,
    /// The key's own `alg` (JWKS), when it names one: then only that one.
    alg: Option<Algorithm>,
}

enum Keys {
    Static(Arc<Key>),
    Jwks(jwks::Jwks),
}

/// The key that verified a token, and the `kid` it was published under (JWKS).
type VerifiedBy = (Option<Arc<str>>, Arc<Key>);

/// The built method.
pub(super) struct Jwt {
    /// Verified tokens: the identity, and the key (and its `kid`) that verified it.
    cache: cache::TokenCache<(Identity, VerifiedBy)>,
    header: HeaderName,
    bearer_required: bool,
    allowed: Vec<Algorithm>,
    /// `alg`-independent validation settings; `algorithms` is set per token.
    validation: Validation,
    keys: Keys,
    consumer_claim: String,
    claims_to_headers: Vec<(String, HeaderName)>,
    challenge: HeaderValue,
}

fn duration(field: &str, text: Option<&str>, default: Duration) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            format!("`{field}`: invalid duration {text:?} ({e}); expected e.g. \"30s\", \"5m\"")
        }),
    }
}

// === impl Alg ===

impl Alg {
    fn algorithm(self) -> Algorithm {
        match self {
            Alg::HS256 => Algorithm::HS256,
            Alg::HS384 => Algorithm::HS384,
            Alg::HS512 => Algorithm::HS512,
            Alg::RS256 => Algorithm::RS256,
            Alg::RS384 => Algorithm::RS384,
            Alg::RS512 => Algorithm::RS512,
            Alg::PS256 => Algorithm::PS256,
            Alg::PS384 => Algorithm::PS384,
            Alg::PS512 => Algorithm::PS512,
            Alg::ES256 => Algorithm::ES256,
            Alg::ES384 => Algorithm::ES384,
            Alg::EdDSA => Algorithm::EdDSA,
        }
    }
}

// === impl Key ===

impl Key {
    /// Whether this key may check a token signed with `alg`.
    fn suits(&self, alg: Algorithm) -> bool {
        alg.family() == self.family && self.alg.is_none_or(|own| own == alg)
    }
}

/// An RSA, EC or Ed25519 public key in PEM.
fn pem_key(pem: &str) -> Result<Key, String> {
    let bytes = pem.as_bytes();
    let (decoding, family) = if let Ok(k) = DecodingKey::from_rsa_pem(bytes) {
        (k, AlgorithmFamily::Rsa)
    } else if let Ok(k) = DecodingKey::from_ec_pem(bytes) {
        (k, AlgorithmFamily::Ec)
    } else if let Ok(k) = DecodingKey::from_ed_pem(bytes) {
        (k, AlgorithmFamily::Ed)
    } else {
        return Err(
            "`keys.pem` is not an RSA, EC or Ed25519 public key in PEM (`-----BEGIN PUBLIC KEY-----`)"
                .into(),
        );
    };
    Ok(Key {
        decoding,
        family,
        alg: None,
    })
}

// === impl Jwt ===

impl Jwt {
    pub(super) async fn new(config: &JwtConfig) -> Result<Jwt, String> {
        if config.algorithms.is_empty() {
            return Err("`algorithms` is empty: list the accepted algorithms, e.g. [RS256]".into());
        }
        let allowed: Vec<Algorithm> = config.algorithms.iter().map(|a| a.algorithm()).collect();
        let hmac = allowed
            .iter()
            .filter(|a| a.family() == AlgorithmFamily::Hmac);
        let k = &config.keys;
        let jwks_only = |set: bool, name: &str| match set {
            true if k.jwks.is_none() => Err(format!("`keys.{name}` only applies to `jwks`")),
            _ => Ok(()),
        };
        jwks_only(k.refresh.is_some(), "refresh")?;
        jwks_only(k.unknown_kid_cooldown.is_some(), "unknown_kid_cooldown")?;
        jwks_only(k.jwks_ca_file.is_some(), "jwks_ca_file")?;
        let keys = match (&k.pem, &k.jwks, &k.hs256_secret) {
            (Some(pem), None, None) => {
                let key = pem_key(pem)?;
                if let Some(bad) = allowed.iter().find(|a| a.family() != key.family) {
                    return Err(format!(
                        "`algorithms`: {bad:?} cannot be checked with the {:?} key in `keys.pem` \
                         (an HS algorithm with a public key would accept tokens signed with the public key)",
                        key.family
                    ));
                }
                Keys::Static(Arc::new(key))
            }
            (None, Some(url), None) => {
                if let Some(bad) = hmac.clone().next() {
                    return Err(format!(
                        "`algorithms`: {bad:?} is an HMAC algorithm; `keys.jwks` only serves public keys \
                         (HS* needs `keys.hs256_secret`)"
                    ));
                }
                let refresh = duration(
                    "keys.refresh",
                    k.refresh.as_deref(),
                    Duration::from_secs(300),
                )?;
                let cooldown = duration(
                    "keys.unknown_kid_cooldown",
                    k.unknown_kid_cooldown.as_deref(),
                    Duration::from_secs(30),
                )?;
                if refresh < Duration::from_secs(1) {
                    return Err("`keys.refresh` must be at least 1s".into());
                }
                Keys::Jwks(
                    jwks::Jwks::start(url, k.jwks_ca_file.as_deref(), refresh, cooldown).await?,
                )
            }
            (None, None, Some(secret)) => {
                if secret.len() < MIN_SECRET_LEN {
                    return Err(format!(
                        "`keys.hs256_secret` must be at least {MIN_SECRET_LEN} bytes"
                    ));
                }
                if hmac.count() != allowed.len() {
                    return Err(
                        "`algorithms`: with `keys.hs256_secret` only HS256, HS384 and HS512 apply"
                            .into(),
                    );
                }
                Keys::Static(Arc::new(Key {
                    decoding: DecodingKey::from_secret(secret.as_bytes()),
                    family: AlgorithmFamily::Hmac,
                    alg: None,
                }))
            }
            _ => {
                return Err("`keys`: set exactly one of `pem`, `jwks`, `hs256_secret`".into());
            }
        };

        let leeway = duration("leeway", config.leeway.as_deref(), Duration::from_secs(30))?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = leeway.as_secs();
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if config.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&config.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);

        let name = config.header.as_deref().unwrap_or("authorization");
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`header`: {name:?} is not a valid header name"))?;
        let bearer_required = header == header::AUTHORIZATION;
        let challenge = if bearer_required {
            HeaderValue::from_static("Bearer")
        } else {
            HeaderValue::try_from(format!("Bearer header=\"{}\"", header.as_str()))
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
        };

        let mut claims_to_headers = Vec::with_capacity(config.claims_to_metadata.len());
        let mut seen = HashSet::new();
        for (claim, name) in &config.claims_to_metadata {
            let target = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                format!("`claims_to_metadata.{claim}`: {name:?} is not a valid header name")
            })?;
            if target == header || !seen.insert(target.clone()) {
                return Err(format!(
                    "`claims_to_metadata.{claim}`: header `{target}` is the token header or already mapped"
                ));
            }
            claims_to_headers.push((claim.clone(), target));
        }
        Ok(Jwt {
            cache: cache::TokenCache::new(&config.cache),
            header,
            bearer_required,
            allowed,
            validation,
            keys,
            consumer_claim: config
                .consumer_claim
                .clone()
                .unwrap_or_else(|| "sub".into()),
            claims_to_headers,
            challenge,
        })
    }

    /// The token on the request: `Ok(None)` when absent, `Err` when malformed.
    fn token<'a>(&self, parts: &'a Parts) -> Result<Option<&'a str>, ()> {
        let mut values = parts.headers.get_all(&self.header).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(());
        }
        let value = value.to_str().map_err(|_| ())?.trim();
        let bearer = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        let token = match (bearer, self.bearer_required) {
            (Some(token), _) => token,
            // Another scheme (Basic…) is another method's credential.
            (None, true) => return Ok(None),
            (None, false) => value,
        };
        Ok((!token.is_empty()).then_some(token))
    }

    /// Checks the token; the claims, or why not (for the debug log).
    fn verify(&self, token: &str) -> Result<(Map<String, Value>, VerifiedBy), String> {
        let head = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        if !self.allowed.contains(&head.alg) {
            return Err(format!("alg {:?} not allowed", head.alg));
        }
        let (kid, key): (Option<Arc<str>>, Arc<Key>) = match &self.keys {
            Keys::Static(key) => (None, key.clone()),
            Keys::Jwks(jwks) => {
                let kid = head.kid.as_deref().ok_or("no `kid` in the token header")?;
                let key = jwks
                    .key(kid)
                    .ok_or_else(|| format!("unknown kid {kid:?}"))?;
                (Some(kid.into()), key)
            }
        };
        if !key.suits(head.alg) {
            return Err(format!("alg {:?} does not suit the key", head.alg));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![head.alg];
        jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map(|data| (data.claims, (kid, key)))
            .map_err(|e| e.to_string())
    }

    /// Whether the key that verified a cached token is still the one published
    /// under its `kid` (a JWKS refresh may have withdrawn or replaced it).
    fn still_published(&self, kid: Option<&str>, key: &Arc<Key>) -> bool {
        match (&self.keys, kid) {
            (Keys::Static(_), _) => true,
            (Keys::Jwks(jwks), Some(kid)) => jwks
                .key(kid)
                .is_some_and(|current| Arc::ptr_eq(&current, key)),
            (Keys::Jwks(_), None) => false,
        }
    }

    /// The identity a verified token names; it keeps the claims (for `allow`
    /// rules and the [`Claims`](crate::stage::Claims) extension).
    fn identity(&self, claims: Map<String, Value>) -> Result<Identity, String> {
        let consumer = match claims.get(&self.consumer_claim) {
            Some(Value::String(s))
                if !s.is_empty()
                    && s.len() <= MAX_CONSUMER_LEN
                    && !s.chars().any(char::is_control) =>
            {
                s.clone()
            }
            _ => return Err(format!("no usable `{}` claim", self.consumer_claim)),
        };
        let mut headers = Vec::with_capacity(self.claims_to_headers.len());
        for (claim, name) in &self.claims_to_headers {
            let text = match claims.get(claim) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
            };
            match HeaderValue::try_from(text) {
                Ok(value) => headers.push((name.clone(), value)),
                Err(_) => tracing::debug!(claim, "jwt: claim is not a valid header value; not set"),
            }
        }
        Ok(Identity {
            consumer,
            headers,
            claims: Some(Arc::new(claims)),
        })
    }
}

impl Method for Jwt {
    fn challenge(&self) -> &HeaderValue {
        &self.challenge
    }

    fn authenticate(&self, parts: &Parts) -> Outcome {
        let token = match self.token(parts) {
            Ok(None) => return Outcome::Absent,
            Ok(Some(token)) => token,
            Err(()) => return Outcome::Rejected(INVALID),
        };
        if let Some((identity, (kid, key))) = self.cache.get(token)
            && self.still_published(kid.as_deref(), &key)
        {
            return Outcome::Authenticated(identity);
        }
        let checked = self.verify(token).and_then(|(claims, by)| {
            let exp = claims.get("exp").and_then(Value::as_u64);
            self.identity(claims).map(|identity| (identity, by, exp))
        });
        match checked {
            Ok((identity, by, exp)) => {
                self.cache.put(token, (identity.clone(), by), exp);
                Outcome::Authenticated(identity)
            }
            Err(reason) => {
                tracing::debug!(%reason, "jwt: token refused");
                Outcome::Rejected(INVALID)
            }
        }
    }

    /// Keeps the token (upstreams may want it); removes client-sent copies
    /// of the claim headers, so only validated claims reach the upstream.
    fn strip(&self, parts: &mut Parts) {
        for (_, name) in &self.claims_to_headers {
            parts.headers.remove(name);
        }
    }
}
