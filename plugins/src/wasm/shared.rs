//! What every VM of a plugin shares: its name and configuration, the
//! shared data of its `vm_id` (process-wide, so it outlives reloads), and
//! the guest-defined metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

use super::abi::Status;
use super::guest_metrics::GuestMetrics;

/// A plugin's state outside its VMs.
pub struct Shared {
    /// The plugin's name in logs and metrics.
    pub name: String,
    /// The `plugin_root_id` property.
    pub root_id: String,
    pub route: String,
    /// What `proxy_on_configure` reads (buffer type 7).
    pub configuration: Bytes,
    /// The most a body buffer may hold after `proxy_set_buffer_bytes`.
    pub max_body: usize,
    pub data: Arc<SharedData>,
    pub metrics: GuestMetrics,
    /// The upstreams `proxy_http_call` may reach (`http_callouts`).
    pub callouts: Option<Arc<super::callout::Callouts>>,
    /// Whether `warn_unsupported` spoke already.
    pub warned: AtomicBool,
    /// The last `proxy_http_call` token handed out.
    pub tokens: std::sync::atomic::AtomicU32,
}

impl Shared {
    /// A new callout token, never 0.
    pub fn next_token(&self) -> u32 {
        loop {
            let token = self.tokens.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
            if token != 0 {
                return token;
            }
        }
    }

    /// Logs, once per plugin, that the filter called what the host lacks.
    pub fn warn_unsupported(&self, call: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                plugin = %self.name,
                route = %self.route,
                "the filter called {call}, which Switchyard does not offer; it was answered Unimplemented"
            );
        }
    }
}

/// One `vm_id`'s key-value store (`proxy_get_shared_data`,
/// `proxy_set_shared_data`), bounded in bytes; every value carries a CAS
/// token that changes on each write.
pub struct SharedData {
    entries: Mutex<Entries>,
    max_bytes: usize,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Vec<u8>, (Bytes, u32)>,
    bytes: usize,
    next_cas: u32,
}

impl SharedData {
    /// The store of `vm_id`: the same one for every plugin and every config
    /// version naming it. `max_bytes` is the first caller's.
    pub fn of(vm_id: &str, max_bytes: usize) -> Arc<SharedData> {
        static STORES: OnceLock<Mutex<HashMap<String, Arc<SharedData>>>> = OnceLock::new();
        let mut stores = STORES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        stores
            .entry(vm_id.to_owned())
            .or_insert_with(|| {
                Arc::new(SharedData {
                    entries: Mutex::default(),
                    max_bytes,
                })
            })
            .clone()
    }

    pub fn get(&self, key: &[u8]) -> Option<(Bytes, u32)> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.map.get(key).cloned()
    }

    /// Stores `value` unless `cas` (non-zero) is not the current token:
    /// `CasMismatch`; a store that would pass its bound: `InternalFailure`.
    pub fn set(&self, key: Vec<u8>, value: Bytes, cas: u32) -> Status {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let old = entries.map.get(&key).map(|(v, c)| (v.len(), *c));
        if cas != 0 && old.is_some_and(|(_, current)| current != cas) {
            return Status::CasMismatch;
        }
        let freed = old.map_or(0, |(len, _)| len + key.len());
        let bytes = entries.bytes - freed + key.len() + value.len();
        if bytes > self.max_bytes {
            return Status::InternalFailure;
        }
        entries.next_cas = entries.next_cas.wrapping_add(1).max(1);
        let token = entries.next_cas;
        entries.bytes = bytes;
        entries.map.insert(key, (value, token));
        Status::Ok
    }
}

/// Nanoseconds on a monotonic clock (WASI's monotonic clock).
pub fn monotonic_nanos() -> u64 {
    static START: OnceLock<std::time::Instant> = OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_checks_cas_tokens_and_its_byte_bound() {
        let data = SharedData::of("test-shared-data-cas", 32);
        assert_eq!(
            data.set(b"k".to_vec(), Bytes::from_static(b"one"), 0),
            Status::Ok
        );
        let (value, cas) = data.get(b"k").unwrap();
        assert_eq!(&value[..], b"one");
        assert_eq!(
            data.set(b"k".to_vec(), Bytes::from_static(b"two"), cas + 1),
            Status::CasMismatch
        );
        assert_eq!(
            data.set(b"k".to_vec(), Bytes::from_static(b"two"), cas),
            Status::Ok
        );
        assert_ne!(data.get(b"k").unwrap().1, cas);
        let big = Bytes::from(vec![0u8; 40]);
        assert_eq!(data.set(b"x".to_vec(), big, 0), Status::InternalFailure);
        assert!(data.get(b"x").is_none());
    }
}
