//! What a request is counted against: the client IP (from the socket, or from
//! a forwarding header when the peer is a trusted proxy), the consumer, a
//! header, a JWT claim, or a combination of them.
//!
//! Every limit is **per route**: there is no `route` key part because the
//! route is always part of the key already. A `rate_limit` plugin instance
//! belongs to one route (the gateway builds each route's stack on its own,
//! top-level `plugins:` included), so a `local` limiter's state is that
//! route's alone; a `redis` limiter's key names start with `key_prefix`
//! extended by the route's name (see `RateLimit::build`), so two routes
//! sharing a Redis keep separate budgets as long as their names differ.
//!
//! # Client IP behind proxies
//!
//! The socket peer ([`ClientAddr`]) is the client unless it lies in one of the
//! `trusted_proxies` CIDRs. Only then is the configured forwarding header read
//! (`X-Forwarded-For`, or RFC 7239 `Forwarded: for=`), walking its hops from
//! the **right**: each proxy appends the address it received the request from,
//! so the right-most hops were written by our own proxies, and the first hop
//! (from the right) that is *not* a trusted proxy is the client. Anything to
//! its left was written by the client and is ignored, so a spoofed header
//! changes nothing. If every hop is trusted, the left-most one is the client;
//! if a hop is not an IP address (`unknown`, an obfuscated `_id`, garbage),
//! the walk stops and the last trusted address seen stands in for the client.
//! A request from an untrusted peer never has its headers read.
//!
//! Only one header is read (`forwarded_header`), the one the proxies append
//! to: if the proxies set `X-Forwarded-For`, a client-supplied `Forwarded`
//! header would arrive untouched and must not be believed.
//!
//! # Keys
//!
//! A key is the configured parts, each tagged and length-prefixed (so no
//! combination of values can collide with another, and a consumer, a header
//! value or a claim that reads like an IP address is not that client), or
//! its SHA-256 digest when that is longer than [`MAX_VERBATIM_KEY`] bytes: a
//! key costs the limiter a bounded amount of memory whatever the header or
//! claim values.
//!
//! A part without a value on the request (no consumer, no such header, no
//! such claim) stands in as the client IP, so anonymous traffic is still
//! limited per client.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::{HeaderMap, HeaderName};
use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::stage::{Claims, ClientAddr, Consumer, Request};

/// Keys up to this many bytes are stored as they are; longer ones as their
/// SHA-256 digest.
pub const MAX_VERBATIM_KEY: usize = 64;

/// One part of a rate-limit key.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyPart {
    /// The client's IP address: the socket peer, or the right-most untrusted
    /// hop of the forwarding header when the peer is a trusted proxy.
    ClientIp,
    /// The consumer named by the route's `auth` plugin. Requests without a
    /// consumer (no auth plugin ran, or it let anonymous requests through)
    /// are counted by client IP instead.
    Consumer,
    /// The value of this request header (all its values, in order). Requests
    /// without the header are counted by client IP instead.
    Header(String),
    /// The value of this top-level claim of the JSON Web Token that
    /// authenticated the request (`auth`'s `jwt` method), e.g. `tenant`:
    /// strings as they are, other values as their JSON text. Requests
    /// without the claim (another method authenticated them, the token
    /// lacks it, or it is `null`) are counted by client IP instead.
    Claim(String),
}

/// The header trusted proxies append the client address to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for="[2001:db8::1]:4711"`.
    Forwarded,
}

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `2001:db8::/32`; a bare address
/// is a single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Resolves the client IP of a request.
#[derive(Clone, Debug, Default)]
pub struct ClientIpResolver {
    trusted: Vec<Cidr>,
    header: ForwardedHeader,
}

/// A rate-limit key: opaque bytes, compared and hashed as such.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key(Box<[u8]>);

/// Builds the key of a request from the configured parts.
#[derive(Clone, Debug)]
pub struct KeyBuilder {
    parts: Vec<PartSpec>,
    resolver: ClientIpResolver,
}

#[derive(Clone, Debug)]
enum PartSpec {
    ClientIp,
    Consumer,
    Header(HeaderName),
    Claim(String),
}

