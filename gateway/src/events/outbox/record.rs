//! How an event is stored in the outbox.
//!
//! A live record: the format byte `1`, when it was appended (u64 ms since
//! the Unix epoch), then `id`, `destination`, `type` and `subject` (each a
//! u32 length and UTF-8; an empty subject is none), then the body. Records
//! written before the format byte existed (`id`, `destination`, body; they
//! start with `id`'s length, whose first byte is 0) still read, with an
//! unknown append time (0) and type.
//!
//! A dead letter: the format byte `1`, when it was dead-lettered (u64 ms),
//! the reason (u32 length and UTF-8), then the live record as it was.

use std::time::{SystemTime, UNIX_EPOCH};

use super::super::sinks::Outgoing;

const FORMAT: u8 = 1;

/// An event read back from the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stored {
    /// Its place in its sink's queue.
    pub seq: u64,
    /// When it was appended, ms since the Unix epoch (0: unknown).
    pub appended_ms: u64,
    pub event: Outgoing,
}

/// A dead letter read back for inspection.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DeadLetter {
    pub seq: u64,
    pub id: String,
    pub destination: String,
    /// Why the event was given up (the sink's refusal, the last error…).
    pub reason: String,
    /// When it was appended and dead-lettered, ms since the Unix epoch.
    pub appended_ms: u64,
    pub dead_ms: u64,
    /// The stored event body (the CloudEvent), as text when it is UTF-8.
    pub body: String,
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The parts of a record stored as lengths and text.
fn texts(event: &Outgoing) -> [&str; 4] {
    [
        event.id.as_str(),
        event.destination.as_str(),
        event.event_type.as_str(),
        event.subject.as_deref().unwrap_or_default(),
    ]
}

/// The size of `event`'s record, without making it.
pub fn encoded_len(event: &Outgoing) -> usize {
    9 + texts(event).iter().map(|t| 4 + t.len()).sum::<usize>() + event.body.len()
}

pub fn encode(event: &Outgoing, appended_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(event));
    encode_into(&mut out, event, appended_ms);
    out
}

/// Appends `event`'s record to `out`.
pub fn encode_into(out: &mut Vec<u8>, event: &Outgoing, appended_ms: u64) {
    let texts = texts(event);
    out.push(FORMAT);
    out.extend_from_slice(&appended_ms.to_be_bytes());
    for part in texts.map(str::as_bytes) {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&event.body);
}

/// The event and its append time.
pub fn decode(bytes: &[u8]) -> Option<(u64, Outgoing)> {
    let (format, appended_ms, mut bytes) = match bytes.first()? {
        &FORMAT => (FORMAT, u64_at(bytes, 1)?, bytes.get(9..)?),
        0 => (0, 0, bytes),
        _ => return None,
    };
    let mut text = || -> Option<String> {
        let len = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let value = std::str::from_utf8(bytes.get(4..4 + len)?).ok()?.to_owned();
        bytes = &bytes[4 + len..];
        Some(value)
    };
    let id = text()?;
    let destination = text()?;
    let (event_type, subject) = if format == FORMAT {
        (text()?, Some(text()?).filter(|s| !s.is_empty()))
    } else {
        (String::new(), None)
    };
    Some((
        appended_ms,
        Outgoing {
            id,
            event_type,
            subject,
            destination,
            body: bytes.to_vec(),
        },
    ))
}

pub fn encode_dead(record: &[u8], reason: &str, dead_ms: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + reason.len() + record.len());
    out.push(FORMAT);
    out.extend_from_slice(&dead_ms.to_be_bytes());
    out.extend_from_slice(&(reason.len() as u32).to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(record);
    out
}

pub fn decode_dead(seq: u64, bytes: &[u8]) -> Option<DeadLetter> {
    if *bytes.first()? != FORMAT {
        // Dead letters from before the format byte: the bare live record.
        let (appended_ms, event) = decode(bytes)?;
        return Some(dead_letter(seq, event, appended_ms, String::new(), 0));
    }
    let dead_ms = u64_at(bytes, 1)?;
    let len = u32::from_be_bytes(bytes.get(9..13)?.try_into().ok()?) as usize;
    let reason = std::str::from_utf8(bytes.get(13..13 + len)?)
        .ok()?
        .to_owned();
    let (appended_ms, event) = decode(bytes.get(13 + len..)?)?;
    Some(dead_letter(seq, event, appended_ms, reason, dead_ms))
}

fn dead_letter(
    seq: u64,
    event: Outgoing,
    appended_ms: u64,
    reason: String,
    dead_ms: u64,
) -> DeadLetter {
    DeadLetter {
        seq,
        body: String::from_utf8_lossy(&event.body).into_owned(),
        id: event.id,
        destination: event.destination,
        reason,
        appended_ms,
        dead_ms,
    }
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}
