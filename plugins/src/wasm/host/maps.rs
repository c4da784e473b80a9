//! Header maps and body buffers: what a filter reads and edits of the stream.

use bytes::Bytes;
use wasmtime::Linker;

use super::super::abi::{self, BufferType, MapType, Status};
use super::super::stream;
use super::{C, Host, Ret, give, ok_if, read, status, write};

fn map_type(n: i32) -> Option<MapType> {
    MapType::from_i32(n)
}

/// The map, when it can be written and take one more pair of `bytes`.
fn room_for_one<'a>(c: &'a mut C<'_>, map: MapType, bytes: usize) -> Option<&'a mut stream::Pairs> {
    let pairs = c.data_mut().stream.map_mut(map)?;
    stream::has_room(pairs, 1, bytes).then_some(pairs)
}

pub(super) fn header_maps(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: C<'_>, map: i32, ret_ptr: i32, ret_len: i32| -> Ret {
            let Some(map) = map_type(map) else {
                return status(Status::BadArgument);
            };
            let pairs = c.data().stream.map(map);
            let bytes = abi::serialize_map(pairs.iter().map(|(k, v)| (k.as_slice(), v.as_slice())));
            give(&mut c, &bytes, ret_ptr, ret_len)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_size",
        |mut c: C<'_>, map: i32, ret: i32| -> Ret {
            let Some(map) = map_type(map) else {
                return status(Status::BadArgument);
            };
            let pairs = c.data().stream.map(map);
            let size: usize = 4 + pairs
                .iter()
                .map(|(k, v)| 10 + k.len() + v.len())
                .sum::<usize>();
            ok_if(write(&mut c, ret, &(size as u32).to_le_bytes()))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: C<'_>, map: i32, ptr: i32, len: i32| -> Ret {
            let Some(map) = map_type(map) else {
                return status(Status::BadArgument);
            };
            let Some(pairs) = read(&mut c, ptr, len).and_then(|b| abi::deserialize_map(&b)) else {
                return status(Status::BadArgument);
            };
            let pairs: stream::Pairs = pairs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            if !stream::has_room(
                &Vec::new(),
                pairs.len(),
                pairs.iter().map(|(k, v)| k.len() + v.len()).sum(),
            ) {
                return status(Status::BadArgument);
            }
            match c.data_mut().stream.map_mut(map) {
                Some(slot) => *slot = pairs,
                None => return status(Status::BadArgument),
            }
            status(Status::Ok)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: C<'_>, map: i32, kp: i32, kl: i32, ret_ptr: i32, ret_len: i32| -> Ret {
            let (Some(map), Some(key)) = (map_type(map), read(&mut c, kp, kl)) else {
                return status(Status::BadArgument);
            };
            match stream::get(c.data().stream.map(map), &key).map(<[u8]>::to_vec) {
                Some(value) => give(&mut c, &value, ret_ptr, ret_len),
                None => status(Status::NotFound),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: C<'_>, map: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> Ret {
            let (Some(map), Some(key), Some(value)) =
                (map_type(map), read(&mut c, kp, kl), read(&mut c, vp, vl))
            else {
                return status(Status::BadArgument);
            };
            let Some(pairs) = room_for_one(&mut c, map, key.len() + value.len()) else {
                return status(Status::BadArgument);
            };
            pairs.push((key.to_ascii_lowercase(), value));
            status(Status::Ok)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: C<'_>, map: i32, kp: i32, kl: i32, vp: i32, vl: i32| -> Ret {
            let (Some(map), Some(key), Some(value)) =
                (map_type(map), read(&mut c, kp, kl), read(&mut c, vp, vl))
            else {
                return status(Status::BadArgument);
            };
            let Some(pairs) = room_for_one(&mut c, map, key.len() + value.len()) else {
                return status(Status::BadArgument);
            };
            let key = key.to_ascii_lowercase();
            match pairs.iter().position(|(k, _)| *k == key) {
                Some(first) => {
                    pairs[first].1 = value;
                    let mut index = 0;
                    pairs.retain(|(k, _)| {
                        index += 1;
                        index - 1 == first || *k != key
                    });
                }
                None => pairs.push((key, value)),
            }
            status(Status::Ok)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: C<'_>, map: i32, kp: i32, kl: i32| -> Ret {
            let (Some(map), Some(key)) = (map_type(map), read(&mut c, kp, kl)) else {
                return status(Status::BadArgument);
            };
            let Some(pairs) = c.data_mut().stream.map_mut(map) else {
                return status(Status::BadArgument);
            };
            stream::remove(pairs, &key);
            status(Status::Ok)
        },
    )?;
    Ok(())
}

pub(super) fn buffers(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    fn buffer_of(host: &Host, buffer: BufferType) -> Option<Bytes> {
        match buffer {
            BufferType::PluginConfiguration => Some(host.shared.configuration.clone()),
            BufferType::VmConfiguration => Some(Bytes::new()),
            other => host.stream.buffer(other).cloned(),
        }
    }
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, buffer: i32, start: i32, max: i32, ret_ptr: i32, ret_len: i32| -> Ret {
            let Some(buffer) = BufferType::from_i32(buffer) else {
                return status(Status::BadArgument);
            };
            let Some(bytes) = buffer_of(c.data(), buffer) else {
                return status(Status::NotFound);
            };
            let start = (start as u32 as usize).min(bytes.len());
            let end = start.saturating_add(max as u32 as usize).min(bytes.len());
            give(&mut c, &bytes[start..end], ret_ptr, ret_len)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_buffer_status",
        |mut c: C<'_>, buffer: i32, ret_len: i32, ret_flags: i32| -> Ret {
            let Some(buffer) = BufferType::from_i32(buffer) else {
                return status(Status::BadArgument);
            };
            let Some(bytes) = buffer_of(c.data(), buffer) else {
                return status(Status::NotFound);
            };
            ok_if(
                write(&mut c, ret_len, &(bytes.len() as u32).to_le_bytes())
                    && write(&mut c, ret_flags, &0u32.to_le_bytes()),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, buffer: i32, start: i32, size: i32, ptr: i32, len: i32| -> Ret {
            let (Some(buffer), Some(data)) = (BufferType::from_i32(buffer), read(&mut c, ptr, len))
            else {
                return status(Status::BadArgument);
            };
            let max = c.data().shared.max_body;
            let Some(slot) = c.data_mut().stream.buffer_mut(buffer) else {
                return status(Status::NotFound);
            };
            let old = slot.take().unwrap_or_default();
            let start = (start as u32 as usize).min(old.len());
            let end = start.saturating_add(size as u32 as usize).min(old.len());
            if old.len() - (end - start) + data.len() > max {
                *slot = Some(old);
                return status(Status::BadArgument);
            }
            let mut new = Vec::with_capacity(old.len() - (end - start) + data.len());
            new.extend_from_slice(&old[..start]);
            new.extend_from_slice(&data);
            new.extend_from_slice(&old[end..]);
            *slot = Some(new.into());
            status(Status::Ok)
        },
    )?;
    // ABI 0.1.0's way to read the plugin's configuration.
    linker.func_wrap(
        "env",
        "proxy_get_configuration",
        |mut c: C<'_>, ret_ptr: i32, ret_len: i32| -> Ret {
            let config = c.data().shared.configuration.clone();
            give(&mut c, &config, ret_ptr, ret_len)
        },
    )?;
    Ok(())
}
