//! The SSRF guard: which addresses a webhook may be delivered to.
//!
//! Webhook URLs are typed by operators but often come from tenants, and an
//! endpoint's DNS is controlled by whoever owns its name. Without a guard a
//! webhook could reach the gateway's own admin listener, a cloud metadata
//! service (`169.254.169.254`) or anything else on the private network.
//! So every address a delivery would connect to is checked against the
//! ranges that are not the public Internet, and refused unless an operator
//! allowed its network explicitly (`allow_networks`).
//!
//! Hosts are read the way a browser reads them: `2130706433`, `0x7f.1` and
//! `0177.0.0.1` are all 127.0.0.1 to a browser and to `getaddrinfo`, so a
//! host that is an IPv4 address in anything but dotted decimal is refused
//! outright (naming the address it stands for), rather than risk a resolver
//! reading it differently from the guard.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A webhook host, as the guard reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// A literal address (dotted-decimal IPv4 or bracketed IPv6).
    Ip(IpAddr),
    /// A name, to be resolved (lower-case, without a trailing dot).
    Name(String),
}

/// A network an operator lets webhooks reach although it is not public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

/// Decides whether an address may be connected to.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    allow: Vec<Network>,
}

/// An address the guard refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocked {
    pub ip: IpAddr,
    pub reason: String,
}

impl Blocked {
    /// "is <reason> (…)": what follows the address in a sentence.
    pub fn which(&self) -> String {
        format!(
            "is {} (not a public address; `allow_networks` can allow it)",
            self.reason
        )
    }
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.ip, self.which())
    }
}

// === impl Guard ===

impl Guard {
    /// A guard letting `allow` (CIDRs such as `10.1.0.0/16`, or single
    /// addresses) through besides the public Internet.
    pub fn new(allow: &[String]) -> Result<Guard, String> {
        let allow = allow
            .iter()
            .map(|text| text.parse::<Network>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Guard { allow })
    }

    /// `Ok` when `ip` may be connected to.
    pub fn check(&self, ip: IpAddr) -> Result<(), Blocked> {
        // `::ffff:10.0.0.1` is 10.0.0.1 on the wire: allow lists name it so.
        let canonical = ip.to_canonical();
        if self.allow.iter().any(|network| network.contains(canonical)) {
            return Ok(());
        }
        match blocked_reason(ip) {
            Some(reason) => Err(Blocked { ip, reason }),
            None => Ok(()),
        }
    }
}

// === impl Network ===

impl Network {
    /// Whether `ip` is inside this network (never across address families).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_match(
                u128::from(net.to_bits()),
                u128::from(ip.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_match(net.to_bits(), ip.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_match(net: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    net >> shift == ip >> shift
}

impl FromStr for Network {
    type Err = String;

    /// `10.0.0.0/8`, `fd00::/8`, or one address (`127.0.0.1`: a /32).
    fn from_str(text: &str) -> Result<Network, String> {
        let expected = "expected a network such as 10.0.0.0/8, fd00::/8 or 127.0.0.1";
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`allow_networks`: {text:?} is not an address; {expected}"))?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= bits)
                .ok_or_else(|| {
                    format!("`allow_networks`: {text:?} has an invalid prefix length (0 to {bits}); {expected}")
                })?,
        };
        if host_bits_set(addr, prefix) {
            return Err(format!(
                "`allow_networks`: {text:?} has host bits set after the prefix; write the network address (e.g. 10.1.0.0/16)"
            ));
        }
        Ok(Network { addr, prefix })
    }
}

fn host_bits_set(addr: IpAddr, prefix: u8) -> bool {
    let (value, bits) = match addr {
        IpAddr::V4(v4) => (u128::from(v4.to_bits()), 32u8),
        IpAddr::V6(v6) => (v6.to_bits(), 128u8),
    };
    let host_bits = u32::from(bits - prefix);
    host_bits > 0 && value & (u128::MAX >> (128 - host_bits)) != 0
}

// === address classes ===

/// Why `ip` is not a public Internet address, or `None` when it is.
pub fn blocked_reason(ip: IpAddr) -> Option<String> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4).map(str::to_owned),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

/// The IPv4 ranges that are not the public Internet (RFC 6890 and friends).
fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u8, &str)] = &[
        ([0, 0, 0, 0], 8, "an unspecified (\"this network\") address"),
        ([10, 0, 0, 0], 8, "a private address (10.0.0.0/8)"),
        (
            [100, 64, 0, 0],
            10,
            "a shared (CGNAT) address (100.64.0.0/10)",
        ),
        ([127, 0, 0, 0], 8, "a loopback address"),
        (
            [169, 254, 0, 0],
            16,
            "a link-local address (cloud metadata services live here)",
        ),
        ([172, 16, 0, 0], 12, "a private address (172.16.0.0/12)"),
        (
            [192, 0, 0, 0],
            24,
            "an IETF protocol assignment (192.0.0.0/24)",
        ),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([192, 168, 0, 0], 16, "a private address (192.168.0.0/16)"),
        (
            [198, 18, 0, 0],
            15,
            "a benchmarking address (198.18.0.0/15)",
        ),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([255, 255, 255, 255], 32, "the broadcast address"),
        ([240, 0, 0, 0], 4, "a reserved address (240.0.0.0/4)"),
    ];
    let bits = u128::from(ip.to_bits());
    RANGES
        .iter()
        .find(|(net, prefix, _)| {
            prefix_match(u128::from(u32::from_be_bytes(*net)), bits, 32, *prefix)
        })
        .map(|(_, _, reason)| *reason)
}

