//! Path normalisation before routing, so that routing, plugins (auth rules)
//! and logs all see one spelling of a path, whatever encoding a client used.
//!
//! The rule (documented in the README):
//! - `%2E`/`%2e` are dots: `.` and `..` segments are resolved per RFC 3986
//!   §5.2.4 (`..` never climbs above the root);
//! - empty segments are dropped (`//a` is `/a`), but a trailing `/` is kept;
//! - `%2F` (an encoded slash) stays encoded and never splits a segment;
//!   `%5C` and `\` are ordinary characters;
//! - unreserved characters that were percent-encoded (`%41` → `A`) are decoded
//!   and hex digits of the remaining escapes are upper-cased, so `/v1/us%65rs`
//!   and `/v1/users` are the same path; raw non-ASCII bytes are escaped
//!   (`/ü` is `/%C3%BC`), so the normal form is ASCII;
//! - a malformed escape (`%G1`, a trailing `%`), a NUL, or a path not starting
//!   with `/` is an error (400).
//!
//! Normalising allocates only when the path changes.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("the path does not start with '/'")]
    NotAbsolute,
    #[error("malformed percent-encoding in the path")]
    BadEscape,
    #[error("the path contains a NUL byte")]
    Nul,
}

/// The normalised form of `path` (no query).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, NormalizeError> {
    if !path.starts_with('/') {
        return Err(NormalizeError::NotAbsolute);
    }
    if is_normal(path)? {
        return Ok(Cow::Borrowed(path));
    }
    let mut segments: Vec<String> = Vec::new();
    let trailing_slash = path.len() > 1 && path.ends_with('/');
    for raw in path[1..].split('/') {
        if raw.is_empty() {
            continue;
        }
        let segment = canonical_segment(raw)?;
        match segment.as_str() {
            "." => {}
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || (trailing_slash && !segments.is_empty()) {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// A fast check for the common case: nothing to decode, resolve or collapse.
fn is_normal(path: &str) -> Result<bool, NormalizeError> {
    let bytes = path.as_bytes();
    let mut normal = true;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            0 => return Err(NormalizeError::Nul),
            b'%' => normal = false,
            0x80.. => normal = false,
            b'/' if bytes.get(i + 1) == Some(&b'/') => normal = false,
            b'.' if bytes[i - 1] == b'/' => {
                let rest = &bytes[i + 1..];
                let dot_segment = rest.is_empty()
                    || rest[0] == b'/'
                    || (rest[0] == b'.' && (rest.len() == 1 || rest[1] == b'/'));
                if dot_segment {
                    normal = false;
                }
            }
            _ => {}
        }
    }
    Ok(normal)
}

/// One segment with unreserved escapes decoded and the others upper-cased.
fn canonical_segment(raw: &str) -> Result<String, NormalizeError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == 0 {
            return Err(NormalizeError::Nul);
        }
        if b >= 0x80 {
            // A raw byte of a UTF-8 character: escaped, so the normal form
            // is ASCII and one spelling (`/ü` is `/%C3%BC`).
            out.push('%');
            out.push(HEX_DIGITS[usize::from(b >> 4)] as char);
            out.push(HEX_DIGITS[usize::from(b & 0xF)] as char);
            i += 1;
            continue;
        }
        if b != b'%' {
            out.push(b as char);
            i += 1;
            continue;
        }
        let (hi, lo) = match (bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => (*h, *l),
            _ => return Err(NormalizeError::BadEscape),
        };
        let value = (hex(hi) << 4) | hex(lo);
        if value == 0 {
            return Err(NormalizeError::Nul);
        }
        if value.is_ascii_alphanumeric() || matches!(value, b'-' | b'.' | b'_' | b'~') {
            out.push(value as char);
        } else {
            out.push('%');
            out.push(hi.to_ascii_uppercase() as char);
            out.push(lo.to_ascii_uppercase() as char);
        }
        i += 3;
    }
    Ok(out)
}

const HEX_DIGITS: &[u8; 16] = b"0123456789ABCDEF";

fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let cases = [
            ("/v1/users/1", "/v1/users/1"),
            ("/", "/"),
            ("/v1/users/", "/v1/users/"),
            ("//v1//users///1", "/v1/users/1"),
            ("/v1/./users/1", "/v1/users/1"),
            ("/v1/orders/../users/1", "/v1/users/1"),
            ("/../../v1/users/1", "/v1/users/1"),
            ("/v1/users/1/..", "/v1/users"),
            ("/v1/%2e%2E/admin", "/admin"),
            ("/v1/%2e/users", "/v1/users"),
            ("/v1/us%65rs/1", "/v1/users/1"),
            ("/v1/users/a%2fb", "/v1/users/a%2Fb"),
            ("/v1/users/a%2Fb/..", "/v1/users"),
            ("/v1/users/a%5cb", "/v1/users/a%5Cb"),
            ("/v1/users/a\\b", "/v1/users/a\\b"),
            ("/v1/users/%7e", "/v1/users/~"),
            ("/v1/users/.hidden", "/v1/users/.hidden"),
            ("/v1/users/..x", "/v1/users/..x"),
            ("/v1/orders/1:cancel", "/v1/orders/1:cancel"),
            ("/..", "/"),
            ("/.", "/"),
            ("/v1/users/ü", "/v1/users/%C3%BC"),
            ("/v1/users/%c3%bc", "/v1/users/%C3%BC"),
            // Found by fuzz/path_normalize: raw UTF-8 was copied byte by
            // byte as Latin-1, and a second pass changed it again.
            (
                "/\u{e}/.a/%2F/z\u{1c}\u{49c}2e",
                "/\u{e}/.a/%2F/z\u{1c}%D2%9C2e",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).as_deref(), Ok(want), "{input}");
            assert_eq!(normalize(want).as_deref(), Ok(want), "idempotent: {want}");
        }
    }

    #[test]
    fn already_normal_paths_are_not_copied() {
        assert!(matches!(normalize("/v1/users/1"), Ok(Cow::Borrowed(_))));
        assert!(matches!(
            normalize("/v1/users/.hidden"),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn malformed_paths_are_refused() {
        assert_eq!(normalize("v1/users"), Err(NormalizeError::NotAbsolute));
        assert_eq!(normalize("/v1/%G1"), Err(NormalizeError::BadEscape));
        assert_eq!(normalize("/v1/%4"), Err(NormalizeError::BadEscape));
        assert_eq!(normalize("/v1/%00"), Err(NormalizeError::Nul));
    }
}
