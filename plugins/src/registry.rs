//! The plugin trait and the registry of built-in plugins.
//!
//! Registering a plugin is one line in the `plugins!` invocation below: it adds
//! a variant to [`PluginConfig`] (so YAML `- request_id: {...}` parses into the
//! plugin's typed config, and the JSON Schema documents it) and a branch to the
//! stack builder.

use std::future::Future;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::stage::HttpService;

/// Where a plugin is being built: what it may need besides its own config.
#[derive(Clone, Debug, Default)]
pub struct BuildContext {
    /// The config file's directory: relative paths in plugin configs
    /// (`keys_file`…) are relative to it.
    pub base_dir: std::path::PathBuf,
    /// The route's name, for state that must not be shared across routes.
    pub route: String,
    /// Where plugins count their outcomes (see [`crate::metrics`]).
    pub metrics: crate::metrics::PluginMetrics,
}

impl BuildContext {
    /// `path` resolved against the config file's directory.
    pub fn resolve(&self, path: &std::path::Path) -> std::path::PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }
}

/// A plugin: a tower layer over the pipeline's [`HttpService`] with a typed config.
pub trait Plugin: Sized + Send + Sync + 'static {
    /// The name used in YAML.
    const NAME: &'static str;
    /// The plugin's configuration: `deny_unknown_fields`, documented fields.
    type Config: DeserializeOwned + JsonSchema + Clone + std::fmt::Debug;

    /// Validates the config and prepares shared state. Runs once per config
    /// version, off the request path, so it may do I/O.
    fn new(config: Self::Config) -> impl Future<Output = Result<Self, PluginError>> + Send;

    /// Builds the plugin for one route. The default ignores the context;
    /// plugins with file paths or per-route state adjust their config first.
    fn build(
        config: Self::Config,
        ctx: &BuildContext,
    ) -> impl Future<Output = Result<Self, PluginError>> + Send {
        let _ = ctx;
        Self::new(config)
    }

    /// Wraps the next stage of the pipeline.
    fn wrap(&self, inner: HttpService) -> HttpService;

    /// Where the plugin sits in the stack: its registered phase, unless
    /// its config says otherwise (`wasm`'s `stage`).
    fn phase(config: &Self::Config, registered: Phase) -> Phase {
        let _ = config;
        registered
    }
}

/// A plugin could not be built from its config.
#[derive(Debug, thiserror::Error)]
#[error("plugin `{plugin}`: {message}")]
pub struct PluginError {
    pub plugin: &'static str,
    pub message: String,
}

