//! The relay's windowing and ordering, against an in-process sink that
//! records what it was asked to publish and when (the relay's logic is under
//! test here; the sinks are tested against the real brokers elsewhere).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::BoxFuture;
use prometheus::{Gauge, HistogramOpts, IntCounterVec, Opts};

use super::*;
use crate::events::outbox::Limits;
use crate::events::sinks::Outgoing;

/// Records publishes; each takes `delay`, and the first attempt of the ids
/// in `fail_once` fails as transient.
struct Recorder {
    window: usize,
    delay: Duration,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    keys: Mutex<HashSet<String>>,
    /// Two publishes with one ordering key overlapped.
    overlaps: AtomicUsize,
    fail_once: Mutex<HashSet<String>>,
    /// Ids acknowledged, in the order their publishes completed.
    acked: Mutex<Vec<String>>,
}

impl Recorder {
    fn new(window: usize, delay: Duration, fail_once: &[&str]) -> Arc<Recorder> {
        Arc::new(Recorder {
            window,
            delay,
            in_flight: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            keys: Mutex::new(HashSet::new()),
            overlaps: AtomicUsize::new(0),
            fail_once: Mutex::new(fail_once.iter().map(|s| s.to_string()).collect()),
            acked: Mutex::new(Vec::new()),
        })
    }

    fn acked(&self) -> Vec<String> {
        self.acked.lock().unwrap().clone()
    }
}

impl Sink for Recorder {
    fn publish<'a>(&'a self, event: &'a Outgoing) -> BoxFuture<'a, Result<(), SinkError>> {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            let key = event.ordering_key().to_owned();
            if !self.keys.lock().unwrap().insert(key.clone()) {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(self.delay).await;
            self.keys.lock().unwrap().remove(&key);
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            if self.fail_once.lock().unwrap().remove(&event.id) {
                return Err(SinkError::Transient("broker hiccup".into()));
            }
            self.acked.lock().unwrap().push(event.id.clone());
            Ok(())
        })
    }

    fn max_in_flight(&self) -> usize {
        self.window
    }
}

fn event(id: &str, subject: Option<&str>) -> Outgoing {
    Outgoing {
        id: id.into(),
        destination: "orders.created".into(),
        event_type: "com.example.order.created".into(),
        subject: subject.map(str::to_owned),
        body: b"{}".to_vec(),
    }
}

fn open(dir: &std::path::Path) -> Arc<Outbox> {
    let limits = Limits {
        max_events: 1000,
        max_event_size: 1 << 20,
        max_dead_letters: 10,
        flush_interval: Duration::from_millis(1),
    };
    Arc::new(Outbox::open(&dir.join("outbox.redb"), &["s".into()], &limits).unwrap())
}

fn spawn_relay(sink: &Arc<Recorder>, outbox: &Arc<Outbox>) -> tokio::task::JoinHandle<()> {
    let latency = Histogram::with_opts(HistogramOpts::new("l", "l")).unwrap();
    let relay = Relay {
        sink: 0,
        name: "s".into(),
        target: sink.clone(),
        outbox: outbox.clone(),
        retry_initial: Duration::from_millis(5),
        retry_max: Duration::from_millis(20),
        max_age: Duration::from_secs(3600),
        metrics: RelayMetrics {
            counters: EventCounters::new(
                IntCounterVec::new(Opts::new("e", "e"), &["sink", "type", "outcome"]).unwrap(),
                "s",
                Arc::default(),
            ),
            oldest_age: Gauge::new("a", "a").unwrap(),
            latency,
        },
    };
    tokio::spawn(relay.run())
}

