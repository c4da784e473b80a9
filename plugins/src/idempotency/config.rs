//! The `idempotency` plugin's YAML configuration and its validation into
//! [`Settings`], the form the request path uses (parsed durations, sizes,
//! methods and header names: nothing is parsed per request).

use std::time::Duration;

use http::{HeaderName, Method};
use schemars::JsonSchema;
use serde::Deserialize;

pub use crate::units::ByteSize;

/// Configuration of the `idempotency` plugin.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// Where keys and stored responses live: `{redis: {url, key_prefix,
    /// timeout}}` (shared by every gateway instance using that Redis) or
    /// `{local: {max_keys, max_bytes}}` (this process's memory: a single
    /// instance or development only, since another instance would not see
    /// the keys). Required: a default could silently be the wrong one.
    pub store: StoreConfig,
    /// How long a completed response is kept and replayed, from the moment it
    /// was stored: a duration such as `24h` (the default), at least `1s`.
    #[serde(default)]
    pub ttl: Option<String>,
    /// How long a key stays reserved while its first request runs: longer
    /// than the route's slowest request (its `timeout`). It only matters when
    /// a gateway dies mid-request: the reservation then frees itself after
    /// this long. Default `1m`; at most `ttl`.
    #[serde(default)]
    pub in_flight_ttl: Option<String>,
    /// The methods whose requests honour the key. Default: `[POST, PATCH]`.
    /// Safe methods (GET, HEAD, OPTIONS, TRACE) are refused: they need no key.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// The request header carrying the key. Default: `Idempotency-Key`.
    #[serde(default = "default_header")]
    pub header: String,
    /// Whether a covered request without the header is refused (400).
    /// Default: false (it is processed normally, without idempotency).
    #[serde(default)]
    pub required: bool,
    /// The longest key accepted, in bytes (1 to 1024). Default: 255.
    #[serde(default = "default_max_key_length")]
    pub max_key_length: usize,
    /// The largest response body stored for replays: a size such as `1MiB`
    /// (the default) or a number of bytes. A larger response is passed
    /// through to the client but not stored, so a retry runs again.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// The largest request body read to fingerprint a keyed request: `4MiB`
    /// by default (the gateway's default request limit); larger keyed
    /// requests get 413. Set it to the route's `max_request_body`.
    #[serde(default)]
    pub max_request_body: Option<ByteSize>,
    /// The response headers stored with the body and sent again on replays,
    /// by lower-case name; a name ending in `*` is a prefix. Default:
    /// `[content-type, content-language, location, grpc-metadata-*]`.
    /// Hop-by-hop headers and `content-length` cannot be listed.
    #[serde(default = "default_stored_headers")]
    pub stored_headers: Vec<String>,
    /// When the store cannot answer: `fail_closed` (the default) answers 503
    /// with `Retry-After`, so a retry never runs twice; `fail_open` processes
    /// the request without idempotency (counted as `store_error`).
    #[serde(default)]
    pub on_store_error: OnStoreError,
}

/// Where idempotency records live.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StoreConfig {
    /// In Redis, shared by every gateway instance using it.
    Redis(RedisStoreConfig),
    /// In this process's memory, bounded: one instance or development only.
    Local(LocalStoreConfig),
}

/// `store: {redis: {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisStoreConfig {
    /// The Redis server: `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key (then the route's name). Default:
    /// `switchyard:idem:`.
    #[serde(default = "default_prefix")]
    pub key_prefix: String,
    /// How long one store operation may take (connecting included) before
    /// the store counts as failed for it: a duration such as `250ms` (the
    /// default).
    #[serde(default)]
    pub timeout: Option<String>,
}

/// `store: {local: {...}}`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalStoreConfig {
    /// The most keys kept at once (≥ 1). Default: 10000.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// The most response bytes kept at once: a size such as `64MiB` (the
    /// default). When full, the stored responses closest to expiry are
    /// dropped first (their keys can then run again); keys in flight never.
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
}

/// What a keyed request does when the store fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreError {
    /// Answer 503 `UNAVAILABLE` with `Retry-After: 1`.
    #[default]
    FailClosed,
    /// Process the request without idempotency.
    FailOpen,
}

/// Which response headers are stored for replays.
#[derive(Clone, Debug)]
pub struct HeaderFilter {
    exact: Vec<HeaderName>,
    prefixes: Vec<String>,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub ttl: Duration,
    pub in_flight_ttl: Duration,
    pub methods: Vec<Method>,
    pub header: HeaderName,
    /// `header` as configured, for messages (`Idempotency-Key`).
    pub header_label: String,
    pub required: bool,
    pub max_key_length: usize,
    pub max_body: usize,
    pub max_request_body: usize,
    pub stored_headers: HeaderFilter,
    pub on_store_error: OnStoreError,
}

/// The default `ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);
/// The default `in_flight_ttl`.
pub const DEFAULT_IN_FLIGHT_TTL: Duration = Duration::from_secs(60);
/// The default `max_body`.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;
/// The default `max_request_body` (the gateway's default request limit).
pub const DEFAULT_MAX_REQUEST_BODY: usize = 4 << 20;
/// The default local `max_bytes`.
pub const DEFAULT_LOCAL_MAX_BYTES: usize = 64 << 20;
/// The longest `ttl` accepted.
const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Headers that describe one connection or one framing, never a stored response.
const UNSTORABLE: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
    "idempotent-replayed",
];

