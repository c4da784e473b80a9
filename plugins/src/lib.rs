//! Switchyard's plugin API and built-in plugins.
//!
//! A plugin is a tower layer over [`stage::HttpService`] with a typed, schema'd
//! configuration ([`Plugin::Config`]). Routes list plugins by name in YAML; the
//! [`registry::PluginConfig`] enum is the one place a plugin is registered, so
//! the config schema, the YAML parser and the stack builder all see the same list.
//!
//! The gateway depends on this crate, never the reverse: everything a plugin needs
//! from a request (the body type, the error shape) is defined here.

pub mod auth;
pub mod body_deadline;
pub mod cors;
pub mod error;
pub mod headers;
pub mod hex;
pub mod idempotency;
pub mod metrics;
pub mod outbound;
pub mod rate_limit;
pub mod redis_conn;
pub mod registry;
pub mod request_id;
pub mod stage;
pub mod traced;
pub mod units;
pub mod wasm;

pub use error::ErrorResponse;
pub use registry::{BuildContext, Plugin, PluginConfig, PluginError};
pub use stage::{Body, BoxError, ClientAddr, Consumer, HttpService, Request, Response};
