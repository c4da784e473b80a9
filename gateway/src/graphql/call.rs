//! One root field's upstream call: GraphQL arguments → request message,
//! the unary call through the route's upstream (timeout, header forwarding,
//! metrics as for REST), and a failed call → a GraphQL error carrying the
//! gRPC code and the `google.rpc.Status` details.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::dynamic::{FieldValue, ResolverContext};
use async_graphql::{ErrorExtensions, Value as GqlValue};
use http::HeaderMap;
use http::uri::PathAndQuery;
use prost_reflect::{DeserializeOptions, DynamicMessage, MethodDescriptor};
use switchyard_plugins::error::{Code, ErrorResponse};
use tracing::Instrument as _;

use super::BuildError;
use super::field_mask::MaskPlan;
use super::guard::Caller;
use super::inputs;
use super::joins::RequestState;
use super::root::{self, Root};
use crate::events::Occurrence;
use crate::routing::RouteCtx;
use crate::routing::split::Caller as SplitCaller;
use crate::transcode::handler;
use crate::upstream::Call;

/// The GraphQL HTTP request as its upstream calls see it, in the request
/// data: its headers (forwarded as metadata) and the caller (for route
/// guards).
#[derive(Clone)]
pub struct RequestHeaders {
    pub headers: HeaderMap,
    pub caller: Caller,
}

impl RequestHeaders {
    pub fn of(headers: &HeaderMap, extensions: &http::Extensions) -> RequestHeaders {
        RequestHeaders {
            headers: headers.clone(),
            caller: Caller::of(extensions),
        }
    }
}

/// Who is calling, as splits and the cache key see it: the GraphQL
/// request's headers (`empty` without them) and caller.
fn caller<'a>(request: Option<&'a RequestHeaders>, empty: &'a HeaderMap) -> SplitCaller<'a> {
    SplitCaller {
        headers: request.map_or(empty, |r| &r.headers),
        consumer: request.and_then(|r| r.caller.consumer()),
        client_ip: request.and_then(|r| r.caller.client_ip()),
    }
}

/// An exposed method.
pub struct Operation {
    pub method: MethodDescriptor,
    pub root: Root,
    pub route: Arc<RouteCtx>,
    /// One `input:` argument instead of one per field.
    pub single_input: bool,
    path: PathAndQuery,
    /// `graphql.timeout`: the whole request's budget.
    budget: Duration,
    /// The request's read mask, filled from the selection.
    mask: Option<MaskPlan>,
}

// === impl Operation ===

impl Operation {
    pub fn new(
        method: MethodDescriptor,
        root: Root,
        route: Arc<RouteCtx>,
        single_input: bool,
        budget: Duration,
    ) -> Result<Operation, BuildError> {
        let service = method.parent_service();
        let path = PathAndQuery::try_from(format!("/{}/{}", service.full_name(), method.name()))
            .map_err(|e| {
                BuildError::at(
                    [] as [&str; 0],
                    format!("{}: invalid gRPC path: {e}", method.full_name()),
                )
            })?;
        Ok(Operation {
            method,
            root,
            route,
            single_input,
            path,
            budget,
            mask: None,
        })
    }

    /// Fills `plan`'s read mask from each call's selection.
    pub fn with_mask(mut self, plan: Option<MaskPlan>) -> Operation {
        self.mask = plan;
        self
    }

