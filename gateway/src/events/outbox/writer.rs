//! The writer thread: gathers appends for one flush interval and commits
//! them in one transaction (one fsync).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use redb::Database;
use tokio::sync::{Notify, mpsc};

use super::{Pending, WRITER_QUEUE, table_def};

/// The writer thread's state.
pub(super) struct Writer {
    pub(super) db: Arc<Database>,
    pub(super) tables: Arc<[String]>,
    /// The next sequence number of each sink.
    pub(super) next: Vec<u64>,
    pub(super) wake: Arc<[Notify]>,
    pub(super) depth: Arc<AtomicUsize>,
    pub(super) flush_interval: Duration,
}

impl Writer {
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
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
