//! `forward:` an accepted delivery becomes one unary call of a gRPC method,
//! through a route of `routes:` (its upstream, timeout, header forwarding,
//! JSON options and events), instead of an event in the outbox.
//!
//! The request message is the provider's JSON body (`body: "*"`), fields
//! the message does not define ignored (providers add fields without
//! notice), or a message built around it (`body: <field>`: the body as a
//! message, e.g. `google.protobuf.Struct`, or as received in a `string` or
//! `bytes` field). The webhook id goes as the `webhook-id` metadata, and
//! into `id_field` when one is named.

use std::sync::Arc;

use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue};
use prost_reflect::{
    DeserializeOptions, DynamicMessage, FieldDescriptor, Kind, MethodDescriptor, ServiceDescriptor,
    Value,
};
use switchyard_plugins::error::{Code, ErrorResponse};

use crate::config::webhooks::ForwardConfig;
use crate::events::Occurrence;
use crate::routing::RouteCtx;
use crate::transcode::handler::{call_upstream, forward_metadata};
use crate::upstream::Call;

/// The metadata carrying the webhook id to the method.
pub const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");

/// A route the webhooks may forward to, with its service.
pub struct Target {
    pub route: Arc<RouteCtx>,
    pub service: ServiceDescriptor,
    /// The route's `methods:`, when it restricts them.
    pub methods: Option<Vec<String>>,
}

/// A compiled `forward:`.
pub struct Forwarder {
    route: Arc<RouteCtx>,
    method: MethodDescriptor,
    path: PathAndQuery,
    body: Body,
    id_field: Option<FieldDescriptor>,
}

/// Where the body goes in the request.
enum Body {
    /// The whole request message.
    Whole,
    /// One top-level field: a message (the body as JSON), or `string` /
    /// `bytes` (the body as received).
    Field(FieldDescriptor),
}

/// Why a forwarded delivery was not handled.
#[derive(Debug)]
pub enum ForwardError {
    /// The body does not fit the method's request (400: it will not get
    /// better on a retry).
    Invalid(String),
    /// The call failed, or was refused before it (the route's events had
    /// no room): the error to answer.
    Call(ErrorResponse),
}

// === impl Forwarder ===

impl Forwarder {
    /// Compiles `config`; `targets` are the config's routes. Errors name the
    /// `forward` key they are about (`route`, `method`, `body`, `id_field`).
    pub fn compile(
        config: &ForwardConfig,
        targets: &[Target],
    ) -> Result<Forwarder, (&'static str, String)> {
        let target = targets
            .iter()
            .find(|t| t.route.name == config.route)
            .ok_or_else(|| {
                let known: Vec<&str> = targets.iter().map(|t| t.route.name.as_str()).collect();
                let message = format!(
                    "unknown route `{}`; routes: [{}]",
                    config.route,
                    known.join(", ")
                );
                ("route", message)
            })?;
        let method = target
            .service
            .methods()
            .find(|m| m.name() == config.method)
            .ok_or_else(|| {
                let known: Vec<String> = target
                    .service
                    .methods()
                    .map(|m| m.name().to_owned())
                    .collect();
                let message = format!(
                    "{} has no method `{}`; it has [{}]",
                    target.service.full_name(),
                    config.method,
                    known.join(", ")
                );
                ("method", message)
            })?;
        if method.is_client_streaming() || method.is_server_streaming() {
            let message = format!(
                "{} is a streaming method; forward needs a unary one",
                method.full_name()
            );
            return Err(("method", message));
        }
        if let Some(allowed) = &target.methods
            && !allowed.iter().any(|m| m == method.name())
        {
            let message = format!(
                "route `{}` does not expose `{}` (its `methods` are [{}])",
                config.route,
                method.name(),
                allowed.join(", ")
            );
            return Err(("method", message));
        }
        let body = body_target(&method, &config.body).map_err(|e| ("body", e))?;
        let id_field = config
            .id_field
            .as_deref()
            .map(|name| id_field(&method, name, &body))
            .transpose()
            .map_err(|e| ("id_field", e))?;
        let path =
            PathAndQuery::try_from(format!("/{}/{}", target.service.full_name(), method.name()))
                .map_err(|e| ("method", format!("not a gRPC path: {e}")))?;
        Ok(Forwarder {
            route: target.route.clone(),
            method,
            path,
            body,
            id_field,
        })
    }

    /// The route's name and the method's full name, for logs.
    pub fn describe(&self) -> String {
        format!(
            "{} via route `{}`",
            self.method.full_name(),
            self.route.name
        )
    }

