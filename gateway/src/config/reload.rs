//! `reload:`: how a running gateway picks up a changed config file.

use schemars::JsonSchema;
use serde::Deserialize;

use super::units::HumanDuration;

/// Config reload. A reload builds the whole next version (protos, routes,
/// plugin stacks) beside the running one and swaps it in only when all of
/// it compiled; a file that does not changes nothing. Besides the watch,
/// `SIGHUP` and `POST /admin/reload` reload at once.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reload {
    /// How often the config file and the `.proto` files it names are read
    /// for changes (their bytes, not their mtimes); `0s` turns the watch
    /// off. Default 2s.
    #[serde(default = "default_watch_interval")]
    pub watch_interval: HumanDuration,
    /// Refuse a reload that would stop exposing a method the running
    /// version exposes (REST, gRPC, WebSocket or GraphQL); also set by
    /// `switchyard run --strict-reload`.
    #[serde(default)]
    pub strict: bool,
}

impl Default for Reload {
    fn default() -> Self {
        Reload {
            watch_interval: default_watch_interval(),
            strict: false,
        }
    }
}

fn default_watch_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(2))
}
