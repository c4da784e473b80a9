//! What is checked before an operation runs, on every transport: persisted
//! queries ([`super::persisted`]), then the size limits on the text, then
//! the limits on the parsed document ([`super::limits`]), then whether
//! introspection is allowed. A refused operation never reaches an upstream.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_graphql::dynamic::Schema;
use async_graphql::parser::types::{DocumentOperations, ExecutableDocument, OperationType};

use crate::observability::graphql::GraphqlMetrics;
use async_graphql::{Request as GqlRequest, Variables};
use http::{Method, StatusCode};

use super::BuildError;
use super::http::{Body, Rejected};
use super::limits::{Limits, Refusal};
use super::lru::Lru;
use super::persisted::Persisted;
use crate::config::graphql::GraphqlConfig;

/// What is checked before an operation runs: `graphql.limits`,
/// `graphql.introspection`, `graphql.batching`, `graphql.persisted_queries`.
pub struct Protection {
    limits: Limits,
    persisted: Persisted,
    introspection: bool,
    /// Most operations in a batch; `None`: batches are refused.
    pub(super) batch_max: Option<usize>,
    /// Parsed documents by query text (`graphql.document_cache`).
    documents: Mutex<Lru<Arc<ExecutableDocument>>>,
    metrics: GraphqlMetrics,
}

/// The longest query text whose parsed document is cached: bounds the
/// cache's memory to `document_cache` × (4 KiB of text and its tree).
const MAX_CACHED_QUERY: usize = 4096;

// === impl Protection ===

impl Protection {
    /// `base_dir` is the config file's directory (the safelist file is
    /// relative to it).
    pub fn new(
        config: &GraphqlConfig,
        schema: &Schema,
        base_dir: &Path,
        metrics: GraphqlMetrics,
    ) -> Result<Protection, BuildError> {
        if let Some(batching) = &config.batching
            && batching.max == 0
        {
            return Err(BuildError::at(
                ["batching", "max"],
                "must be at least 1 (leave `batching` out to refuse batches)",
            ));
        }
        Ok(Protection {
            limits: Limits::new(config, schema)?,
            persisted: Persisted::new(&config.persisted_queries, base_dir)?,
            introspection: config.introspection,
            batch_max: config.batching.as_ref().map(|b| b.max),
            documents: Mutex::new(Lru::new(config.document_cache)),
            metrics,
        })
    }
}

impl Protection {
    fn cached_document(&self, query: &str) -> Option<Arc<ExecutableDocument>> {
        if query.len() > MAX_CACHED_QUERY {
            return None;
        }
        self.documents
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(query)
    }

    fn cache_document(&self, request: &mut GqlRequest) {
        if request.query.len() > MAX_CACHED_QUERY {
            return;
        }
        let query = request.query.clone();
        if let Ok(document) = request.parsed_query() {
            let document = Arc::new(document.clone());
            self.documents
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(query, document);
        }
    }
}

/// An operation that passed [`prepare`], or why it was refused.
// Returned once per operation and unpacked at once: boxing the request
// would only add an allocation per operation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Prepared {
    Ready(GqlRequest, Operation),
    Refused(Vec<Refusal>),
}

/// What the metrics say of an operation that passed.
#[derive(Clone, Debug)]
pub(crate) struct Operation {
    /// Its type, when the document names the operation to run unambiguously.
    pub ty: Option<OperationType>,
    pub name: Option<String>,
    /// Its complexity (`graphql.limits`).
    pub cost: u64,
}

impl Operation {
    /// `query`, `mutation`, `subscription`, or `-`.
    pub fn kind(&self) -> &'static str {
        match self.ty {
            Some(OperationType::Query) => "query",
            Some(OperationType::Mutation) => "mutation",
            Some(OperationType::Subscription) => "subscription",
            None => "-",
        }
    }

    /// Counts it in `graphql_operations_total` with `outcome`.
    pub fn observe(&self, protection: &Protection, outcome: &str) {
        protection
            .metrics
            .observe(self.name.as_deref(), self.kind(), outcome, Some(self.cost));
    }
}

/// Persisted query, parsing, limits and introspection: the request to
/// execute with what the metrics say of it, or the refusals (a document
/// that does not parse is one: `GRAPHQL_PARSE_FAILED`).
pub(crate) fn prepare(
    protection: &Protection,
    method: &Method,
    body: Body,
) -> Result<Prepared, Rejected> {
    let name = body.operation_name.clone();
    let prepared = prepare_checked(protection, method, body);
    if let Ok(Prepared::Refused(_)) = &prepared {
        protection
            .metrics
            .observe(name.as_deref(), "-", "refused", None);
    }
    prepared
}

