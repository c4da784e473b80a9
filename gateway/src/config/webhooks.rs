//! The `webhooks:` section: inbound webhook endpoints. A provider (Stripe,
//! or any sender following the Standard Webhooks spec) POSTs signed events
//! to a path of the gateway; each delivery is verified, deduplicated and
//! handed to an events sink as a CloudEvent (docs/webhooks.md, "Inbound
//! webhooks").

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

use super::units::{ByteSize, HumanDuration};

/// One inbound webhook endpoint.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookEndpointConfig {
    /// A name for metrics (the `route` label of the HTTP metrics) and logs;
    /// the `path` when omitted. Unique among endpoints and routes.
    #[serde(default)]
    pub name: Option<String>,
    /// The exact path the provider POSTs to, e.g. `/webhooks/stripe` (no
    /// templates, no prefix match). Webhook endpoints are matched before the
    /// routes: a route binding the same path and host is shadowed. It must
    /// not be the GraphQL endpoint's path.
    pub path: String,
    /// Only requests for these hosts (`hooks.example.com`, or
    /// `*.example.com`); any host when omitted. Two endpoints may share a
    /// path when their hosts differ.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// How deliveries are signed: `standard_webhooks` (headers
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>`;
    /// secrets `whsec_<base64>`) or `stripe` (`Stripe-Signature:
    /// t=<unix>,v1=<hex>`; the secret string's bytes are the key).
    pub scheme: WebhookScheme,
    /// The header carrying the signature with `scheme: stripe`;
    /// `Stripe-Signature` when omitted. Not allowed with
    /// `standard_webhooks` (its headers are fixed by the spec).
    #[serde(default)]
    pub signature_header: Option<String>,
    /// The signing secrets; a delivery verified by any one of them is
    /// accepted, so a secret is rotated by listing the new one next to the
    /// old one, then removing the old one. Write them as
    /// `"${STRIPE_WEBHOOK_SECRET}"` to keep them out of the file.
    pub secrets: Vec<String>,
    /// How far the delivery's signed timestamp may be from the gateway's
    /// clock, either way; older or newer deliveries are refused with 400.
    /// Default `5m`.
    #[serde(default = "default_tolerance")]
    pub tolerance: HumanDuration,
    /// The largest body accepted; 413 beyond. Default `1MiB`.
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    /// How redeliveries are recognised (by the webhook's id) and answered
    /// 200 without being published again.
    #[serde(default)]
    pub dedupe: DedupeConfig,
    /// Hand accepted deliveries to an events sink, as CloudEvents (answered
    /// 202 once in the outbox). Exactly one of `publish` and `forward`.
    #[serde(default)]
    pub publish: Option<PublishConfig>,
    /// Call a gRPC method with each accepted delivery instead (answered 200
    /// once the method succeeded). Exactly one of `publish` and `forward`.
    #[serde(default)]
    pub forward: Option<ForwardConfig>,
    /// Plugins for this endpoint (a rate limit per client IP, a request
    /// id…). They run with the top-level `plugins`, except the top-level
    /// `auth` and `idempotency`: a delivery is authenticated by its
    /// signature and deduplicated on its webhook id. A plugin listed here
    /// replaces the top-level one of the same name, as on a route; an
    /// `auth` listed here does run (e.g. mTLS for a partner), before the
    /// signature is checked.
    #[serde(default)]
    pub plugins: Vec<switchyard_plugins::PluginConfig>,
}

/// A webhook signing scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookScheme {
    /// The Standard Webhooks spec (standardwebhooks.com): HMAC-SHA256 of
    /// `{webhook-id}.{webhook-timestamp}.{body}`, base64, several
    /// space-separated `v1,` signatures allowed. Deduplicated on
    /// `webhook-id`.
    StandardWebhooks,
    /// Stripe's scheme: HMAC-SHA256 of `{t}.{body}`, lowercase hex, several
    /// `v1=` signatures allowed. Deduplicated on the JSON body's `id`, or
    /// the signature when the body has none.
    Stripe,
}

