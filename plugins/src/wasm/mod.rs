//! Plugin `wasm`: a proxy-wasm filter — a WebAssembly module written for
//! Envoy, Kong or APISIX with any proxy-wasm SDK — run in wasmtime on the
//! route's requests.
//!
//! The filter sees the request's headers (and body, when it has body
//! callbacks, up to `max_body`), can edit them, rewrite `:path`, or answer
//! itself (`proxy_send_local_response`); then the response's headers and
//! body on the way back. Each callback runs with a fuel budget and the
//! memory cap; a trap, spent fuel or the cap answers that request with
//! `on_error` (500) and counts in `switchyard_wasm_plugin_failures_total`;
//! the VM is replaced, the gateway goes on. Filters reach nothing outside
//! the ABI: no files, sockets or environment; timers, HTTP/gRPC callouts
//! and shared queues answer `Unimplemented` (docs/wasm-plugins.md).

mod abi;
mod callout;
mod guest_metrics;
mod host;
mod service;
mod shared;
mod stream;
mod vm;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::registry::{BuildContext, Plugin, PluginError};
use crate::stage::HttpService;
use crate::units::ByteSize;

/// Configuration of the `wasm` plugin.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WasmConfig {
    /// The filter: a binary module (`.wasm`), or WebAssembly text (`.wat`),
    /// relative to the config file. It must export
    /// `proxy_abi_version_0_2_1` or `proxy_abi_version_0_2_0`.
    pub module: PathBuf,
    /// The plugin's name in logs and metrics (default: the module's file
    /// name without its extension).
    #[serde(default)]
    pub name: Option<String>,
    /// The plugin configuration the filter reads in `proxy_on_configure`: a
    /// string is passed as is, anything else as JSON.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// The root context the filter's SDK creates (the `plugin_root_id`
    /// property; Envoy's `root_id`): SDKs that register root contexts by
    /// name (AssemblyScript's, C++'s) need it. Default: empty.
    #[serde(default)]
    pub root_id: String,
    /// Which shared-data store the filter uses (`proxy_get_shared_data`):
    /// plugins with the same `vm_id` share one, across routes and reloads
    /// (default: the module's file name).
    #[serde(default)]
    pub vm_id: Option<String>,
    /// Fuel per callback: about one unit per WebAssembly instruction. A
    /// callback that spends it all is stopped (a filter that loops forever
    /// fails that request only). Default 20 000 000 (a few milliseconds).
    #[serde(default = "default_fuel")]
    pub fuel: u64,
    /// The longest one callback may run, in time (fuel counts
    /// instructions, not their cost: a `memory.copy` of megabytes is one);
    /// to the nearest 5 ms. Default `50ms`.
    #[serde(default = "default_deadline")]
    pub deadline: String,
    /// The most linear memory one VM may have (default `16MiB`).
    #[serde(default = "default_max_memory")]
    pub max_memory: ByteSize,
    /// The most body a body callback sees, request or response; a longer
    /// body is refused (413 for a request, `on_error` for a response).
    /// Bodies are read only for filters that export body callbacks.
    /// Default `1MiB`.
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    /// The bound of the `vm_id`'s shared data, keys and values (default `1MiB`).
    #[serde(default = "default_shared_data")]
    pub max_shared_data: ByteSize,
    /// How many VMs run the filter: each runs one callback at a time
    /// (default: the number of CPUs).
    #[serde(default)]
    pub vms: Option<usize>,
    /// The upstreams the filter may call with `proxy_http_call`, by the
    /// cluster name it passes: base URLs (`http://authz.internal:8080`,
    /// `https://…` against the public roots). Any other name is refused:
    /// a filter reaches nothing it is not given. At most 8 calls per
    /// request. Default: none.
    #[serde(default)]
    pub http_callouts: std::collections::BTreeMap<String, String>,
    /// The longest a callout may take (the filter's own timeout when
    /// shorter); past it the filter gets an answer with no headers.
    /// Default `5s`.
    #[serde(default = "default_callout_timeout")]
    pub callout_timeout: String,
    /// Where the filter runs: `after_rate_limit` (the default: it sees
    /// only authenticated, admitted requests and can read the consumer) or
    /// `before_auth` (after CORS, before `auth`: a filter that prepares
    /// credentials, e.g. maps a legacy token to the header `auth` reads).
    #[serde(default)]
    pub stage: WasmStage,
    /// The status answered when the filter fails on a request (default 500).
    #[serde(default = "default_on_error")]
    pub on_error: u16,
}

/// Where a `wasm` plugin runs in the route's stack.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WasmStage {
    /// After `auth` and `rate_limit`, before `idempotency`.
    #[default]
    AfterRateLimit,
    /// After `request_id`, `headers` and `cors`, before `auth`.
    BeforeAuth,
}

fn default_fuel() -> u64 {
    20_000_000
}

fn default_deadline() -> String {
    "50ms".to_owned()
}

fn default_max_memory() -> ByteSize {
    ByteSize::Text("16MiB".into())
}

