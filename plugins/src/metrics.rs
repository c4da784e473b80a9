//! What the built-in plugins decided, as Prometheus counters labelled by
//! route: why requests were refused, not only that they were (the HTTP
//! status counters cannot tell a missing credential from a forged one, or a
//! rate limit from an auth failure).
//!
//! - `switchyard_auth_requests_total{route, outcome}`: `authenticated`,
//!   `missing_credentials`, `invalid_credentials`, `forbidden` (authenticated,
//!   refused by `allow`), `unavailable` (a method could not decide, e.g. the
//!   `hmac` replay cache is full).
//! - `switchyard_rate_limit_decisions_total{route, policy, decision}`:
//!   `allowed`, `limited` (429), `unavailable` (a `fail_closed` shared limit
//!   whose backend could not decide: 503).
//! - `switchyard_idempotency_requests_total{route, outcome}`: keyed requests
//!   of the `idempotency` plugin: `stored` (the response was kept for
//!   replays), `replayed`, `conflict` (409, the key is in flight),
//!   `mismatch` (422, the key was used for another request), `not_stored`
//!   (5xx, transient 4xx, streamed or too large: a retry runs again),
//!   `rejected` (400, a missing or malformed key), `store_error` (the store
//!   failed: 503, or processed without idempotency under `fail_open`).
//! - `switchyard_wasm_plugin_requests_total{route, plugin, outcome}`: requests
//!   through a `wasm` plugin: `continued`, `local_response` (the filter
//!   answered), `failed` (a trap, its fuel spent, its memory cap, an
//!   invalid header it set: answered with the plugin's `on_error` status).
//! - `switchyard_wasm_plugin_failures_total{route, plugin, kind}`: those
//!   failures by kind: `trap`, `fuel`, `deadline`, `memory`, `abi`, `instantiate`.
//! - `switchyard_wasm_guest_metric{route, plugin, name}`: the metrics a
//!   filter defines (`proxy_define_metric`), as gauges.
//!
//! The gateway registers one [`PluginMetrics`] in its registry and hands it to
//! every plugin build through [`crate::registry::BuildContext`]; label values
//! are resolved once per plugin instance, so recording is one atomic add.
//! Built without a registry (unit tests), the counters count unseen.

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The plugins' counter families.
#[derive(Clone, Debug)]
pub struct PluginMetrics {
    auth: IntCounterVec,
    rate_limit: IntCounterVec,
    idempotency: IntCounterVec,
    wasm_requests: IntCounterVec,
    wasm_failures: IntCounterVec,
    wasm_guest: IntGaugeVec,
}

/// One `wasm` plugin's counters.
#[derive(Clone, Debug)]
pub struct WasmCounters {
    pub continued: IntCounter,
    pub local_response: IntCounter,
    pub failed: IntCounter,
    failures: IntCounterVec,
    guest: IntGaugeVec,
    route: String,
    plugin: String,
}

impl WasmCounters {
    /// Counts a failure of `kind` (`trap`, `fuel`, `deadline`, `memory`, `abi`, `instantiate`).
    pub fn failure(&self, kind: &str) {
        self.failed.inc();
        self.failures
            .with_label_values(&[&self.route, &self.plugin, kind])
            .inc();
    }

    /// The gauge of a metric the filter defined.
    pub fn guest(&self, name: &str) -> prometheus::IntGauge {
        self.guest
            .with_label_values(&[&self.route, &self.plugin, name])
    }
}

/// One `auth` instance's counters.
#[derive(Clone, Debug)]
pub struct AuthCounters {
    pub authenticated: IntCounter,
    pub missing_credentials: IntCounter,
    pub invalid_credentials: IntCounter,
    pub forbidden: IntCounter,
    pub unavailable: IntCounter,
}

/// One `rate_limit` instance's counters.
#[derive(Clone, Debug)]
pub struct RateLimitCounters {
    pub allowed: IntCounter,
    pub limited: IntCounter,
    pub unavailable: IntCounter,
}

/// One `idempotency` instance's counters (see the module docs for each outcome).
#[derive(Clone, Debug)]
pub struct IdempotencyCounters {
    pub stored: IntCounter,
    pub replayed: IntCounter,
    pub conflict: IntCounter,
    pub mismatch: IntCounter,
    pub not_stored: IntCounter,
    pub rejected: IntCounter,
    pub store_error: IntCounter,
}

// === impl PluginMetrics ===

