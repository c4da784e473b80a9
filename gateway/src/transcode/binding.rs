//! A compiled HTTP binding: everything the request path needs, resolved once
//! per config version — descriptors, field paths, the query mapper — so a
//! request does no look-ups by name.

use std::sync::Arc;

use http::Method;
use http::uri::PathAndQuery;
use prost_reflect::{MessageDescriptor, MethodDescriptor};

use super::field_path::FieldPath;
use super::http_rule::RuleSpec;
use super::path_template::PathTemplate;
use super::query::{QueryMapper, QueryOptions};
use crate::config::{JsonOptions, UnknownFields};
use crate::routing::RouteCtx;

/// Where the request body goes.
#[derive(Clone, Debug)]
pub enum BodyRule {
    /// No body is read (GET, DELETE…): every field not in the path comes from the query.
    None,
    /// `body: "*"`: the whole request message, minus path fields.
    Whole,
    /// `body: "field"`: one field of the request.
    Field(FieldPath),
}

/// One HTTP binding of one gRPC method on one route.
#[derive(Debug)]
pub struct Binding {
    pub route: Arc<RouteCtx>,
    pub rpc: MethodDescriptor,
    /// `/pkg.Service/Method`, the gRPC request path.
    pub grpc_path: PathAndQuery,
    pub http_method: Method,
    pub template: PathTemplate,
    /// One per template variable, in `template.variables()` order.
    pub path_fields: Vec<FieldPath>,
    pub body: BodyRule,
    pub response_body: Option<FieldPath>,
    pub query: QueryMapper,
    pub input: MessageDescriptor,
    pub output: MessageDescriptor,
}

/// A binding that cannot be compiled, with the reason.
#[derive(Debug, thiserror::Error)]
#[error("{rpc} `{method} {template}`: {message}")]
pub struct BindingError {
    pub rpc: String,
    pub method: Method,
    pub template: String,
    pub message: String,
}

// === impl Binding ===

impl Binding {
    pub fn compile(
        route: Arc<RouteCtx>,
        rpc: &MethodDescriptor,
        spec: &RuleSpec,
    ) -> Result<Binding, BindingError> {
        let err = |message: String| BindingError {
            rpc: rpc.full_name().to_owned(),
            method: spec.method.clone(),
            template: spec.template.clone(),
            message,
        };
        if rpc.is_client_streaming() {
            return Err(err(
                "client-streaming methods cannot be transcoded from a single HTTP request".into(),
            ));
        }
        let input = rpc.input();
        let output = rpc.output();
        let template = PathTemplate::parse(&spec.template).map_err(|e| err(e.to_string()))?;
        let mut path_fields = Vec::new();
        for var in template.variables() {
            let dotted = var.field_path.join(".");
            let field = FieldPath::resolve(&input, &dotted)
                .map_err(|e| err(format!("path variable {{{dotted}}}: {e}")))?;
            path_fields.push(field);
        }
        let body = match spec.body.as_str() {
            "" => BodyRule::None,
            "*" => BodyRule::Whole,
            name => {
                let field = FieldPath::resolve(&input, name)
                    .map_err(|e| err(format!("body {name:?}: {e}")))?;
                // HttpRule: "the referred field must be present at the top-level of the request message type".
                if field.fields().len() != 1 {
                    return Err(err(format!(
                        "body {name:?} must name a top-level field of {}",
                        input.full_name()
                    )));
                }
                BodyRule::Field(field)
            }
        };
        let response_body = match spec.response_body.as_str() {
            "" => None,
            name => Some(
                FieldPath::resolve(&output, name)
                    .map_err(|e| err(format!("response_body {name:?}: {e}")))?,
            ),
        };
        let mut excluded = path_fields.clone();
        if let BodyRule::Field(f) = &body {
            excluded.push(f.clone());
        }
        let query = QueryMapper::new(&input, excluded, query_options(&route.json));
        let grpc_path = PathAndQuery::try_from(format!(
            "/{}/{}",
            rpc.parent_service().full_name(),
            rpc.name()
        ))
        .map_err(|e| err(format!("cannot form the gRPC path: {e}")))?;
        Ok(Binding {
            route,
            rpc: rpc.clone(),
            grpc_path,
            http_method: spec.method.clone(),
            template,
            path_fields,
            body,
            response_body,
            query,
            input,
            output,
        })
    }

    /// `GET /v1/users/{id}`, for messages and the admin route table.
    pub fn describe(&self) -> String {
        format!("{} {}", self.http_method, self.template.as_str())
    }
}

fn query_options(json: &JsonOptions) -> QueryOptions {
    QueryOptions {
        reject_unknown: json.unknown_fields == UnknownFields::Reject,
        ..QueryOptions::default()
    }
}
