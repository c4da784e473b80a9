//! What the host does not offer (answered `Unimplemented`), and WASI
//! preview 1 as far as a filter's standard library needs it.

use wasmtime::Linker;

use super::super::abi::Status;
use super::{C, Host, Ret, log, read, status, write};

/// Calls a filter may link to that this host does not offer: each answers
/// `Unimplemented` and says so in the log once per plugin.
pub(super) fn unsupported(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    fn refuse(c: &C<'_>, name: &'static str) -> Ret {
        c.data().shared.warn_unsupported(name);
        status(Status::Unimplemented)
    }
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |c: C<'_>, period: i32| -> Ret {
            if period == 0 {
                status(Status::Ok)
            } else {
                refuse(&c, "proxy_set_tick_period_milliseconds (timers)")
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |c: C<'_>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32|
         -> Ret { refuse(&c, "proxy_grpc_call (gRPC callouts)") },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |c: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> Ret {
            refuse(&c, "proxy_grpc_stream (gRPC callouts)")
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        |c: C<'_>, _: i32, _: i32, _: i32, _: i32| -> Ret { refuse(&c, "proxy_grpc_send") },
    )?;
    linker.func_wrap("env", "proxy_grpc_cancel", |c: C<'_>, _: i32| -> Ret {
        refuse(&c, "proxy_grpc_cancel")
    })?;
    linker.func_wrap("env", "proxy_grpc_close", |c: C<'_>, _: i32| -> Ret {
        refuse(&c, "proxy_grpc_close")
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |c: C<'_>, _: i32, _: i32, _: i32| -> Ret { refuse(&c, "proxy_get_status") },
    )?;
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |c: C<'_>, _: i32, _: i32, _: i32| -> Ret { refuse(&c, "shared queues") },
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |c: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32| -> Ret { refuse(&c, "shared queues") },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |c: C<'_>, _: i32, _: i32, _: i32| -> Ret { refuse(&c, "shared queues") },
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |c: C<'_>, _: i32, _: i32, _: i32| -> Ret { refuse(&c, "shared queues") },
    )?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |c: C<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| -> Ret {
            refuse(&c, "proxy_call_foreign_function")
        },
    )?;
    Ok(())
}

/// WASI preview 1, as far as a filter's standard library needs it.
pub(super) fn wasi(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    const W: &str = "wasi_snapshot_preview1";
    const EBADF: i32 = 8;
    const EINVAL: i32 = 28;
    linker.func_wrap(
        W,
        "fd_write",
        |mut c: C<'_>, fd: i32, iovs: i32, count: i32, ret: i32| -> Ret {
            if fd != 1 && fd != 2 {
                return Ok(EBADF);
            }
            // At most 1024 pieces and 64 KiB of text per call reach the
            // log; the rest is counted as written and dropped.
            const MAX_TEXT: usize = 64 * 1024;
            if !(0..=1024).contains(&count) {
                return Ok(EINVAL);
            }
            let Some(list) = read(&mut c, iovs, count * 8) else {
                return Ok(EINVAL);
            };
            let mut text = Vec::new();
            let mut written: u32 = 0;
            for iov in list.chunks_exact(8) {
                let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                written = written.saturating_add(len as u32);
                let room = MAX_TEXT - text.len();
                if room == 0 {
                    continue;
                }
                let Some(bytes) = read(&mut c, ptr, len.min(room as i32)) else {
                    return Ok(EINVAL);
                };
                text.extend_from_slice(&bytes);
            }
            let level = if fd == 1 {
                tracing::Level::INFO
            } else {
                tracing::Level::WARN
            };
            let message = String::from_utf8_lossy(&text);
            log(&c.data().shared, level, message.trim_end());
            Ok(if write(&mut c, ret, &written.to_le_bytes()) {
                0
            } else {
                EINVAL
            })
        },
    )?;
    linker.func_wrap(
        W,
        "clock_time_get",
        |mut c: C<'_>, clock: i32, _precision: i64, ret: i32| -> Ret {
            let nanos = match clock {
                0 => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
                _ => super::super::shared::monotonic_nanos(),
            };
            Ok(if write(&mut c, ret, &nanos.to_le_bytes()) {
                0
            } else {
                EINVAL
            })
        },
    )?;
    linker.func_wrap(W, "random_get", |mut c: C<'_>, ptr: i32, len: i32| -> Ret {
        // Filled in place, in the guest's memory (bounded by it).
        let (Some(memory), Some(range)) = (super::memory(&mut c), super::range(ptr, len)) else {
            return Ok(EINVAL);
        };
        let Some(slot) = memory.data_mut(&mut c).get_mut(range) else {
            return Ok(EINVAL);
        };
        fastrand::fill(slot);
        Ok(0)
    })?;
    for name in ["environ_sizes_get", "args_sizes_get"] {
        linker.func_wrap(W, name, |mut c: C<'_>, count: i32, size: i32| -> Ret {
            let done = write(&mut c, count, &0u32.to_le_bytes())
                && write(&mut c, size, &0u32.to_le_bytes());
            Ok(if done { 0 } else { EINVAL })
        })?;
    }
    for name in ["environ_get", "args_get"] {
        linker.func_wrap(W, name, |_: C<'_>, _: i32, _: i32| -> Ret { Ok(0) })?;
    }
    linker.func_wrap(W, "sched_yield", |_: C<'_>| -> Ret { Ok(0) })?;
    linker.func_wrap(
        W,
        "proc_exit",
        |_: C<'_>, code: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "the filter exited (proc_exit({code}))"
            )))
        },
    )?;
    Ok(())
}
