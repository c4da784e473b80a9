//! JWK Set keys: fetched over HTTP, cached by `kid`, refreshed in the background.
//!
//! - The set is fetched once when the plugin is built. If that fails (the
//!   identity provider is down, a typo in the URL), the gateway **warns and
//!   starts with no keys** rather than refusing the config: every token is
//!   refused (401) until a fetch succeeds. Retries happen every `refresh`, and
//!   sooner on traffic, through the unknown-`kid` path below.
//! - A background task refetches every `refresh`. A failed fetch keeps the
//!   cached keys: an identity provider outage does not log anyone out.
//! - A token naming a `kid` not in the cache is refused, and wakes the task
//!   for one refetch, at most once per `unknown_kid_cooldown`; wake-ups while
//!   a fetch is queued collapse into it. Random `kid`s cannot cause a fetch
//!   storm. (Authentication runs without I/O on the request path, so the
//!   request that revealed the new `kid` is not held for the fetch: the client
//!   retries. Providers publish keys before signing with them, so the periodic
//!   refresh normally has them first.)
//! - Only public keys are taken (`RSA`, `EC`, `OKP`): `oct` keys, `use: enc`
//!   keys, keys without a `kid` and keys naming an unsupported `alg` are
//!   skipped. A successful fetch replaces the whole cache.
//! - `https://` URLs are fetched over TLS (rustls, ring), the server checked
//!   against the public web roots built into the gateway or, with
//!   `jwks_ca_file`, against that file's CAs only; `http://` stays allowed
//!   for an identity provider on a trusted network.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{StatusCode, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::AbortHandle;

use super::Key;

#[cfg(test)]
mod tests;

/// Longest wait for one fetch (connect, headers and body).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWK Set accepted.
const MAX_BODY: usize = 1 << 20;

type KeyMap = HashMap<String, Arc<Key>>;

/// A JWKS-backed key cache; stops its refresh task when dropped.
pub(super) struct Jwks {
    state: Arc<State>,
    task: AbortHandle,
}

struct State {
    url: Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    keys: RwLock<Arc<KeyMap>>,
    cooldown: Duration,
    /// When an unknown `kid` last triggered a refetch.
    last_unknown: Mutex<Option<Instant>>,
    wake: Notify,
}

#[derive(Deserialize)]
struct Set {
    keys: Vec<Value>,
}

// === impl Jwks ===

impl Jwks {
    /// Checks the URL, fetches the set once (a failure is logged, not
    /// returned) and starts the refresh task.
    pub(super) async fn start(
        url: &str,
        ca_file: Option<&Path>,
        refresh: Duration,
        cooldown: Duration,
    ) -> Result<Jwks, String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| format!("`keys.jwks`: {url:?} is not a URL"))?;
        match uri.scheme_str() {
            Some("http" | "https") if uri.authority().is_some() => {}
            _ => {
                return Err(format!(
                    "`keys.jwks`: {url:?} must be an absolute https:// (or http://) URL"
                ));
            }
        }
        let tls = crate::outbound::tls_config(ca_file, "keys.jwks_ca_file")?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let state = Arc::new(State {
            url: uri,
            client: Client::builder(TokioExecutor::new()).build(connector),
            keys: RwLock::new(Arc::new(KeyMap::new())),
            cooldown,
            last_unknown: Mutex::new(None),
            wake: Notify::new(),
        });
        match state.fetch().await {
            Ok(n) => tracing::info!(url, keys = n, "jwt: JWK Set loaded"),
            Err(e) => tracing::warn!(
                url,
                error = %e,
                "jwt: cannot fetch the JWK Set; starting with no keys (every token refused) and retrying"
            ),
        }
        let task = tokio::spawn(refresh_loop(state.clone(), refresh)).abort_handle();
        Ok(Jwks { state, task })
    }

    /// The cached key `kid`; on a miss, asks for a refetch (single-flight,
    /// at most once per cooldown).
    pub(super) fn key(&self, kid: &str) -> Option<Arc<Key>> {
        let keys = self
            .state
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(key) = keys.get(kid) {
            return Some(key.clone());
        }
        self.state.unknown_kid();
        None
    }
}

impl Drop for Jwks {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn refresh_loop(state: Arc<State>, refresh: Duration) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(refresh) => {}
            () = state.wake.notified() => {}
        }
        match state.fetch().await {
            Ok(n) => tracing::debug!(url = %state.url, keys = n, "jwt: JWK Set refreshed"),
            Err(e) => tracing::warn!(
                url = %state.url,
                error = %e,
                "jwt: cannot refresh the JWK Set; keeping the cached keys"
            ),
        }
    }
}

// === impl State ===

impl State {
    fn unknown_kid(&self) {
        let mut last = self.last_unknown.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.cooldown) {
            return;
        }
        *last = Some(now);
        // Stores at most one permit: wake-ups before the task runs collapse.
        self.wake.notify_one();
    }

    /// Fetches the set and replaces the cache; the number of keys taken.
    async fn fetch(&self) -> Result<usize, String> {
        let request = http::Request::get(self.url.clone())
            .header(header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let body = tokio::time::timeout(FETCH_TIMEOUT, async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("request failed: {e}"))?;
            if response.status() != StatusCode::OK {
                return Err(format!("status {}", response.status()));
            }
            Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| format!("reading the body: {e}"))
        })
        .await
        .map_err(|_| format!("no answer within {FETCH_TIMEOUT:?}"))??;
        let keys = parse_set(&body)?;
        let n = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(n)
    }
}

/// The usable public keys of a JWK Set, by `kid`.
fn parse_set(body: &[u8]) -> Result<KeyMap, String> {
    let set: Set = serde_json::from_slice(body).map_err(|e| format!("not a JWK Set: {e}"))?;
    let mut keys = KeyMap::new();
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            tracing::debug!("jwt: skipping a JWK that does not parse");
            continue;
        };
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(a) => match a.to_string().parse::<Algorithm>() {
                Ok(alg) => Some(alg),
                Err(_) => continue,
            },
        };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        let family = decoding.family();
        // Never a shared secret from a URL (and never HS with a public key).
        if family == AlgorithmFamily::Hmac || alg.is_some_and(|a| a.family() != family) {
            continue;
        }
        keys.insert(
            kid,
            Arc::new(Key {
                decoding,
                family,
                alg,
            }),
        );
    }
    Ok(keys)
}
