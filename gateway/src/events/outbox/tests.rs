use prometheus::{IntCounterVec, IntGauge, Opts};

use crate::events::counters::EventCounters;

use super::record::{decode, decode_dead};
use super::*;

fn event(n: usize) -> Outgoing {
    Outgoing {
        id: format!("id-{n}"),
        destination: "orders.created".into(),
        body: format!("{{\"n\":{n}}}").into_bytes(),
        ..Default::default()
    }
}

fn limits(max_events: usize, max_event_size: usize) -> Limits {
    Limits {
        max_events,
        max_event_size,
        max_dead_letters: 3,
        flush_interval: Duration::from_millis(2),
    }
}

#[test]
fn records_round_trip_and_old_records_still_read() {
    assert_eq!(decode(&encode(&event(7), 42)), Some((42, event(7))));
    assert_eq!(decode(b"\0\0"), None);
    assert_eq!(decode(b"\0\0\0\x09ab"), None);
    // The format before the append time: no leading format byte.
    let old = b"\0\0\0\x04id-7\0\0\0\x0eorders.created{\"n\":7}";
    assert_eq!(decode(old), Some((0, event(7))));
    let dead = encode_dead(&encode(&event(7), 42), "refused: 410 Gone", 99);
    let dead = decode_dead(5, &dead).expect("dead letter");
    assert_eq!(
        (
            dead.seq,
            dead.id.as_str(),
            dead.reason.as_str(),
            dead.appended_ms,
            dead.dead_ms
        ),
        (5, "id-7", "refused: 410 Gone", 42, 99)
    );
    assert_eq!(dead.body, "{\"n\":7}");
}

