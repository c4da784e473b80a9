//! A raw HTTP/1 client: exact bytes out, every response that comes back
//! parsed, and whether the gateway closed the connection. Nothing here
//! fixes up what the attack sends.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// What a connection gave back for the bytes sent on it.
#[derive(Debug)]
pub struct Exchange {
    pub responses: Vec<RawResponse>,
    /// The gateway closed the connection (EOF or reset) before `wait` passed
    /// without a byte.
    pub closed: bool,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `message` of the gateway's JSON error body.
    pub fn message(&self) -> String {
        let json: serde_json::Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not a JSON error body ({e}): {}", self.text()));
        json["message"].as_str().unwrap_or_default().to_owned()
    }
}

impl Exchange {
    /// The only response; panics if there was not exactly one.
    pub fn only(&self) -> &RawResponse {
        assert_eq!(
            self.responses.len(),
            1,
            "expected exactly one response, got {:?}",
            self.responses
        );
        &self.responses[0]
    }

    pub fn statuses(&self) -> Vec<u16> {
        self.responses.iter().map(|r| r.status).collect()
    }
}

/// Sends `bytes` on a new connection and reads until the gateway closes it
/// or `wait` passes without a byte.
pub async fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Exchange {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The gateway may answer and close before reading everything: a failed
    // write then is part of the answer, not a test failure.
    let _ = stream.write_all(bytes).await;
    read_all(&mut stream, wait).await
}

/// Reads from `stream` until EOF, a reset, or `wait` without a byte.
pub async fn read_all(stream: &mut TcpStream, wait: Duration) -> Exchange {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let closed = loop {
        match tokio::time::timeout(wait, stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break false,
        }
    };
    Exchange {
        responses: parse_responses(&buf),
        closed,
    }
}

/// Every complete response in `buf` (Content-Length or chunked bodies).
fn parse_responses(mut buf: &[u8]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    while let Some(end) = find(buf, b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let rest = &buf[end + 4..];
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
        let (body, used) = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            dechunk(rest)
        } else {
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let len = len.min(rest.len());
            (rest[..len].to_vec(), len)
        };
        out.push(RawResponse {
            status,
            headers,
            body,
        });
        buf = &rest[used..];
    }
    out
}

fn dechunk(mut buf: &[u8]) -> (Vec<u8>, usize) {
    let start = buf.len();
    let mut body = Vec::new();
    while let Some(eol) = find(buf, b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&buf[..eol])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .unwrap_or(0);
        buf = &buf[eol + 2..];
        if size == 0 {
            let trailer_end = find(buf, b"\r\n").map_or(buf.len(), |i| i + 2);
            buf = &buf[trailer_end..];
            break;
        }
        let take = size.min(buf.len());
        body.extend_from_slice(&buf[..take]);
        buf = &buf[(take + 2).min(buf.len())..];
    }
    (body, start - buf.len())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
