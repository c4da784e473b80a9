//! The proxy-wasm ABI's numbers and wire formats (ABI 0.2.0 and 0.2.1, the
//! one Envoy, Kong's ngx_wasm_module and APISIX host): what the host and a
//! filter exchange besides plain pointers and lengths.

/// What a host call answers (`WasmResult` in the spec).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

/// What a stream callback answers.
pub const ACTION_CONTINUE: i32 = 0;

/// The header maps a filter can name (`MapType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    CallResponseHeaders,
    CallResponseTrailers,
}

impl MapType {
    pub fn from_i32(n: i32) -> Option<MapType> {
        Some(match n {
            0 => MapType::RequestHeaders,
            1 => MapType::RequestTrailers,
            2 => MapType::ResponseHeaders,
            3 => MapType::ResponseTrailers,
            6 => MapType::CallResponseHeaders,
            7 => MapType::CallResponseTrailers,
            _ => return None,
        })
    }
}

/// The buffers a filter can name (`BufferType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferType {
    RequestBody,
    ResponseBody,
    CallResponseBody,
    VmConfiguration,
    PluginConfiguration,
}

impl BufferType {
    pub fn from_i32(n: i32) -> Option<BufferType> {
        Some(match n {
            0 => BufferType::RequestBody,
            1 => BufferType::ResponseBody,
            4 => BufferType::CallResponseBody,
            6 => BufferType::VmConfiguration,
            7 => BufferType::PluginConfiguration,
            _ => return None,
        })
    }
}

/// `proxy_log` levels, trace (0) to critical (5).
pub fn log_level(n: i32) -> tracing::Level {
    match n {
        0 => tracing::Level::TRACE,
        1 => tracing::Level::DEBUG,
        2 => tracing::Level::INFO,
        3 => tracing::Level::WARN,
        _ => tracing::Level::ERROR,
    }
}

/// The exports naming the ABI versions this host implements.
pub const ABI_VERSIONS: [&str; 2] = ["proxy_abi_version_0_2_1", "proxy_abi_version_0_2_0"];

/// A header map in the ABI's serialisation: the pair count, each pair's
/// name and value lengths (u32, little-endian), then each name and value
/// followed by a NUL.
pub fn serialize_map<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone) -> Vec<u8> {
    let (count, size) = pairs.clone().fold((0usize, 4usize), |(n, size), (k, v)| {
        (n + 1, size + 8 + k.len() + v.len() + 2)
    });
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// The most pairs a header map may hold (the `http` crate's maps panic
/// past 32 768; requests from clients are refused far below this).
pub const MAX_PAIRS: usize = 1024;

/// The most bytes (names and values) a header map may hold.
pub const MAX_MAP_BYTES: usize = 256 * 1024;

/// The pairs of a serialised header map, or `None` when the bytes are not
/// one (a length past the end, a missing NUL) or hold more than
/// [`MAX_PAIRS`] pairs.
pub fn deserialize_map(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0)?;
    if count > MAX_PAIRS {
        return None;
    }
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    if data > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let (klen, vlen) = (word(4 + i * 8)?, word(8 + i * 8)?);
        let key = bytes.get(data..data + klen)?.to_vec();
        if bytes.get(data + klen) != Some(&0) {
            return None;
        }
        data += klen + 1;
        let value = bytes.get(data..data + vlen)?.to_vec();
        if bytes.get(data + vlen) != Some(&0) {
            return None;
        }
        data += vlen + 1;
        pairs.push((key, value));
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_through_the_abi_serialisation() {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b":path", b"/v1/users/1"), (b"x-a", b"")];
        let bytes = serialize_map(pairs.iter().copied());
        // 2 pairs: 4 + 2×8 bytes of lengths, then "…\0…\0" per pair.
        assert_eq!(bytes.len(), 4 + 16 + 6 + 12 + 4 + 1);
        let back = deserialize_map(&bytes).unwrap();
        assert_eq!(back[0], (b":path".to_vec(), b"/v1/users/1".to_vec()));
        assert_eq!(back[1], (b"x-a".to_vec(), Vec::new()));
    }

    #[test]
    fn truncated_or_unterminated_maps_are_refused() {
        let bytes = serialize_map([(&b"a"[..], &b"b"[..])].into_iter());
        assert!(deserialize_map(&bytes[..bytes.len() - 1]).is_none());
        let mut no_nul = bytes.clone();
        no_nul[13] = b'x';
        assert!(deserialize_map(&no_nul).is_none());
        assert!(deserialize_map(&[255, 255, 255, 255]).is_none());
    }
}
