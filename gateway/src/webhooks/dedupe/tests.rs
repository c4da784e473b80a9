//! The local store's rules, and the Redis store against the real Redis on
//! 127.0.0.1:6379 (scripts/test.sh starts one), each test under its own
//! endpoint name.

use std::sync::Arc;

use super::*;

const DAY: Duration = Duration::from_secs(24 * 3600);

fn reserved(r: Reservation) -> Token {
    match r {
        Reservation::Reserved(token) => token,
        other => panic!("expected a reservation, got {other:?}"),
    }
}

#[test]
fn reserve_confirm_then_the_id_is_a_duplicate_until_it_expires() {
    let store = LocalStore::new(DAY, 10);
    let t0 = Instant::now();
    let token = reserved(store.reserve("msg_1", t0));
    assert_eq!(store.reserve("msg_1", t0), Reservation::InProgress);
    store.confirm("msg_1", token, t0);
    assert_eq!(
        store.reserve("msg_1", t0 + DAY - Duration::from_secs(1)),
        Reservation::Duplicate
    );
    assert!(matches!(
        store.reserve("msg_1", t0 + DAY),
        Reservation::Reserved(_)
    ));
}

#[test]
fn a_released_reservation_lets_the_retry_in() {
    let store = LocalStore::new(DAY, 10);
    let now = Instant::now();
    let token = reserved(store.reserve("msg_1", now));
    store.release("msg_1", token);
    assert!(store.is_empty());
    let again = reserved(store.reserve("msg_1", now));
    // A stale token releases nothing.
    store.release("msg_1", token);
    assert_eq!(store.reserve("msg_1", now), Reservation::InProgress);
    store.confirm("msg_1", again, now);
    assert_eq!(store.reserve("msg_1", now), Reservation::Duplicate);
}

#[test]
fn an_unconfirmed_reservation_expires_on_its_own() {
    let store = LocalStore::new(DAY, 10);
    let now = Instant::now();
    reserved(store.reserve("msg_1", now));
    assert!(matches!(
        store.reserve("msg_1", now + PENDING_TTL),
        Reservation::Reserved(_)
    ));
}

#[test]
fn the_store_is_bounded_and_forgets_the_oldest_first() {
    let store = LocalStore::new(DAY, 3);
    let t0 = Instant::now();
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        let at = t0 + Duration::from_secs(i as u64);
        let token = reserved(store.reserve(id, at));
        store.confirm(id, token, at);
    }
    assert_eq!(store.len(), 3);
    let later = t0 + Duration::from_secs(10);
    assert_eq!(store.reserve("d", later), Reservation::Duplicate);
    assert_eq!(store.reserve("c", later), Reservation::Duplicate);
    // `a` was forgotten to make room for `d`.
    assert!(matches!(
        store.reserve("a", later),
        Reservation::Reserved(_)
    ));
    assert_eq!(store.len(), 3);
}

#[test]
fn a_confirmation_after_the_reservation_was_forgotten_still_marks_the_id() {
    let store = LocalStore::new(DAY, 1);
    let now = Instant::now();
    let token = reserved(store.reserve("a", now));
    reserved(store.reserve("b", now)); // evicts `a`
    store.confirm("a", token, now);
    assert_eq!(store.reserve("a", now), Reservation::Duplicate);
}

#[test]
fn concurrent_reservations_of_one_id_have_one_winner() {
    let store = Arc::new(LocalStore::new(DAY, 1000));
    let winners: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                scope.spawn(move || {
                    matches!(
                        store.reserve("msg_same", Instant::now()),
                        Reservation::Reserved(_)
                    ) as usize
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(winners, 1);
}

// === redis ===

const URL: &str = "redis://127.0.0.1:6379";

fn unique(name: &str) -> String {
    format!("test-{name}-{:x}", fastrand::u64(..))
}

async fn redis_store(ttl: Duration) -> Store {
    let store = RedisStore::new(URL, &unique("dedupe"), ttl).expect("a redis url");
    // Fail (never skip) without Redis: the shared store would go untested.
    if let Err(e) = store.reserve("probe").await {
        panic!("Redis must run on 127.0.0.1:6379 (scripts/test.sh starts it): {e}");
    }
    Store::Redis(store)
}

#[tokio::test]
async fn redis_reserve_confirm_release_and_duplicate() {
    let store = redis_store(Duration::from_secs(60)).await;
    let token = reserved(store.reserve("msg_1").await.unwrap());
    assert_eq!(
        store.reserve("msg_1").await.unwrap(),
        Reservation::InProgress
    );
    store.release("msg_1", token).await.unwrap();
    let token = reserved(store.reserve("msg_1").await.unwrap());
    store.confirm("msg_1", token).await.unwrap();
    assert_eq!(
        store.reserve("msg_1").await.unwrap(),
        Reservation::Duplicate
    );
    // Releasing after the confirmation (or with a stale token) keeps the mark.
    store.release("msg_1", token).await.unwrap();
    assert_eq!(
        store.reserve("msg_1").await.unwrap(),
        Reservation::Duplicate
    );
}

#[tokio::test]
async fn redis_marks_expire_after_the_ttl() {
    let store = redis_store(Duration::from_millis(200)).await;
    let token = reserved(store.reserve("msg_1").await.unwrap());
    store.confirm("msg_1", token).await.unwrap();
    assert_eq!(
        store.reserve("msg_1").await.unwrap(),
        Reservation::Duplicate
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(matches!(
        store.reserve("msg_1").await.unwrap(),
        Reservation::Reserved(_)
    ));
}

#[tokio::test]
async fn redis_concurrent_reservations_of_one_id_have_one_winner() {
    let store = Arc::new(redis_store(Duration::from_secs(60)).await);
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.reserve("msg_same").await.unwrap() })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), Reservation::Reserved(_)) {
            winners += 1;
        }
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn redis_down_is_an_error_not_a_verdict() {
    let store = Store::Redis(RedisStore::new("redis://127.0.0.1:1", "down", DAY).unwrap());
    assert!(store.reserve("msg_1").await.is_err());
}
