//! GraphQL over HTTP: `POST` with a JSON body `{query, variables,
//! operationName, extensions}`, `GET ?query=…` for queries only. The answer
//! is `application/graphql-response+json` when the client accepts it, else
//! `application/json`. A malformed request is a 4xx with `{"errors": [...]}`.
//!
//! Before anything runs, each operation goes through
//! [`super::protection::prepare`]; a refused operation never reaches an
//! upstream. Subscriptions are served by [`super::subscriptions`].

use std::convert::Infallible;
use std::sync::Arc;

use async_graphql::dynamic::Schema;
use async_graphql::parser::types::OperationType;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use switchyard_plugins::stage::{
    BoxFuture, HttpService, Request, Response, full_body, read_body_limited,
};

use super::call::RequestHeaders;
use super::limits::Refusal;
use super::protection::{Prepared, Protection, prepare};
use super::subscriptions::{self, Subscriptions};

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// Everything the endpoint's innermost service needs.
pub struct Served {
    pub schema: Schema,
    pub protection: Protection,
    pub subscriptions: Subscriptions,
    /// `limits.max_request_body`.
    pub max_body: usize,
}

/// The endpoint's innermost service: WebSocket upgrades go to
/// [`subscriptions::ws`], `Accept: text/event-stream` to
/// [`subscriptions::sse`], the rest is GraphQL over HTTP.
pub fn service(served: Served) -> HttpService {
    let served = Arc::new(served);
    HttpService::new(tower::service_fn(
        move |req: Request| -> BoxFuture<Result<Response, Infallible>> {
            let served = served.clone();
            // Boxed with an explicit `Send` bound, as `transcode::handler::service`.
            Box::pin(async move {
                if crate::edge::websocket::is_upgrade(&req) {
                    return Ok(subscriptions::ws::accept(served, req));
                }
                Ok(handle(&served, req).await)
            })
        },
    ))
}

/// A request that is not a GraphQL request: status and what is wrong.
pub(crate) struct Rejected(pub StatusCode, pub String);

/// A request refused as a whole with a code (batching).
struct RejectedWithCode(StatusCode, Refusal);

/// One GraphQL request as received, before persisted queries are resolved.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Body {
    pub query: Option<String>,
    #[serde(default)]
    pub variables: Option<serde_json::Value>,
    #[serde(default)]
    pub operation_name: Option<String>,
    #[serde(default)]
    pub extensions: Option<serde_json::Value>,
}

/// The body of a POST: one request or a batch.
enum Incoming {
    One(Body),
    Batch(Vec<Body>),
}

/// One operation's answer: the JSON and whether it is a request error (it
/// did not execute at all: no `data`).
struct Answer {
    /// The serialised response: rendered straight from the executor's
    /// ordered map, so fields keep the selection's order (GraphQL spec).
    json: Vec<u8>,
    request_error: bool,
}

