//! Routing: the per-config-version route table (HTTP method + path template →
//! binding) and the per-route context every binding shares.

pub mod header_match;
pub mod hosts;
pub mod mirror;
pub mod normalize;
pub mod path_router;
pub mod split;
pub mod table;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use prost_reflect::{MessageDescriptor, SerializeOptions};

use crate::config::JsonOptions;
use crate::observability::Metrics;
use crate::transcode::binding::Binding;
use crate::upstream::Upstream;
pub use hosts::{RouteTable, RouteTableBuilder};

/// What every binding of one route shares.
#[derive(Debug)]
pub struct RouteCtx {
    /// Index in `routes:` of the config.
    pub index: usize,
    pub name: String,
    /// Host patterns the route answers for; any host when empty.
    pub hosts: Vec<String>,
    /// Header conditions the request must meet (`match_headers`).
    pub match_headers: Vec<header_match::HeaderMatcher>,
    /// The route's `upstream` (its split's primary).
    pub upstream: Upstream,
    /// The route's traffic split (`split`), when it has one.
    pub split: Option<split::Split>,
    /// The route's mirror (`mirror`), when it has one.
    pub mirror: Option<mirror::Mirror>,
    /// The route's response cache (`cache`), when it has one.
    pub cache: Option<crate::cache::RouteCache>,
    /// Cached answers its methods' calls make obsolete (`invalidate_cache`).
    pub invalidations: crate::cache::Invalidations,
    pub timeout: Duration,
    pub max_body: usize,
    pub json: JsonOptions,
    pub serialize: SerializeOptions,
    pub headers: HeaderForwarding,
    /// `google.rpc.Status`, resolved once, to render upstream error details
    /// (always in the pool: the loader embeds it).
    pub rpc_status: Option<MessageDescriptor>,
    pub metrics: Arc<Metrics>,
    /// The route's own plugins, run before each call GraphQL makes on the
    /// route (REST runs them as the route's stack instead).
    pub guard: Option<crate::graphql::guard::Guard>,
    /// Events published when a method's call succeeds, by method name.
    pub events: crate::events::compile::RouteEvents,
    /// Server-streaming calls over REST: the slots shared by every route of
    /// the config version (`limits.max_streams`) and the SSE heartbeat.
    pub streams: crate::transcode::stream::StreamLimits,
    /// A plugin of the route may rewrite the request's path (`wasm`): the
    /// edge hands its REST requests the route table ([`Rematch`]).
    pub rematch: bool,
}

/// The route table, for a handler whose request a plugin sent to another
/// path ([`switchyard_plugins::stage::PathRewritten`]): the new path is
/// matched again, among the route's own methods.
#[derive(Clone)]
pub struct Rematch(pub Arc<RouteTable>);

/// Header ↔ metadata rules, compiled.
#[derive(Clone, Debug)]
pub struct HeaderForwarding {
    pub forward: Vec<HeaderName>,
    pub forward_prefixes: Vec<String>,
    pub response_prefix: String,
}

/// The match handed to the route's pipeline in the request extensions.
#[derive(Clone, Debug)]
pub struct Matched {
    pub binding: Arc<Binding>,
    /// Decoded path-variable values, in template order.
    pub captures: Vec<String>,
    /// Set for an `OPTIONS` request on a path served for other methods: the
    /// `Allow` list. The handler answers it (204) instead of calling upstream.
    pub options_allow: Option<HeaderValue>,
}

/// Two bindings claim the same method and path.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{new}` of {new_rpc} conflicts with `{existing}` of {existing_rpc} (route {existing_route:?})"
)]
pub struct Conflict {
    pub new: String,
    pub new_rpc: String,
    pub existing: String,
    pub existing_rpc: String,
    pub existing_route: String,
}

/// Where the edge learns which variant of a split route served a request
/// (the access log): put in the request's extensions by the edge, filled
/// by whatever chose the upstream.
#[derive(Clone, Debug, Default)]
pub struct VariantSlot(pub Arc<std::sync::OnceLock<(Arc<str>, String)>>);

// === impl RouteCtx ===

impl RouteCtx {
    /// The upstream serving `caller`: the split's choice (counted), or the
    /// route's `upstream`. The variant goes in `slot` when there is one.
    pub fn choose(
        &self,
        caller: &split::Caller<'_>,
        slot: Option<&VariantSlot>,
    ) -> split::Chosen<'_> {
        let Some(split) = &self.split else {
            return self.choose_unsplit();
        };
        let chosen = self.variant(split, split.choose(caller));
        if let (Some(slot), Some(variant)) = (slot, chosen.variant) {
            let _ = slot.0.set((variant.clone(), chosen.upstream.name.clone()));
        }
        chosen
    }

    /// [`RouteCtx::choose`] for an HTTP request: its headers, the consumer
    /// and client address in its extensions, and its variant slot.
    pub fn choose_for(
        &self,
        headers: &http::HeaderMap,
        extensions: &http::Extensions,
    ) -> split::Chosen<'_> {
        if self.split.is_none() {
            return self.choose_unsplit();
        }
        let caller = split::Caller::of(headers, extensions);
        self.choose(&caller, extensions.get::<VariantSlot>())
    }

    /// The variant called `name` (the primary's name, or any other, gives
    /// the route's `upstream`): a refresh of a cached answer goes where the
    /// answer came from. Not counted.
    pub fn variant_named(&self, name: &str) -> split::Chosen<'_> {
        match &self.split {
            Some(split) => self.variant(split, split.named(name)),
            None => self.choose_unsplit(),
        }
    }

    /// `variant` of `split` as the upstream to call; `None` is the primary.
    fn variant<'s>(
        &'s self,
        split: &'s split::Split,
        variant: Option<&'s split::Variant>,
    ) -> split::Chosen<'s> {
        match variant {
            Some(variant) => split::Chosen {
                upstream: &variant.upstream,
                variant: Some(&variant.name),
            },
            None => split::Chosen {
                upstream: &self.upstream,
                variant: Some(split.primary()),
            },
        }
    }

    /// The route's own upstream, for calls that are not split.
    pub fn choose_unsplit(&self) -> split::Chosen<'_> {
        split::Chosen {
            upstream: &self.upstream,
            variant: None,
        }
    }
}

// === impl HeaderForwarding ===

impl HeaderForwarding {
    /// Headers that never cross between HTTP and gRPC metadata: hop-by-hop
    /// headers, and those gRPC itself owns.
    pub fn is_reserved(name: &str) -> bool {
        name.starts_with("grpc-")
            || name.starts_with(':')
            || matches!(
                name,
                "connection"
                    | "keep-alive"
                    | "proxy-connection"
                    | "proxy-authorization"
                    | "transfer-encoding"
                    | "upgrade"
                    | "te"
                    | "trailer"
                    | "host"
                    | "content-type"
                    | "content-length"
                    | "user-agent"
                    | "accept-encoding"
                    | "content-encoding"
            )
    }
}