// Tags of the encoded parts: a consumer named "10.0.0.1" is not the client
// 10.0.0.1.
const TAG_IP: u8 = b'i';
const TAG_CONSUMER: u8 = b'c';
const TAG_HEADER: u8 = b'h';
const TAG_CLAIM: u8 = b'j';
const TAG_VERBATIM: u8 = 0;
const TAG_DIGEST: u8 = 1;

// === impl Cidr ===

impl Cidr {
    /// Parses `addr/prefix` or a bare address. Host bits must be zero
    /// (`10.0.0.1/8` is refused: it is `10.0.0.0/8` or a typo).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let network = IpAddr::from_str(addr)
            .map_err(|_| format!("invalid CIDR {text:?}: {addr:?} is not an IP address"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                // `u8::from_str` accepts `+8`: a prefix is digits only.
                Ok(n) if n <= max && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "invalid CIDR {text:?}: the prefix length must be 0..={max}"
                    ));
                }
            },
        };
        let cidr = Cidr { network, prefix };
        if cidr.mask(network) != network {
            return Err(format!(
                "invalid CIDR {text:?}: host bits are set (did you mean {}/{prefix}?)",
                cidr.mask(network)
            ));
        }
        Ok(cidr)
    }

    /// Whether `ip` lies in this network. IPv4-mapped IPv6 addresses
    /// (`::ffff:10.0.0.1`) match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && self.mask(ip) == self.network
    }

    /// `ip` with the bits past the prefix cleared (same family as `ip`).
    fn mask(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((bits & mask).into())
            }
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

// === impl ClientIpResolver ===

impl ClientIpResolver {
    /// A resolver trusting the forwarding `header` from peers in `trusted`.
    pub fn new(trusted: Vec<Cidr>, header: ForwardedHeader) -> Self {
        ClientIpResolver { trusted, header }
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client IP of a request whose socket peer is `peer`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.is_trusted(peer) {
            return peer;
        }
        let name = match self.header {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        };
        // Header lines are one comma-separated list, in order: walk the last
        // line first, each from its right end.
        let mut client = peer;
        for line in headers.get_all(name).iter().rev() {
            let Ok(line) = line.to_str() else {
                return client;
            };
            let hops: Vec<&str> = match self.header {
                ForwardedHeader::XForwardedFor => line.split(',').collect(),
                ForwardedHeader::Forwarded => forwarded_for_values(line),
            };
            for hop in hops.into_iter().rev() {
                let hop = hop.trim();
                if hop.is_empty() {
                    continue; // `a,,b` or a trailing comma: an empty list member
                }
                match parse_node(hop) {
                    Some(ip) if self.is_trusted(ip) => client = ip,
                    Some(ip) => return ip,
                    None => return client,
                }
            }
        }
        client
    }
}

/// An address from a forwarding hop: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:4711`, optionally double-quoted. `None` for
/// anything else (`unknown`, `_hidden`, garbage).
pub fn parse_node(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let hop = hop
        .strip_prefix('"')
        .and_then(|h| h.strip_suffix('"'))
        .unwrap_or(hop);
    let ip = if let Ok(ip) = IpAddr::from_str(hop) {
        ip
    } else if let Ok(sa) = SocketAddr::from_str(hop) {
        sa.ip()
    } else {
        let inner = hop.strip_prefix('[')?.strip_suffix(']')?;
        IpAddr::from_str(inner).ok()?
    };
    Some(ip.to_canonical())
}

/// The `for=` values of a `Forwarded` header line, in order: one per
/// forwarded-element (elements are separated by `,`, pairs by `;`; values
/// are tokens or quoted strings, which may hold `,` and `;`). An element
/// without `for=` yields an empty value (which the walk skips). Quoted values
/// are unquoted; backslash escapes are kept only for `"` and `\` (an address
/// never holds either, so an escaped value fails to parse, as it should).
pub fn forwarded_for_values(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for element in split_unquoted(line, ',') {
        let mut value = "";
        for pair in split_unquoted(element, ';') {
            let Some((name, v)) = pair.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("for") {
                let v = v.trim();
                value = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
            }
        }
        out.push(value);
    }
    out
}

/// Splits `s` at `sep` outside double-quoted strings (with `\` escapes).
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

// === impl Key ===

