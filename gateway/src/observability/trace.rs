//! W3C Trace Context (`traceparent`, `tracestate`): a request that brings a
//! valid `traceparent` keeps it; one without (or with a malformed one) gets
//! a new trace, started here. Either way the request carries a valid
//! `traceparent` from the edge on, so the upstream's gRPC metadata, the
//! events a call publishes (`{header.traceparent}`) and the access log all
//! name the same trace.
//!
//! A started trace is sampled (`-01`): the gateway is then the root of the
//! trace, and an upstream that records traces records this one.

use http::{HeaderMap, HeaderValue};

/// `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// `tracestate`.
pub const TRACESTATE: &str = "tracestate";

/// The trace id (32 lower-case hex digits) of a valid `traceparent`.
pub fn trace_id(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?;
    parse(value).then(|| &value[3..35])
}

/// Makes sure `headers` carry a valid `traceparent`: kept when valid,
/// replaced by a new trace otherwise (a `tracestate` without a valid
/// parent is dropped with it, as the spec asks).
pub fn ensure(headers: &mut HeaderMap) {
    let valid = headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(parse);
    if valid && headers.get_all(TRACEPARENT).iter().count() == 1 {
        return;
    }
    headers.remove(TRACESTATE);
    headers.insert(TRACEPARENT, start());
}

/// A new sampled trace: random trace and parent ids.
fn start() -> HeaderValue {
    let trace = loop {
        let id = fastrand::u128(..);
        if id != 0 {
            break id;
        }
    };
    let span = fastrand::u64(1..);
    let value = format!("00-{trace:032x}-{span:016x}-01");
    HeaderValue::from_str(&value).expect("hex digits and dashes are a valid header value")
}

/// Whether `value` is a `traceparent` this gateway understands: version
/// `00` exactly as specified, or a later version whose first four fields
/// have the version 00 shape (the spec's forward compatibility rule);
/// all-zero ids are invalid.
fn parse(value: &str) -> bool {
    let bytes = value.as_bytes();
    if bytes.len() < 55 {
        return false;
    }
    let version = &value[..2];
    if !is_hex(version) || version == "ff" || (version == "00" && bytes.len() != 55) {
        return false;
    }
    if version != "00" && bytes.len() > 55 && bytes[55] != b'-' {
        return false;
    }
    let dashes = bytes[2] == b'-' && bytes[35] == b'-' && bytes[52] == b'-';
    let (trace, parent, flags) = (&value[3..35], &value[36..52], &value[53..55]);
    dashes
        && is_hex(trace)
        && is_hex(parent)
        && is_hex(flags)
        && trace.bytes().any(|b| b != b'0')
        && parent.bytes().any(|b| b != b'0')
}

/// Lower-case hex digits only.
fn is_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(values: &[(&'static str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in values {
            headers.append(*name, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_valid_traceparent_and_its_tracestate_are_kept() {
        let mut h = headers(&[(TRACEPARENT, VALID), (TRACESTATE, "vendor=x")]);
        ensure(&mut h);
        assert_eq!(h[TRACEPARENT], VALID);
        assert_eq!(h[TRACESTATE], "vendor=x");
        assert_eq!(trace_id(&h), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    }

    #[test]
    fn a_missing_or_malformed_traceparent_starts_a_sampled_trace() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let mut h = headers(&[(TRACEPARENT, bad), (TRACESTATE, "vendor=x")]);
            ensure(&mut h);
            let value = h[TRACEPARENT].to_str().unwrap().to_owned();
            assert_ne!(value, bad);
            assert!(parse(&value), "{value}");
            assert!(value.ends_with("-01"), "{value}");
            assert!(
                h.get(TRACESTATE).is_none(),
                "tracestate dropped with {bad:?}"
            );
        }
        let mut h = HeaderMap::new();
        ensure(&mut h);
        assert_eq!(trace_id(&h).unwrap().len(), 32);
    }

    #[test]
    fn a_later_version_with_more_fields_is_understood() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever";
        let mut h = headers(&[(TRACEPARENT, later)]);
        ensure(&mut h);
        assert_eq!(h[TRACEPARENT], later);
    }

    #[test]
    fn two_traceparents_are_replaced_by_one_new_trace() {
        let mut h = headers(&[(TRACEPARENT, VALID), (TRACEPARENT, VALID)]);
        ensure(&mut h);
        assert_eq!(h.get_all(TRACEPARENT).iter().count(), 1);
        assert_ne!(h[TRACEPARENT], VALID);
    }
}
