//! Choosing an endpoint for a call: power of two choices over in-flight
//! calls, or round robin, among the best-ranked endpoints. An endpoint's
//! rank says how much to avoid it (passed over, or the one a retry is moving
//! away from); a worse-ranked endpoint is chosen only when no better one
//! exists, so a call is never refused because every endpoint is out.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::Balance;

/// The balancing policy of one upstream and its round-robin position.
#[derive(Debug)]
pub struct Balancer {
    policy: Balance,
    next: AtomicUsize,
}

impl Balancer {
    pub fn new(policy: Balance) -> Balancer {
        Balancer {
            policy,
            next: AtomicUsize::new(0),
        }
    }

    /// One of `n` endpoints (`n` ≥ 1): among those of the lowest `rank`, the
    /// less loaded of two at random (p2c) or the next in turn (round robin).
    pub fn pick(
        &self,
        n: usize,
        rank: impl Fn(usize) -> u8,
        load: impl Fn(usize) -> usize,
    ) -> usize {
        if n == 1 {
            return 0;
        }
        let ranks: Ranks = if n <= INLINE {
            let mut inline = [0u8; INLINE];
            for (i, r) in inline.iter_mut().take(n).enumerate() {
                *r = rank(i);
            }
            Ranks::Inline(inline)
        } else {
            Ranks::Heap((0..n).map(&rank).collect())
        };
        let ranks = ranks.as_slice(n);
        let best = ranks.iter().copied().min().unwrap_or(0);
        match self.policy {
            Balance::RoundRobin => {
                let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
                (0..n)
                    .map(|offset| (start + offset) % n)
                    .find(|&i| ranks[i] == best)
                    .unwrap_or(start)
            }
            Balance::P2c => {
                let candidates = ranks.iter().filter(|&&r| r == best).count();
                let nth = |k: usize| {
                    ranks
                        .iter()
                        .enumerate()
                        .filter(|&(_, &r)| r == best)
                        .nth(k)
                        .map_or(0, |(i, _)| i)
                };
                if candidates == 1 {
                    return nth(0);
                }
                let a = fastrand::usize(..candidates);
                let b = (a + 1 + fastrand::usize(..candidates - 1)) % candidates;
                let (a, b) = (nth(a), nth(b));
                if load(b) < load(a) { b } else { a }
            }
        }
    }
}

/// Endpoints whose ranks are kept on the stack.
const INLINE: usize = 16;

enum Ranks {
    Inline([u8; INLINE]),
    Heap(Vec<u8>),
}

impl Ranks {
    fn as_slice(&self, n: usize) -> &[u8] {
        match self {
            Ranks::Inline(r) => &r[..n],
            Ranks::Heap(r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_takes_each_endpoint_in_turn_skipping_worse_ranked_ones() {
        let rr = Balancer::new(Balance::RoundRobin);
        let picks: Vec<usize> = (0..6).map(|_| rr.pick(3, |_| 0, |_| 0)).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        let picks: Vec<usize> = (0..4)
            .map(|_| rr.pick(3, |i| u8::from(i == 1), |_| 0))
            .collect();
        assert!(picks.iter().all(|&i| i != 1), "{picks:?}");
    }

    #[test]
    fn p2c_prefers_the_less_loaded_and_never_a_worse_rank() {
        let p2c = Balancer::new(Balance::P2c);
        for _ in 0..100 {
            assert_eq!(p2c.pick(2, |_| 0, |i| [5, 1][i]), 1);
            let i = p2c.pick(20, |i| u8::from(i % 7 != 3), |_| 0);
            assert_eq!(i % 7, 3, "only ranks-0 endpoints 3, 10, 17: {i}");
        }
    }

    #[test]
    fn when_every_endpoint_is_out_one_is_still_picked() {
        for policy in [Balance::P2c, Balance::RoundRobin] {
            let b = Balancer::new(policy);
            for _ in 0..20 {
                assert!(b.pick(3, |_| 1, |_| 0) < 3);
            }
        }
    }
}
