//! Local responses and the stream's flow, shared data, properties.

use wasmtime::Linker;

use super::super::abi::{self, Status};
use super::super::stream::{self, LocalResponse};
use super::{C, Host, Ret, give, ok_if, read, status, write};

pub(super) fn flow(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: C<'_>,
         code: i32,
         dp: i32,
         dl: i32,
         bp: i32,
         bl: i32,
         hp: i32,
         hl: i32,
         _grpc: i32|
         -> Ret {
            let (Some(details), Some(body), Some(headers)) = (
                read(&mut c, dp, dl),
                read(&mut c, bp, bl),
                read(&mut c, hp, hl),
            ) else {
                return status(Status::BadArgument);
            };
            let Some(headers) = abi::deserialize_map(&headers) else {
                return status(Status::BadArgument);
            };
            if !(200..=599).contains(&code) {
                return status(Status::BadArgument);
            }
            c.data_mut().stream.local = Some(LocalResponse {
                status: code as u16,
                headers: headers
                    .into_iter()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v))
                    .collect(),
                body: body.into(),
                details: String::from_utf8_lossy(&details).into_owned(),
            });
            status(Status::Ok)
        },
    )?;
    // The host delivers each stream whole (see `Pool::call`): a filter never
    // waits across an await, so resuming is already done.
    for name in [
        "proxy_continue_request",
        "proxy_continue_response",
        "proxy_done",
        "proxy_clear_route_cache",
    ] {
        linker.func_wrap("env", name, |_: C<'_>| -> Ret { status(Status::Ok) })?;
    }
    linker.func_wrap(
        "env",
        "proxy_continue_stream",
        |_: C<'_>, _stream: i32| -> Ret { status(Status::Ok) },
    )?;
    linker.func_wrap(
        "env",
        "proxy_close_stream",
        |mut c: C<'_>, _stream: i32| -> Ret {
            c.data_mut().stream.closed = true;
            status(Status::Ok)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |_: C<'_>, _context: i32| -> Ret { status(Status::Ok) },
    )?;
    Ok(())
}

pub(super) fn shared_data(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: C<'_>, kp: i32, kl: i32, ret_ptr: i32, ret_len: i32, ret_cas: i32| -> Ret {
            let Some(key) = read(&mut c, kp, kl) else {
                return status(Status::BadArgument);
            };
            let Some((value, cas)) = c.data().shared.data.get(&key) else {
                return status(Status::NotFound);
            };
            if !write(&mut c, ret_cas, &cas.to_le_bytes()) {
                return status(Status::BadArgument);
            }
            give(&mut c, &value, ret_ptr, ret_len)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: C<'_>, kp: i32, kl: i32, vp: i32, vl: i32, cas: i32| -> Ret {
            let (Some(key), Some(value)) = (read(&mut c, kp, kl), read(&mut c, vp, vl)) else {
                return status(Status::BadArgument);
            };
            status(c.data().shared.data.set(key, value.into(), cas as u32))
        },
    )?;
    Ok(())
}

pub(super) fn properties(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: C<'_>, pp: i32, pl: i32, ret_ptr: i32, ret_len: i32| -> Ret {
            let Some(path) = read(&mut c, pp, pl) else {
                return status(Status::BadArgument);
            };
            match property(c.data(), &path) {
                Some(value) => give(&mut c, &value, ret_ptr, ret_len),
                None => status(Status::NotFound),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: C<'_>, pp: i32, pl: i32, vp: i32, vl: i32| -> Ret {
            let (Some(path), Some(value)) = (read(&mut c, pp, pl), read(&mut c, vp, vl)) else {
                return status(Status::BadArgument);
            };
            let custom = &mut c.data_mut().stream.properties.custom;
            custom.retain(|(k, _)| *k != path);
            // At most 64 properties and 64 KiB of them per stream.
            let held: usize = custom.iter().map(|(k, v)| k.len() + v.len()).sum();
            if custom.len() >= 64 || held + path.len() + value.len() > 64 * 1024 {
                return status(Status::BadArgument);
            }
            custom.push((path, value));
            status(Status::Ok)
        },
    )?;
    Ok(())
}

