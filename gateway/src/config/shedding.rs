//! `limits.load_shedding`: the edge's admission control (docs/load-shedding.md).

use schemars::JsonSchema;
use serde::Deserialize;

use super::units::HumanDuration;

/// Admission control at the edge. Each worker measures how late its own
/// event loop runs a task that asked to wake at a given time (the time a
/// request that is ready waits for the CPU: the gateway's queueing delay)
/// and, while that delay stays above `target`, answers a share of new
/// requests at once with 503 `Retry-After: 1` (gRPC: `UNAVAILABLE`) instead
/// of queueing them. The share follows RFC 8033 (PIE): it grows with the
/// delay above the target and with the delay's growth, gently at first,
/// and decays once the delay is back under half the target. Requests
/// already admitted, open streams and the admin listener are never shed.
/// A reload applies a change within one `interval`.
#[derive(Clone, Debug, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LoadShedding {
    /// Shed load when the delay stays above the target. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The queueing delay the gateway keeps under by shedding. Default 20ms.
    #[serde(default = "default_target")]
    pub target: HumanDuration,
    /// How often each worker samples its delay and updates the share it
    /// sheds (PIE's `T_UPDATE`). Default 15ms.
    #[serde(default = "default_interval")]
    pub interval: HumanDuration,
    /// How long a delay above the target is tolerated as a burst before any
    /// request is shed (PIE's `MAX_BURST`). Default 150ms.
    #[serde(default = "default_burst")]
    pub burst: HumanDuration,
    /// The largest share of new requests shed, 0 < share ≤ 1. Below 1, a
    /// gateway whose 503s alone cost more than its CPU still serves some
    /// requests (clients that retry at once, without honouring
    /// `Retry-After`, would otherwise get nothing but 503s). Default 0.9.
    #[serde(default = "default_max_share")]
    pub max_share: f64,
}

impl Default for LoadShedding {
    fn default() -> Self {
        LoadShedding {
            enabled: true,
            target: default_target(),
            interval: default_interval(),
            burst: default_burst(),
            max_share: default_max_share(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_target() -> HumanDuration {
    HumanDuration::from_millis(20)
}

fn default_interval() -> HumanDuration {
    HumanDuration::from_millis(15)
}

fn default_burst() -> HumanDuration {
    HumanDuration::from_millis(150)
}

fn default_max_share() -> f64 {
    0.9
}
