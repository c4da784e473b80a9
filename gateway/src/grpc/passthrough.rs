//! The handler for gRPC and gRPC-Web clients: after the route's plugins,
//! the call goes to the upstream as it came — metadata, frames, trailers —
//! with only what HTTP/2 proxies must change (hop-by-hop headers) and, for
//! a unary call, the deadline. Frames are not decoded: each message's
//! length prefix is read to enforce the route's size limit, nothing more.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::FutureExt as _;
use h2::SendStream;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, TE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use switchyard_plugins::error::Code;
use switchyard_plugins::stage::{Body, Response, box_body, empty_body};

use super::body::{CallRecord, UpstreamBody};
use super::status::{self, GRPC_STATUS};
use super::{GrpcMatched, Protocol, web};
use crate::upstream::UpstreamError;
use crate::upstream::grpc::encode_timeout;

const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// Headers that belong to one HTTP hop (RFC 9110 §7.6.1), or that HTTP/2
/// forbids, and gRPC-Web's own request headers.
const HOP_BY_HOP: [HeaderName; 9] = [
    HeaderName::from_static("connection"),
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("transfer-encoding"),
    HeaderName::from_static("upgrade"),
    TE,
    HOST,
    CONTENT_LENGTH,
    HeaderName::from_static("x-grpc-web"),
];

/// Serves one gRPC or gRPC-Web call the route's plugins let through.
pub async fn handle(req: switchyard_plugins::stage::Request, matched: GrpcMatched) -> Response {
    let GrpcMatched {
        target,
        protocol,
        preflight,
    } = matched;
    if preflight {
        // A CORS preflight no `cors` plugin answered.
        let mut res = http::Response::new(empty_body());
        *res.status_mut() = StatusCode::NO_CONTENT;
        res.headers_mut().insert(
            http::header::ALLOW,
            HeaderValue::from_static("POST, OPTIONS"),
        );
        return res;
    }
    let route = &target.route;
    let metrics = &route.metrics.grpc;
    let (parts, body) = req.into_parts();
    let upstream = route.choose_for(&parts.headers, &parts.extensions).upstream;
    let mut headers = upstream_headers(parts.headers);
    let unary = target.is_unary();
    let deadline = unary.then(|| {
        let deadline = client_timeout(&headers).map_or(route.timeout, |t| t.min(route.timeout));
        if let Ok(value) = HeaderValue::try_from(encode_timeout(deadline)) {
            headers.insert(GRPC_TIMEOUT, value);
        }
        deadline
    });
    let mut body = match protocol {
        Protocol::WebText => web::decode_text(body),
        Protocol::Native | Protocol::Web => body,
    };
    let aborted = Arc::new(OnceLock::new());
    let mut limit = MessageLimit::new(route.max_body);
    // What the client has sent already: usually a unary call's whole body.
    let arrived = match arrived(&mut body, &mut limit) {
        Ok(arrived) => arrived,
        Err((code, message)) => {
            let mut record = CallRecord::new(target.clone(), protocol, None);
            record.code(code as i32);
            return status::response(protocol, code as i32, &message, HeaderMap::new());
        }
    };
    let call = async {
        let _permit = if unary { Some(upstream.admit()?) } else { None };
        let opened = upstream.open(&target.path, headers).await?;
        let mut send = opened.body;
        // What arrived goes with the head, in the same write; the rest (if
        // the client is still sending) follows through a pump task.
        let Arrived { chunks, end } = arrived;
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let _ = send.send_data(chunk, i + 1 == n && matches!(end, End::Stream));
        }
        match end {
            End::Stream if n == 0 => {
                let _ = send.send_data(Bytes::new(), true);
            }
            End::Stream => {}
            End::Trailers(trailers) => {
                let _ = send.send_trailers(trailers);
            }
            End::Open => {
                tokio::spawn(pump(body, send, limit, aborted.clone()));
            }
        }
        opened.reply.get().await
    };
    let result = match deadline {
        Some(deadline) => match tokio::time::timeout(deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Status(tonic::Status::deadline_exceeded(
                format!(
                    "upstream `{}` did not answer within {deadline:?}",
                    upstream.name
                ),
            ))),
        },
        None => call.await,
    };
    let open = (!unary).then(|| metrics.open_streams.with_label_values(&[protocol.label()]));
    let record = CallRecord::new(target.clone(), protocol, open);
    match result {
        Ok(reply) => reply_to_client(reply, protocol, record),
        Err(error) => {
            let mut record = record;
            // The reset the pump sent is not the upstream's failure.
            let (code, message) = match aborted.get() {
                Some((code, message)) => (*code as i32, message.clone()),
                None => status::of_upstream(&error),
            };
            record.code(code);
            status::response(protocol, code, &message, HeaderMap::new())
        }
    }
}

