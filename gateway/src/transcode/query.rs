//! Query string → request message, per the HttpRule spec with the grpc-gateway
//! and Envoy conventions. Rules chosen here:
//! - keys are dotted field paths whose segments are the proto name or the
//!   json_name (`page_size`, `pageSize`, `filter.createTime`);
//! - keys and values are `application/x-www-form-urlencoded`: `+` is a space,
//!   `%XX` escapes are decoded; a malformed escape or a result that is not
//!   UTF-8 is an error; empty `&&` pieces are skipped; `a` alone means `a=`;
//! - a repeated field takes one element per parameter (`ids=1&ids=2`), in
//!   order; values are never split on commas, as in grpc-gateway
//!   (FieldMask values are the exception: one mask is a comma-separated list);
//! - a parameter naming a field bound by the path template or by `body`, or a
//!   field inside one, is ignored (grpc-gateway's filter; Envoy would let it
//!   override), so the URL path and body always win;
//! - a non-repeated field set twice is an error, and so is setting a message
//!   field and a field inside it (`ts=…&ts.seconds=…`), or two members of one
//!   oneof;
//! - unknown keys are an error unless `reject_unknown` is false (Envoy's
//!   default; grpc-gateway ignores them); a key that misuses a known field
//!   (`page_size.x`, `tags.x`) is always an error;
//! - at most `max_params` parameters, counted before any work is done;
//! - value syntax is the one of [`FieldPath::set_from_str`].
//!
//! When `apply` fails, the message may hold the parameters applied before the
//! failing one; callers reject the request and drop it.

use std::borrow::Cow;

use percent_encoding::percent_decode_str;
use prost_reflect::{DynamicMessage, MessageDescriptor};

use super::field_path::{FieldPath, FieldPathError, ValueError, echo};

/// Applies a raw query string (`a=1&b.c=x&t=1&t=2`) to a request message,
/// skipping fields already bound by the path or the body (the HttpRule rule).
#[derive(Clone, Debug)]
pub struct QueryMapper {
    desc: MessageDescriptor,
    excluded: Vec<FieldPath>,
    options: QueryOptions,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryOptions {
    /// Unknown query parameters are an error (default); when false, ignored.
    pub reject_unknown: bool,
    /// Most parameters one request may carry (default 100): bounds the work.
    pub max_params: usize,
}

/// Why a query string could not be applied; each message is fit for a 400 body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("too many query parameters: at most {limit} are allowed")]
    TooManyParams { limit: usize },
    #[error("query parameter \"{raw}\" has an invalid percent-encoding")]
    BadPercentEncoding { raw: String },
    #[error("query parameter \"{raw}\" is not valid UTF-8 once percent-decoded")]
    BadUtf8 { raw: String },
    #[error("unknown query parameter \"{key}\": {source}")]
    UnknownParam { key: String, source: FieldPathError },
    #[error("invalid query parameter \"{key}\": {source}")]
    BadKey { key: String, source: FieldPathError },
    #[error("repeated query parameter \"{key}\" for a non-repeated field")]
    Repeated { key: String },
    #[error("query parameters \"{other}\" and \"{key}\" both set field \"{field}\"")]
    Overlap {
        key: String,
        other: String,
        field: String,
    },
    #[error(transparent)]
    Value(#[from] ValueError),
}

// === impl QueryOptions ===

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            reject_unknown: true,
            max_params: 100,
        }
    }
}

// === impl QueryMapper ===

impl QueryMapper {
    /// `excluded`: the field paths bound by the path template or by `body`
    /// (rooted at `desc`); parameters naming them, or fields inside them, are
    /// ignored, as grpc-gateway does.
    pub fn new(desc: &MessageDescriptor, excluded: Vec<FieldPath>, options: QueryOptions) -> Self {
        debug_assert!(
            excluded.iter().all(|path| path.root() == desc),
            "excluded path from another message"
        );
        QueryMapper {
            desc: desc.clone(),
            excluded,
            options,
        }
    }

    pub fn options(&self) -> &QueryOptions {
        &self.options
    }

