//! A route's traffic split (`routes[].split`): which upstream serves a
//! request, and under which variant name.
//!
//! The requests are cut into 10 000 buckets (a weight has two decimals of
//! a percent). The variants take consecutive ranges in config order, the
//! route's own upstream (the primary) what is left, at the end. A request's
//! bucket is a hash of its sticky key (the same key lands in the same
//! bucket on every instance and after a restart), or random without one.
//! Raising a variant's weight only widens its range, so the clients it had
//! keep it; a split keyed on the same thing on several routes puts a client
//! on the same side of each (the hash is of the key alone). A variant's
//! `when` conditions, tried first in config order, override the buckets.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName};
use prometheus::IntCounter;

use super::header_match::{CookieMatcher, HeaderMatcher, all_match, cookies};
use crate::upstream::Upstream;

/// Buckets a split cuts requests into.
pub const BUCKETS: u32 = 10_000;

/// A compiled split.
#[derive(Debug)]
pub struct Split<T = Upstream> {
    /// The other variants, in config order.
    variants: Box<[Variant<T>]>,
    /// The primary's name and its requests' counter.
    primary: Arc<str>,
    primary_count: IntCounter,
    sticky: Option<StickyKey>,
}

/// One variant besides the primary.
#[derive(Debug)]
pub struct Variant<T = Upstream> {
    pub name: Arc<str>,
    pub upstream: T,
    /// Its buckets: `start..end`.
    pub buckets: std::ops::Range<u32>,
    /// Conditions that force it (none: only its buckets choose it).
    pub when: Option<When>,
    pub count: IntCounter,
}

/// Conditions that send a request to a variant whatever its bucket.
#[derive(Debug)]
pub struct When {
    pub headers: Vec<HeaderMatcher>,
    pub cookies: Vec<CookieMatcher>,
}

/// What a sticky split hashes.
#[derive(Clone, Debug)]
pub enum StickyKey {
    Header(HeaderName),
    Cookie(Box<[u8]>),
    Consumer,
    ClientIp,
}

/// Who is calling, as far as a split can tell.
#[derive(Clone, Copy, Debug)]
pub struct Caller<'a> {
    pub headers: &'a HeaderMap,
    /// The consumer an `auth` plugin identified.
    pub consumer: Option<&'a str>,
    /// The connection's peer.
    pub client_ip: Option<IpAddr>,
}

/// The upstream that serves a request, and its variant's name (`None`
/// on a route without a split).
#[derive(Clone, Copy, Debug)]
pub struct Chosen<'a> {
    pub upstream: &'a Upstream,
    pub variant: Option<&'a Arc<str>>,
}

// === impl Caller ===

impl<'a> Caller<'a> {
    /// An HTTP request's caller: the consumer and client address its
    /// extensions hold.
    pub fn of(headers: &'a HeaderMap, extensions: &'a http::Extensions) -> Caller<'a> {
        use switchyard_plugins::stage::{ClientAddr, Consumer};
        Caller {
            headers,
            consumer: extensions.get::<Consumer>().map(|c| c.0.as_str()),
            client_ip: extensions.get::<ClientAddr>().map(|a| a.0.ip()),
        }
    }
}

// === impl Split ===

impl<T> Split<T> {
    /// A split of `variants` with the primary called `primary`.
    pub fn new(
        primary: Arc<str>,
        primary_count: IntCounter,
        variants: Vec<Variant<T>>,
        sticky: Option<StickyKey>,
    ) -> Split<T> {
        Split {
            variants: variants.into(),
            primary,
            primary_count,
            sticky,
        }
    }

    /// The variant serving `caller`: a forcing `when`, else its bucket's;
    /// `None` for the primary. Counted.
    pub fn choose(&self, caller: &Caller<'_>) -> Option<&Variant<T>> {
        let forced = self.variants.iter().find(|v| {
            v.when.as_ref().is_some_and(|w| {
                all_match(&w.headers, caller.headers)
                    && w.cookies.iter().all(|c| c.matches(caller.headers))
            })
        });
        let chosen = forced.or_else(|| {
            let bucket = self.bucket(caller);
            self.variants.iter().find(|v| v.buckets.contains(&bucket))
        });
        match chosen {
            Some(variant) => variant.count.inc(),
            None => self.primary_count.inc(),
        }
        chosen
    }

    /// The variant called `name` (not the primary).
    pub fn named(&self, name: &str) -> Option<&Variant<T>> {
        self.variants.iter().find(|v| &*v.name == name)
    }

    /// The primary's name.
    pub fn primary(&self) -> &Arc<str> {
        &self.primary
    }

