//! Limiting itself: bursts, exactness under concurrency, per-key buckets, and
//! the local limiter's replenishment, sweeping and `max_keys` eviction.

use super::*;

#[tokio::test]
async fn the_default_burst_is_the_rates_count() {
    let svc = service(config("5/h")).await;
    for _ in 0..5 {
        assert_eq!(status(&svc, get("192.0.2.1:1")).await, StatusCode::OK);
    }
    assert_eq!(
        status(&svc, get("192.0.2.1:1")).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn is_exact_under_concurrency() {
    let svc = service(RateLimitConfig {
        burst: Some(50),
        ..config("50/h")
    })
    .await;
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let svc = svc.clone();
            tokio::spawn(call(svc, get("192.0.2.7:4000")))
        })
        .collect();
    let mut ok = 0;
    let mut limited = 0;
    for task in tasks {
        match task.await.unwrap() {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => limited += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((ok, limited), (50, 150));
}

#[test]
fn is_exact_across_threads() {
    let (limiter, _clock) = fake_limiter("1/h", 1000, 100);
    let limiter = std::sync::Arc::new(limiter);
    let key = Key::from_static(b"shared");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let limiter = limiter.clone();
            let key = key.clone();
            std::thread::spawn(move || (0..500).filter(|_| allowed(limiter.check(&key))).count())
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 1000);
}

#[tokio::test]
async fn keys_are_isolated() {
    let svc = service(RateLimitConfig {
        burst: Some(1),
        ..config("1/h")
    })
    .await;
    assert_eq!(status(&svc, get("192.0.2.1:1")).await, StatusCode::OK);
    assert_eq!(
        status(&svc, get("192.0.2.1:2")).await,
        StatusCode::TOO_MANY_REQUESTS,
        "same IP, other port"
    );
    assert_eq!(status(&svc, get("192.0.2.2:1")).await, StatusCode::OK);
    assert_eq!(status(&svc, get("[2001:db8::1]:1")).await, StatusCode::OK);
}

// --- the local limiter on a fake clock ---

#[test]
fn replenishes_at_the_rate() {
    let (limiter, clock) = fake_limiter("2/s", 2, 10);
    let key = Key::from_static(b"k");
    assert_eq!(
        limiter.check(&key),
        Decision::Allowed {
            remaining: 1,
            reset: Duration::from_millis(500)
        }
    );
    assert_eq!(
        limiter.check(&key),
        Decision::Allowed {
            remaining: 0,
            reset: Duration::from_secs(1)
        }
    );
    assert_eq!(
        limiter.check(&key),
        Decision::Limited {
            retry_after: Duration::from_millis(500)
        }
    );
    clock.advance(Duration::from_millis(200));
    assert_eq!(
        limiter.check(&key),
        Decision::Limited {
            retry_after: Duration::from_millis(300)
        }
    );
    clock.advance(Duration::from_millis(300));
    assert!(allowed(limiter.check(&key)));
    assert!(!allowed(limiter.check(&key)));
    clock.advance(Duration::from_secs(5));
    assert_eq!(
        limiter.check(&key),
        Decision::Allowed {
            remaining: 1,
            reset: Duration::from_millis(500)
        }
    );
}

#[test]
fn idle_keys_are_swept_periodically() {
    let (limiter, clock) = fake_limiter("10/s", 10, 1000);
    for i in 0..100u32 {
        assert!(allowed(limiter.check(&Key::from_static(&i.to_le_bytes()))));
    }
    assert_eq!(limiter.tracked_keys(), 100);
    // Before the sweep is due, nothing goes (even though all are idle).
    clock.advance(Duration::from_secs(5));
    assert!(allowed(limiter.check(&Key::from_static(b"busy"))));
    assert_eq!(limiter.tracked_keys(), 101);
    // Past the deadline: the next request sweeps every idle key.
    clock.advance(local::SWEEP_EVERY);
    for _ in 0..5 {
        assert!(allowed(limiter.check(&Key::from_static(b"busy"))));
    }
    assert_eq!(limiter.tracked_keys(), 1, "only the key in use is kept");
}

#[test]
fn a_full_table_drops_idle_keys_first() {
    let (limiter, clock) = fake_limiter("1/s", 1, 8);
    for i in 0..8u32 {
        assert!(allowed(limiter.check(&Key::from_static(&i.to_le_bytes()))));
    }
    assert_eq!(limiter.tracked_keys(), 8);
    clock.advance(Duration::from_secs(3)); // all idle, no periodic sweep yet
    assert!(allowed(limiter.check(&Key::from_static(b"new"))));
    assert_eq!(limiter.tracked_keys(), 1);
}

#[test]
fn a_full_table_evicts_the_keys_with_the_most_quota_left() {
    // Burst 4, nothing replenishes during the test (fake clock).
    let (limiter, _clock) = fake_limiter("1/h", 4, 4);
    let exhausted = Key::from_static(b"exhausted");
    for _ in 0..4 {
        assert!(allowed(limiter.check(&exhausted)));
    }
    assert!(!allowed(limiter.check(&exhausted)));
    let half = Key::from_static(b"half");
    for _ in 0..2 {
        assert!(allowed(limiter.check(&half)));
    }
    for name in [b"light1", b"light2"] {
        assert!(allowed(limiter.check(&Key::from_static(name))));
    }
    assert_eq!(limiter.tracked_keys(), 4);

    // A new key: the two keys that used 1/4 of their burst go, enough to
    // reach the low-water mark (3); the others keep their state.
    assert!(allowed(limiter.check(&Key::from_static(b"new"))));
    assert_eq!(limiter.tracked_keys(), 3);
    assert!(!allowed(limiter.check(&exhausted)), "still limited");
    assert_eq!(
        limiter.check(&half),
        Decision::Allowed {
            remaining: 1,
            reset: Duration::from_secs(3 * 3600)
        },
        "keeps its count"
    );
    // Evicted keys start afresh.
    assert_eq!(
        limiter.check(&Key::from_static(b"light1")),
        Decision::Allowed {
            remaining: 3,
            reset: Duration::from_secs(3600)
        }
    );
}

#[test]
fn the_table_never_grows_past_max_keys() {
    let (limiter, clock) = fake_limiter("1/h", 2, 100);
    let hot = Key::from_static(b"hot");
    assert!(allowed(limiter.check(&hot)));
    assert!(allowed(limiter.check(&hot)));
    for i in 0..10_000u32 {
        // A flood of new keys, each used once and kept busy.
        assert!(allowed(limiter.check(&Key::from_static(&i.to_le_bytes()))));
        assert!(
            limiter.tracked_keys() <= 100,
            "{} keys after {i}",
            limiter.tracked_keys()
        );
        if i % 1000 == 0 {
            clock.advance(Duration::from_millis(1));
        }
    }
    // The exhausted key outlived the flood: it is still limited.
    assert!(!allowed(limiter.check(&hot)));
}

#[test]
fn a_full_table_of_exhausted_keys_is_cleared() {
    let (limiter, _clock) = fake_limiter("1/h", 1, 4);
    for i in 0..4u32 {
        assert!(allowed(limiter.check(&Key::from_static(&i.to_le_bytes()))));
    }
    // Every key has used its whole burst: the last resort clears them all.
    assert!(allowed(limiter.check(&Key::from_static(b"new"))));
    assert_eq!(limiter.tracked_keys(), 1);
}

#[tokio::test]
async fn max_keys_bounds_the_plugin() {
    let svc = service(RateLimitConfig {
        max_keys: 10,
        ..config("1/h")
    })
    .await;
    for i in 0..50u8 {
        assert_eq!(
            status(&svc, get(&format!("192.0.2.{i}:1"))).await,
            StatusCode::OK
        );
    }
}