    /// `raw_query` is the part after `?`, still percent-encoded.
    pub fn apply(&self, msg: &mut DynamicMessage, raw_query: &str) -> Result<(), QueryError> {
        let params = || raw_query.split('&').filter(|param| !param.is_empty());
        if params().count() > self.options.max_params {
            return Err(QueryError::TooManyParams {
                limit: self.options.max_params,
            });
        }
        // Paths set so far, for duplicate detection: at most `max_params` of them.
        let mut seen: Vec<(FieldPath, Cow<'_, str>)> = Vec::new();
        for param in params() {
            let (raw_key, raw_value) = param.split_once('=').unwrap_or((param, ""));
            let key = decode_component(raw_key)?;
            let Some(path) = self.resolve_key(&key)? else {
                continue;
            };
            check_overlap(&seen, &path, &key)?;
            let value = decode_component(raw_value)?;
            path.set_from_str(msg, &value)?;
            seen.push((path, key));
        }
        Ok(())
    }

    /// `None` for a parameter to skip: excluded, or unknown and tolerated.
    fn resolve_key(&self, key: &str) -> Result<Option<FieldPath>, QueryError> {
        let err = match FieldPath::resolve_query_key(&self.desc, key) {
            Ok(path) if self.is_excluded(&path) => return Ok(None),
            Ok(path) => return Ok(Some(path)),
            Err(err) => err,
        };
        // grpc-gateway filters on the key's prefix before resolving it, so
        // `user.bogus` is ignored too when `user` is bound by the path.
        if self.has_excluded_prefix(key) {
            return Ok(None);
        }
        let key = echo(key);
        match err {
            FieldPathError::UnknownField { .. } | FieldPathError::EmptySegment { .. } => {
                if self.options.reject_unknown {
                    Err(QueryError::UnknownParam { key, source: err })
                } else {
                    Ok(None)
                }
            }
            FieldPathError::NotAMessage { .. } | FieldPathError::NotSingular { .. } => {
                Err(QueryError::BadKey { key, source: err })
            }
        }
    }

    fn is_excluded(&self, path: &FieldPath) -> bool {
        self.excluded
            .iter()
            .any(|excluded| path.starts_with(excluded))
    }

    /// Only called for keys that do not resolve (rare), so re-resolving the
    /// shorter prefixes is cheaper than tracking partial resolutions always.
    fn has_excluded_prefix(&self, key: &str) -> bool {
        let mut prefix = key;
        while let Some((head, _)) = prefix.rsplit_once('.') {
            if let Ok(path) = FieldPath::resolve_query_key(&self.desc, head) {
                return self.is_excluded(&path);
            }
            prefix = head;
        }
        false
    }
}

// === private helpers ===

/// A parameter may set a field no earlier parameter set, nor one inside or
/// around it; only a repeated field may be named again, to append.
fn check_overlap(
    seen: &[(FieldPath, Cow<'_, str>)],
    path: &FieldPath,
    key: &str,
) -> Result<(), QueryError> {
    for (earlier, earlier_key) in seen {
        if earlier == path {
            if path.leaf().is_list() {
                continue;
            }
            return Err(QueryError::Repeated { key: echo(key) });
        }
        if earlier.starts_with(path) || path.starts_with(earlier) {
            let shorter = if earlier.starts_with(path) {
                path
            } else {
                earlier
            };
            return Err(QueryError::Overlap {
                key: echo(key),
                other: echo(earlier_key),
                field: shorter.to_dotted(),
            });
        }
    }
    Ok(())
}

/// Form-urlencoded decoding of one key or value. `+` becomes a space before
/// `%XX` decoding, so an encoded `%2B` stays a plus.
fn decode_component(raw: &str) -> Result<Cow<'_, str>, QueryError> {
    if !raw.contains(['%', '+']) {
        return Ok(Cow::Borrowed(raw));
    }
    // percent-encoding passes malformed escapes through; the HTML form rules
    // do too, but a gateway should not guess what `%zz` meant.
    if !escapes_are_well_formed(raw.as_bytes()) {
        return Err(QueryError::BadPercentEncoding { raw: echo(raw) });
    }
    let spaced = raw.replace('+', " ");
    match percent_decode_str(&spaced).decode_utf8() {
        Ok(decoded) => Ok(Cow::Owned(decoded.into_owned())),
        Err(_) => Err(QueryError::BadUtf8 { raw: echo(raw) }),
    }
}

fn escapes_are_well_formed(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while let Some(at) = rest.iter().position(|&b| b == b'%') {
        match rest.get(at + 1..at + 3) {
            Some([hi, lo]) if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                rest = &rest[at + 3..]
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests;