fn prepare_checked(
    protection: &Protection,
    method: &Method,
    body: Body,
) -> Result<Prepared, Rejected> {
    let resolved = match protection
        .persisted
        .resolve(body.query, body.extensions.as_ref())
    {
        Ok(resolved) => resolved,
        Err(refusal) if refusal.code == "BAD_REQUEST" => {
            return Err(Rejected(StatusCode::BAD_REQUEST, refusal.message));
        }
        Err(refusal) => return Ok(Prepared::Refused(vec![refusal])),
    };
    if let Err(refusal) = protection.limits.check_text(&resolved.query) {
        return Ok(Prepared::Refused(vec![refusal]));
    }
    let mut request = build(resolved.query, body.variables, body.operation_name)?;
    // A query seen before is not parsed again (parsing is a large share of
    // a small query's cost).
    let cached = protection.cached_document(&request.query);
    let hit = cached.is_some();
    if let Some(document) = cached {
        request.set_parsed_query(ExecutableDocument::clone(&document));
    }
    let ty = operation_type(&mut request);
    if method == Method::GET && ty == Some(OperationType::Mutation) {
        // GET must not change anything (a subscription only reads: an
        // `EventSource` opens one with GET).
        return Err(Rejected(
            StatusCode::METHOD_NOT_ALLOWED,
            "mutations cannot be sent with GET; use POST".to_owned(),
        ));
    }
    // The document is parsed once (the executor reuses it).
    let variables = std::mem::take(&mut request.variables);
    let operation = request.operation_name.take();
    let checked = match request.parsed_query() {
        Ok(document) => {
            protection
                .limits
                .check_document(document, operation.as_deref(), &variables)
        }
        // A syntax error, or nesting past the parser's recursion limit.
        Err(e) => {
            return Ok(Prepared::Refused(vec![Refusal {
                code: "GRAPHQL_PARSE_FAILED",
                message: parse_failure(&e),
            }]));
        }
    };
    request.variables = variables;
    let cost = match checked {
        Err(refusals) => return Ok(Prepared::Refused(refusals)),
        Ok(cost) => cost,
    };
    if let Some(hash) = resolved.register {
        protection.persisted.register(hash, &request.query);
    }
    if !hit {
        protection.cache_document(&mut request);
    }
    if !protection.introspection {
        request = request.disable_introspection();
    }
    let name = operation.clone().or_else(|| single_name(&mut request));
    request.operation_name = operation;
    Ok(Prepared::Ready(request, Operation { ty, name, cost }))
}

/// A parse error in a line: the parser's own message quotes the query's
/// line with a caret under the column, which for a one-line query of a
/// megabyte is a megabyte or two of error.
fn parse_failure(e: &async_graphql::ServerError) -> String {
    let gist = e
        .message
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .trim_start_matches("= ");
    let gist: String = gist.chars().take(200).collect();
    match e.locations.first() {
        Some(at) => format!(
            "syntax error at line {}, column {}: {gist}",
            at.line, at.column
        ),
        None => format!("cannot parse the query: {gist}"),
    }
}

fn build(
    query: String,
    variables: Option<serde_json::Value>,
    operation: Option<String>,
) -> Result<GqlRequest, Rejected> {
    let bad = |m: &str| Rejected(StatusCode::BAD_REQUEST, m.to_owned());
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

/// The name of a document's only operation, when it has one.
fn single_name(request: &mut GqlRequest) -> Option<String> {
    match &request.parsed_query().ok()?.operations {
        DocumentOperations::Single(_) => None,
        DocumentOperations::Multiple(ops) if ops.len() == 1 => {
            ops.keys().next().map(|n| n.to_string())
        }
        DocumentOperations::Multiple(_) => None,
    }
}

/// The type of the operation that would run, if the document parses and
/// names it unambiguously.
fn operation_type(request: &mut GqlRequest) -> Option<OperationType> {
    let name = request.operation_name.clone();
    let document = request.parsed_query().ok()?;
    match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(op.node.ty),
        (DocumentOperations::Multiple(ops), Some(name)) => {
            ops.get(name.as_str()).map(|op| op.node.ty)
        }
        // One named operation and no `operationName`: that one runs.
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| op.node.ty)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}