impl PluginMetrics {
    /// The families, not registered anywhere yet.
    pub fn new() -> PluginMetrics {
        let auth = IntCounterVec::new(
            Opts::new(
                "auth_requests_total",
                "Requests seen by the auth plugin, by route and outcome.",
            ),
            &["route", "outcome"],
        )
        .expect("static metric definition");
        let rate_limit = IntCounterVec::new(
            Opts::new(
                "rate_limit_decisions_total",
                "Rate-limit decisions, by route, policy name and decision.",
            ),
            &["route", "policy", "decision"],
        )
        .expect("static metric definition");
        let idempotency = IntCounterVec::new(
            Opts::new(
                "idempotency_requests_total",
                "Requests carrying an idempotency key, by route and outcome.",
            ),
            &["route", "outcome"],
        )
        .expect("static metric definition");
        let wasm_requests = IntCounterVec::new(
            Opts::new(
                "wasm_plugin_requests_total",
                "Requests through a WebAssembly plugin, by route, plugin and outcome.",
            ),
            &["route", "plugin", "outcome"],
        )
        .expect("static metric definition");
        let wasm_failures = IntCounterVec::new(
            Opts::new(
                "wasm_plugin_failures_total",
                "WebAssembly plugin failures (trap, fuel, deadline, memory, abi, instantiate), by route and plugin.",
            ),
            &["route", "plugin", "kind"],
        )
        .expect("static metric definition");
        let wasm_guest = IntGaugeVec::new(
            Opts::new(
                "wasm_guest_metric",
                "Metrics defined by WebAssembly filters (proxy_define_metric), by route, plugin and name.",
            ),
            &["route", "plugin", "name"],
        )
        .expect("static metric definition");
        PluginMetrics {
            auth,
            rate_limit,
            idempotency,
            wasm_requests,
            wasm_failures,
            wasm_guest,
        }
    }

    /// Registers the families (once per registry).
    /// The names of its metrics (without the registry's prefix).
    pub fn names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        [
            self.auth.desc(),
            self.rate_limit.desc(),
            self.idempotency.desc(),
            self.wasm_requests.desc(),
            self.wasm_failures.desc(),
            self.wasm_guest.desc(),
        ]
        .into_iter()
        .flatten()
        .map(|d| d.fq_name.clone())
        .collect()
    }

    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.auth.clone()))?;
        registry.register(Box::new(self.rate_limit.clone()))?;
        registry.register(Box::new(self.idempotency.clone()))?;
        registry.register(Box::new(self.wasm_requests.clone()))?;
        registry.register(Box::new(self.wasm_failures.clone()))?;
        registry.register(Box::new(self.wasm_guest.clone()))
    }

    /// The counters of a `wasm` plugin named `plugin` on `route`.
    pub fn wasm(&self, route: &str, plugin: &str) -> WasmCounters {
        let outcome = |o: &str| self.wasm_requests.with_label_values(&[route, plugin, o]);
        WasmCounters {
            continued: outcome("continued"),
            local_response: outcome("local_response"),
            failed: outcome("failed"),
            failures: self.wasm_failures.clone(),
            guest: self.wasm_guest.clone(),
            route: route.to_owned(),
            plugin: plugin.to_owned(),
        }
    }

    /// The counters of an `auth` plugin on `route`.
    pub fn auth(&self, route: &str) -> AuthCounters {
        let outcome = |o: &str| self.auth.with_label_values(&[route, o]);
        AuthCounters {
            authenticated: outcome("authenticated"),
            missing_credentials: outcome("missing_credentials"),
            invalid_credentials: outcome("invalid_credentials"),
            forbidden: outcome("forbidden"),
            unavailable: outcome("unavailable"),
        }
    }

    /// The counters of a `rate_limit` plugin named `policy` on `route`.
    pub fn rate_limit(&self, route: &str, policy: &str) -> RateLimitCounters {
        let decision = |d: &str| self.rate_limit.with_label_values(&[route, policy, d]);
        RateLimitCounters {
            allowed: decision("allowed"),
            limited: decision("limited"),
            unavailable: decision("unavailable"),
        }
    }

    /// The counters of an `idempotency` plugin on `route`.
    pub fn idempotency(&self, route: &str) -> IdempotencyCounters {
        let outcome = |o: &str| self.idempotency.with_label_values(&[route, o]);
        IdempotencyCounters {
            stored: outcome("stored"),
            replayed: outcome("replayed"),
            conflict: outcome("conflict"),
            mismatch: outcome("mismatch"),
            not_stored: outcome("not_stored"),
            rejected: outcome("rejected"),
            store_error: outcome("store_error"),
        }
    }
}

impl Default for PluginMetrics {
    fn default() -> Self {
        PluginMetrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_labelled_by_route_and_outcome_and_exported_once_registered() {
        let metrics = PluginMetrics::new();
        let registry = Registry::new_custom(Some("switchyard".into()), None).unwrap();
        metrics.register(&registry).unwrap();
        metrics.auth("users").invalid_credentials.inc();
        metrics.rate_limit("users", "per-client").limited.inc_by(2);
        let families = registry.gather();
        let text: Vec<String> = families
            .iter()
            .flat_map(|f| {
                f.get_metric().iter().map(move |m| {
                    let labels: Vec<String> = m
                        .get_label()
                        .iter()
                        .map(|l| format!("{}={}", l.name(), l.value()))
                        .collect();
                    format!(
                        "{} {} {}",
                        f.name(),
                        labels.join(","),
                        m.get_counter().get_value()
                    )
                })
            })
            .collect();
        assert!(
            text.contains(
                &"switchyard_auth_requests_total outcome=invalid_credentials,route=users 1".into()
            ),
            "{text:?}"
        );
        assert!(
            text.contains(&"switchyard_rate_limit_decisions_total decision=limited,policy=per-client,route=users 2".into()),
            "{text:?}"
        );
    }
}