/// The client's response for the upstream's reply head.
fn reply_to_client(
    reply: http::Response<h2::RecvStream>,
    protocol: Protocol,
    mut record: CallRecord,
) -> Response {
    let (parts, recv) = reply.into_parts();
    if parts.status != StatusCode::OK {
        let code = Code::Unavailable as i32;
        record.code(code);
        let message = format!("upstream answered HTTP {} instead of gRPC", parts.status);
        return status::response(protocol, code, &message, HeaderMap::new());
    }
    let mut headers = parts.headers;
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    // A trailers-only reply: its status is in the head.
    let head_status = headers.contains_key(GRPC_STATUS).then(|| {
        if protocol == Protocol::Native {
            headers.clone()
        } else {
            take_grpc_headers(&mut headers)
        }
    });
    headers.insert(CONTENT_TYPE, web::content_type(protocol));
    let body = UpstreamBody::new(recv, protocol, head_status, record);
    let mut response = http::Response::new(box_body(body));
    *response.headers_mut() = headers;
    response
}

/// The `grpc-*` headers of `headers`, removed from it.
fn take_grpc_headers(headers: &mut HeaderMap) -> HeaderMap {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|n| n.as_str().starts_with("grpc-"))
        .cloned()
        .collect();
    let mut out = HeaderMap::new();
    for name in names {
        for value in headers.get_all(&name) {
            out.append(name.clone(), value.clone());
        }
        headers.remove(&name);
    }
    out
}

/// The client's headers as upstream metadata: hop-by-hop headers removed,
/// `te: trailers` and `content-type: application/grpc` set.
fn upstream_headers(mut headers: HeaderMap) -> HeaderMap {
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.insert(TE, HeaderValue::from_static("trailers"));
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers
}

/// The client's `grpc-timeout` (gRPC over HTTP/2: at most 8 digits and a unit).
fn client_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(GRPC_TIMEOUT)?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The part of the request body that has arrived, and how it ends.
struct Arrived {
    chunks: Vec<Bytes>,
    end: End,
}

enum End {
    /// The body is complete.
    Stream,
    /// The body is complete, with trailers.
    Trailers(HeaderMap),
    /// More is to come.
    Open,
}

/// Takes the frames of `body` that are ready without waiting, checking
/// message sizes: a unary call's whole body usually is (it comes with the
/// headers), so it goes upstream with the head and needs no pump task.
fn arrived(body: &mut Body, limit: &mut MessageLimit) -> Result<Arrived, (Code, String)> {
    let mut chunks = Vec::new();
    loop {
        let Some(next) = body.frame().now_or_never() else {
            return Ok(Arrived {
                chunks,
                end: End::Open,
            });
        };
        match next {
            None => {
                return Ok(Arrived {
                    chunks,
                    end: End::Stream,
                });
            }
            Some(Err(e)) => return Err((Code::InvalidArgument, format!("request body: {e}"))),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    limit
                        .check(&data)
                        .map_err(|m| (Code::ResourceExhausted, m))?;
                    if !data.is_empty() {
                        chunks.push(data);
                    }
                }
                Err(frame) => {
                    let end = match frame.into_trailers() {
                        Ok(trailers) => End::Trailers(trailers),
                        Err(_) => End::Stream,
                    };
                    return Ok(Arrived { chunks, end });
                }
            },
        }
    }
}

