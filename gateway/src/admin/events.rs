//! `/admin/events` (the outbox per sink) and `/admin/events/dead/<sink>`.

use http::StatusCode;
use switchyard_plugins::error::{Code, ErrorResponse};
use switchyard_plugins::stage::Response;

use super::{json, query_pairs};
use crate::edge::Gateway;

pub(super) const DEAD_LETTERS: &str = "/admin/events/dead/";

/// `/admin/events`: events waiting per sink, the oldest one's age.
pub(super) fn status(gateway: &Gateway) -> Response {
    match &gateway.runtime().events {
        Some(events) => json(StatusCode::OK, events.status().to_string()),
        None => not_configured(),
    }
}

/// `/admin/events/dead/<sink>?limit=N`: the sink's newest dead letters
/// (reason, times, the stored CloudEvent), newest first.
pub(super) fn dead_letters(gateway: &Gateway, uri: &http::Uri) -> Response {
    let sink = &uri.path()[DEAD_LETTERS.len()..];
    let limit = query_pairs(uri)
        .find(|(name, _)| *name == "limit")
        .map(|(_, value)| value.parse::<usize>());
    let limit = match limit {
        None => 100,
        Some(Ok(n)) => n.min(10_000),
        Some(Err(_)) => {
            return ErrorResponse::new(Code::InvalidArgument, "`limit` must be a number")
                .into_response();
        }
    };
    let runtime = gateway.runtime();
    let Some(events) = &runtime.events else {
        return not_configured();
    };
    match events.dead_letters(sink, limit) {
        Some(Ok(dead)) => json(
            StatusCode::OK,
            serde_json::json!({ "sink": sink, "dead_letters": dead }).to_string(),
        ),
        Some(Err(e)) => ErrorResponse::new(Code::Internal, format!("cannot read the outbox: {e}"))
            .into_response(),
        None => {
            let known: Vec<&str> = events.sink_names().collect();
            ErrorResponse::new(
                Code::NotFound,
                format!("no sink {sink:?}; events.sinks has [{}]", known.join(", ")),
            )
            .into_response()
        }
    }
}

fn not_configured() -> Response {
    ErrorResponse::new(
        Code::NotFound,
        "events are not configured (no `events:` section)",
    )
    .into_response()
}
