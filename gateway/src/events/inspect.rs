//! `switchyard events status|dead`: what waits in the outbox and what was
//! given up. A running gateway is asked on its admin listener (it holds
//! the outbox file); a stopped one's outbox file is read directly.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::outbox::Outbox;
use crate::config::LoadedConfig;

/// What to show.
pub enum Query {
    Status,
    Dead { sink: String, limit: usize },
}

/// How long the admin listener may take to answer.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers `query` for the gateway configured by `loaded`: from its admin
/// listener (`admin`, else the config's `admin.address`) when it answers,
/// else from the outbox file. Returns the JSON `/admin/events…` answers.
pub async fn query(
    loaded: &LoadedConfig,
    admin: Option<&str>,
    query: &Query,
) -> Result<serde_json::Value, String> {
    let config = &loaded.config;
    let events = config
        .events
        .as_ref()
        .ok_or("the config has no `events:` section")?;
    let address = admin
        .map(str::to_owned)
        .or_else(|| config.admin.enabled.then(|| config.admin.address.clone()));
    let path = match query {
        Query::Status => "/admin/events".to_owned(),
        Query::Dead { sink, limit } => format!("/admin/events/dead/{sink}?limit={limit}"),
    };
    if let Some(address) = address {
        match from_admin(&address, &path).await {
            Ok(answer) => return Ok(answer),
            Err(AdminError::Unreachable(e)) => {
                tracing::debug!(%address, error = %e, "admin listener unreachable; reading the outbox file");
            }
            Err(AdminError::Answer(e)) => return Err(e),
        }
    }
    let names: Vec<String> = events.sinks.keys().cloned().collect();
    let file = loaded.source.base_dir().join(&events.outbox.path);
    let max_events = events.outbox.max_events;
    let query = match query {
        Query::Status => None,
        Query::Dead { sink, limit } => Some((sink.clone(), *limit)),
    };
    tokio::task::spawn_blocking(move || {
        let outbox = Outbox::inspect(&file, &names, max_events)?;
        match query {
            None => {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                Ok(outbox.status(&names))
            }
            Some((sink, limit)) => {
                let index = names.iter().position(|n| *n == sink).ok_or_else(|| {
                    format!("no sink {sink:?}; events.sinks has [{}]", names.join(", "))
                })?;
                let dead = outbox.dead_letters(index, limit)?;
                Ok(serde_json::json!({ "sink": sink, "dead_letters": dead }))
            }
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

enum AdminError {
    /// Nothing listens (the gateway is stopped): read the file instead.
    Unreachable(String),
    /// The gateway answered with an error.
    Answer(String),
}

async fn from_admin(address: &str, path: &str) -> Result<serde_json::Value, AdminError> {
    let url = format!("http://{address}{path}");
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: http::Uri = url
        .parse()
        .map_err(|e| AdminError::Answer(format!("bad admin address {address:?}: {e}")))?;
    let response = tokio::time::timeout(ADMIN_TIMEOUT, client.get(uri))
        .await
        .map_err(|_| AdminError::Answer(format!("{url}: no answer within {ADMIN_TIMEOUT:?}")))?
        .map_err(|e| AdminError::Unreachable(e.to_string()))?;
    let status = response.status();
    let body = tokio::time::timeout(ADMIN_TIMEOUT, response.into_body().collect())
        .await
        .map_err(|_| AdminError::Answer(format!("{url}: no answer within {ADMIN_TIMEOUT:?}")))?
        .map_err(|e| AdminError::Answer(format!("{url}: {e}")))?
        .to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| AdminError::Answer(format!("{url}: not JSON: {e}")))?;
    if !status.is_success() {
        let message = json["message"].as_str().unwrap_or("error");
        return Err(AdminError::Answer(format!("{url}: {status}: {message}")));
    }
    Ok(json)
}

/// The status as a table for people.
pub fn status_table(status: &serde_json::Value) -> String {
    let mut out = format!(
        "outbox: {} waiting (max {})\n{:<24} {:>10} {:>14} {:>14}\n",
        status["outbox"]["depth"],
        status["outbox"]["max_events"],
        "SINK",
        "WAITING",
        "OLDEST (s)",
        "DEAD-LETTERED"
    );
    for sink in status["sinks"].as_array().into_iter().flatten() {
        let oldest = sink["oldest_age_seconds"]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |s| format!("{s:.1}"));
        out.push_str(&format!(
            "{:<24} {:>10} {:>14} {:>14}\n",
            sink["name"].as_str().unwrap_or_default(),
            sink["waiting"],
            oldest,
            sink["dead_lettered"],
        ));
    }
    out
}