impl Key {
    /// The key's bytes (for a shared backend's key names).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The key for an encoded part list: verbatim when short, else a digest.
    fn from_encoded(encoded: Vec<u8>) -> Key {
        if encoded.len() <= MAX_VERBATIM_KEY {
            let mut bytes = Vec::with_capacity(encoded.len() + 1);
            bytes.push(TAG_VERBATIM);
            bytes.extend_from_slice(&encoded);
            Key(bytes.into_boxed_slice())
        } else {
            let mut bytes = Vec::with_capacity(33);
            bytes.push(TAG_DIGEST);
            bytes.extend_from_slice(&Sha256::digest(&encoded));
            Key(bytes.into_boxed_slice())
        }
    }

    /// A key made of raw bytes (tests, benchmarks).
    #[cfg(test)]
    pub fn from_static(bytes: &[u8]) -> Key {
        Key::from_encoded(bytes.to_vec())
    }
}

// === impl KeyBuilder ===

impl KeyBuilder {
    /// Validates the parts (header and claim names) and builds the key extractor.
    pub fn new(parts: &[KeyPart], resolver: ClientIpResolver) -> Result<Self, String> {
        let parts = parts
            .iter()
            .map(|part| match part {
                KeyPart::ClientIp => Ok(PartSpec::ClientIp),
                KeyPart::Consumer => Ok(PartSpec::Consumer),
                KeyPart::Header(name) => HeaderName::try_from(name.as_str())
                    .map(PartSpec::Header)
                    .map_err(|e| format!("key: invalid header name {name:?}: {e}")),
                KeyPart::Claim(name) if name.is_empty() => Err(
                    "key: empty claim name: name a top-level claim, e.g. `{claim: tenant}`".into(),
                ),
                KeyPart::Claim(name) => Ok(PartSpec::Claim(name.clone())),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(KeyBuilder { parts, resolver })
    }

    /// The client IP of `request`; `None` when the edge recorded no peer
    /// (never in the gateway; unit tests and internal calls).
    pub fn client_ip(&self, request: &Request) -> Option<IpAddr> {
        let peer = request.extensions().get::<ClientAddr>()?.0.ip();
        Some(self.resolver.resolve(peer, request.headers()))
    }

    /// The key of `request`.
    pub fn key(&self, request: &Request) -> Key {
        let mut encoded = Vec::with_capacity(32);
        for part in &self.parts {
            match part {
                PartSpec::Consumer => {
                    if let Some(Consumer(name)) = request.extensions().get::<Consumer>() {
                        push_part(&mut encoded, TAG_CONSUMER, name.as_bytes());
                        continue;
                    }
                }
                PartSpec::Header(name) => {
                    let mut values = request.headers().get_all(name).iter();
                    if let Some(first) = values.next() {
                        let mut value = first.as_bytes().to_vec();
                        for v in values {
                            value.push(b',');
                            value.extend_from_slice(v.as_bytes());
                        }
                        push_part(&mut encoded, TAG_HEADER, &value);
                        continue;
                    }
                }
                PartSpec::Claim(name) => {
                    let value = request
                        .extensions()
                        .get::<Claims>()
                        .and_then(|Claims(claims)| claims.get(name));
                    match value {
                        None | Some(serde_json::Value::Null) => {}
                        Some(serde_json::Value::String(s)) => {
                            push_part(&mut encoded, TAG_CLAIM, s.as_bytes());
                            continue;
                        }
                        Some(other) => {
                            push_part(&mut encoded, TAG_CLAIM, other.to_string().as_bytes());
                            continue;
                        }
                    }
                }
                PartSpec::ClientIp => {}
            }
            // The client IP, or the stand-in for a part without a value. No
            // peer recorded: one shared "unknown client" value.
            match self.client_ip(request) {
                Some(IpAddr::V4(v4)) => push_part(&mut encoded, TAG_IP, &v4.octets()),
                Some(IpAddr::V6(v6)) => push_part(&mut encoded, TAG_IP, &v6.octets()),
                None => push_part(&mut encoded, TAG_IP, &[]),
            }
        }
        Key::from_encoded(encoded)
    }
}

/// Appends a tagged, length-prefixed part.
fn push_part(out: &mut Vec<u8>, tag: u8, value: &[u8]) {
    out.push(tag);
    // Header and claim values are far below 4 GiB (the edge bounds header
    // sizes, tokens included).
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(value);
}