/// Declares the registered plugins: one line each, `Variant(module::Type)`.
macro_rules! plugins {
    ($($(#[$doc:meta])* $variant:ident($ty:ty) => $phase:ident),* $(,)?) => {
        /// One entry of a route's `plugins:` list: the plugin's name as the only
        /// key, its configuration as the value.
        #[derive(Clone, Debug, Deserialize, JsonSchema)]
        #[serde(rename_all = "snake_case", deny_unknown_fields)]
        pub enum PluginConfig {
            $($(#[$doc])* $variant(<$ty as Plugin>::Config),)*
        }

        impl PluginConfig {
            /// The plugin's YAML name.
            pub fn name(&self) -> &'static str {
                match self { $(PluginConfig::$variant(_) => <$ty as Plugin>::NAME,)* }
            }

            /// Where the plugin sits in every stack.
            pub fn phase(&self) -> Phase {
                match self { $(PluginConfig::$variant(config) => <$ty as Plugin>::phase(config, Phase::$phase),)* }
            }

            /// Builds the plugin and wraps `inner` with it.
            pub async fn wrap(&self, inner: HttpService, ctx: &BuildContext) -> Result<HttpService, PluginError> {
                match self {
                    $(PluginConfig::$variant(config) => {
                        let plugin = <$ty>::build(config.clone(), ctx).await?;
                        Ok(plugin.wrap(inner))
                    })*
                }
            }
        }
    };
}

plugins! {
    /// Generates or propagates a request id header.
    RequestId(crate::request_id::RequestId) => Correlate,
    /// Sets, adds or removes request and response headers.
    Headers(crate::headers::Headers) => Rewrite,
    /// Cross-Origin Resource Sharing for browser clients (answers preflights).
    Cors(crate::cors::Cors) => Cors,
    /// Authentication (API keys, JWT, HMAC-signed requests, mTLS): 401/403 before the route runs.
    Auth(crate::auth::Auth) => Authenticate,
    /// Limits request rates per client IP, consumer, claim or header (429 with RateLimit headers).
    RateLimit(crate::rate_limit::RateLimit) => Limit,
    /// Replays the stored response of a retried unsafe request (`Idempotency-Key`) instead of running it twice.
    Idempotency(crate::idempotency::Idempotency) => Idempotency,
    /// A proxy-wasm filter (a WebAssembly module) run on the route's requests and responses.
    Wasm(crate::wasm::Wasm) => Extend,
}

impl PluginConfig {
    /// Whether the plugin may send the request to another path (a `wasm`
    /// filter rewriting `:path`): the route then matches it again.
    pub fn may_rewrite_path(&self) -> bool {
        matches!(self, PluginConfig::Wasm(_))
    }
}

/// Where a plugin runs in a route's stack, outermost first. Every stack is
/// built in this order whatever order the YAML lists plugins in (a config
/// cannot put a rate limit before authentication by mistake); plugins of the
/// same phase keep their listed order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// `request_id`: every response, rejections included, carries the id,
    /// and every later stage can log it.
    Correlate,
    /// `headers`: request edits happen before authentication (which then
    /// sets its claim headers over anything configured or sent), and response
    /// edits apply to every response, rejections included.
    Rewrite,
    /// `cors`: preflights carry no credentials, so they are answered before
    /// authentication; the CORS headers on a 401 or 429 let the browser
    /// show the error to the page.
    Cors,
    /// `wasm` with `stage: before_auth`: a user filter that prepares the
    /// request for authentication (token translation, a header mapped to
    /// another), after CORS preflights are answered.
    Prepare,
    /// `auth`: nothing past this point runs for an unauthenticated caller.
    Authenticate,
    /// `rate_limit`: after authentication, so limits can key on the consumer
    /// or a claim, and refused credentials spend no one's quota.
    Limit,
    /// `wasm`: user filters run for authenticated, admitted requests (they
    /// can read the consumer), before idempotency keys are reserved, so a
    /// filter's local answer reserves none.
    Extend,
    /// `idempotency`: innermost, right before the handler, so keys are
    /// scoped by the authenticated consumer, and requests refused by `auth`
    /// or a rate limit reserve no key (a 401 or 429 is never stored).
    Idempotency,
}

/// A route's effective plugin list: the top-level `defaults` first, in their
/// order, except that a route plugin of the same name replaces the default
/// in place (so a route can tighten a default rate limit or change its auth);
/// then the route's other plugins, in their order.
pub fn with_defaults(defaults: &[PluginConfig], route: &[PluginConfig]) -> Vec<PluginConfig> {
    let mut taken = vec![false; route.len()];
    let mut out = Vec::with_capacity(defaults.len() + route.len());
    for default in defaults {
        match route.iter().position(|p| p.name() == default.name()) {
            Some(i) => {
                taken[i] = true;
                out.push(route[i].clone());
            }
            None => out.push(default.clone()),
        }
    }
    out.extend(
        route
            .iter()
            .zip(&taken)
            .filter(|(_, t)| !**t)
            .map(|(p, _)| p.clone()),
    );
    out
}

/// `plugins` in the order they run: by [`Phase`], then as listed.
pub fn in_phase_order(plugins: &[PluginConfig]) -> Vec<&PluginConfig> {
    let mut ordered: Vec<&PluginConfig> = plugins.iter().collect();
    ordered.sort_by_key(|p| p.phase());
    ordered
}

/// Wraps `handler` with `plugins` in [`Phase`] order, the first being the
/// outermost (it sees the request first and the response last).
pub async fn build_stack(
    plugins: &[PluginConfig],
    handler: HttpService,
    ctx: &BuildContext,
) -> Result<HttpService, PluginError> {
    let mut service = handler;
    for plugin in in_phase_order(plugins).into_iter().rev() {
        service = crate::traced::traced(plugin.name(), plugin.wrap(service, ctx).await?);
    }
    Ok(service)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_id::RequestIdConfig;

    fn request_id(header: &str) -> PluginConfig {
        PluginConfig::RequestId(RequestIdConfig {
            header: header.into(),
        })
    }

    fn cors() -> PluginConfig {
        serde_json::from_value(serde_json::json!({"cors": {"allow_origins": ["*"]}})).unwrap()
    }

    fn headers() -> PluginConfig {
        serde_json::from_value(serde_json::json!({"headers": {}})).unwrap()
    }

    #[test]
    fn route_plugins_replace_defaults_of_the_same_name_in_place() {
        let defaults = [request_id("x-default"), cors()];
        let route = [headers(), request_id("x-route")];
        let names: Vec<_> = with_defaults(&defaults, &route)
            .iter()
            .map(PluginConfig::name)
            .collect();
        assert_eq!(names, ["request_id", "cors", "headers"]);
        match &with_defaults(&defaults, &route)[0] {
            PluginConfig::RequestId(c) => assert_eq!(c.header, "x-route"),
            other => panic!("{other:?}"),
        }
    }

    fn named(names: &[&str]) -> Vec<PluginConfig> {
        names
            .iter()
            .map(|name| {
                let config = match *name {
                    "cors" => serde_json::json!({"allow_origins": ["*"]}),
                    "auth" => serde_json::json!({"methods": [{"mtls": {}}]}),
                    "rate_limit" => serde_json::json!({"rate": "10/s"}),
                    "wasm" => serde_json::json!({"module": "filter.wasm"}),
                    "idempotency" => serde_json::json!({"store": {"local": {}}}),
                    _ => serde_json::json!({}),
                };
                serde_json::from_value(serde_json::json!({ *name: config })).unwrap()
            })
            .collect()
    }

    #[test]
    fn stacks_run_in_phase_order_whatever_the_listed_order() {
        let listed = named(&["rate_limit", "auth", "cors", "headers", "request_id"]);
        let names: Vec<_> = in_phase_order(&listed)
            .into_iter()
            .map(PluginConfig::name)
            .collect();
        assert_eq!(
            names,
            ["request_id", "headers", "cors", "auth", "rate_limit"]
        );
    }

    #[test]
    fn a_wasm_filter_runs_after_rate_limits_or_before_auth_by_its_stage() {
        let mut listed = named(&["wasm", "rate_limit", "auth", "cors", "idempotency"]);
        let names = |listed: &[PluginConfig]| -> Vec<&'static str> {
            in_phase_order(listed)
                .into_iter()
                .map(PluginConfig::name)
                .collect()
        };
        assert_eq!(
            names(&listed),
            ["cors", "auth", "rate_limit", "wasm", "idempotency"]
        );
        listed[0] = serde_json::from_value(
            serde_json::json!({"wasm": {"module": "filter.wasm", "stage": "before_auth"}}),
        )
        .unwrap();
        assert_eq!(
            names(&listed),
            ["cors", "wasm", "auth", "rate_limit", "idempotency"]
        );
    }

    #[test]
    fn plugins_of_one_phase_keep_their_listed_order() {
        let listed = named(&["rate_limit", "auth", "rate_limit"]);
        let ordered = in_phase_order(&listed);
        assert_eq!(ordered[0].name(), "auth");
        assert!(std::ptr::eq(ordered[1], &listed[0]));
        assert!(std::ptr::eq(ordered[2], &listed[2]));
    }

    #[test]
    fn without_overlap_defaults_come_first() {
        let names: Vec<_> = with_defaults(&[cors()], &[headers()])
            .iter()
            .map(PluginConfig::name)
            .collect();
        assert_eq!(names, ["cors", "headers"]);
    }
}
