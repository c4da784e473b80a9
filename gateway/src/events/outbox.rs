//! The durable outbox: events wait here, on local disk, between the call
//! that produced them and their sink's acknowledgement.
//!
//! Storage is redb (an embedded, ACID, copy-on-write B-tree store: a
//! `kill -9` or power loss leaves the last committed state, never a torn
//! one), one table per sink keyed by a sequence number, so each sink's
//! events are read back in the order they were appended.
//!
//! Appends do not wait for the disk: [`Outbox::append`] reserves a place
//! (bounded by `max_events`) and hands the event to a writer thread, which
//! commits everything that arrived within `flush_interval` in one
//! transaction (one fsync). That interval is the durability window: a crash
//! loses at most the events of the batch being gathered or committed.
//! Removal after delivery is committed without its own fsync (the next
//! append's commit persists it): a crash can only make an event be
//! delivered again, never lost, and sinks deduplicate on the event id.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use tokio::sync::{Notify, mpsc};

use super::sinks::Outgoing;

/// Events handed to the writer but not yet committed, beyond which appends
/// are refused like a full outbox (the writer has fallen behind the disk).
const WRITER_QUEUE: usize = 65_536;

/// The outbox of one gateway process.
pub struct Outbox {
    db: Arc<Database>,
    /// Table names, by sink index.
    tables: Arc<[String]>,
    /// `None` once dropping (the writer thread then finishes and exits).
    writer: Option<mpsc::Sender<Pending>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Events appended and not yet removed, all sinks.
    depth: Arc<AtomicUsize>,
    max_events: usize,
    max_event_size: usize,
    /// Woken when a sink's table gets events (by sink index).
    pub(super) wake: Arc<[Notify]>,
}

/// Why an event was not appended.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    #[error("the outbox is full ({0} events waiting)")]
    Full(usize),
    #[error("the event is {size} bytes, over events.outbox.max_event_size ({max})")]
    TooLarge { size: usize, max: usize },
}

struct Pending {
    sink: usize,
    record: Vec<u8>,
}

// === impl Outbox ===

