//! The host side of the proxy-wasm ABI: the functions a filter imports
//! (module `env`), and the few WASI calls a filter's standard library makes
//! (module `wasi_snapshot_preview1`: its prints, clock and randomness; no
//! files, sockets or environment). Any other import links to a function that
//! traps if called, so a filter using more of WASI still loads.

mod maps;
mod state;
mod wasi;

use std::sync::Arc;

use wasmtime::{Caller, Extern, Linker, Memory};

use super::abi::{self, Status};
use super::shared::Shared;
use super::stream::StreamState;

/// A VM's store data.
pub struct Host {
    pub stream: StreamState,
    pub shared: Arc<Shared>,
    pub limits: Limits,
}

/// The memory cap of a VM; remembers a refused growth, so a trap that
/// follows one is reported as the cap's.
pub struct Limits {
    pub max_memory: usize,
    pub denied: bool,
}

impl wasmtime::ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.max_memory;
        self.denied |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }
}

pub(super) type C<'a> = Caller<'a, Host>;
pub(super) type Ret = wasmtime::Result<i32>;

fn memory(caller: &mut C<'_>) -> Option<Memory> {
    caller.get_export("memory").and_then(Extern::into_memory)
}

fn range(ptr: i32, len: i32) -> Option<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    Some(start..start.checked_add(len as u32 as usize)?)
}

/// A copy of the guest's bytes at `ptr`, `len`.
pub(super) fn read(caller: &mut C<'_>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = memory(caller)?;
    memory
        .data(&*caller)
        .get(range(ptr, len)?)
        .map(<[u8]>::to_vec)
}

pub(super) fn write(caller: &mut C<'_>, ptr: i32, bytes: &[u8]) -> bool {
    let Some(memory) = memory(caller) else {
        return false;
    };
    match range(ptr, bytes.len() as i32).and_then(|r| memory.data_mut(&mut *caller).get_mut(r)) {
        Some(slot) => {
            slot.copy_from_slice(bytes);
            true
        }
        None => false,
    }
}

pub(super) fn status(s: Status) -> Ret {
    Ok(s as i32)
}

pub(super) fn ok_if(done: bool) -> Ret {
    status(if done {
        Status::Ok
    } else {
        Status::BadArgument
    })
}

/// Hands `bytes` to the guest: memory from its allocator
/// (`proxy_on_memory_allocate`, or `malloc` for older SDKs), the bytes
/// copied in, the pointer and length written at `ret_ptr` and `ret_len`.
pub(super) fn give(caller: &mut C<'_>, bytes: &[u8], ret_ptr: i32, ret_len: i32) -> Ret {
    let alloc = caller
        .get_export("proxy_on_memory_allocate")
        .or_else(|| caller.get_export("malloc"))
        .and_then(Extern::into_func);
    let Some(alloc) = alloc else {
        return status(Status::InternalFailure);
    };
    let ptr = alloc
        .typed::<i32, i32>(&*caller)?
        .call(&mut *caller, bytes.len() as i32)?;
    if ptr == 0 && !bytes.is_empty() {
        return status(Status::InternalFailure);
    }
    ok_if(
        write(caller, ptr, bytes)
            && write(caller, ret_ptr, &ptr.to_le_bytes())
            && write(caller, ret_len, &(bytes.len() as u32).to_le_bytes()),
    )
}

/// Logs what a filter said (`proxy_log`, or its prints), under the plugin's name.
pub(super) fn log(shared: &Shared, level: tracing::Level, message: &str) {
    let plugin = shared.name.as_str();
    let route = shared.route.as_str();
    match level {
        tracing::Level::TRACE => tracing::trace!(plugin, route, "{message}"),
        tracing::Level::DEBUG => tracing::debug!(plugin, route, "{message}"),
        tracing::Level::INFO => tracing::info!(plugin, route, "{message}"),
        tracing::Level::WARN => tracing::warn!(plugin, route, "{message}"),
        _ => tracing::error!(plugin, route, "{message}"),
    }
}

/// The linker every VM of the process is instantiated with.
pub fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<Host>> {
    let mut linker = Linker::new(engine);
    logging(&mut linker)?;
    maps::header_maps(&mut linker)?;
    maps::buffers(&mut linker)?;
    state::flow(&mut linker)?;
    state::shared_data(&mut linker)?;
    state::properties(&mut linker)?;
    state::callouts(&mut linker)?;
    super::guest_metrics::link(&mut linker)?;
    wasi::unsupported(&mut linker)?;
    wasi::wasi(&mut linker)?;
    Ok(linker)
}

fn logging(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: C<'_>, level: i32, ptr: i32, len: i32| -> Ret {
            let Some(message) = read(&mut c, ptr, len) else {
                return status(Status::BadArgument);
            };
            log(
                &c.data().shared,
                abi::log_level(level),
                &String::from_utf8_lossy(&message),
            );
            status(Status::Ok)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_log_level",
        |mut c: C<'_>, ret: i32| -> Ret {
            use tracing::level_filters::LevelFilter;
            let level: i32 = match LevelFilter::current() {
                LevelFilter::TRACE => 0,
                LevelFilter::DEBUG => 1,
                LevelFilter::INFO => 2,
                LevelFilter::WARN => 3,
                _ => 4,
            };
            ok_if(write(&mut c, ret, &level.to_le_bytes()))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, ret: i32| -> Ret {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            ok_if(write(&mut c, ret, &now.to_le_bytes()))
        },
    )?;
    Ok(())
}
