//! The metrics a filter defines (`proxy_define_metric` and the calls on
//! the returned id), exported as gauges labelled by route, plugin and the
//! filter's name for them. At most [`MAX_METRICS`] per plugin: names become
//! label values, and a filter must not grow the registry without bound.

use std::sync::{Arc, Mutex};

use wasmtime::Linker;

use super::abi::Status;
use super::host::{C, Host, read, write};
use crate::metrics::WasmCounters;

/// The most metrics one plugin may define.
pub const MAX_METRICS: usize = 64;

/// A plugin's metrics, shared by its VMs (each VM defines them again at
/// start; the same name is the same metric).
#[derive(Clone)]
pub struct GuestMetrics {
    counters: Option<WasmCounters>,
    defined: Arc<Mutex<Vec<(String, prometheus::IntGauge)>>>,
}

impl GuestMetrics {
    pub fn new(counters: Option<WasmCounters>) -> GuestMetrics {
        GuestMetrics {
            counters,
            defined: Arc::default(),
        }
    }

    /// The id of the metric `name` (defined now if new), or `None` past the bound.
    fn define(&self, name: &str) -> Option<u32> {
        let mut defined = self.defined.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = defined.iter().position(|(n, _)| n == name) {
            return Some(id as u32 + 1);
        }
        if defined.len() >= MAX_METRICS {
            return None;
        }
        let gauge = match &self.counters {
            Some(counters) => counters.guest(name),
            None => prometheus::IntGauge::new("unregistered", "-").expect("static metric"),
        };
        defined.push((name.to_owned(), gauge));
        Some(defined.len() as u32)
    }

    fn gauge(&self, id: u32) -> Option<prometheus::IntGauge> {
        let defined = self.defined.lock().unwrap_or_else(|e| e.into_inner());
        let index = (id as usize).checked_sub(1)?;
        defined.get(index).map(|(_, g)| g.clone())
    }
}

pub fn link(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    let done = |written: bool| {
        Ok(if written {
            Status::Ok
        } else {
            Status::BadArgument
        } as i32)
    };
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        move |mut c: C<'_>, _kind: i32, np: i32, nl: i32, ret: i32| -> wasmtime::Result<i32> {
            let Some(name) = read(&mut c, np, nl) else {
                return Ok(Status::BadArgument as i32);
            };
            match c
                .data()
                .shared
                .metrics
                .define(&String::from_utf8_lossy(&name))
            {
                Some(id) => done(write(&mut c, ret, &id.to_le_bytes())),
                None => Ok(Status::BadArgument as i32),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: C<'_>, id: i32, offset: i64| -> wasmtime::Result<i32> {
            Ok(match c.data().shared.metrics.gauge(id as u32) {
                Some(gauge) => {
                    gauge.add(offset);
                    Status::Ok as i32
                }
                None => Status::NotFound as i32,
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |c: C<'_>, id: i32, value: i64| -> wasmtime::Result<i32> {
            Ok(match c.data().shared.metrics.gauge(id as u32) {
                Some(gauge) => {
                    gauge.set(value);
                    Status::Ok as i32
                }
                None => Status::NotFound as i32,
            })
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        move |mut c: C<'_>, id: i32, ret: i32| -> wasmtime::Result<i32> {
            let Some(gauge) = c.data().shared.metrics.gauge(id as u32) else {
                return Ok(Status::NotFound as i32);
            };
            done(write(&mut c, ret, &(gauge.get() as u64).to_le_bytes()))
        },
    )?;
    Ok(())
}