    /// The request's bucket: its sticky key's, or a random one.
    fn bucket(&self, caller: &Caller<'_>) -> u32 {
        let sticky = match &self.sticky {
            None => None,
            Some(StickyKey::Header(name)) => caller
                .headers
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| bucket_of(v.as_bytes())),
            Some(StickyKey::Cookie(name)) => cookies(caller.headers, name)
                .find(|v| !v.is_empty())
                .map(bucket_of),
            Some(StickyKey::Consumer) => caller.consumer.map(|c| bucket_of(c.as_bytes())),
            Some(StickyKey::ClientIp) => caller.client_ip.map(|ip| match ip {
                IpAddr::V4(v4) => bucket_of(&v4.octets()),
                IpAddr::V6(v6) => bucket_of(&v6.octets()),
            }),
        };
        sticky.unwrap_or_else(|| fastrand::u32(..BUCKETS))
    }
}

/// A key's bucket: FNV-1a over its bytes, then a 64-bit finaliser (the
/// low bits of FNV alone are poorly mixed). Stable across processes,
/// versions and machines: never change it, or every sticky client moves.
pub fn bucket_of(key: &[u8]) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in key {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64's finaliser.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    (hash % u64::from(BUCKETS)) as u32
}

/// A weight in percent as buckets, or why it cannot be one.
pub fn weight_buckets(weight: f64) -> Result<u32, String> {
    if !(0.0..=100.0).contains(&weight) {
        return Err(format!(
            "weight {weight} is not between 0 and 100 (percent)"
        ));
    }
    let buckets = weight * f64::from(BUCKETS) / 100.0;
    if (buckets - buckets.round()).abs() > 1e-6 {
        return Err(format!(
            "weight {weight} has more than two decimals (the finest share is 0.01%)"
        ));
    }
    Ok(buckets.round() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter() -> IntCounter {
        IntCounter::new("c", "c").unwrap()
    }

    fn split(weights: &[(&str, u32)], sticky: Option<StickyKey>) -> Split<()> {
        let mut start = 0;
        let variants = weights
            .iter()
            .map(|&(name, buckets)| {
                let range = start..start + buckets;
                start += buckets;
                Variant {
                    name: name.into(),
                    upstream: (),
                    buckets: range,
                    when: None,
                    count: counter(),
                }
            })
            .collect();
        Split::new("primary".into(), counter(), variants, sticky)
    }

    fn caller(headers: &HeaderMap) -> Caller<'_> {
        Caller {
            headers,
            consumer: None,
            client_ip: None,
        }
    }

    #[test]
    fn the_bucket_of_a_key_never_changes() {
        // Pinned: a change of hash would move every sticky client.
        assert_eq!(bucket_of(b"user-1"), bucket_of(b"user-1"));
        let pinned: Vec<u32> = ["", "a", "user-1", "user-2"]
            .iter()
            .map(|k| bucket_of(k.as_bytes()))
            .collect();
        assert_eq!(pinned, PINNED_BUCKETS);
    }

    // Computed independently (a Python rendering of `bucket_of`), so the
    // pin is the documented algorithm, not whatever the code does today.
    const PINNED_BUCKETS: [u32; 4] = [6203, 3736, 7624, 8795];

    #[test]
    fn buckets_spread_evenly_over_many_keys() {
        let mut tenths = [0u32; 10];
        for i in 0..100_000 {
            tenths[(bucket_of(format!("user-{i}").as_bytes()) / 1000) as usize] += 1;
        }
        for count in tenths {
            assert!((9_500..10_500).contains(&count), "{tenths:?}");
        }
    }

    #[test]
    fn weights_take_their_share_of_random_requests() {
        let split = split(&[("canary", 500)], None);
        let headers = HeaderMap::new();
        let canary = (0..20_000)
            .filter(|_| split.choose(&caller(&headers)).is_some())
            .count();
        // 5% of 20 000 is 1 000; six standard deviations either side.
        assert!((820..1_180).contains(&canary), "{canary}");
    }

    #[test]
    fn a_sticky_key_keeps_its_variant_and_growing_a_weight_keeps_its_clients() {
        let sticky = Some(StickyKey::Header(HeaderName::from_static("x-user")));
        let small = split(&[("canary", 1_000)], sticky.clone());
        let large = split(&[("canary", 3_000)], sticky);
        let mut on_small = 0;
        for i in 0..2_000 {
            let mut headers = HeaderMap::new();
            headers.insert("x-user", format!("u{i}").parse().unwrap());
            let first = small.choose(&caller(&headers)).map(|v| v.name.clone());
            for _ in 0..3 {
                let again = small.choose(&caller(&headers)).map(|v| v.name.clone());
                assert_eq!(first, again);
            }
            if first.is_some() {
                on_small += 1;
                assert!(large.choose(&caller(&headers)).is_some(), "u{i} moved");
            }
        }
        assert!((140..260).contains(&on_small), "{on_small}");
    }

    #[test]
    fn weights_are_percent_with_two_decimals() {
        assert_eq!(weight_buckets(5.0), Ok(500));
        assert_eq!(weight_buckets(0.25), Ok(25));
        assert_eq!(weight_buckets(100.0), Ok(10_000));
        assert!(weight_buckets(0.001).unwrap_err().contains("two decimals"));
        assert!(
            weight_buckets(101.0)
                .unwrap_err()
                .contains("between 0 and 100")
        );
        assert!(weight_buckets(-1.0).is_err());
    }
}
