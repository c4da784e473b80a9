//! Configuration: the YAML model, loading with located errors, and the
//! JSON Schema generated from the model.

pub mod access_log;
pub mod balancing;
pub mod cache;
pub mod edge;
pub mod events;
pub mod graphql;
pub mod load;
pub mod model;
pub mod proxy;
pub mod reference;
pub mod reload;
pub mod shedding;
pub mod span;
pub mod tls;
pub mod tracing;
pub mod units;
pub mod webhooks;

pub use access_log::AccessLogConfig;
pub use balancing::{Balance, HealthCheck, Outlier};
pub use edge::{EdgeRule, Split};
pub use load::{ConfigError, ConfigSource, LoadedConfig, load, parse};
pub use model::*;
pub use shedding::LoadShedding;
pub use span::KeyPath;
pub use tls::{ClientAuth, ListenerTls, TlsCertificate, UnknownServerName, UpstreamTls};

/// The JSON Schema of the config file, generated from the types.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Config);
    serde_json::to_value(schema).unwrap_or_default()
}

/// The schema as committed in `schemas/gateway.schema.json` (pretty, newline-terminated).
pub fn json_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