async fn handle(served: &Served, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let graphql_response = accepts_graphql_response(&parts.headers);
    let parsed = match parts.method {
        Method::GET => from_query(parts.uri.query()).map(Incoming::One),
        Method::POST => {
            match read_body_limited(
                &parts.headers,
                body,
                served.max_body,
                "limits.max_request_body",
            )
            .await
            {
                Ok(bytes) => check_content_type(&parts.headers).and_then(|()| from_body(&bytes)),
                Err(e) => Err(Rejected(e.http_status, e.message)),
            }
        }
        _ => Err(Rejected(
            StatusCode::METHOD_NOT_ALLOWED,
            "GraphQL is served with GET (queries) and POST".to_owned(),
        )),
    };
    let incoming = match parsed {
        Ok(incoming) => incoming,
        Err(rejected) => return reject(rejected, graphql_response),
    };
    if subscriptions::sse::wanted(&parts.headers) {
        return match incoming {
            Incoming::One(body) => subscriptions::sse::serve(served, &parts, body),
            Incoming::Batch(_) => reject(
                Rejected(
                    StatusCode::BAD_REQUEST,
                    "a batch (a JSON array) cannot be streamed: send one operation per text/event-stream request".to_owned(),
                ),
                graphql_response,
            ),
        };
    }
    let (schema, protection) = (&served.schema, &served.protection);
    let headers = &RequestHeaders::of(&parts.headers, &parts.extensions);
    let method = &parts.method;
    match incoming {
        Incoming::One(body) => match run(schema, protection, method, headers, body).await {
            Ok(answer) => {
                // GraphQL over HTTP: with the new media type, a request that
                // did not execute at all (refused, parse or validation
                // errors: no data) is a 400.
                let status = if graphql_response && answer.request_error {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::OK
                };
                reply(status, answer.json, graphql_response)
            }
            Err(rejected) => reject(rejected, graphql_response),
        },
        Incoming::Batch(bodies) => {
            if let Err(RejectedWithCode(status, refusal)) = check_batch(protection, bodies.len()) {
                return render(status, &errors_json(&[refusal]), graphql_response);
            }
            let runs = bodies
                .into_iter()
                .map(|body| run(schema, protection, method, headers, body));
            let mut answers = b"[".to_vec();
            for (i, result) in futures_util::future::join_all(runs)
                .await
                .into_iter()
                .enumerate()
            {
                if i > 0 {
                    answers.push(b',');
                }
                match result {
                    Ok(answer) => answers.extend_from_slice(&answer.json),
                    Err(Rejected(_, message)) => answers.extend_from_slice(
                        &serde_json::to_vec(&serde_json::json!({"errors": [{"message": message}]}))
                            .unwrap_or_default(),
                    ),
                }
            }
            answers.push(b']');
            reply(StatusCode::OK, answers, graphql_response)
        }
    }
}

fn check_batch(protection: &Protection, len: usize) -> Result<(), RejectedWithCode> {
    let refuse = |code, message: String| {
        Err(RejectedWithCode(
            StatusCode::BAD_REQUEST,
            Refusal { code, message },
        ))
    };
    match protection.batch_max {
        None => refuse(
            "BATCHING_DISABLED",
            "batched requests (a JSON array) are not supported: graphql.batching is off".to_owned(),
        ),
        Some(_) if len == 0 => refuse(
            "BAD_REQUEST",
            "the batch (a JSON array) is empty".to_owned(),
        ),
        Some(max) if len > max => refuse(
            "BATCH_TOO_LARGE",
            format!("batch of {len} operations exceeds graphql.batching.max ({max})"),
        ),
        Some(_) => Ok(()),
    }
}

/// One operation: [`prepare`], then execution.
async fn run(
    schema: &Schema,
    protection: &Protection,
    method: &Method,
    headers: &RequestHeaders,
    body: Body,
) -> Result<Answer, Rejected> {
    let refused = |refusals: &[Refusal]| {
        Ok(Answer {
            json: serde_json::to_vec(&errors_json(refusals)).unwrap_or_default(),
            request_error: true,
        })
    };
    let (request, operation) = match prepare(protection, method, body)? {
        Prepared::Ready(request, operation)
            if operation.ty == Some(OperationType::Subscription) =>
        {
            drop(request);
            operation.observe(protection, "refused");
            return refused(&[Refusal {
                code: "SUBSCRIPTION_TRANSPORT",
                message: "a subscription needs a streaming transport: a WebSocket (graphql-transport-ws) or `Accept: text/event-stream`".to_owned(),
            }]);
        }
        Prepared::Ready(request, operation) => (request, operation),
        Prepared::Refused(refusals) => return refused(&refusals),
    };
    let request = request
        .data(headers.clone())
        .data(super::joins::RequestState::new());
    let response = schema.execute(request).await;
    let outcome = if response.errors.is_empty() {
        "ok"
    } else {
        "errors"
    };
    operation.observe(protection, outcome);
    let request_error = response.data == async_graphql::Value::Null && !response.errors.is_empty();
    let json = serde_json::to_vec(&response).map_err(|e| {
        Rejected(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the response: {e}"),
        )
    })?;
    Ok(Answer {
        json,
        request_error,
    })
}