    /// Calls the method with delivery `id` (`raw`: the body as received;
    /// `parts`: the request, for header forwarding and the events).
    pub async fn forward(
        &self,
        id: &str,
        raw: &[u8],
        parts: &http::request::Parts,
    ) -> Result<(), ForwardError> {
        let message = self.request(id, raw).map_err(ForwardError::Invalid)?;
        let route = &self.route;
        let name = self.method.name();
        route.events.admit(name).map_err(ForwardError::Call)?;
        let mut metadata = forward_metadata(&parts.headers, &route.headers);
        if let Ok(value) = HeaderValue::from_str(id) {
            metadata.insert(WEBHOOK_ID, value);
        }
        let output = self.method.output();
        let call = Call {
            path: &self.path,
            output: &output,
            metadata,
            timeout: route.timeout,
            idempotent: false,
        };
        let chosen = route.choose_for(&parts.headers, &parts.extensions);
        let result = call_upstream(route, chosen.upstream, call, &message).await;
        if route.events.any(name) {
            let outcome = result.as_ref().map(|reply| &reply.message);
            let mut occurrence =
                Occurrence::for_request(&message, outcome, parts, &route.serialize);
            occurrence.variant = chosen.variant.map(|v| &**v);
            route.events.emit(name, &occurrence);
        }
        result.map(|_| ()).map_err(ForwardError::Call)
    }

    /// The method's request for one delivery.
    fn request(&self, id: &str, raw: &[u8]) -> Result<DynamicMessage, String> {
        let input = self.method.input();
        let mut message = match &self.body {
            Body::Whole => from_json(input, raw)?,
            Body::Field(field) => {
                let value = match field.kind() {
                    Kind::Message(inner) => Value::Message(from_json(inner, raw)?),
                    Kind::Bytes => Value::Bytes(bytes::Bytes::copy_from_slice(raw)),
                    _ => Value::String(
                        String::from_utf8(raw.to_vec())
                            .map_err(|_| "the webhook body is not UTF-8".to_owned())?,
                    ),
                };
                let mut message = DynamicMessage::new(input);
                message.set_field(field, value);
                message
            }
        };
        if let Some(field) = &self.id_field {
            message.set_field(field, Value::String(id.to_owned()));
        }
        Ok(message)
    }
}

/// `body` compiled against the method's request.
fn body_target(method: &MethodDescriptor, body: &str) -> Result<Body, String> {
    if body == "*" {
        return Ok(Body::Whole);
    }
    let input = method.input();
    let field = input.get_field_by_name(body).ok_or_else(|| {
        format!(
            "{} has no field `{body}`: write `*` (the whole body) or a top-level field",
            input.full_name()
        )
    })?;
    let usable = !field.is_list()
        && !field.is_map()
        && matches!(field.kind(), Kind::Message(_) | Kind::String | Kind::Bytes);
    if !usable {
        return Err(format!(
            "`{body}` must be a singular message, `string` or `bytes` field to hold the body"
        ));
    }
    Ok(Body::Field(field))
}

fn id_field(method: &MethodDescriptor, name: &str, body: &Body) -> Result<FieldDescriptor, String> {
    let input = method.input();
    let field = input
        .get_field_by_name(name)
        .ok_or_else(|| format!("{} has no field `{name}`", input.full_name()))?;
    if field.is_list() || field.is_map() || field.kind() != Kind::String {
        return Err(format!("`{name}` must be a singular `string` field"));
    }
    if matches!(body, Body::Field(b) if b.number() == field.number()) {
        return Err(format!("`{name}` is also the `body` field"));
    }
    Ok(field)
}

/// `raw` (JSON) as a `descriptor` message, unknown fields ignored.
fn from_json(
    descriptor: prost_reflect::MessageDescriptor,
    raw: &[u8],
) -> Result<DynamicMessage, String> {
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let mut json = serde_json::Deserializer::from_slice(raw);
    let message = DynamicMessage::deserialize_with_options(descriptor.clone(), &mut json, &options)
        .map_err(|e| {
            format!(
                "the webhook body does not fit {}: {e}",
                descriptor.full_name()
            )
        })?;
    json.end()
        .map_err(|e| format!("the webhook body is not one JSON value: {e}"))?;
    Ok(message)
}

/// The error answered for a body that does not fit.
pub fn invalid(message: String) -> ErrorResponse {
    ErrorResponse::new(Code::InvalidArgument, message)
}
