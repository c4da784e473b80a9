//! Subscriptions: server-streaming methods as GraphQL subscriptions, each
//! upstream message one event (docs/graphql.md, "Subscriptions").
//!
//! Two transports: [`ws`] (`graphql-transport-ws` over a WebSocket) and
//! [`sse`] (`text/event-stream`, one operation per request). Both pull
//! events only as fast as the client reads them, so a slow client holds
//! the upstream back through HTTP/2 flow control instead of filling a
//! buffer; both cancel the upstream call when the client goes away or
//! completes the subscription. Each open operation holds a [`Slot`] of
//! `graphql.subscriptions.max_open`.

pub mod sse;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::Response as GqlResponse;
use futures_util::stream::BoxStream;
use prometheus::{IntCounter, IntGauge};

use super::BuildError;
use super::call::RequestHeaders;
use super::http::Served;
use super::joins::RequestState;
use super::limits::Refusal;
use crate::config::graphql::GraphqlSubscriptions;
use crate::observability::metrics::SubscriptionMetrics;

/// The subscription bounds of one endpoint and what is open now.
pub struct Subscriptions {
    pub config: GraphqlSubscriptions,
    open: Arc<AtomicUsize>,
    metrics: SubscriptionMetrics,
}

/// The transport of a streamed operation (the `transport` metric label).
#[derive(Clone, Copy, Debug)]
pub enum Transport {
    Ws,
    Sse,
}

impl Transport {
    fn label(self) -> &'static str {
        match self {
            Transport::Ws => "ws",
            Transport::Sse => "sse",
        }
    }
}

/// One open streamed operation; released when dropped.
pub struct Slot {
    open: Arc<AtomicUsize>,
    gauge: IntGauge,
    /// Results sent on this transport.
    pub events: IntCounter,
}

// === impl Subscriptions ===

impl Subscriptions {
    pub fn new(
        config: &GraphqlSubscriptions,
        metrics: SubscriptionMetrics,
    ) -> Result<Subscriptions, BuildError> {
        let positive = [
            ("max_open", config.max_open),
            ("max_per_connection", config.max_per_connection),
            ("max_message", config.max_message.as_usize()),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(BuildError::at(["subscriptions", key], "must be at least 1"));
            }
        }
        for (key, value) in [
            ("init_timeout", config.init_timeout.0),
            ("keepalive", config.keepalive.0),
        ] {
            if value.is_zero() {
                return Err(BuildError::at(
                    ["subscriptions", key],
                    "must be longer than 0s",
                ));
            }
        }
        Ok(Subscriptions {
            config: config.clone(),
            open: Arc::new(AtomicUsize::new(0)),
            metrics,
        })
    }

    /// A slot for one more operation on `transport`, or the refusal when
    /// `max_open` are open.
    pub fn open(&self, transport: Transport) -> Result<Slot, Refusal> {
        let max = self.config.max_open;
        match self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            }) {
            Ok(_) => {
                let gauge = self.metrics.open.with_label_values(&[transport.label()]);
                gauge.inc();
                Ok(Slot {
                    open: self.open.clone(),
                    gauge,
                    events: self.metrics.events.with_label_values(&[transport.label()]),
                })
            }
            Err(_) => {
                self.refused("max_open");
                Err(Refusal {
                    code: "SUBSCRIPTION_LIMIT",
                    message: format!(
                        "this gateway has {max} subscriptions open (graphql.subscriptions.max_open); try again later"
                    ),
                })
            }
        }
    }

    /// Counts an operation refused for `limit`.
    pub fn refused(&self, limit: &str) {
        self.metrics.refused.with_label_values(&[limit]).inc();
    }

    /// How many operations are open now.
    pub fn open_now(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

/// Executes a prepared operation as a stream of responses (one for a query
/// or mutation), with the request data resolvers need: the client's headers
/// (forwarded as metadata) and the per-request state (renewed per event).
fn execute(
    served: &Served,
    request: async_graphql::Request,
    headers: &RequestHeaders,
) -> BoxStream<'static, GqlResponse> {
    let request = request.data(headers.clone()).data(RequestState::new());
    served.schema.execute_stream(request)
}

/// Whether a response is a request error: nothing executed (no `data`).
fn is_request_error(response: &GqlResponse) -> bool {
    response.data == async_graphql::Value::Null && !response.errors.is_empty()
}
