//! Plugin `idempotency`: a client that retries an unsafe request (a POST
//! that timed out, a PATCH whose answer was lost) with the same
//! `Idempotency-Key` gets the first attempt's response again instead of a
//! second order, payment or update. Per the IETF draft "The Idempotency-Key
//! HTTP Header Field" and Stripe's behaviour.
//!
//! ```yaml
//! plugins:
//!   - idempotency:
//!       store: { redis: { url: "redis://127.0.0.1:6379", key_prefix: "switchyard:idem:" } }
//!       ttl: 24h                 # how long a stored response is replayed
//!       methods: [POST, PATCH]   # the default
//!       header: Idempotency-Key  # the default
//!       required: false          # true: 400 without the header
//!       max_body: 1MiB           # larger responses are passed through, not stored
//!       on_store_error: fail_closed   # or fail_open
//! ```
//!
//! # A keyed request
//!
//! On a covered method with the header: the body is read (at most
//! `max_request_body`, else 413) and fingerprinted with the method, path and
//! query (SHA-256); the key is reserved atomically in the store. Then:
//!
//! - **new key**: the request runs; a 2xx or 4xx response (except 408, 409,
//!   425, 429, 499) of a known length up to `max_body` is stored, with the
//!   `stored_headers`, for `ttl`. Otherwise — a 5xx (an upstream error, or
//!   the gateway's 502/503/504 for a transport failure or deadline), a
//!   retryable 4xx, a stream, a larger body, or the client going away — the
//!   reservation is deleted, so a retry runs again.
//! - **same fingerprint, completed**: the stored response, with
//!   `Idempotent-Replayed: true`; the upstream is not called.
//! - **same fingerprint, in flight**: 409 `ABORTED` with `Retry-After: 1`.
//! - **different fingerprint**: 422 `FAILED_PRECONDITION` (the key was
//!   reused for another request).
//!
//! Without the header the request runs normally (400 if `required`); other
//! methods are never touched.
//!
//! # Scope
//!
//! A key is scoped by route (the store's key names carry the route's name),
//! consumer (the one the route's `auth` set; anonymous requests share one
//! scope), method and path: the same key from two consumers, or on two
//! paths, is two keys.
//!
//! # Place in the stack
//!
//! Phase `Idempotency`, innermost: after `auth` (the consumer is known, and
//! refused credentials reserve nothing) and `rate_limit` (a refused request
//! reserves nothing, and a 429 is never stored), right before the handler.
//! Replays still pass through every outer plugin, so they carry a fresh
//! request id and rate-limit headers and count against rate limits.
//!
//! See `docs/idempotency.md` for the user's view and the failure modes.

pub mod config;
pub mod local;
pub mod record;
mod service;
pub mod store;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::metrics::{IdempotencyCounters, PluginMetrics};
use crate::registry::{BuildContext, Plugin, PluginError};
use crate::stage::HttpService;

pub use config::{
    ByteSize, IdempotencyConfig, LocalStoreConfig, OnStoreError, RedisStoreConfig, StoreConfig,
};
pub use record::{Fingerprint, IDEMPOTENT_REPLAYED, Record, StoredResponse};
pub use service::{IdempotencyService, storable};
pub use store::{ScopeKey, Store, StoreError};

use local::LocalStore;
use service::Shared;
use store::RedisStore;

/// The built plugin.
pub struct Idempotency {
    shared: Arc<Shared>,
}

impl Plugin for Idempotency {
    const NAME: &'static str = "idempotency";
    type Config = IdempotencyConfig;

    /// Redis key names carry the route's name, so two routes keep their
    /// keys apart even under one `key_prefix`.
    async fn build(config: IdempotencyConfig, ctx: &BuildContext) -> Result<Self, PluginError> {
        let counters = ctx.metrics.idempotency(&ctx.route);
        Self::create(&config, &ctx.route, counters)
    }

    async fn new(config: IdempotencyConfig) -> Result<Self, PluginError> {
        let counters = PluginMetrics::default().idempotency("");
        Self::create(&config, "", counters)
    }

    fn wrap(&self, inner: HttpService) -> HttpService {
        HttpService::new(IdempotencyService {
            inner,
            shared: self.shared.clone(),
        })
    }
}

impl Idempotency {
    /// Checks `config` and builds the store (Redis is not contacted yet).
    fn create(
        config: &IdempotencyConfig,
        route: &str,
        counters: IdempotencyCounters,
    ) -> Result<Self, PluginError> {
        let error = |message: String| PluginError {
            plugin: Self::NAME,
            message,
        };
        let settings = config.settings().map_err(error)?;
        let store = match &config.store {
            StoreConfig::Redis(redis) => {
                RedisStore::new(redis, route, settings.ttl, settings.in_flight_ttl)
                    .map(Store::Redis)
                    .map_err(error)?
            }
            StoreConfig::Local(local) => {
                if local.max_keys == 0 {
                    return Err(error("`store.local.max_keys` must be at least 1".into()));
                }
                let max_bytes = config::size(
                    "store.local.max_bytes",
                    local.max_bytes.as_ref(),
                    config::DEFAULT_LOCAL_MAX_BYTES,
                )
                .map_err(error)?;
                Store::Local(LocalStore::new(
                    local.max_keys,
                    max_bytes,
                    settings.ttl,
                    settings.in_flight_ttl,
                ))
            }
        };
        Ok(Idempotency {
            shared: Arc::new(Shared {
                settings,
                store,
                counters,
            }),
        })
    }
}