impl Outbox {
    /// Opens (or creates) the outbox at `path` for `sinks` (names, in index
    /// order) and starts its writer thread; events left by a previous run
    /// are counted and delivered.
    pub fn open(
        path: &Path,
        sinks: &[String],
        max_events: usize,
        max_event_size: usize,
        flush_interval: Duration,
    ) -> Result<Outbox, String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let db = Database::create(path)
            .map_err(|e| format!("cannot open the outbox {}: {e}", path.display()))?;
        let tables: Arc<[String]> = sinks.iter().map(|s| format!("sink/{s}")).collect();
        let mut next = Vec::with_capacity(tables.len());
        let mut depth = 0;
        {
            let txn = db.begin_write().map_err(|e| e.to_string())?;
            for name in tables.iter() {
                let table = txn.open_table(table_def(name)).map_err(|e| e.to_string())?;
                depth += table.len().map_err(|e| e.to_string())? as usize;
                let last = table
                    .last()
                    .map_err(|e| e.to_string())?
                    .map_or(0, |(k, _)| k.value());
                next.push(last + 1);
            }
            txn.commit().map_err(|e| e.to_string())?;
        }
        let db = Arc::new(db);
        let (writer, rx) = mpsc::channel(WRITER_QUEUE);
        let wake: Arc<[Notify]> = tables.iter().map(|_| Notify::new()).collect();
        let depth = Arc::new(AtomicUsize::new(depth));
        let thread = Writer {
            db: db.clone(),
            tables: tables.clone(),
            next,
            wake: wake.clone(),
            depth: depth.clone(),
            flush_interval,
        };
        let thread = std::thread::Builder::new()
            .name("outbox-writer".into())
            .spawn(move || thread.run(rx))
            .map_err(|e| format!("cannot start the outbox writer: {e}"))?;
        Ok(Outbox {
            db,
            tables,
            writer: Some(writer),
            thread: Some(thread),
            depth,
            max_events,
            max_event_size,
            wake,
        })
    }

    /// Whether one more event fits (checked before an upstream call whose
    /// event must not be lost).
    pub fn has_room(&self) -> bool {
        self.depth.load(Ordering::Acquire) < self.max_events
    }

    /// Events waiting, all sinks.
    pub fn depth(&self) -> usize {
        self.depth.load(Ordering::Acquire)
    }

    /// Appends `event` for sink `sink`; committed within the flush interval.
    pub fn append(&self, sink: usize, event: &Outgoing) -> Result<(), AppendError> {
        let record = encode(event);
        if record.len() > self.max_event_size {
            return Err(AppendError::TooLarge {
                size: record.len(),
                max: self.max_event_size,
            });
        }
        let max = self.max_events;
        self.depth
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(AppendError::Full)?;
        let sent = self
            .writer
            .as_ref()
            .is_some_and(|w| w.try_send(Pending { sink, record }).is_ok());
        if !sent {
            self.depth.fetch_sub(1, Ordering::AcqRel);
            return Err(AppendError::Full(self.depth()));
        }
        Ok(())
    }

    /// Up to `max` of sink `sink`'s oldest events, oldest first (blocking:
    /// call from a blocking context).
    pub(super) fn oldest(&self, sink: usize, max: usize) -> Result<Vec<(u64, Outgoing)>, String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = match txn.open_table(table_def(&self.tables[sink])) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        };
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| e.to_string())?.take(max) {
            let (key, value) = item.map_err(|e| e.to_string())?;
            match decode(value.value()) {
                Some(event) => out.push((key.value(), event)),
                None => {
                    tracing::error!(sink = %self.tables[sink], seq = key.value(), "unreadable outbox record skipped")
                }
            }
        }
        Ok(out)
    }

    /// Events waiting for sink `sink` (blocking, but quick: a count).
    pub fn len(&self, sink: usize) -> Result<usize, String> {
        self.count(&self.tables[sink])
    }

    /// Events sink `sink` refused for good, kept in its dead-letter table
    /// (blocking, a count).
    pub fn dead_len(&self, sink: usize) -> Result<usize, String> {
        self.count(&self.dead_table(sink))
    }

    /// The entries of table `name` (none when it was never created).
    fn count(&self, name: &str) -> Result<usize, String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        match txn.open_table(table_def(name)) {
            Ok(table) => Ok(table.len().map_err(|e| e.to_string())? as usize),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Sink `sink`'s dead-letter table.
    fn dead_table(&self, sink: usize) -> String {
        format!("dead/{}", &self.tables[sink]["sink/".len()..])
    }

    /// The most events the outbox holds (`max_events`).
    pub fn capacity(&self) -> usize {
        self.max_events
    }

    /// Removes delivered events (blocking).
    pub(super) fn remove(&self, sink: usize, seqs: &[u64]) -> Result<(), String> {
        let mut txn = self.db.begin_write().map_err(|e| e.to_string())?;
        // Persisted by the next append's commit: a crash before it only
        // redelivers (deduplicated by id), never loses.
        let _ = txn.set_durability(Durability::None);
        {
            let mut table = txn
                .open_table(table_def(&self.tables[sink]))
                .map_err(|e| e.to_string())?;
            for seq in seqs {
                table.remove(seq).map_err(|e| e.to_string())?;
            }
        }
        txn.commit().map_err(|e| e.to_string())?;
        self.depth.fetch_sub(seqs.len(), Ordering::AcqRel);
        Ok(())
    }

    /// Moves an event its sink refused for good to the sink's dead-letter
    /// table (kept for inspection), out of the delivery queue (blocking).
    pub(super) fn dead_letter(
        &self,
        sink: usize,
        seq: u64,
        event: &Outgoing,
    ) -> Result<(), String> {
        let dead = self.dead_table(sink);
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut table = txn
                .open_table(table_def(&dead))
                .map_err(|e| e.to_string())?;
            table
                .insert(seq, encode(event).as_slice())
                .map_err(|e| e.to_string())?;
            let mut live = txn
                .open_table(table_def(&self.tables[sink]))
                .map_err(|e| e.to_string())?;
            live.remove(seq).map_err(|e| e.to_string())?;
        }
        txn.commit().map_err(|e| e.to_string())?;
        self.depth.fetch_sub(1, Ordering::AcqRel);
        Ok(())
    }
}

