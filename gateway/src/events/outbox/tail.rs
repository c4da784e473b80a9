//! Each sink's tail: the events the writer committed last, kept in memory
//! (bounded in bytes) so that a relay that keeps up takes them from here
//! instead of reading them back from the store. A relay that fell behind
//! (the tail dropped events it had not taken) reads the store from its
//! cursor until it reaches the tail again.

use std::collections::VecDeque;
use std::sync::Mutex;

use super::Stored;

/// The most bytes (bodies and texts) one sink's tail keeps; past it the
/// oldest events leave the tail (they stay in the store).
pub(super) const TAIL_BYTES: usize = 4 << 20;

/// One sink's tail.
#[derive(Debug)]
pub(super) struct Tail {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Committed events, oldest first, sequence numbers increasing.
    events: VecDeque<Stored>,
    /// Every committed event numbered `start` or more is in `events`; older
    /// ones may be only in the store.
    start: u64,
    bytes: usize,
}

/// What a relay finds in its sink's tail.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The events after its cursor, oldest first (none: it is up to date).
    Events(Vec<Stored>),
    /// Events after its cursor are only in the store: read them there.
    /// Every event numbered below `start` was committed before this was
    /// answered, so a read of the store that finds nothing after the cursor
    /// means the relay may move its cursor to `start - 1`.
    Behind { start: u64 },
}

impl Tail {
    /// An empty tail; the store holds everything numbered below `next`.
    pub(super) fn new(next: u64) -> Tail {
        Tail {
            inner: Mutex::new(Inner {
                events: VecDeque::new(),
                start: next,
                bytes: 0,
            }),
        }
    }

    /// Adds events just committed (numbered above those it holds), dropping
    /// the oldest when over [`TAIL_BYTES`].
    pub(super) fn push(&self, committed: impl IntoIterator<Item = Stored>) {
        let mut inner = self.lock();
        for stored in committed {
            inner.bytes += size(&stored);
            inner.events.push_back(stored);
        }
        while inner.bytes > TAIL_BYTES {
            let Some(oldest) = inner.events.pop_front() else {
                break;
            };
            inner.bytes -= size(&oldest);
            inner.start = oldest.seq + 1;
        }
    }

    /// Up to `max` events numbered above `cursor` (the last one the relay
    /// took), taken out of the tail.
    pub(super) fn take(&self, cursor: u64, max: usize) -> Taken {
        let mut inner = self.lock();
        // Those read from the store meanwhile are not handed out twice.
        while inner.events.front().is_some_and(|e| e.seq <= cursor) {
            let read = inner.events.pop_front().expect("front checked");
            inner.bytes -= size(&read);
            inner.start = read.seq + 1;
        }
        if cursor + 1 < inner.start {
            return Taken::Behind { start: inner.start };
        }
        let n = inner.events.len().min(max);
        let taken: Vec<Stored> = inner.events.drain(..n).collect();
        if let Some(last) = taken.last() {
            inner.start = last.seq + 1;
        }
        inner.bytes -= taken.iter().map(size).sum::<usize>();
        Taken::Events(taken)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What an event takes in memory, roughly.
fn size(stored: &Stored) -> usize {
    let event = &stored.event;
    64 + event.id.len()
        + event.destination.len()
        + event.event_type.len()
        + event.subject.as_ref().map_or(0, String::len)
        + event.body.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::sinks::Outgoing;

    fn stored(seq: u64, body: usize) -> Stored {
        Stored {
            seq,
            appended_ms: 0,
            event: Outgoing {
                id: format!("id-{seq}"),
                body: vec![b'x'; body],
                ..Default::default()
            },
        }
    }

    fn seqs(taken: Taken) -> Vec<u64> {
        match taken {
            Taken::Events(events) => events.iter().map(|e| e.seq).collect(),
            Taken::Behind { .. } => panic!("behind"),
        }
    }

    #[test]
    fn a_relay_that_keeps_up_takes_every_event_from_the_tail_in_order() {
        let tail = Tail::new(1);
        assert_eq!(tail.take(0, 10), Taken::Events(vec![]));
        tail.push([stored(1, 1), stored(2, 1), stored(3, 1)]);
        assert_eq!(seqs(tail.take(0, 2)), [1, 2]);
        assert_eq!(seqs(tail.take(2, 10)), [3]);
        assert_eq!(tail.take(3, 10), Taken::Events(vec![]));
    }

    #[test]
    fn events_left_in_the_store_at_open_are_read_from_the_store_first() {
        let tail = Tail::new(5);
        tail.push([stored(5, 1)]);
        assert_eq!(tail.take(0, 10), Taken::Behind { start: 5 });
        // The store gave 1..=4, and 5 as well: the tail does not repeat it.
        assert_eq!(tail.take(5, 10), Taken::Events(vec![]));
        tail.push([stored(6, 1)]);
        assert_eq!(seqs(tail.take(5, 10)), [6]);
    }

    #[test]
    fn a_tail_over_its_bytes_drops_its_oldest_and_sends_the_relay_to_the_store() {
        let tail = Tail::new(1);
        let big = TAIL_BYTES / 2;
        tail.push([stored(1, big), stored(2, big), stored(3, 10)]);
        assert_eq!(
            tail.take(0, 10),
            Taken::Behind { start: 2 },
            "1 left the tail"
        );
        assert_eq!(seqs(tail.take(1, 10)), [2, 3]);
    }

    #[test]
    fn sequence_gaps_from_a_failed_commit_do_not_stop_the_relay() {
        let tail = Tail::new(1);
        tail.push([stored(1, 1)]);
        assert_eq!(seqs(tail.take(0, 10)), [1]);
        // 2 and 3 were lost with their commit.
        tail.push([stored(4, 1)]);
        assert_eq!(seqs(tail.take(1, 10)), [4]);
    }
}