/// A property's value: its path's segments are separated by NULs
/// (`request\0path`).
fn property(host: &Host, path: &[u8]) -> Option<Vec<u8>> {
    let stream = &host.stream;
    if let Some((_, value)) = stream.properties.custom.iter().find(|(k, _)| k == path) {
        return Some(value.clone());
    }
    let parts: Vec<&[u8]> = path.split(|b| *b == 0).collect();
    let pseudo = |name: &[u8]| stream::get(&stream.request_headers, name).map(<[u8]>::to_vec);
    match parts.as_slice() {
        [b"request", b"path"] => pseudo(b":path"),
        [b"request", b"url_path"] => pseudo(b":path").map(|p| {
            let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
            p[..end].to_vec()
        }),
        [b"request", b"query"] => {
            pseudo(b":path").map(|p| match p.iter().position(|b| *b == b'?') {
                Some(q) => p[q + 1..].to_vec(),
                None => Vec::new(),
            })
        }
        [b"request", b"host"] => pseudo(b":authority"),
        [b"request", b"method"] => pseudo(b":method"),
        [b"request", b"scheme"] => pseudo(b":scheme"),
        [b"request", b"headers", name] => {
            stream::get(&stream.request_headers, name).map(<[u8]>::to_vec)
        }
        // An integer, as Envoy gives it: 8 bytes, little-endian.
        [b"response", b"code"] => stream::get(&stream.response_headers, b":status")
            .and_then(|s| std::str::from_utf8(s).ok()?.parse::<i64>().ok())
            .map(|code| code.to_le_bytes().to_vec()),
        [b"source", b"address"] => stream
            .properties
            .source_address
            .clone()
            .map(String::into_bytes),
        [b"plugin_name"] => Some(host.shared.name.clone().into_bytes()),
        [b"plugin_root_id"] => Some(host.shared.root_id.clone().into_bytes()),
        [b"route_name"] | [b"xds", b"route_name"] => Some(host.shared.route.clone().into_bytes()),
        [b"consumer"] => stream.properties.consumer.clone().map(String::into_bytes),
        _ => None,
    }
}

/// `proxy_http_call`: queued on the stream, sent by the host once the
/// callback returns (see `super::super::callout`).
pub(super) fn callouts(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: C<'_>,
         up: i32,
         ul: i32,
         hp: i32,
         hl: i32,
         bp: i32,
         bl: i32,
         _tp: i32,
         _tl: i32,
         timeout: i32,
         ret_token: i32|
         -> Ret {
            let (Some(cluster), Some(headers), Some(body)) = (
                read(&mut c, up, ul),
                read(&mut c, hp, hl),
                read(&mut c, bp, bl),
            ) else {
                return status(Status::BadArgument);
            };
            let Some(callouts) = c.data().shared.callouts.clone() else {
                c.data().shared.warn_unsupported(
                    "proxy_http_call with no `http_callouts` in its plugin config",
                );
                return status(Status::NotFound);
            };
            let Some(headers) = abi::deserialize_map(&headers) else {
                return status(Status::BadArgument);
            };
            let stream = &mut c.data_mut().stream;
            if stream.callouts_made >= super::super::callout::MAX_PER_STREAM {
                return status(Status::BadArgument);
            }
            stream.callouts_made += 1;
            // Unique across the plugin's VMs and streams: SDKs key their
            // pending calls by token alone.
            let token = c.data().shared.next_token();
            let stream = &mut c.data_mut().stream;
            let cluster = String::from_utf8_lossy(&cluster);
            let headers = headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            match callouts.prepare(token, &cluster, headers, body, timeout as u32) {
                Ok(pending) => {
                    stream.callouts.push(pending);
                    ok_if(write(&mut c, ret_token, &token.to_le_bytes()))
                }
                Err(refused) => status(refused),
            }
        },
    )?;
    Ok(())
}
