//! What is stored under a key: the request's fingerprint, and either an
//! in-flight reservation or the completed response.
//!
//! # Encoding
//!
//! One line of JSON metadata, `\n`, then the response body's raw bytes (none
//! for a reservation):
//!
//! ```text
//! {"v":1,"state":"in_flight","fingerprint":"<64 hex>","token":"<32 hex>"}
//! {"v":1,"state":"completed","fingerprint":"<64 hex>","status":201,"headers":[["content-type","application/json"]]}\n<body>
//! ```
//!
//! Readable with `redis-cli GET` (the metadata is JSON, and response bodies
//! usually are), with no base64 inflation of the body. JSON escapes newlines
//! in strings, so the first `\n` always ends the metadata. A reservation's
//! `token` is random per request: only the request that reserved a key may
//! complete or release it (the store compares the whole in-flight value).

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex;
use crate::stage::{Response, full_body};

/// The response header marking a replayed response.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The encoding's version: a record of another version is an error.
const VERSION: u32 = 1;

/// SHA-256 of a request's method, path and query, and body: a key reused
/// for anything else is a mismatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// A stored record.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    /// The first request with the key is running; `token` identifies it.
    InFlight {
        fingerprint: Fingerprint,
        token: u128,
    },
    /// The first request finished with a storable response.
    Completed(Arc<StoredResponse>),
}

/// A response kept for replays.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredResponse {
    pub fingerprint: Fingerprint,
    pub status: StatusCode,
    /// Only the configured `stored_headers`, in response order.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum State {
    InFlight,
    Completed,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    v: u32,
    state: State,
    fingerprint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    headers: Vec<(String, String)>,
}

// === impl Fingerprint ===

impl Fingerprint {
    /// The fingerprint of a request: method, path and query (query
    /// parameters may carry request fields), and body, NUL-separated (none
    /// of the first two may contain one).
    pub fn of(method: &Method, uri: &Uri, body: &[u8]) -> Fingerprint {
        let mut hash = Sha256::new();
        hash.update(method.as_str().as_bytes());
        hash.update([0]);
        hash.update(uri.path().as_bytes());
        if let Some(query) = uri.query() {
            hash.update(b"?");
            hash.update(query.as_bytes());
        }
        hash.update([0]);
        hash.update(body);
        Fingerprint(hash.finalize().into())
    }
}

// === impl Record ===

impl Record {
    /// The fingerprint of the request that created the record.
    pub fn fingerprint(&self) -> &Fingerprint {
        match self {
            Record::InFlight { fingerprint, .. } => fingerprint,
            Record::Completed(stored) => &stored.fingerprint,
        }
    }

    /// Bytes for the store (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let (meta, body) = match self {
            Record::InFlight { fingerprint, token } => (
                Meta {
                    v: VERSION,
                    state: State::InFlight,
                    fingerprint: hex::encode(&fingerprint.0),
                    token: Some(hex::encode(&token.to_be_bytes())),
                    status: None,
                    headers: Vec::new(),
                },
                &[][..],
            ),
            Record::Completed(stored) => (
                Meta {
                    v: VERSION,
                    state: State::Completed,
                    fingerprint: hex::encode(&stored.fingerprint.0),
                    token: None,
                    status: Some(stored.status.as_u16()),
                    headers: stored
                        .headers
                        .iter()
                        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.into())))
                        .collect(),
                },
                &stored.body[..],
            ),
        };
        // A struct of strings and numbers always serializes.
        let mut out = serde_json::to_vec(&meta).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(body);
        out
    }

    /// Parses what [`Record::encode`] wrote; anything else is an error
    /// (another program's value under our prefix, another version).
    pub fn decode(bytes: Bytes) -> Result<Record, String> {
        let newline = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("no metadata line")?;
        let meta: Meta = serde_json::from_slice(&bytes[..newline])
            .map_err(|e| format!("metadata is not a record: {e}"))?;
        if meta.v != VERSION {
            return Err(format!("record version {} (expected {VERSION})", meta.v));
        }
        let fingerprint = hex::decode32(&meta.fingerprint)
            .map(Fingerprint)
            .ok_or("bad fingerprint")?;
        match meta.state {
            State::InFlight => {
                let token = meta
                    .token
                    .as_deref()
                    .and_then(decode_token)
                    .ok_or("bad token")?;
                Ok(Record::InFlight { fingerprint, token })
            }
            State::Completed => {
                let status = meta
                    .status
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .ok_or("bad status")?;
                let headers = meta
                    .headers
                    .iter()
                    .map(|(n, v)| Ok((HeaderName::try_from(n)?, HeaderValue::try_from(v)?)))
                    .collect::<Result<_, http::Error>>()
                    .map_err(|e| format!("bad header: {e}"))?;
                Ok(Record::Completed(Arc::new(StoredResponse {
                    fingerprint,
                    status,
                    headers,
                    body: bytes.slice(newline + 1..),
                })))
            }
        }
    }
}

fn decode_token(text: &str) -> Option<u128> {
    if text.len() != 32 {
        return None;
    }
    text.as_bytes().chunks(2).try_fold(0u128, |acc, pair| {
        let byte = hex::digit(pair[0])? << 4 | hex::digit(pair[1])?;
        Some(acc << 8 | u128::from(byte))
    })
}

// === impl StoredResponse ===

impl StoredResponse {
    /// The response sent again, marked `Idempotent-Replayed: true`.
    pub fn replay(&self) -> Response {
        let mut response = http::Response::new(full_body(self.body.clone()));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        response
    }

    /// Bytes this response costs a memory store (body, headers, bookkeeping).
    pub fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        self.body.len() + headers + 128
    }
}