/// The IPv6 ranges that are not the public Internet, and the IPv4 ones
/// embedded in IPv6 (mapped, NAT64, 6to4).
fn v6_reason(ip: Ipv6Addr) -> Option<String> {
    let bits = ip.to_bits();
    let within = |net: u128, prefix: u8| prefix_match(net, bits, 128, prefix);
    let embedded = |kind: &str, v4: Ipv4Addr| {
        v4_reason(v4).map(|reason| format!("{reason} ({v4}) in {kind} form"))
    };
    if ip.is_unspecified() {
        return Some("the unspecified address".to_owned());
    }
    if ip.is_loopback() {
        return Some("the loopback address".to_owned());
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return embedded("IPv4-mapped IPv6", v4);
    }
    let low32 = Ipv4Addr::from_bits(bits as u32);
    let reason = if within(0, 96) {
        "an IPv4-compatible IPv6 address (deprecated, ::/96)"
    } else if within(0x0064_ff9b << 96, 96) {
        // NAT64 (RFC 6052) translates to the embedded address.
        return embedded("NAT64 (64:ff9b::/96)", low32);
    } else if within(0x0064_ff9b_0001 << 80, 48) {
        "a local-use NAT64 address (64:ff9b:1::/48)"
    } else if within(0x0100 << 112, 64) {
        "a discard-only address (100::/64)"
    } else if within(0x2001_0db8 << 96, 32) {
        "a documentation address (2001:db8::/32)"
    } else if within(0x2001 << 112, 32) {
        // Teredo hides its IPv4 server and client (obfuscated): refuse all.
        "a Teredo address (2001::/32)"
    } else if within(0x2002 << 112, 16) {
        let v4 = Ipv4Addr::from_bits((bits >> 80) as u32);
        return embedded("6to4 (2002::/16)", v4);
    } else if within(0xfc00 << 112, 7) {
        "a unique local address (fc00::/7)"
    } else if within(0xfe80 << 112, 10) {
        "a link-local address (fe80::/10)"
    } else if within(0xfec0 << 112, 10) {
        "a site-local address (fec0::/10, deprecated)"
    } else if within(0xff00 << 112, 8) {
        "a multicast address"
    } else {
        return None;
    };
    Some(reason.to_owned())
}

// === host parsing ===

/// Reads a URL's host (as `http::Uri::host` gives it: IPv6 in brackets).
/// IPv4 addresses are accepted in dotted decimal only; other numeric forms
/// a browser would take as IPv4 (decimal, octal, hex, fewer than four
/// parts) are refused with the address they stand for.
pub fn parse_host(host: &str) -> Result<Host, String> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| format!("host {host:?} is not a valid IPv6 literal"))?;
        return inner
            .parse::<Ipv6Addr>()
            .map(|ip| Host::Ip(IpAddr::V6(ip)))
            .map_err(|_| {
                format!("host {host:?} is not a valid IPv6 literal (zone ids are not accepted)")
            });
    }
    let bad = |c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_');
    if host.is_empty() || host.chars().any(bad) {
        return Err(format!(
            "host {host:?} is not a DNS name or an IP address (letters, digits, `.`, `-` and `_` expected; internationalized names in punycode)"
        ));
    }
    let lower = host.to_ascii_lowercase();
    if !ends_in_a_number(&lower) {
        let name = lower.strip_suffix('.').unwrap_or(&lower);
        if name.is_empty() || name.split('.').any(str::is_empty) {
            return Err(format!("host {host:?} has an empty label"));
        }
        return Ok(Host::Name(name.to_owned()));
    }
    let ip = parse_ipv4(&lower)
        .ok_or_else(|| format!("host {host:?} ends in a number but is not an IPv4 address"))?;
    if ip.to_string() != lower {
        return Err(format!(
            "host {host:?} is the IPv4 address {ip} in a non-standard notation; write it as {ip}"
        ));
    }
    Ok(Host::Ip(IpAddr::V4(ip)))
}

/// The WHATWG URL standard's "ends in a number" check: a host whose last
/// label is numeric is parsed as IPv4 by browsers.
fn ends_in_a_number(host: &str) -> bool {
    let mut parts: Vec<&str> = host.split('.').collect();
    if parts.last() == Some(&"") {
        if parts.len() == 1 {
            return false;
        }
        parts.pop();
    }
    let Some(last) = parts.last() else {
        return false;
    };
    if !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    ipv4_number(last).is_some()
}

/// The WHATWG IPv4 parser: 1 to 4 parts, each decimal, `0x` hex or
/// `0`-prefixed octal, the last filling the remaining bytes.
fn parse_ipv4(host: &str) -> Option<Ipv4Addr> {
    let mut parts: Vec<&str> = host.split('.').collect();
    if parts.len() > 1 && parts.last() == Some(&"") {
        parts.pop();
    }
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let numbers = parts
        .iter()
        .map(|part| ipv4_number(part))
        .collect::<Option<Vec<u64>>>()?;
    let (last, init) = numbers.split_last()?;
    if init.iter().any(|&n| n > 255) {
        return None;
    }
    let room = 8 * (5 - numbers.len() as u32);
    if *last >= 1u64 << room {
        return None;
    }
    let mut value = *last;
    for (i, n) in init.iter().enumerate() {
        value += n << (8 * (3 - i as u32));
    }
    u32::try_from(value).ok().map(Ipv4Addr::from_bits)
}

fn ipv4_number(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return Some(0);
    }
    // `from_str_radix` takes a leading `+`; a host does not.
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests;
