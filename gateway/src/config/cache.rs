//! The response cache's settings: the store (`cache:`) and each route's
//! policy (`routes[].cache`). See docs/caching.md.

use schemars::JsonSchema;
use serde::Deserialize;

use super::units::{ByteSize, HumanDuration};

/// The in-memory store every cached route shares.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheStoreConfig {
    /// Bytes held at most (keys, bodies, headers); the least useful
    /// entries are evicted past it. Default 64MiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    /// Largest answer stored; larger ones are served but not kept. Default 1MiB.
    #[serde(default = "default_max_entry")]
    pub max_entry_bytes: ByteSize,
    /// A Redis tier shared by every gateway instance: an answer one
    /// instance fetched is served by all, and invalidations and purges reach
    /// all of them (docs/caching.md). Off when absent.
    #[serde(default)]
    pub redis: Option<SharedCacheConfig>,
}

/// The cache's shared tier in Redis.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedCacheConfig {
    /// The Redis server: `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// The prefix of every key and of the invalidation channel; instances
    /// that share answers share it. Default `switchyard:cache:`.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// The bound of each Redis operation: a lookup that takes longer is a
    /// miss (the upstream is called), a store or an invalidation that does
    /// is counted as an error. Default 50ms.
    #[serde(default = "default_shared_timeout")]
    pub timeout: HumanDuration,
}

fn default_key_prefix() -> String {
    "switchyard:cache:".to_owned()
}

fn default_shared_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(50))
}

impl Default for CacheStoreConfig {
    fn default() -> Self {
        CacheStoreConfig {
            max_bytes: default_max_bytes(),
            max_entry_bytes: default_max_entry(),
            redis: None,
        }
    }
}

/// A route's cache policy: its unary GET answers (gRPC OK only) are kept
/// and served again. The key is the route, the split variant, the path,
/// the query (pairs sorted), the `vary` headers and, unless `public`, the
/// consumer. A client's `Cache-Control: no-store` bypasses the cache,
/// `no-cache` (or `max-age=0`) fetches a fresh answer; the upstream's
/// `cache-control` response metadata can forbid storing (`no-store`,
/// `no-cache`, `private`) or set the freshness (`s-maxage`, `max-age`,
/// `stale-while-revalidate`). Answers carry `Cache-Status` (RFC 9211), hits
/// their `Age`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheConfig {
    /// How long an answer is fresh (unless the upstream's `max-age` says).
    pub ttl: HumanDuration,
    /// How long past its freshness an answer is still served while one
    /// request refreshes it in the background. Default 0s.
    #[serde(default = "zero")]
    pub stale_while_revalidate: HumanDuration,
    /// Request headers whose values are part of the key (e.g.
    /// `accept-language`).
    #[serde(default)]
    pub vary: Vec<String>,
    /// One answer for every consumer: the consumer is left out of the key.
    /// Only for answers that do not depend on who asks. Default false.
    #[serde(default)]
    pub public: bool,
}

/// Cached answers a method's successful call makes obsolete
/// (`routes[].invalidate_cache`): every cached answer whose path starts
/// with one of `prefixes` is dropped when the call succeeds (REST or
/// GraphQL).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheInvalidation {
    /// The method (simple name, e.g. `UpdateUser`) of this route's service.
    pub method: String,
    /// Path prefixes, templated like event subjects: `{request.<field>}`,
    /// `{response.<field>}`, `{header.<name>}`, `{consumer}`, e.g.
    /// `/v1/users/{request.id}`. A value that renders empty leaves a
    /// shorter, broader prefix.
    pub prefixes: Vec<String>,
    /// Only the answers of this route (its `name`); of every cached route
    /// when omitted.
    #[serde(default)]
    pub route: Option<String>,
}

fn default_max_bytes() -> ByteSize {
    ByteSize::mib(64)
}

fn default_max_entry() -> ByteSize {
    ByteSize::mib(1)
}

fn zero() -> HumanDuration {
    HumanDuration::from_secs(0)
}
