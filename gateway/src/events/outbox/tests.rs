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
            outbox.append(n % 2, &event(n)).unwrap();
        }
        until("the commit", || {
            tokio::task::block_in_place(|| outbox.oldest(0, 10).unwrap().len() == 3)
        })
        .await;
        let a = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
        let ids: Vec<_> = a.iter().map(|s| s.event.id.as_str()).collect();
        assert_eq!(ids, ["id-0", "id-2", "id-4"]);
        tokio::task::block_in_place(|| outbox.remove(0, &[a[0].seq])).unwrap();
        // Another commit persists the removal.
        outbox.append(1, &event(9)).unwrap();
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
    outbox.append(0, &event(11)).unwrap();
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
    outbox.append(0, &event(1)).unwrap();
    outbox.append(0, &event(2)).unwrap();
    assert!(!outbox.has_room());
    assert_eq!(outbox.append(0, &event(3)), Err(AppendError::Full(2)));
    let big = Outgoing {
        body: vec![b'x'; 100],
        ..event(4)
    };
    assert!(matches!(
        outbox.append(0, &big),
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
        outbox.append(0, &event(n)).unwrap();
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
