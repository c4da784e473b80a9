//! Units in plugin configs.

use schemars::JsonSchema;
use serde::Deserialize;

/// A byte count: a number of bytes, or a string with a unit (`B`, `KB`,
/// `KiB`, `MB`, `MiB`), e.g. `512KiB`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ByteSize {
    Bytes(u64),
    Text(String),
}

// === impl ByteSize ===

impl ByteSize {
    /// The count in bytes; errors name the config key `field`.
    pub fn bytes(&self, field: &str) -> Result<usize, String> {
        let n = match self {
            ByteSize::Bytes(n) => *n,
            ByteSize::Text(text) => {
                let text = text.trim();
                let split = text
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(text.len());
                let (digits, unit) = text.split_at(split);
                let unit: u64 = match unit.trim() {
                    "" | "B" => 1,
                    "KB" => 1000,
                    "KiB" => 1 << 10,
                    "MB" => 1_000_000,
                    "MiB" => 1 << 20,
                    _ => {
                        return Err(format!(
                            "`{field}`: {text:?}: expected B, KB, KiB, MB or MiB"
                        ));
                    }
                };
                digits
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_mul(unit))
                    .ok_or_else(|| format!("`{field}`: {text:?}: expected a size, e.g. \"1MiB\""))?
            }
        };
        usize::try_from(n).map_err(|_| format!("`{field}`: {n} bytes is too large"))
    }
}
