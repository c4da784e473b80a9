//! GraphQL over HTTP: `POST` with a JSON body `{query, variables,
//! operationName}`, `GET ?query=…` for queries only. The answer is
//! `application/graphql-response+json` when the client accepts it, else
//! `application/json`. A malformed request is a 4xx with `{"errors": [...]}`.

use std::convert::Infallible;
use std::sync::Arc;

use async_graphql::dynamic::Schema;
use async_graphql::parser::types::{DocumentOperations, OperationType};
use async_graphql::{Request as GqlRequest, Variables};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use percent_encoding::percent_decode_str;
use serde::Deserialize;
use switchyard_plugins::stage::{
    BoxFuture, HttpService, Request, Response, full_body, read_body_limited,
};

use super::call::RequestHeaders;

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// The endpoint's innermost service.
pub fn service(schema: Schema, max_body: usize) -> HttpService {
    let schema = Arc::new(schema);
    HttpService::new(tower::service_fn(
        move |req: Request| -> BoxFuture<Result<Response, Infallible>> {
            let schema = schema.clone();
            // Boxed with an explicit `Send` bound, as `transcode::handler::service`.
            Box::pin(async move { Ok(handle(&schema, max_body, req).await) })
        },
    ))
}

/// A request that is not a GraphQL request: status and what is wrong.
struct Rejected(StatusCode, String);

/// The JSON body of a POST.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    query: Option<String>,
    #[serde(default)]
    variables: Option<serde_json::Value>,
    #[serde(default)]
    operation_name: Option<String>,
}

async fn handle(schema: &Schema, max_body: usize, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let graphql_response = accepts_graphql_response(&parts.headers);
    let parsed = match parts.method {
        Method::GET => from_query(parts.uri.query()),
        Method::POST => {
            match read_body_limited(&parts.headers, body, max_body, "limits.max_request_body").await
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
    let request = match parsed.and_then(|r| queries_only_on_get(&parts.method, r)) {
        Ok(request) => request.data(RequestHeaders(parts.headers)),
        Err(rejected) => return reject(rejected, graphql_response),
    };
    let response = schema.execute(request).await;
    // GraphQL over HTTP: with the new media type, a request that did not
    // execute at all (no data: parse or validation errors) is a 400.
    let status = if graphql_response
        && response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
    {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    match serde_json::to_vec(&response) {
        Ok(json) => reply(status, json, graphql_response),
        Err(e) => reject(
            Rejected(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot render the response: {e}"),
            ),
            graphql_response,
        ),
    }
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

fn from_body(bytes: &[u8]) -> Result<GqlRequest, Rejected> {
    let bad = |m: String| Rejected(StatusCode::BAD_REQUEST, m);
    let json: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| bad(format!("the body is not valid JSON: {e}")))?;
    if json.is_array() {
        return Err(bad(
            "batched requests (a JSON array) are not supported".to_owned()
        ));
    }
    if !json.is_object() {
        return Err(bad(
            "the body must be a JSON object with a `query`".to_owned()
        ));
    }
    let body: Body =
        serde_json::from_value(json).map_err(|e| bad(format!("invalid request: {e}")))?;
    build(body.query, body.variables, body.operation_name)
}

/// `?query=…&variables=<JSON>&operationName=…`.
fn from_query(query: Option<&str>) -> Result<GqlRequest, Rejected> {
    let (mut text, mut variables, mut operation) = (None, None, None);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value)?;
        match decode(key)?.as_str() {
            "query" => text = Some(value),
            "operationName" => operation = Some(value),
            "variables" => {
                let json = serde_json::from_str(&value).map_err(|e| {
                    Rejected(
                        StatusCode::BAD_REQUEST,
                        format!("`variables` is not valid JSON: {e}"),
                    )
                })?;
                variables = Some(json);
            }
            _ => {}
        }
    }
    build(text, variables, operation)
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

fn build(
    query: Option<String>,
    variables: Option<serde_json::Value>,
    operation: Option<String>,
) -> Result<GqlRequest, Rejected> {
    let bad = |m: &str| Rejected(StatusCode::BAD_REQUEST, m.to_owned());
    let query = query
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| bad("`query` is required"))?;
    let mut request = GqlRequest::new(query);
    match variables {
        None | Some(serde_json::Value::Null) => {}
        Some(v @ serde_json::Value::Object(_)) => {
            request = request.variables(Variables::from_json(v))
        }
        Some(_) => return Err(bad("`variables` must be an object")),
    }
    if let Some(name) = operation.filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    Ok(request)
}

/// GET must not change anything: a mutation (or subscription) over GET is a 405.
fn queries_only_on_get(method: &Method, mut request: GqlRequest) -> Result<GqlRequest, Rejected> {
    if method != Method::GET {
        return Ok(request);
    }
    let name = request.operation_name.clone();
    // A query that does not parse is left to the executor, which reports it.
    let Ok(document) = request.parsed_query() else {
        return Ok(request);
    };
    let ty = match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.get(name.as_str()).map(|op| op.node.ty)
        }
        (DocumentOperations::Multiple(_), None) => None,
    };
    match ty {
        Some(OperationType::Mutation | OperationType::Subscription) => Err(Rejected(
            StatusCode::METHOD_NOT_ALLOWED,
            "only queries can be sent with GET; use POST".to_owned(),
        )),
        _ => Ok(request),
    }
}

fn reject(Rejected(status, message): Rejected, graphql_response: bool) -> Response {
    let body = serde_json::json!({"errors": [{"message": message}]});
    let mut res = reply(
        status,
        serde_json::to_vec(&body).unwrap_or_default(),
        graphql_response,
    );
    if status == StatusCode::METHOD_NOT_ALLOWED {
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, POST"));
    }
    res
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
