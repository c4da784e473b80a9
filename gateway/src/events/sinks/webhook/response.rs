//! What an endpoint's answer means for the event.
//!
//! - **2xx**: delivered.
//! - **410 Gone**: the endpoint asks not to be sent more events (the
//!   Standard Webhooks convention): [`SinkError::Permanent`], the event is
//!   dead-lettered at once.
//! - **429, 503** with `Retry-After` (seconds or an HTTP date):
//!   [`SinkError::RetryAfter`], the relay waits at least that long (capped
//!   at [`MAX_RETRY_AFTER`]).
//! - **Everything else** (other 4xx and 5xx, and 3xx: redirects are not
//!   followed): [`SinkError::Transient`], retried on the sink's schedule.
//!   Like Svix and the Standard Webhooks recommendation, a 4xx is retried
//!   too: endpoints answer 400, 401 or 404 while they are being deployed or
//!   misconfigured, and the schedule bounds how long that is tried.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode, header};

use crate::events::sinks::SinkError;

/// The longest `Retry-After` honoured: an endpoint asking for more (or a
/// date far ahead) would hold every later event of the sink that long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How much of a refusal's body is quoted in the error (and dead letter).
const QUOTED: usize = 200;

/// The outcome of one answered attempt; `what` names the request in
/// messages (`POST host/path`), `body` is what was read of the answer.
pub fn outcome(
    what: &str,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SinkError> {
    if status.is_success() {
        return Ok(());
    }
    let mut message = format!("{what}: HTTP {status}");
    if status.is_redirection() {
        message.push_str(" (redirects are not followed; point `url` at the final endpoint)");
    }
    let quoted = quote(body);
    if !quoted.is_empty() {
        message.push_str(": ");
        message.push_str(&quoted);
    }
    if status == StatusCode::GONE {
        return Err(SinkError::Permanent(format!(
            "{message} (the endpoint asks for no more deliveries)"
        )));
    }
    let retry_after = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
    .then(|| headers.get(header::RETRY_AFTER))
    .flatten()
    .and_then(|value| value.to_str().ok())
    .and_then(|value| retry_after(value, SystemTime::now()));
    Err(match retry_after {
        Some(after) => SinkError::RetryAfter { message, after },
        None => SinkError::Transient(message),
    })
}

/// The start of a body as one line of text.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(QUOTED)]);
    let mut quoted: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned();
    if body.len() > QUOTED && !quoted.is_empty() {
        quoted.push('…');
    }
    quoted
}

/// A `Retry-After` value: delay-seconds or an HTTP date (IMF-fixdate, the
/// form senders must use), as a wait from `now`, capped.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = UNIX_EPOCH + Duration::from_secs(parse_imf_fixdate(value)?);
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` as seconds since the Unix epoch.
fn parse_imf_fixdate(value: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (_weekday, rest) = value.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let number = |text: &str, len: usize| -> Option<u64> {
        (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let day = number(day, 2)?;
    let month = MONTHS.iter().position(|m| m == month)? as u64 + 1;
    let year = number(year, 4)?;
    let [h, m, s] = time.split(':').collect::<Vec<_>>()[..] else {
        return None;
    };
    let (h, m, s) = (number(h, 2)?, number(m, 2)?, number(s, 2)?);
    if !(1..=31).contains(&day) || year < 1970 || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a Gregorian date (H. Hinnant's algorithm),
/// for years from 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn retry_headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, value.parse().expect("value"));
        headers
    }

    #[test]
    fn http_dates_are_read() {
        assert_eq!(parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_imf_fixdate("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(1_835_481_599)
        );
        for bad in [
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "",
        ] {
            assert_eq!(parse_imf_fixdate(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_is_seconds_or_a_date_and_capped() {
        let now = at(784_111_777);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        // In the past: retry now (the schedule's wait still applies).
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            retry_after("99999999999999999999999", now),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(retry_after("-5", now), None);
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("", now), None);
    }

    #[test]
    fn statuses_decide_the_outcome() {
        let none = HeaderMap::new();
        assert!(outcome("POST h/p", StatusCode::OK, &none, b"").is_ok());
        assert!(outcome("POST h/p", StatusCode::NO_CONTENT, &none, b"").is_ok());
        assert!(outcome("POST h/p", StatusCode::ACCEPTED, &none, b"").is_ok());

        let gone = outcome("POST h/p", StatusCode::GONE, &none, b"bye").unwrap_err();
        assert!(
            matches!(&gone, SinkError::Permanent(m) if m.contains("410") && m.contains("bye")),
            "{gone:?}"
        );
        for status in [
            400, 401, 403, 404, 408, 409, 413, 422, 425, 429, 500, 502, 503, 504, 301, 302, 307,
        ] {
            let status = StatusCode::from_u16(status).expect("status");
            let err = outcome("POST h/p", status, &none, b"").unwrap_err();
            assert!(matches!(err, SinkError::Transient(_)), "{status}: {err:?}");
        }
        let redirect = outcome("POST h/p", StatusCode::MOVED_PERMANENTLY, &none, b"").unwrap_err();
        assert!(
            redirect.to_string().contains("redirects are not followed"),
            "{redirect}"
        );
    }

    #[test]
    fn retry_after_counts_on_429_and_503_only() {
        for status in [
            StatusCode::TOO_MANY_REQUESTS,
            StatusCode::SERVICE_UNAVAILABLE,
        ] {
            let err = outcome("POST h/p", status, &retry_headers("7"), b"").unwrap_err();
            assert!(
                matches!(err, SinkError::RetryAfter { after, .. } if after == Duration::from_secs(7)),
                "{status}: {err:?}"
            );
        }
        let err = outcome(
            "POST h/p",
            StatusCode::INTERNAL_SERVER_ERROR,
            &retry_headers("7"),
            b"",
        )
        .unwrap_err();
        assert!(matches!(err, SinkError::Transient(_)), "{err:?}");
        let err = outcome(
            "POST h/p",
            StatusCode::TOO_MANY_REQUESTS,
            &retry_headers("later"),
            b"",
        )
        .unwrap_err();
        assert!(matches!(err, SinkError::Transient(_)), "{err:?}");
    }

    #[test]
    fn the_body_is_quoted_on_one_line_and_short() {
        let none = HeaderMap::new();
        let err = outcome(
            "POST h/p",
            StatusCode::BAD_REQUEST,
            &none,
            b"bad\r\nthing\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "POST h/p: HTTP 400 Bad Request: bad  thing"
        );
        let long = vec![b'x'; 5000];
        let err = outcome("POST h/p", StatusCode::BAD_REQUEST, &none, &long).unwrap_err();
        let text = err.to_string();
        assert!(text.ends_with('…') && text.len() < 300, "{text}");
    }
}