async fn until<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_survive_a_reopen_in_order_and_removals_stick() {
    let dir = std::env::temp_dir().join(format!("outbox-test-{}", fastrand::u64(..)));
    let path = dir.join("outbox.redb");
    let sinks = ["a".to_owned(), "b".to_owned()];
    {
        let outbox = Outbox::open(&path, &sinks, &limits(100, 1024)).unwrap();
        for n in 0..5 {
            outbox.append(n % 2, event(n)).unwrap();
        }
        until("the commit", || {
            tokio::task::block_in_place(|| outbox.oldest(0, 10).unwrap().len() == 3)
        })
        .await;
        let a = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
        let ids: Vec<_> = a.iter().map(|s| s.event.id.as_str()).collect();
        assert_eq!(ids, ["id-0", "id-2", "id-4"]);
        delivered(&outbox, 0, &[&a[0]]).await;
        // Another commit persists the removal.
        outbox.append(1, event(9)).unwrap();
        until("the second commit", || {
            tokio::task::block_in_place(|| outbox.oldest(1, 10).unwrap().len() == 3)
        })
        .await;
        assert_eq!(outbox.depth(), 5);
    }
    let outbox = Outbox::open(&path, &sinks, &limits(100, 1024)).unwrap();
    assert_eq!(outbox.depth(), 5, "what was left is counted on reopen");
    let a = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
    let ids: Vec<_> = a.iter().map(|s| s.event.id.as_str()).collect();
    assert_eq!(ids, ["id-2", "id-4"]);
    // New appends go after the old ones.
    outbox.append(0, event(11)).unwrap();
    until("the commit", || {
        tokio::task::block_in_place(|| outbox.oldest(0, 10).unwrap().len() == 3)
    })
    .await;
    let a = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
    assert_eq!(a[2].event.id, "id-11");
    assert!(a[2].appended_ms > 0);
    drop(outbox);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_full_outbox_refuses_and_an_oversized_event_is_refused() {
    let dir = std::env::temp_dir().join(format!("outbox-test-{}", fastrand::u64(..)));
    let outbox = Outbox::open(&dir.join("o.redb"), &["a".to_owned()], &limits(2, 64)).unwrap();
    outbox.append(0, event(1)).unwrap();
    outbox.append(0, event(2)).unwrap();
    assert!(!outbox.has_room());
    assert_eq!(outbox.append(0, event(3)), Err(AppendError::Full(2)));
    let big = Outgoing {
        body: vec![b'x'; 100],
        ..event(4)
    };
    assert!(matches!(
        outbox.append(0, big),
        Err(AppendError::TooLarge { .. })
    ));
    drop(outbox);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_leave_the_queue_with_their_reason_and_are_bounded() {
    let dir = std::env::temp_dir().join(format!("outbox-test-{}", fastrand::u64(..)));
    let outbox = Outbox::open(&dir.join("o.redb"), &["a".to_owned()], &limits(100, 1024)).unwrap();
    for n in 0..5 {
        outbox.append(0, event(n)).unwrap();
    }
    until("the commit", || {
        tokio::task::block_in_place(|| outbox.oldest(0, 10).unwrap().len() == 5)
    })
    .await;
    let waiting = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
    assert!(
        tokio::task::block_in_place(|| outbox.oldest_appended_ms(0))
            .unwrap()
            .is_some_and(|ms| ms == waiting[0].appended_ms)
    );
    for stored in &waiting {
        let reason = format!("refused {}", stored.event.id);
        tokio::task::block_in_place(|| outbox.dead_letter(0, stored, &reason)).unwrap();
    }
    assert_eq!(outbox.depth(), 0);
    assert_eq!(outbox.len(0).unwrap(), 0);
    // `max_dead_letters` is 3: the two oldest were discarded.
    assert_eq!(outbox.dead_len(0).unwrap(), 3);
    let dead = tokio::task::block_in_place(|| outbox.dead_letters(0, 10)).unwrap();
    let ids: Vec<_> = dead.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["id-4", "id-3", "id-2"], "newest first");
    assert_eq!(dead[0].reason, "refused id-4");
    assert_eq!(dead[0].appended_ms, waiting[4].appended_ms);
    assert!(dead[0].dead_ms >= dead[0].appended_ms);
    drop(outbox);
    let _ = std::fs::remove_dir_all(dir);
}

fn meters(sinks: usize) -> Vec<SinkMeters> {
    (0..sinks)
        .map(|_| SinkMeters {
            depth: IntGauge::new("d", "d").unwrap(),
            counters: EventCounters::new(
                IntCounterVec::new(Opts::new("e", "e"), &["sink", "type", "outcome"]).unwrap(),
                "s",
                Default::default(),
            ),
        })
        .collect()
}

/// Sink `sink`'s waiting event ids, oldest first.
fn ids(outbox: &Outbox, sink: usize) -> Vec<String> {
    let waiting = tokio::task::block_in_place(|| outbox.oldest(sink, 100)).unwrap();
    waiting.into_iter().map(|s| s.event.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicting_appends_to_a_full_outbox_keep_the_newest_in_order() {
    let dir = std::env::temp_dir().join(format!("outbox-test-{}", fastrand::u64(..)));
    let outbox = Outbox::open(&dir.join("o.redb"), &["a".to_owned()], &limits(3, 1024)).unwrap();
    let meters = meters(1);
    outbox.meter(meters.clone());
    for n in 0..8 {
        outbox.append_evicting(0, event(n)).unwrap();
    }
    until("the evictions", || meters[0].counters.total("evicted") == 5).await;
    assert_eq!(ids(&outbox, 0), ["id-5", "id-6", "id-7"]);
    assert_eq!(outbox.depth(), 3);
    assert!(!outbox.has_room());
    assert_eq!(meters[0].depth.get(), 3, "the gauge follows");
    assert_eq!(meters[0].counters.total("dropped"), 0);
    // A must-deliver append is still refused.
    assert_eq!(outbox.append(0, event(9)), Err(AppendError::Full(3)));
    drop(outbox);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn must_deliver_events_are_never_evicted() {
    let dir = std::env::temp_dir().join(format!("outbox-test-{}", fastrand::u64(..)));
    let sinks = ["a".to_owned(), "b".to_owned()];
    let outbox = Outbox::open(&dir.join("o.redb"), &sinks, &limits(4, 1024)).unwrap();
    let meters = meters(2);
    outbox.meter(meters.clone());
    outbox.append(0, event(0)).unwrap();
    outbox.append_evicting(0, event(1)).unwrap();
    outbox.append(0, event(2)).unwrap();
    outbox.append_evicting(0, event(3)).unwrap();
    // Full: each evicts sink a's oldest droppable event, not id-0 or id-2.
    outbox.append_evicting(0, event(4)).unwrap();
    outbox.append_evicting(0, event(5)).unwrap();
    until("the evictions", || meters[0].counters.total("evicted") == 2).await;
    assert_eq!(ids(&outbox, 0), ["id-0", "id-2", "id-4", "id-5"]);
    // Sink b has nothing to evict: its event is dropped, not another
    // sink's.
    outbox.append_evicting(1, event(6)).unwrap();
    until("the drop", || meters[1].counters.total("dropped") == 1).await;
    assert_eq!(ids(&outbox, 1), Vec::<String>::new());
    assert_eq!(ids(&outbox, 0).len(), 4);
    assert_eq!(outbox.depth(), 4);
    assert_eq!((meters[0].depth.get(), meters[1].depth.get()), (4, 0));
    assert_eq!(meters[1].counters.total("evicted"), 0);
    // Delivering id-0 frees a place for a must-deliver event again.
    let waiting = tokio::task::block_in_place(|| outbox.oldest(0, 1)).unwrap();
    delivered(&outbox, 0, &[&waiting[0]]).await;
    outbox.append(1, event(7)).unwrap();
    drop(outbox);
    let _ = std::fs::remove_dir_all(dir);
}

/// What the relay does with what it delivered: hands it to the writer,
/// which removes it in its next commit (and takes it off the sink's depth
/// gauge then); waits for that commit.
async fn delivered(outbox: &Outbox, sink: usize, stored: &[&Stored]) {
    let seqs: Vec<u64> = stored.iter().map(|s| s.seq).collect();
    outbox.delivered(sink, seqs).await;
    outbox.flush().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depth_stays_exact_when_the_relay_removes_or_dead_letters_an_evicted_event() {
    let dir = std::env::temp_dir().join(format!("outbox-test-{}", fastrand::u64(..)));
    let outbox = Outbox::open(&dir.join("o.redb"), &["a".to_owned()], &limits(2, 1024)).unwrap();
    let meters = meters(1);
    outbox.meter(meters.clone());
    let gauge = &meters[0].depth;
    outbox.append_evicting(0, event(0)).unwrap();
    outbox.append_evicting(0, event(1)).unwrap();
    until("the commit", || outbox.len(0).unwrap() == 2).await;
    // The relay reads both, and while it delivers them id-0 is evicted.
    let read = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
    outbox.append_evicting(0, event(2)).unwrap();
    until("the eviction", || meters[0].counters.total("evicted") == 1).await;
    delivered(&outbox, 0, &[&read[0], &read[1]]).await;
    assert_eq!(ids(&outbox, 0), ["id-2"]);
    assert_eq!((outbox.depth(), gauge.get()), (1, 1));
    // Same for a dead letter: the evicted event stays evicted.
    outbox.append_evicting(0, event(3)).unwrap();
    until("the commit", || outbox.len(0).unwrap() == 2).await;
    let read = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
    outbox.append_evicting(0, event(4)).unwrap();
    until("the eviction", || meters[0].counters.total("evicted") == 2).await;
    let discarded =
        tokio::task::block_in_place(|| outbox.dead_letter(0, &read[0], "refused")).unwrap();
    assert_eq!(discarded, 0);
    assert_eq!(outbox.dead_len(0).unwrap(), 0);
    assert_eq!(ids(&outbox, 0), ["id-3", "id-4"]);
    assert_eq!((outbox.depth(), gauge.get()), (2, 2));
    // Each event is delivered: the outbox is empty, the gauge at zero.
    let read = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
    delivered(&outbox, 0, &[&read[0], &read[1]]).await;
    assert_eq!((outbox.depth(), gauge.get()), (0, 0));
    drop(outbox);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_freed_before_the_commit_is_taken_instead_of_evicting() {
    let dir = std::env::temp_dir().join(format!("outbox-test-{}", fastrand::u64(..)));
    let slow = Limits {
        flush_interval: Duration::from_millis(500),
        ..limits(2, 1024)
    };
    let outbox = Outbox::open(&dir.join("o.redb"), &["a".to_owned()], &slow).unwrap();
    let meters = meters(1);
    outbox.meter(meters.clone());
    outbox.append_evicting(0, event(0)).unwrap();
    outbox.append_evicting(0, event(1)).unwrap();
    until("the commit", || outbox.len(0).unwrap() == 2).await;
    outbox.append_evicting(0, event(2)).unwrap();
    // Delivered while the writer gathers its batch.
    let read = tokio::task::block_in_place(|| outbox.oldest(0, 1)).unwrap();
    delivered(&outbox, 0, &[&read[0]]).await;
    until("the commit", || outbox.len(0).unwrap() == 2).await;
    assert_eq!(ids(&outbox, 0), ["id-1", "id-2"]);
    assert_eq!(meters[0].counters.total("evicted"), 0, "nothing evicted");
    assert_eq!((outbox.depth(), meters[0].depth.get()), (2, 2));
    drop(outbox);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_are_not_reused_after_the_queue_emptied() {
    let dir = std::env::temp_dir().join(format!("outbox-test-{}", fastrand::u64(..)));
    let path = dir.join("o.redb");
    let sinks = ["a".to_owned()];
    for n in 0..2 {
        let outbox = Outbox::open(&path, &sinks, &limits(10, 1024)).unwrap();
        outbox.append(0, event(n)).unwrap();
        until("the commit", || outbox.len(0).unwrap() == 1).await;
        let read = tokio::task::block_in_place(|| outbox.oldest(0, 1)).unwrap();
        tokio::task::block_in_place(|| outbox.dead_letter(0, &read[0], "refused")).unwrap();
    }
    let outbox = Outbox::open(&path, &sinks, &limits(10, 1024)).unwrap();
    let dead = tokio::task::block_in_place(|| outbox.dead_letters(0, 10)).unwrap();
    let ids: Vec<_> = dead.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(
        ids,
        ["id-1", "id-0"],
        "the first dead letter is not overwritten"
    );
    drop(outbox);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_committed_alone_persist_through_a_clean_shutdown() {
    let dir = std::env::temp_dir().join(format!("outbox-test-{}", fastrand::u64(..)));
    let path = dir.join("o.redb");
    let sinks = ["a".to_owned()];
    {
        let outbox = Outbox::open(&path, &sinks, &limits(10, 1024)).unwrap();
        outbox.append(0, event(0)).unwrap();
        outbox.append(0, event(1)).unwrap();
        outbox.flush().await;
        let read = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
        // A commit of removals alone has no fsync of its own.
        delivered(&outbox, 0, &[&read[0]]).await;
        assert_eq!(outbox.depth(), 1);
    }
    let outbox = Outbox::open(&path, &sinks, &limits(10, 1024)).unwrap();
    assert_eq!(ids(&outbox, 0), ["id-1"]);
    assert_eq!(outbox.depth(), 1);
    drop(outbox);
    let _ = std::fs::remove_dir_all(dir);
}