    /// Builds the request, calls the upstream, returns the reply.
    pub async fn run(
        &self,
        ctx: &ResolverContext<'_>,
    ) -> async_graphql::Result<FieldValue<'static>> {
        let message = self.request(ctx)?;
        let started = ctx
            .data_opt::<RequestState>()
            .map_or_else(Instant::now, RequestState::started);
        // A span per resolved field, when spans are exported.
        let span = tracing::trace_span!(
            target: crate::observability::otel::TARGET,
            "resolve",
            otel.name = %ctx.field().name(),
            otel.kind = "internal",
            graphql.field.path = %ctx.path_node.map(|p| p.to_string()).unwrap_or_default(),
        );
        let reply = self
            .call(&message, ctx.data_opt::<RequestHeaders>(), started)
            .instrument(span)
            .await?;
        root::reply_value(self, reply)
    }

    /// Calls the upstream with `message`: metadata from `headers` (the
    /// route's forwarding rules), a deadline of the route's timeout or what
    /// remains of the request's budget (counted from `started`), if shorter.
    pub async fn call(
        &self,
        message: &DynamicMessage,
        headers: Option<&RequestHeaders>,
        started: Instant,
    ) -> async_graphql::Result<DynamicMessage> {
        let route = &self.route;
        let remaining = self.budget.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(graphql_error(ErrorResponse::new(
                Code::DeadlineExceeded,
                format!(
                    "{}: the request's deadline (graphql.timeout, {:?}) has passed",
                    self.method.full_name(),
                    self.budget
                ),
            )));
        }
        let metadata = self.metadata(headers).await?;
        let output = self.method.output();
        let call = Call {
            path: &self.path,
            output: &output,
            metadata,
            timeout: route.timeout.min(remaining),
            idempotent: self.root == Root::Query,
        };
        // The route's events for this method, as on REST.
        let method = self.method.name();
        route.events.admit(method).map_err(graphql_error)?;
        let empty = HeaderMap::new();
        let caller = caller(headers, &empty);
        let chosen = route.choose(&caller, None);
        let result = match route.cache.as_ref().filter(|_| self.root == Root::Query) {
            Some(cache) => super::cached::call(cache, route, chosen, call, message, &caller).await,
            None => handler::call_upstream(route, chosen.upstream, call, message).await,
        };
        if route.events.any(method) || route.invalidations.any(method) {
            let call = Occurrence {
                request: message,
                outcome: result.as_ref().map(|reply| &reply.message),
                response_json: None,
                headers: caller.headers,
                consumer: caller.consumer,
                claims: headers.and_then(|h| h.caller.claims()),
                variant: chosen.variant.map(|v| &**v),
                options: &route.serialize,
            };
            route.events.emit(method, &call);
            route.invalidations.apply(method, &call);
        }
        Ok(result.map_err(graphql_error)?.message)
    }

    /// Opens the server stream of a Subscription field: each upstream
    /// message is one event; a failure (at the start or mid-stream) is an
    /// error, and ends the stream. Dropping the stream cancels the call.
    pub async fn subscribe(
        self: Arc<Self>,
        ctx: &ResolverContext<'_>,
    ) -> async_graphql::Result<
        impl futures_util::Stream<Item = async_graphql::Result<FieldValue<'static>>> + Send + use<>,
    > {
        let message = self.request(ctx)?;
        let route = &self.route;
        let metadata = self.metadata(ctx.data_opt::<RequestHeaders>()).await?;
        let output = self.method.output();
        let call = Call {
            path: &self.path,
            output: &output,
            metadata,
            timeout: route.timeout.min(self.budget),
            idempotent: false,
        };
        let started = Instant::now();
        let empty = HeaderMap::new();
        let upstream = route
            .choose(&caller(ctx.data_opt::<RequestHeaders>(), &empty), None)
            .upstream;
        let opened = upstream.server_stream(call, &message).await;
        handler::observe_upstream(route, upstream, started, &opened);
        let messages = opened.map_err(|e| graphql_error(handler::upstream_error(route, e)))?;
        let op = self.clone();
        let request = ctx.data_opt::<RequestState>().cloned();
        Ok(futures_util::stream::unfold(Some(messages), move |state| {
            let op = op.clone();
            let request = request.clone();
            async move {
                let mut messages = state?;
                match messages.next().await? {
                    Ok(message) => {
                        if let Some(request) = request {
                            request.renew();
                        }
                        Some((root::reply_value(&op, message), Some(messages)))
                    }
                    Err(e) => Some((
                        Err(graphql_error(handler::upstream_error(&op.route, e))),
                        None,
                    )),
                }
            }
        }))
    }

    /// The call's metadata: the request's headers, through the route's
    /// guard if it has one (which may refuse the call), by the route's
    /// forwarding rules.
    async fn metadata(&self, headers: Option<&RequestHeaders>) -> async_graphql::Result<HeaderMap> {
        let route = &self.route;
        let Some(request) = headers else {
            return Ok(HeaderMap::new());
        };
        match &route.guard {
            None => Ok(handler::forward_metadata(&request.headers, &route.headers)),
            Some(guard) => {
                let passed = guard
                    .check(&request.headers, &request.caller, &self.path)
                    .await
                    .map_err(graphql_error)?;
                Ok(handler::forward_metadata(&passed, &route.headers))
            }
        }
    }

    /// The request message from the field's arguments.
    fn request(&self, ctx: &ResolverContext<'_>) -> async_graphql::Result<DynamicMessage> {
        let input = self.method.input();
        let args = ctx.args.as_index_map();
        let json = if self.single_input {
            match args.get("input") {
                Some(GqlValue::Object(fields)) => inputs::message_json(&input, fields.iter()),
                _ => Ok(Default::default()),
            }
        } else {
            inputs::message_json(&input, args.iter())
        }
        .map_err(invalid_argument)?;
        let mut message = DynamicMessage::deserialize_with_options(
            input,
            serde_json::Value::Object(json),
            &DeserializeOptions::new(),
        )
        .map_err(|e| invalid_argument(e.to_string()))?;
        if let Some(mask) = &self.mask {
            mask.apply(
                &mut message,
                &self.method.output(),
                ctx.field().selection_set(),
            );
        }
        Ok(message)
    }
}

fn invalid_argument(message: String) -> async_graphql::Error {
    graphql_error(ErrorResponse::new(Code::InvalidArgument, message))
}

/// `extensions`: `code` (the gRPC code name) and `details` (a list).
pub(crate) fn graphql_error(error: ErrorResponse) -> async_graphql::Error {
    let details: Vec<GqlValue> = error
        .details
        .into_iter()
        .filter_map(|d| GqlValue::from_json(d).ok())
        .collect();
    let code = error.code.name();
    async_graphql::Error::new(error.message).extend_with(move |_, ext| {
        ext.set("code", code);
        ext.set("details", GqlValue::List(details));
    })
}
