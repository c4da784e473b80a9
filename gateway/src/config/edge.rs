//! Declarative edge logic: rules answered or rewritten before any route
//! (`edge_rules:`), a route's traffic split between upstreams
//! (`routes[].split`) and its mirror (`routes[].mirror`). See
//! docs/edge-logic.md.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use super::model::HeaderMatch;

/// One edge rule: a request condition and what to do with a request that
/// meets it. Rules are tried in order after the path is normalised and
/// before inbound webhooks, GraphQL and the routes; the first that matches
/// is applied and no other rule is tried. Give exactly one of `redirect`,
/// `respond` or `rewrite`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeRule {
    /// A name for the metrics (`rule` label) and the access log (its
    /// `route`, with protocol `edge`); `edge_rules[<index>]` when omitted.
    #[serde(default)]
    pub name: Option<String>,
    /// Which requests the rule applies to.
    #[serde(rename = "match")]
    pub matches: EdgeMatch,
    /// Answer with a redirect to a templated target.
    #[serde(default)]
    pub redirect: Option<Redirect>,
    /// Answer with a fixed response (status, headers, body).
    #[serde(default)]
    pub respond: Option<Respond>,
    /// Change the request's path and/or host, then route it as if the
    /// client had sent that: the routes, inbound webhooks and GraphQL see
    /// the rewritten request; signatures (HMAC partners) are still checked
    /// against what the client sent.
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
}

/// The condition of an edge rule; every part given must hold.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgeMatch {
    /// A path template in the `google.api.http` syntax, matched against the
    /// normalised path: `/old/users/{id}` (one segment), `/docs/{rest=**}`
    /// (any number of segments), `/v0/*/items` (one segment, not captured).
    /// Its variables can be used in the rule's target.
    pub path: String,
    /// Only these HTTP methods (e.g. `[GET, HEAD]`); any when omitted.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Only these hosts (`api.example.com`, `*.example.com`); any when omitted.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Only requests whose headers meet every condition (as `match_headers`).
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
}

/// A redirect answer.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// The `Location`: a path (`/v1/users/{id}`) or an absolute URL
    /// (`https://new.example.com/{rest}`). `{name}` is the value of the match
    /// template's variable `name`, percent-encoded again (a multi-segment
    /// variable keeps its slashes); `{host}` is the request's host.
    pub to: String,
    /// 301, 302, 303, 307 or 308. Default 301 (permanent; 308 also keeps
    /// the method and body).
    #[serde(default = "default_redirect_status")]
    pub status: u16,
    /// Append the request's query string to the target (after the
    /// target's own query, if any). Default true.
    #[serde(default = "yes")]
    pub keep_query: bool,
}

/// A fixed answer.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Respond {
    /// The status code, 200 to 599.
    pub status: u16,
    /// Response headers, name to value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body, sent as is; none when omitted. With a body and no
    /// `content-type` header, `text/plain; charset=utf-8`.
    #[serde(default)]
    pub body: Option<String>,
}

/// A request rewrite.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// The new path, with the match template's `{variables}` as in a
    /// redirect target; the query string is kept. Unchanged when omitted.
    #[serde(default)]
    pub path: Option<String>,
    /// The new host (`Host` / `:authority`): route selection by `hosts`
    /// then sees it. Unchanged when omitted.
    #[serde(default)]
    pub host: Option<String>,
}

/// A route's traffic split: a share of its requests goes to other
/// upstreams than `upstream` (canaries, A/B tests). Each variant takes
/// `weight` percent of the requests; what the variants leave goes to the
/// route's `upstream` (the variant named `primary`). A variant's `when`
/// conditions, when given and met, send a request to it whatever the
/// weights (an opt-in header or cookie). The chosen variant is the label
/// `variant` of `switchyard_split_requests_total`, the `variant` field of
/// the access log and the `variant` attribute of the route's events.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// What keeps one client on one side: the same key always picks the
    /// same variant, on every instance (and keeps it when a variant's weight
    /// grows). Random per request when omitted, or when the request has no
    /// such key.
    #[serde(default)]
    pub sticky: Option<Sticky>,
    /// The name of the route's own `upstream` as a variant. Default `primary`.
    #[serde(default = "default_primary")]
    pub primary: String,
    /// The other variants, in the order their `when` conditions are tried.
    pub variants: Vec<Variant>,
}

/// One variant of a split.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Its name: a label value (letters, digits, `-`, `_`).
    pub name: String,
    /// The upstream (a key of `upstreams`) serving it.
    pub upstream: String,
    /// Percent of the requests (0–100, up to two decimals); the variants'
    /// weights add up to 100 at most.
    #[serde(default)]
    pub weight: f64,
    /// Requests meeting these conditions go to this variant whatever the
    /// weights; none when omitted.
    #[serde(default)]
    pub when: Option<VariantWhen>,
}

/// Conditions that force a variant; every one given must hold.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantWhen {
    /// Conditions on request headers (as `match_headers`).
    #[serde(default)]
    pub headers: Vec<HeaderMatch>,
    /// Conditions on request cookies: `name` and one of `exact`, `prefix`
    /// or `present`, as for headers.
    #[serde(default)]
    pub cookies: Vec<HeaderMatch>,
}

/// The key a sticky split hashes; give exactly one.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sticky {
    /// A request header's value (e.g. `x-user-id`).
    #[serde(default)]
    pub header: Option<String>,
    /// A cookie's value (e.g. `uid`).
    #[serde(default)]
    pub cookie: Option<String>,
    /// The consumer an `auth` plugin identified.
    #[serde(default)]
    pub consumer: bool,
    /// The client's IP address (the connection's peer).
    #[serde(default)]
    pub client_ip: bool,
}

/// A route's mirror: a copy of a share of its unary REST calls goes to a
/// shadow upstream (a new version under test), fire and forget. The
/// client's answer and latency never depend on the copy: it is not
/// awaited, its answer is dropped, and past `max_concurrent` copies in
/// flight a call is not copied. Copies carry the metadata
/// `x-switchyard-mirror: 1`. Writes are copied too: point a mirror only at
/// a shadow that may receive them.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// The shadow upstream (a key of `upstreams`).
    pub upstream: String,
    /// Percent of the calls copied (0–100, up to two decimals). Default 100.
    #[serde(default = "hundred")]
    pub percent: f64,
    /// Copies in flight at once, per route; a call beyond it is not copied
    /// (`switchyard_mirror_requests_total{outcome="skipped"}`). Default 64.
    #[serde(default = "default_mirror_concurrency")]
    pub max_concurrent: usize,
}

fn hundred() -> f64 {
    100.0
}

fn default_mirror_concurrency() -> usize {
    64
}

fn default_redirect_status() -> u16 {
    301
}

fn default_primary() -> String {
    "primary".into()
}

fn yes() -> bool {
    true
}