/// Sends the client's body to the upstream as it arrives, within the
/// upstream's flow control. Stops when the client's body ends (END_STREAM),
/// fails (the client reset, or a gRPC-Web text body is not base64), a
/// message is over `limit` — the upstream stream is reset then, and
/// `aborted` says why — or the upstream resets.
async fn pump(
    mut body: Body,
    mut send: SendStream<Bytes>,
    mut frames: MessageLimit,
    aborted: Arc<OnceLock<(Code, String)>>,
) {
    loop {
        let next = tokio::select! {
            frame = body.frame() => frame,
            _ = std::future::poll_fn(|cx| send.poll_reset(cx)) => return,
        };
        match next {
            None => {
                let _ = send.send_data(Bytes::new(), true);
                return;
            }
            Some(Err(e)) => {
                // The client reset (nobody will read the status), or its
                // body could not be read (a broken gRPC-Web text body).
                let _ = aborted.set((Code::InvalidArgument, format!("request body: {e}")));
                send.send_reset(h2::Reason::CANCEL);
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if let Err(message) = frames.check(&data) {
                        let _ = aborted.set((Code::ResourceExhausted, message));
                        send.send_reset(h2::Reason::CANCEL);
                        return;
                    }
                    if send_all(&mut send, data).await.is_err() {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        let _ = send.send_trailers(trailers);
                    }
                    return;
                }
            },
        }
    }
}

/// Sends `data` as the upstream's window allows.
async fn send_all(send: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), h2::Error> {
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(0)) => continue,
            Some(Ok(n)) => send.send_data(data.split_to(n.min(data.len())), false)?,
            Some(Err(e)) => return Err(e),
            None => return Err(h2::Error::from(h2::Reason::STREAM_CLOSED)),
        }
    }
    Ok(())
}

/// Follows the gRPC framing of a byte stream (a 5-byte prefix, then the
/// message) to refuse a message over the limit before it is forwarded.
struct MessageLimit {
    limit: usize,
    /// Prefix bytes read of the current frame.
    prefix: [u8; 5],
    have: usize,
    /// Message bytes still to come.
    remaining: usize,
}

impl MessageLimit {
    fn new(limit: usize) -> MessageLimit {
        MessageLimit {
            limit,
            prefix: [0; 5],
            have: 0,
            remaining: 0,
        }
    }

    fn check(&mut self, mut data: &[u8]) -> Result<(), String> {
        while data.has_remaining() {
            if self.remaining > 0 {
                let skip = self.remaining.min(data.len());
                self.remaining -= skip;
                data.advance(skip);
                continue;
            }
            let take = (5 - self.have).min(data.len());
            self.prefix[self.have..self.have + take].copy_from_slice(&data[..take]);
            self.have += take;
            data.advance(take);
            if self.have == 5 {
                self.have = 0;
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]) as usize;
                if len > self.limit {
                    return Err(format!(
                        "request message of {len} bytes is over the route's limit of {} bytes",
                        self.limit
                    ));
                }
                self.remaining = len;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(len: u32) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(std::iter::repeat_n(7u8, len as usize));
        out
    }

    #[test]
    fn message_sizes_are_checked_across_chunk_boundaries() {
        let mut stream = frame(3);
        stream.extend(frame(10));
        stream.extend(frame(4));
        let mut ok = MessageLimit::new(10);
        for chunk in stream.chunks(2) {
            ok.check(chunk).unwrap();
        }
        let mut strict = MessageLimit::new(9);
        let refused = stream.chunks(3).try_for_each(|c| strict.check(c));
        assert!(refused.unwrap_err().contains("10 bytes"));
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit_and_refuse_garbage() {
        let t = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(GRPC_TIMEOUT, v.parse().unwrap());
            client_timeout(&h)
        };
        assert_eq!(t("100m"), Some(Duration::from_millis(100)));
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("5u"), Some(Duration::from_micros(5)));
        assert_eq!(t("123456789m"), None);
        assert_eq!(t("m"), None);
        assert_eq!(t("10x"), None);
        assert_eq!(encode_timeout(Duration::from_millis(1500)), "1500m");
    }

    #[test]
    fn hop_by_hop_headers_stay_and_metadata_goes() {
        let mut h = HeaderMap::new();
        h.insert("connection", "close".parse().unwrap());
        h.insert("x-grpc-web", "1".parse().unwrap());
        h.insert("x-tenant", "acme".parse().unwrap());
        h.insert(CONTENT_TYPE, "application/grpc-web+proto".parse().unwrap());
        let out = upstream_headers(h);
        assert!(out.get("connection").is_none() && out.get("x-grpc-web").is_none());
        assert_eq!(out["x-tenant"], "acme");
        assert_eq!(out[TE], "trailers");
        assert_eq!(out[CONTENT_TYPE], "application/grpc");
    }
}