/// Deduplication of deliveries on the webhook's id.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DedupeConfig {
    /// Where delivered ids are remembered: `local` (this process, the
    /// default; emptied by a restart or a config reload) or `redis` (shared
    /// by every gateway instance, kept across restarts).
    #[serde(default)]
    pub store: DedupeStore,
    /// The Redis server with `store: redis`, e.g. `redis://127.0.0.1:6379`.
    #[serde(default)]
    pub url: Option<String>,
    /// How long an id is remembered. At least `tolerance`: a replay inside
    /// the timestamp tolerance must still be recognised. Default `24h`.
    #[serde(default = "default_ttl")]
    pub ttl: HumanDuration,
    /// With `store: local`, the most ids remembered (default 100000); when
    /// full, the oldest is forgotten first.
    #[serde(default)]
    pub max_entries: Option<usize>,
}

/// A dedupe store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DedupeStore {
    #[default]
    Local,
    Redis,
}

/// How an accepted delivery is published.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// The sink (a key of `events.sinks`).
    pub sink: String,
    /// The CloudEvents `type`: fixed text, or a template over the
    /// provider's JSON body such as `stripe.{body.type}` (`{body.<field>}`,
    /// `.` into nested objects; `{id}` is the webhook id).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The CloudEvents `source`; `/switchyard` followed by the endpoint's
    /// `path` when omitted (`/switchyard/webhooks/stripe`).
    #[serde(default)]
    pub source: Option<String>,
    /// The CloudEvents `subject`, a template like `type`; none when omitted.
    #[serde(default)]
    pub subject: Option<String>,
    /// Where the sink routes it (a NATS subject, a routing key, a stream),
    /// a template like `type`; a value taken from the body may only hold
    /// letters, digits and `.`, `_`, `-`, `:`.
    pub destination: String,
}

/// How an accepted delivery is forwarded to a gRPC method: through a route
/// of `routes:` (its upstream, `timeout`, header forwarding, `json` options
/// and events apply; its plugins do not: the signature authenticates the
/// delivery). A failed call is answered with the call's error (a 5xx for an
/// unavailable upstream) and the delivery is not marked as done, so the
/// provider's retry is accepted; the method gets the webhook id as the
/// `webhook-id` metadata, to deduplicate on its side too.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// The route: its `name`, or its service when it has none.
    pub route: String,
    /// A method of the route's service (its simple name, e.g.
    /// `HandleStripeEvent`); unary. When the route lists `methods`, one of
    /// them.
    pub method: String,
    /// Where the JSON body goes in the method's request: `*` (the default)
    /// maps the whole body onto the request message (proto3 JSON, fields
    /// the message does not define are ignored: providers add fields), or
    /// the name of one top-level field: a message field (e.g. a
    /// `google.protobuf.Struct`) gets the body as JSON, a `string` or
    /// `bytes` field the body as received.
    #[serde(default = "default_forward_body")]
    pub body: String,
    /// A top-level `string` field of the request set to the webhook id
    /// (besides the `webhook-id` metadata); none when omitted.
    #[serde(default)]
    pub id_field: Option<String>,
}

impl fmt::Debug for WebhookEndpointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpointConfig")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("hosts", &self.hosts)
            .field("scheme", &self.scheme)
            .field("signature_header", &self.signature_header)
            .field(
                "secrets",
                &format_args!("<{} redacted>", self.secrets.len()),
            )
            .field("tolerance", &self.tolerance)
            .field("max_body", &self.max_body)
            .field("dedupe", &self.dedupe)
            .field("publish", &self.publish)
            .field("forward", &self.forward)
            .field("plugins", &self.plugins.len())
            .finish()
    }
}

impl Default for DedupeConfig {
    fn default() -> Self {
        DedupeConfig {
            store: DedupeStore::Local,
            url: None,
            ttl: default_ttl(),
            max_entries: None,
        }
    }
}

fn default_forward_body() -> String {
    "*".to_owned()
}

fn default_tolerance() -> HumanDuration {
    HumanDuration::from_secs(5 * 60)
}

fn default_max_body() -> ByteSize {
    ByteSize::mib(1)
}

fn default_ttl() -> HumanDuration {
    HumanDuration::from_secs(24 * 3600)
}