fn default_methods() -> Vec<String> {
    vec!["POST".to_owned(), "PATCH".to_owned()]
}

fn default_header() -> String {
    "Idempotency-Key".to_owned()
}

fn default_max_key_length() -> usize {
    255
}

fn default_stored_headers() -> Vec<String> {
    [
        "content-type",
        "content-language",
        "location",
        "grpc-metadata-*",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn default_prefix() -> String {
    "switchyard:idem:".to_owned()
}

fn default_max_keys() -> usize {
    10_000
}

// === impl IdempotencyConfig ===

impl IdempotencyConfig {
    /// Checks every field; the message names the field at fault.
    pub fn settings(&self) -> Result<Settings, String> {
        let ttl = duration("ttl", self.ttl.as_deref(), DEFAULT_TTL)?;
        if !(Duration::from_secs(1)..=MAX_TTL).contains(&ttl) {
            return Err("`ttl` must be between 1s and 365d".to_owned());
        }
        let in_flight_ttl = duration(
            "in_flight_ttl",
            self.in_flight_ttl.as_deref(),
            DEFAULT_IN_FLIGHT_TTL.min(ttl),
        )?;
        if in_flight_ttl < Duration::from_millis(1) || in_flight_ttl > ttl {
            return Err("`in_flight_ttl` must be at least 1ms and at most `ttl`".to_owned());
        }
        if !(1..=1024).contains(&self.max_key_length) {
            return Err("`max_key_length` must be between 1 and 1024".to_owned());
        }
        Ok(Settings {
            ttl,
            in_flight_ttl,
            methods: methods(&self.methods)?,
            header: HeaderName::try_from(self.header.as_str())
                .map_err(|_| format!("`header`: {:?} is not a header name", self.header))?,
            header_label: self.header.clone(),
            required: self.required,
            max_key_length: self.max_key_length,
            max_body: size("max_body", self.max_body.as_ref(), DEFAULT_MAX_BODY)?,
            max_request_body: size(
                "max_request_body",
                self.max_request_body.as_ref(),
                DEFAULT_MAX_REQUEST_BODY,
            )?,
            stored_headers: HeaderFilter::new(&self.stored_headers)?,
            on_store_error: self.on_store_error,
        })
    }
}

/// `text` as a duration (`default` when absent), errors naming `field`.
pub fn duration(field: &str, text: Option<&str>, default: Duration) -> Result<Duration, String> {
    match text {
        None => Ok(default),
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            format!(
                "`{field}`: invalid duration {text:?} ({e}); expected e.g. \"250ms\" or \"24h\""
            )
        }),
    }
}

/// `size` in bytes (`default` when absent), errors naming `field`.
pub fn size(field: &str, size: Option<&ByteSize>, default: usize) -> Result<usize, String> {
    let n = match size {
        None => return Ok(default),
        Some(size) => size.bytes(field)?,
    };
    match n {
        0 => Err(format!("`{field}` must be more than 0 bytes")),
        n => Ok(n),
    }
}

fn methods(names: &[String]) -> Result<Vec<Method>, String> {
    if names.is_empty() {
        return Err("`methods` is empty: list at least one, e.g. [POST]".to_owned());
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let method = Method::from_bytes(name.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("`methods`: {name:?} is not an HTTP method"))?;
        if method.is_safe() {
            return Err(format!(
                "`methods`: {method} is a safe method and needs no idempotency key"
            ));
        }
        if !out.contains(&method) {
            out.push(method);
        }
    }
    Ok(out)
}

// === impl HeaderFilter ===

impl HeaderFilter {
    /// From `stored_headers` entries (`name`, or `prefix*`).
    pub fn new(entries: &[String]) -> Result<HeaderFilter, String> {
        let mut filter = HeaderFilter {
            exact: Vec::new(),
            prefixes: Vec::new(),
        };
        for entry in entries {
            let lower = entry.to_ascii_lowercase();
            let (name, prefix) = match lower.strip_suffix('*') {
                Some(prefix) => (prefix, true),
                None => (lower.as_str(), false),
            };
            let bad = || format!("`stored_headers`: {entry:?} is not a header name or prefix*");
            if name.is_empty() {
                return Err(bad());
            }
            HeaderName::try_from(name).map_err(|_| bad())?;
            if UNSTORABLE
                .iter()
                .any(|u| u.starts_with(name) && (prefix || *u == name))
            {
                return Err(format!(
                    "`stored_headers`: {entry:?} would store a hop-by-hop or framing header"
                ));
            }
            if prefix {
                filter.prefixes.push(name.to_owned());
            } else {
                filter
                    .exact
                    .push(HeaderName::try_from(name).map_err(|_| bad())?);
            }
        }
        Ok(filter)
    }

    /// Whether `name` is stored.
    pub fn allows(&self, name: &HeaderName) -> bool {
        self.exact.contains(name) || self.prefixes.iter().any(|p| name.as_str().starts_with(p))
    }
}
