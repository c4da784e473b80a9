//! Config for how an upstream's endpoints share its calls: the balancing
//! policy, passive outlier ejection and active health checks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units::HumanDuration;

/// How a call chooses among an upstream's endpoints. Endpoints that are
/// ejected or failing health checks are skipped unless all of them are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Power of two choices: the endpoint with fewer calls in flight of two
    /// picked at random. Adapts to slow endpoints. The default.
    #[default]
    P2c,
    /// Each endpoint in turn.
    RoundRobin,
}

/// Passive outlier ejection: an endpoint whose calls fail in transport (no
/// connection, reset, closed) or with UNAVAILABLE `consecutive_failures`
/// times in a row is passed over for `base_ejection` × 2^(times ejected
/// before), at most `max_ejection`. Any other answer resets the count. When it
/// returns, one more failure ejects it again; after `max_ejection` without an
/// ejection the doubling starts over. Ejected endpoints are still used when
/// every endpoint is ejected.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outlier {
    /// Failures in a row that eject an endpoint; `0` disables ejection. Default 5.
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    /// The first ejection's length. Default 5s.
    #[serde(default = "default_base_ejection")]
    pub base_ejection: HumanDuration,
    /// The longest ejection. Default 60s.
    #[serde(default = "default_max_ejection")]
    pub max_ejection: HumanDuration,
}

/// Active health checks with the standard `grpc.health.v1.Health/Check`, on
/// a connection of their own to each endpoint. Endpoints start healthy.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// Time between checks of an endpoint. Default 5s.
    #[serde(default = "default_health_interval")]
    pub interval: HumanDuration,
    /// A check not answered within this fails. Default 1s.
    #[serde(default = "default_health_timeout")]
    pub timeout: HumanDuration,
    /// The `service` asked about; `""` (the default) asks about the server as a whole.
    #[serde(default)]
    pub service: String,
    /// Failed checks in a row (not SERVING, an error or no answer) that make
    /// a healthy endpoint unhealthy. Default 2.
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
    /// SERVING answers in a row that make an unhealthy endpoint healthy. Default 1.
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
}

fn default_consecutive_failures() -> u32 {
    5
}

fn default_base_ejection() -> HumanDuration {
    HumanDuration::from_secs(5)
}

fn default_max_ejection() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_health_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}

fn default_health_timeout() -> HumanDuration {
    HumanDuration::from_secs(1)
}

fn default_unhealthy_threshold() -> u32 {
    2
}

fn default_healthy_threshold() -> u32 {
    1
}

impl Default for Outlier {
    fn default() -> Self {
        Outlier {
            consecutive_failures: default_consecutive_failures(),
            base_ejection: default_base_ejection(),
            max_ejection: default_max_ejection(),
        }
    }
}