/// `{"errors": [{"message", "extensions": {"code"}}]}`.
pub(super) fn errors_json(refusals: &[Refusal]) -> serde_json::Value {
    let errors: Vec<_> = refusals
        .iter()
        .map(|r| serde_json::json!({"message": r.message, "extensions": {"code": r.code}}))
        .collect();
    serde_json::json!({ "errors": errors })
}

fn accepts_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains(GRAPHQL_RESPONSE))
}

/// POST bodies are JSON; a missing content type is accepted.
fn check_content_type(headers: &HeaderMap) -> Result<(), Rejected> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" {
        Ok(())
    } else {
        Err(Rejected(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content type {essence:?} is not supported; send application/json"),
        ))
    }
}

fn from_body(bytes: &[u8]) -> Result<Incoming, Rejected> {
    // The usual case, one object, read straight into a `Body`; anything
    // else (a batch, or an error to explain) through a `Value`.
    if bytes.trim_ascii_start().first() == Some(&b'{')
        && let Ok(body) = serde_json::from_slice::<Body>(bytes)
    {
        return Ok(Incoming::One(body));
    }
    let bad = |m: String| Rejected(StatusCode::BAD_REQUEST, m);
    let json: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("the body is not valid JSON: {e}")))?;
    let one = |json: serde_json::Value| -> Result<Body, Rejected> {
        if !json.is_object() {
            return Err(bad(
                "the body must be a JSON object with a `query`".to_owned()
            ));
        }
        serde_json::from_value(json).map_err(|e| bad(format!("invalid request: {e}")))
    };
    match json {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(one)
            .collect::<Result<_, _>>()
            .map(Incoming::Batch),
        json => one(json).map(Incoming::One),
    }
}

/// `?query=…&variables=<JSON>&operationName=…&extensions=<JSON>`.
fn from_query(query: Option<&str>) -> Result<Body, Rejected> {
    let mut body = Body {
        query: None,
        variables: None,
        operation_name: None,
        extensions: None,
    };
    let json = |name: &str, value: &str| {
        serde_json::from_str(value).map_err(|e| {
            Rejected(
                StatusCode::BAD_REQUEST,
                format!("`{name}` is not valid JSON: {e}"),
            )
        })
    };
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value)?;
        match decode(key)?.as_str() {
            "query" => body.query = Some(value),
            "operationName" => body.operation_name = Some(value),
            "variables" => body.variables = Some(json("variables", &value)?),
            "extensions" => body.extensions = Some(json("extensions", &value)?),
            _ => {}
        }
    }
    Ok(body)
}

fn decode(text: &str) -> Result<String, Rejected> {
    let spaced = text.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            Rejected(
                StatusCode::BAD_REQUEST,
                "the query string is not UTF-8".to_owned(),
            )
        })
}

pub(super) fn reject(Rejected(status, message): Rejected, graphql_response: bool) -> Response {
    let body = serde_json::json!({"errors": [{"message": message}]});
    let mut res = render(status, &body, graphql_response);
    if status == StatusCode::METHOD_NOT_ALLOWED {
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    }
    res
}

pub(super) fn render(
    status: StatusCode,
    json: &serde_json::Value,
    graphql_response: bool,
) -> Response {
    reply(
        status,
        serde_json::to_vec(json).unwrap_or_default(),
        graphql_response,
    )
}

fn reply(status: StatusCode, json: Vec<u8>, graphql_response: bool) -> Response {
    let mut res = http::Response::new(full_body(json));
    *res.status_mut() = status;
    let content_type = if graphql_response {
        "application/graphql-response+json"
    } else {
        "application/json"
    };
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    res
}