fn default_max_body() -> ByteSize {
    ByteSize::Text("1MiB".into())
}

fn default_shared_data() -> ByteSize {
    ByteSize::Text("1MiB".into())
}

fn default_callout_timeout() -> String {
    "5s".to_owned()
}

fn default_on_error() -> u16 {
    500
}

/// The built plugin.
pub struct Wasm {
    inner: Arc<service::Filter>,
}

impl std::fmt::Debug for Wasm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wasm")
            .field("name", &self.inner.name())
            .finish()
    }
}

impl Plugin for Wasm {
    const NAME: &'static str = "wasm";
    type Config = WasmConfig;

    async fn new(config: WasmConfig) -> Result<Self, PluginError> {
        Wasm::build(config, &BuildContext::default()).await
    }

    async fn build(config: WasmConfig, ctx: &BuildContext) -> Result<Self, PluginError> {
        let err = |message: String| PluginError {
            plugin: Self::NAME,
            message,
        };
        let path = ctx.resolve(&config.module);
        let bytes = tokio::fs::read(&path)
            .await
            .map_err(|e| err(format!("`module`: cannot read {}: {e}", path.display())))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "wasm".into());
        let name = config.name.clone().unwrap_or_else(|| stem.clone());
        let on_error = http::StatusCode::from_u16(config.on_error)
            .ok()
            .filter(|s| s.as_u16() >= 400)
            .ok_or_else(|| {
                err(format!(
                    "`on_error`: {} is not an error status",
                    config.on_error
                ))
            })?;
        if config.fuel == 0 {
            return Err(err("`fuel` must be more than 0".into()));
        }
        let max_memory = config.max_memory.bytes("max_memory").map_err(err)?;
        let max_body = config.max_body.bytes("max_body").map_err(err)?;
        let shared_max = config
            .max_shared_data
            .bytes("max_shared_data")
            .map_err(err)?;
        let vms = match config.vms {
            Some(0) => return Err(err("`vms` must be at least 1".into())),
            Some(n) => n.min(256),
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        let configuration = match &config.config {
            None => Bytes::new(),
            Some(serde_json::Value::String(s)) => Bytes::from(s.clone()),
            Some(other) => Bytes::from(serde_json::to_vec(other).expect("JSON serializes")),
        };
        let vm_id = config.vm_id.clone().unwrap_or(stem);
        let callout_timeout = humantime::parse_duration(&config.callout_timeout)
            .ok()
            .filter(|t| !t.is_zero())
            .ok_or_else(|| {
                err(format!(
                    "`callout_timeout`: {:?} is not a duration above 0, e.g. \"2s\"",
                    config.callout_timeout
                ))
            })?;
        let callouts = if config.http_callouts.is_empty() {
            None
        } else {
            Some(Arc::new(
                callout::Callouts::new(&config.http_callouts, callout_timeout, max_body)
                    .map_err(err)?,
            ))
        };
        let counters = ctx.metrics.wasm(&ctx.route, &name);
        let shared = Arc::new(shared::Shared {
            name: name.clone(),
            root_id: config.root_id.clone(),
            route: ctx.route.clone(),
            configuration,
            max_body,
            data: shared::SharedData::of(&vm_id, shared_max),
            metrics: guest_metrics::GuestMetrics::new(Some(counters.clone())),
            callouts,
            warned: Default::default(),
            tokens: Default::default(),
        });
        let deadline = humantime::parse_duration(&config.deadline)
            .ok()
            .filter(|d| !d.is_zero() && *d <= std::time::Duration::from_secs(10))
            .ok_or_else(|| {
                err(format!(
                    "`deadline`: {:?} is not a duration from 1ms to 10s, e.g. \"50ms\"",
                    config.deadline
                ))
            })?;
        let budget = vm::Budget {
            fuel: config.fuel,
            // The deadline is passed at the first tick past it.
            ticks: (deadline.as_millis() / vm::EPOCH_TICK.as_millis()) as u64 + 1,
            max_memory,
        };
        // Compiling and starting VMs is CPU work: off the async workers.
        let module_path = path.clone();
        let pool = tokio::task::spawn_blocking(move || {
            let module = vm::compile(&bytes)
                .map_err(|e| format!("`module` {}: {e}", module_path.display()))?;
            vm::Pool::new(module, shared, budget, vms)
                .map_err(|e| format!("`module` {}: {e}", module_path.display()))
        })
        .await
        .map_err(|e| err(format!("compiling the module panicked: {e}")))?
        .map_err(err)?;
        Ok(Wasm {
            inner: Arc::new(service::Filter::new(
                pool, name, on_error, max_body, counters,
            )),
        })
    }

    fn wrap(&self, inner: HttpService) -> HttpService {
        service::wrap(self.inner.clone(), inner)
    }

    fn phase(config: &WasmConfig, registered: crate::registry::Phase) -> crate::registry::Phase {
        match config.stage {
            WasmStage::AfterRateLimit => registered,
            WasmStage::BeforeAuth => crate::registry::Phase::Prepare,
        }
    }
}

#[cfg(test)]
mod tests;