/// Waits until `sink` acknowledged `expect` events and the outbox is empty.
async fn until_delivered(sink: &Recorder, outbox: &Outbox, expect: usize) {
    for _ in 0..500 {
        if sink.acked().len() >= expect && outbox.depth() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Appends `events` to a fresh outbox, relays them to `sink` until it has
/// acknowledged `expect` of them, and returns the outbox afterwards.
async fn relay(sink: Arc<Recorder>, events: &[Outgoing], expect: usize) -> Arc<Outbox> {
    let dir = std::env::temp_dir().join(format!("switchyard-relay-{:x}", fastrand::u64(..)));
    let outbox = open(&dir);
    for event in events {
        outbox.append(0, event.clone()).unwrap();
    }
    let task = spawn_relay(&sink, &outbox);
    until_delivered(&sink, &outbox, expect).await;
    task.abort();
    let _ = std::fs::remove_dir_all(dir);
    outbox
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_left_by_a_previous_run_go_first_then_new_ones_each_once_in_order() {
    let dir = std::env::temp_dir().join(format!("switchyard-relay-{:x}", fastrand::u64(..)));
    let ids = |range: std::ops::Range<usize>| range.map(|n| format!("e{n}")).collect::<Vec<_>>();
    {
        let outbox = open(&dir);
        for id in ids(0..300) {
            outbox.append(0, event(&id, Some("k"))).unwrap();
        }
        outbox.flush().await;
    }
    // The store holds 300 (more than one read), the tail none of them.
    let outbox = open(&dir);
    let sink = Recorder::new(8, Duration::ZERO, &[]);
    let task = spawn_relay(&sink, &outbox);
    for id in ids(300..400) {
        outbox.append(0, event(&id, Some("k"))).unwrap();
    }
    until_delivered(&sink, &outbox, 400).await;
    assert_eq!(sink.acked(), ids(0..400), "each once, in order");
    // What was delivered is removed from the store, not only skipped.
    outbox.flush().await;
    assert_eq!(outbox.len(0).unwrap(), 0);
    task.abort();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn events_with_distinct_subjects_are_published_up_to_max_in_flight_at_once() {
    let sink = Recorder::new(4, Duration::from_millis(30), &[]);
    let events: Vec<Outgoing> = (0..12)
        .map(|n| event(&format!("e{n}"), Some(&format!("orders/{n}"))))
        .collect();
    let outbox = relay(sink.clone(), &events, 12).await;
    assert_eq!(sink.acked().len(), 12, "every event acknowledged");
    assert_eq!(
        sink.peak.load(Ordering::SeqCst),
        4,
        "the window is full, never over"
    );
    assert_eq!(outbox.depth(), 0, "all removed from the outbox");
}

#[tokio::test]
async fn events_with_one_subject_are_never_in_flight_together_and_keep_their_order() {
    let sink = Recorder::new(8, Duration::from_millis(5), &[]);
    let events: Vec<Outgoing> = (0..20)
        .map(|n| event(&format!("e{n}"), Some(["orders/a", "orders/b"][n % 2])))
        .collect();
    relay(sink.clone(), &events, 20).await;
    assert_eq!(sink.overlaps.load(Ordering::SeqCst), 0);
    assert_eq!(
        sink.peak.load(Ordering::SeqCst),
        2,
        "one per subject at a time"
    );
    let acked = sink.acked();
    for parity in 0..2 {
        let ids: Vec<&String> = acked
            .iter()
            .filter(|id| id[1..].parse::<usize>().unwrap() % 2 == parity)
            .collect();
        let expected: Vec<String> = (0..20)
            .filter(|n| n % 2 == parity)
            .map(|n| format!("e{n}"))
            .collect();
        assert_eq!(
            ids,
            expected.iter().collect::<Vec<_>>(),
            "in order per subject"
        );
    }
}

#[tokio::test]
async fn events_without_a_subject_keep_their_order_per_destination() {
    let sink = Recorder::new(8, Duration::from_millis(2), &[]);
    let events: Vec<Outgoing> = (0..10).map(|n| event(&format!("e{n}"), None)).collect();
    relay(sink.clone(), &events, 10).await;
    assert_eq!(sink.peak.load(Ordering::SeqCst), 1);
    let expected: Vec<String> = (0..10).map(|n| format!("e{n}")).collect();
    assert_eq!(sink.acked(), expected);
}

#[tokio::test]
async fn a_failed_event_is_delivered_before_any_later_event_with_its_subject() {
    // a1 fails once; a2 (same subject) must not be acknowledged before a1.
    let sink = Recorder::new(4, Duration::from_millis(5), &["a1"]);
    let events = [
        event("a1", Some("orders/a")),
        event("b1", Some("orders/b")),
        event("a2", Some("orders/a")),
        event("b2", Some("orders/b")),
        event("c1", Some("orders/c")),
    ];
    let outbox = relay(sink.clone(), &events, 5).await;
    let acked = sink.acked();
    assert_eq!(acked.len(), 5, "{acked:?}");
    let at = |id: &str| acked.iter().position(|a| a == id).unwrap();
    assert!(at("a1") < at("a2"), "a1 before a2: {acked:?}");
    assert!(at("b1") < at("b2"), "b1 before b2: {acked:?}");
    assert_eq!(outbox.depth(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_with_nothing_left_new_events_are_delivered_once_each() {
    let dir = std::env::temp_dir().join(format!("switchyard-relay-{:x}", fastrand::u64(..)));
    {
        let outbox = open(&dir);
        let sink = Recorder::new(8, Duration::ZERO, &[]);
        let task = spawn_relay(&sink, &outbox);
        for n in 0..3 {
            outbox.append(0, event(&format!("old{n}"), None)).unwrap();
        }
        until_delivered(&sink, &outbox, 3).await;
        task.abort();
        // The relay's handle on the outbox is gone before it is reopened.
        let _ = task.await;
        outbox.flush().await;
    }
    // Numbers 1..=3 are used and gone: the relay finds nothing in the
    // store, and takes what comes from the tail.
    let outbox = open(&dir);
    let sink = Recorder::new(8, Duration::ZERO, &[]);
    let task = spawn_relay(&sink, &outbox);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for n in 0..5 {
        outbox.append(0, event(&format!("new{n}"), None)).unwrap();
    }
    until_delivered(&sink, &outbox, 5).await;
    let want: Vec<String> = (0..5).map(|n| format!("new{n}")).collect();
    assert_eq!(sink.acked(), want);
    task.abort();
    let _ = std::fs::remove_dir_all(dir);
}
