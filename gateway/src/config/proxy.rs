//! The `proxies:` and `http_upstreams:` sections: plain HTTP reverse
//! proxying to services that do not speak gRPC (docs/proxying.md). A
//! request no route, webhook, GraphQL endpoint or gRPC method takes goes to
//! the proxy with the longest matching path prefix, through the proxy's
//! plugins, and on to an HTTP/1.1 upstream.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use switchyard_plugins::PluginConfig;

use super::units::{ByteSize, HumanDuration};

/// An HTTP service by name (`http_upstreams:`), referenced by proxies.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpUpstream {
    /// Endpoints as `http://host:port`, or `https://host:port` (TLS, see
    /// `tls`); requests go round robin across them, passing over one that
    /// refused a connection in the last `connect_timeout` (tried again
    /// after it). HTTP/1.1, keep-alive.
    pub endpoints: Vec<String>,
    /// TLS settings of the `https://` endpoints: the CAs to verify them
    /// against, a client certificate, the name to verify. Absent: the
    /// public web roots and each endpoint's host.
    #[serde(default)]
    pub tls: Option<super::UpstreamTls>,
    /// Time allowed to open a connection; 502 past it.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Time allowed from sending the request to the response's head; 504
    /// past it. Proxies may set a shorter one.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Idle keep-alive connections kept per endpoint and edge worker.
    #[serde(default = "default_max_idle")]
    pub max_idle_per_endpoint: usize,
    /// An idle keep-alive connection is not reused after this long (it is
    /// closed when next looked at); keep it under the service's own
    /// keep-alive timeout.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// Requests in flight to this upstream (over all its endpoints and
    /// proxies) beyond which a new one is refused at once with 503.
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
}

/// One reverse-proxy route (`proxies:`).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyRoute {
    /// A name for metrics (the `route` label) and logs; unique among
    /// proxies, routes and webhook endpoints.
    pub name: String,
    /// The path prefix served, in normal form: `/` for everything, or
    /// `/legacy` for `/legacy` and everything below `/legacy/` (a prefix
    /// matches whole segments: `/legacy` does not match `/legacyx`).
    pub prefix: String,
    /// Only requests for these hosts (`www.example.com`, or
    /// `*.example.com`); any host when omitted.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// The HTTP upstream (a key of `http_upstreams`).
    pub upstream: String,
    /// What replaces the matched `prefix` in the path sent upstream; the
    /// path is sent as it came (normalised) when omitted. `/` with prefix
    /// `/legacy` sends `/legacy/a` as `/a`.
    #[serde(default)]
    pub rewrite_prefix: Option<String>,
    /// Send the client's `Host` upstream; by default the upstream
    /// endpoint's `host:port` is sent and the client's is in
    /// `X-Forwarded-Host`.
    #[serde(default)]
    pub preserve_host: bool,
    /// What the upstream gets in `X-Forwarded-For`: `replace` (the
    /// client's address only: what the client sent is dropped, so an
    /// upstream that trusts the header cannot be lied to; the default),
    /// `append` (the client's address after what it sent: behind a load
    /// balancer of your own) or `drop`.
    #[serde(default)]
    pub x_forwarded_for: ForwardedFor,
    /// Deadline for the response's head; the upstream's `timeout` when
    /// omitted.
    #[serde(default)]
    pub timeout: Option<HumanDuration>,
    /// Largest request body; the edge limit when omitted. A declared
    /// length over it is refused with 413 before the upstream is called; a
    /// chunked body that grows over it is cut and answered 413.
    #[serde(default)]
    pub max_request_body: Option<ByteSize>,
    /// Refuse with 400 a path holding `;`, `\`, or an escaped `/`, `\`
    /// or `;` (`%2F`, `%5C`, `%3B`): the gateway reads each as part of its
    /// segment, but many services read them as a separator or a path
    /// parameter (`/admin;x=1/users` as `/admin/users`), which would reach
    /// a path another proxy's plugins (auth) guard. On by default; turn it
    /// off for a service whose identifiers need them (e.g. `%2F`).
    #[serde(default = "yes")]
    pub reject_ambiguous_paths: bool,
    /// Plugins, after the top-level `plugins`; the first listed sees the
    /// request first.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
}

/// `x_forwarded_for`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedFor {
    /// The client's address only.
    #[default]
    Replace,
    /// What the client sent, then its address.
    Append,
    /// No `X-Forwarded-For`.
    Drop,
}

/// `http_upstreams:` by name.
pub type HttpUpstreams = BTreeMap<String, HttpUpstream>;

fn yes() -> bool {
    true
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration::from_secs(2)
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}

fn default_max_idle() -> usize {
    64
}

fn default_idle_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}

fn default_max_concurrent() -> usize {
    1024
}