impl Drop for Outbox {
    /// Commits what the writer holds and waits for it, so the file is closed
    /// (and can be opened again) when this returns.
    fn drop(&mut self) {
        self.writer.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn table_def(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

/// The writer thread's state.
struct Writer {
    db: Arc<Database>,
    tables: Arc<[String]>,
    /// The next sequence number of each sink.
    next: Vec<u64>,
    wake: Arc<[Notify]>,
    depth: Arc<AtomicUsize>,
    flush_interval: Duration,
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        while let Some(first) = rx.blocking_recv() {
            // Gather what arrives within the window, then commit it at once.
            let until = Instant::now() + self.flush_interval;
            let mut batch = vec![first];
            loop {
                match rx.try_recv() {
                    Ok(pending) => batch.push(pending),
                    Err(mpsc::error::TryRecvError::Empty) => {
                        let left = until.saturating_duration_since(Instant::now());
                        if left.is_zero() || batch.len() >= WRITER_QUEUE {
                            break;
                        }
                        std::thread::sleep(left.min(Duration::from_micros(500)));
                    }
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                }
            }
            let count = batch.len();
            match self.commit(&batch) {
                Ok(()) => {
                    let mut woken = vec![false; self.tables.len()];
                    for pending in &batch {
                        woken[pending.sink] = true;
                    }
                    for (sink, woke) in woken.into_iter().enumerate() {
                        if woke {
                            self.wake[sink].notify_one();
                        }
                    }
                }
                Err(e) => {
                    self.depth.fetch_sub(count, Ordering::AcqRel);
                    tracing::error!(error = %e, events = count, "outbox commit failed: events lost");
                }
            }
        }
    }

    fn commit(&mut self, batch: &[Pending]) -> Result<(), String> {
        let txn = self.db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut tables = Vec::with_capacity(self.tables.len());
            for name in self.tables.iter() {
                tables.push(txn.open_table(table_def(name)).map_err(|e| e.to_string())?);
            }
            for pending in batch {
                let seq = self.next[pending.sink];
                tables[pending.sink]
                    .insert(seq, pending.record.as_slice())
                    .map_err(|e| e.to_string())?;
                self.next[pending.sink] = seq + 1;
            }
        }
        txn.commit().map_err(|e| e.to_string())
    }
}

/// A record: `id`, `destination` (each a u32 length and the bytes), then
/// the body.
fn encode(event: &Outgoing) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(8 + event.id.len() + event.destination.len() + event.body.len());
    for part in [event.id.as_bytes(), event.destination.as_bytes()] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&event.body);
    out
}

fn decode(mut bytes: &[u8]) -> Option<Outgoing> {
    let mut text = || -> Option<String> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let value = std::str::from_utf8(bytes.get(4..4 + len)?).ok()?.to_owned();
        bytes = &bytes[4 + len..];
        Some(value)
    };
    let id = text()?;
    let destination = text()?;
    Some(Outgoing {
        id,
        destination,
        body: bytes.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: usize) -> Outgoing {
        Outgoing {
            id: format!("id-{n}"),
            destination: "orders.created".into(),
            body: format!("{{\"n\":{n}}}").into_bytes(),
        }
    }

    #[test]
    fn records_round_trip() {
        assert_eq!(decode(&encode(&event(7))), Some(event(7)));
        assert_eq!(decode(b"\0\0"), None);
        assert_eq!(decode(b"\0\0\0\x09ab"), None);
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
            let outbox = Outbox::open(&path, &sinks, 100, 1024, Duration::from_millis(2)).unwrap();
            for n in 0..5 {
                outbox.append(n % 2, &event(n)).unwrap();
            }
            until("the commit", || {
                tokio::task::block_in_place(|| outbox.oldest(0, 10).unwrap().len() == 3)
            })
            .await;
            let a = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
            let ids: Vec<_> = a.iter().map(|(_, e)| e.id.as_str()).collect();
            assert_eq!(ids, ["id-0", "id-2", "id-4"]);
            tokio::task::block_in_place(|| outbox.remove(0, &[a[0].0])).unwrap();
            // Another commit persists the removal.
            outbox.append(1, &event(9)).unwrap();
            until("the second commit", || {
                tokio::task::block_in_place(|| outbox.oldest(1, 10).unwrap().len() == 3)
            })
            .await;
            assert_eq!(outbox.depth(), 5);
        }
        let outbox = Outbox::open(&path, &sinks, 100, 1024, Duration::from_millis(2)).unwrap();
        assert_eq!(outbox.depth(), 5, "what was left is counted on reopen");
        let a = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
        let ids: Vec<_> = a.iter().map(|(_, e)| e.id.as_str()).collect();
        assert_eq!(ids, ["id-2", "id-4"]);
        // New appends go after the old ones.
        outbox.append(0, &event(11)).unwrap();
        until("the commit", || {
            tokio::task::block_in_place(|| outbox.oldest(0, 10).unwrap().len() == 3)
        })
        .await;
        let a = tokio::task::block_in_place(|| outbox.oldest(0, 10)).unwrap();
        assert_eq!(a[2].1.id, "id-11");
        drop(outbox);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_full_outbox_refuses_and_an_oversized_event_is_refused() {
        let dir = std::env::temp_dir().join(format!("outbox-test-{}", fastrand::u64(..)));
        let outbox = Outbox::open(
            &dir.join("o.redb"),
            &["a".to_owned()],
            2,
            64,
            Duration::from_millis(1),
        )
        .unwrap();
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
}
