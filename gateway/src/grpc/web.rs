//! gRPC-Web (per grpc/grpc's PROTOCOL-WEB.md) to gRPC and back. Requests
//! carry the same length-prefixed messages as gRPC, base64-encoded in the
//! `-text` variant; responses end with the trailers as one more frame,
//! flagged `0x80`, holding `name:value\r\n` lines.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue};
use http_body::{Body as HttpBody, Frame};
use switchyard_plugins::stage::{Body, BoxError, box_body};

use super::Protocol;

/// The flag of the trailer frame.
const TRAILER_FLAG: u8 = 0x80;

/// The response content type for `protocol`.
pub fn content_type(protocol: Protocol) -> HeaderValue {
    HeaderValue::from_static(match protocol {
        Protocol::Native => "application/grpc",
        Protocol::Web => "application/grpc-web+proto",
        Protocol::WebText => "application/grpc-web-text+proto",
    })
}

/// The trailer frame for `trailers` (names lower-case, as HTTP/2 has them).
pub fn trailer_frame(trailers: &HeaderMap) -> Bytes {
    let mut block = BytesMut::new();
    for (name, value) in trailers {
        block.put_slice(name.as_str().as_bytes());
        block.put_u8(b':');
        block.put_slice(value.as_bytes());
        block.put_slice(b"\r\n");
    }
    let mut frame = BytesMut::with_capacity(5 + block.len());
    frame.put_u8(TRAILER_FLAG);
    frame.put_u32(block.len() as u32);
    frame.put_slice(&block);
    frame.freeze()
}

/// `bytes` as sent to a client of `protocol`: base64 for `-text` (each
/// chunk padded on its own, which the spec allows), as they are otherwise.
pub fn encode(protocol: Protocol, bytes: Bytes) -> Bytes {
    match protocol {
        Protocol::WebText => Bytes::from(STANDARD.encode(&bytes)),
        Protocol::Native | Protocol::Web => bytes,
    }
}

/// A `-text` request body decoded to binary.
pub fn decode_text(body: Body) -> Body {
    box_body(TextBody {
        inner: body,
        decoder: TextDecoder::default(),
    })
}

/// Base64 that arrives in chunks of any size, possibly as several padded
/// segments one after the other: decoded one whole 4-character quantum at
/// a time.
#[derive(Default)]
pub struct TextDecoder {
    /// Characters of an incomplete quantum.
    pending: Vec<u8>,
}

// === impl TextDecoder ===

impl TextDecoder {
    /// The bytes the whole quanta received so far decode to.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Bytes, String> {
        let mut text: Vec<u8> = std::mem::take(&mut self.pending);
        text.extend(chunk.iter().filter(|b| !b.is_ascii_whitespace()));
        let whole = text.len() / 4 * 4;
        self.pending = text.split_off(whole);
        let mut out = Vec::with_capacity(whole / 4 * 3);
        // Padding ends a segment: decode up to and including each quantum
        // that holds `=`, then carry on.
        let mut start = 0;
        for end in (4..=whole).step_by(4) {
            if text[end - 1] == b'=' || end == whole {
                STANDARD
                    .decode_vec(&text[start..end], &mut out)
                    .map_err(|e| format!("invalid grpc-web-text body (not base64): {e}"))?;
                start = end;
            }
        }
        Ok(Bytes::from(out))
    }

    /// Whether the body ended on a whole quantum.
    pub fn finish(&self) -> Result<(), String> {
        if self.pending.is_empty() {
            Ok(())
        } else {
            Err("invalid grpc-web-text body: it ends inside a base64 quantum".into())
        }
    }
}

/// A request body decoded from base64 as it streams.
struct TextBody {
    inner: Body,
    decoder: TextDecoder,
}

impl HttpBody for TextBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let this = &mut *self;
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    // Trailers: gRPC-Web requests have none; dropped.
                    if let Ok(data) = frame.into_data() {
                        let decoded = this.decoder.push(&data)?;
                        if !decoded.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(decoded))));
                        }
                    }
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    this.decoder.finish()?;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trailer_frame_is_flagged_and_holds_crlf_lines() {
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        trailers.insert("x-done", HeaderValue::from_static("yes"));
        let frame = trailer_frame(&trailers);
        assert_eq!(frame[0], 0x80);
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(&frame[5..], b"grpc-status:0\r\nx-done:yes\r\n");
        assert_eq!(len, frame.len() - 5);
    }

    #[test]
    fn text_decodes_across_chunks_and_padded_segments() {
        let first = STANDARD.encode(b"\x00\x00\x00\x00\x01a"); // padded? 6 bytes: no
        let second = STANDARD.encode(b"\x00\x00\x00\x00\x02bc1"); // 8 bytes: padded
        let third = STANDARD.encode(b"xy"); // padded
        let all = format!("{first}{second}{third}");
        assert!(second.ends_with('='));
        let mut decoder = TextDecoder::default();
        let mut out = Vec::new();
        for chunk in all.as_bytes().chunks(3) {
            out.extend_from_slice(&decoder.push(chunk).unwrap());
        }
        decoder.finish().unwrap();
        assert_eq!(out, b"\x00\x00\x00\x00\x01a\x00\x00\x00\x00\x02bc1xy");
    }

    #[test]
    fn text_that_is_not_base64_or_stops_mid_quantum_is_refused() {
        let mut decoder = TextDecoder::default();
        assert!(decoder.push(b"!!!!").is_err());
        let mut decoder = TextDecoder::default();
        decoder.push(b"AAA").unwrap();
        assert!(decoder.finish().is_err());
    }
}
