//! The outbox's read side: what waits, what was dead-lettered, and the
//! status `/admin/events` shows (all blocking, each in one read
//! transaction).

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::record::{decode, decode_dead, now_ms};
use super::{DeadLetter, Outbox, Stored, table_def};

impl Outbox {
    /// The outbox's state as `/admin/events` shows it: depth and capacity,
    /// and per sink (`names`, in index order) the events waiting, how long
    /// the oldest has waited (seconds) and the dead letters kept (blocking).
    pub fn status(&self, names: &[&str]) -> serde_json::Value {
        let now = now_ms();
        let mut depth = 0;
        let sinks: Vec<serde_json::Value> = names
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let waiting = self.len(index).ok();
                depth += waiting.unwrap_or(0);
                let oldest = self.oldest_appended_ms(index).ok().flatten();
                serde_json::json!({
                    "name": name,
                    "waiting": waiting,
                    "oldest_age_seconds": oldest.map(|ms| now.saturating_sub(ms) as f64 / 1000.0),
                    "dead_lettered": self.dead_len(index).ok(),
                })
            })
            .collect();
        serde_json::json!({
            "outbox": {"depth": depth, "max_events": self.max_events},
            "sinks": sinks,
        })
    }

    /// Up to `max` of sink `sink`'s oldest events, oldest first (blocking:
    /// call from a blocking context).
    #[cfg(test)]
    pub(in crate::events) fn oldest(&self, sink: usize, max: usize) -> Result<Vec<Stored>, String> {
        self.read_after(sink, 0, max).map(|(events, _)| events)
    }

    /// Up to `max` of sink `sink`'s records numbered above `cursor`, read
    /// from the store (blocking): the events, oldest first, and the number
    /// of the last record read (`cursor` when none), past any unreadable
    /// one (logged and skipped).
    pub(in crate::events) fn read_after(
        &self,
        sink: usize,
        cursor: u64,
        max: usize,
    ) -> Result<(Vec<Stored>, u64), String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = match txn.open_table(table_def(&self.tables.live[sink])) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), cursor)),
            Err(e) => return Err(e.to_string()),
        };
        let mut out = Vec::new();
        let mut last = cursor;
        let range = table
            .range(cursor.saturating_add(1)..)
            .map_err(|e| e.to_string())?;
        for item in range.take(max) {
            let (key, value) = item.map_err(|e| e.to_string())?;
            last = key.value();
            match decode(value.value()) {
                Some((appended_ms, event)) => out.push(Stored {
                    seq: key.value(),
                    appended_ms,
                    event,
                }),
                None => {
                    tracing::error!(sink = %self.tables.sinks[sink], seq = key.value(), "unreadable outbox record skipped")
                }
            }
        }
        Ok((out, last))
    }

    /// Events waiting for sink `sink` (blocking, but quick: a count).
    pub fn len(&self, sink: usize) -> Result<usize, String> {
        self.count(&self.tables.live[sink])
    }

    /// Events sink `sink` refused for good, kept in its dead-letter table
    /// (blocking, a count).
    pub fn dead_len(&self, sink: usize) -> Result<usize, String> {
        self.count(&self.tables.dead[sink])
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

    /// Up to `max` of sink `sink`'s newest dead letters, newest first
    /// (blocking).
    pub fn dead_letters(&self, sink: usize, max: usize) -> Result<Vec<DeadLetter>, String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = match txn.open_table(table_def(&self.tables.dead[sink])) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.to_string()),
        };
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| e.to_string())?.rev().take(max) {
            let (key, value) = item.map_err(|e| e.to_string())?;
            if let Some(dead) = decode_dead(key.value(), value.value()) {
                out.push(dead);
            }
        }
        Ok(out)
    }

    /// When sink `sink`'s oldest waiting event was appended, ms since the
    /// Unix epoch (`None`: nothing waits, or its time is unknown).
    pub fn oldest_appended_ms(&self, sink: usize) -> Result<Option<u64>, String> {
        let txn = self.db.begin_read().map_err(|e| e.to_string())?;
        let table = match txn.open_table(table_def(&self.tables.live[sink])) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let first = table.first().map_err(|e| e.to_string())?;
        Ok(first
            .and_then(|(_, value)| decode(value.value()))
            .map(|(appended, _)| appended)
            .filter(|&ms| ms > 0))
    }
}
