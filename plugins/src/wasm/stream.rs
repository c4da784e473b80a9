//! What one HTTP stream shows a filter: its header maps (pseudo-headers
//! first, as Envoy shows them), its bodies once read, and the local
//! response a filter may send. Owned by the request's future between
//! callbacks and lent to the VM for each one.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::abi::{BufferType, MapType};

/// One header map: lower-case names, raw values, in order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A filter's `proxy_send_local_response`.
#[derive(Clone, Debug)]
pub struct LocalResponse {
    pub status: u16,
    pub headers: Pairs,
    pub body: Bytes,
    pub details: String,
}

/// The stream's state, as the host calls see it.
#[derive(Debug, Default)]
pub struct StreamState {
    pub request_headers: Pairs,
    pub response_headers: Pairs,
    pub request_trailers: Pairs,
    pub response_trailers: Pairs,
    pub request_body: Option<Bytes>,
    pub response_body: Option<Bytes>,
    /// Set by any change to the request's map.
    pub request_edited: bool,
    pub response_edited: bool,
    pub request_body_edited: bool,
    pub response_body_edited: bool,
    pub local: Option<LocalResponse>,
    /// `proxy_close_stream`: the filter ended the stream without an answer.
    pub closed: bool,
    /// Callouts asked for in the last callback, to send before the next.
    pub callouts: Vec<super::callout::Pending>,
    /// Callouts this stream made in all (bounded).
    pub callouts_made: u32,
    /// The answer `proxy_on_http_call_response` is reading.
    pub callout_answer: Option<super::callout::Answered>,
    /// `request.*`, `source.*` properties: read-only facts of the request.
    pub properties: Properties,
}

/// The request's facts a filter reads with `proxy_get_property`.
#[derive(Clone, Debug, Default)]
pub struct Properties {
    pub source_address: Option<String>,
    pub consumer: Option<String>,
    /// What the filter set with `proxy_set_property` (at most 64 paths).
    pub custom: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StreamState {
    pub fn map(&self, map: MapType) -> &Pairs {
        static EMPTY: Pairs = Vec::new();
        match map {
            MapType::CallResponseHeaders => {
                self.callout_answer.as_ref().map_or(&EMPTY, |a| &a.headers)
            }
            MapType::CallResponseTrailers => {
                self.callout_answer.as_ref().map_or(&EMPTY, |a| &a.trailers)
            }
            MapType::RequestHeaders => &self.request_headers,
            MapType::RequestTrailers => &self.request_trailers,
            MapType::ResponseHeaders => &self.response_headers,
            MapType::ResponseTrailers => &self.response_trailers,
        }
    }

    /// The map, for a change: marks the request or the response edited. A
    /// callout's answer is read-only: `None`.
    pub fn map_mut(&mut self, map: MapType) -> Option<&mut Pairs> {
        Some(match map {
            MapType::RequestHeaders => {
                self.request_edited = true;
                &mut self.request_headers
            }
            MapType::RequestTrailers => &mut self.request_trailers,
            MapType::ResponseHeaders => {
                self.response_edited = true;
                &mut self.response_headers
            }
            MapType::ResponseTrailers => &mut self.response_trailers,
            MapType::CallResponseHeaders | MapType::CallResponseTrailers => return None,
        })
    }

    pub fn buffer(&self, buffer: BufferType) -> Option<&Bytes> {
        match buffer {
            BufferType::RequestBody => self.request_body.as_ref(),
            BufferType::ResponseBody => self.response_body.as_ref(),
            BufferType::CallResponseBody => self.callout_answer.as_ref().map(|a| &a.body),
            _ => None,
        }
    }

    pub fn buffer_mut(&mut self, buffer: BufferType) -> Option<&mut Option<Bytes>> {
        match buffer {
            BufferType::RequestBody => {
                self.request_body_edited = true;
                Some(&mut self.request_body)
            }
            BufferType::ResponseBody => {
                self.response_body_edited = true;
                Some(&mut self.response_body)
            }
            _ => None,
        }
    }
}

/// Whether `pairs` may take `extra` more pairs of `bytes` bytes and stay
/// within [`super::abi::MAX_PAIRS`] and [`super::abi::MAX_MAP_BYTES`].
pub fn has_room(pairs: &Pairs, extra: usize, bytes: usize) -> bool {
    // The count first: a full map refuses at once, without a sum.
    if pairs.len() + extra > super::abi::MAX_PAIRS || bytes > super::abi::MAX_MAP_BYTES {
        return false;
    }
    let held: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    held + bytes <= super::abi::MAX_MAP_BYTES
}

/// The first value of `name` (lower case) in `pairs`.
pub fn get<'a>(pairs: &'a Pairs, name: &[u8]) -> Option<&'a [u8]> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Removes every value of `name`.
pub fn remove(pairs: &mut Pairs, name: &[u8]) {
    pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
}

/// The request's map: `:method`, `:path` (with the query), `:authority`,
/// `:scheme`, then the headers.
pub fn request_pairs(parts: &http::request::Parts) -> Pairs {
    let mut pairs = Vec::with_capacity(parts.headers.len() + 4);
    pairs.push((
        b":method".to_vec(),
        parts.method.as_str().as_bytes().to_vec(),
    ));
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    pairs.push((b":path".to_vec(), path.as_bytes().to_vec()));
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().as_bytes().to_vec())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .map(|h| h.as_bytes().to_vec())
        })
        .unwrap_or_default();
    pairs.push((b":authority".to_vec(), authority));
    let scheme = parts.uri.scheme_str().unwrap_or("http");
    pairs.push((b":scheme".to_vec(), scheme.as_bytes().to_vec()));
    push_headers(&mut pairs, &parts.headers);
    pairs
}

/// The response's map: `:status`, then the headers.
/// A response's (or a callout answer's) status and headers.
pub fn response_pairs(status: http::StatusCode, headers: &HeaderMap) -> Pairs {
    let mut pairs = Vec::with_capacity(headers.len() + 1);
    pairs.push((b":status".to_vec(), status.as_str().as_bytes().to_vec()));
    push_headers(&mut pairs, headers);
    pairs
}

/// `headers` as a map (trailers).
pub fn pairs_of(headers: &HeaderMap) -> Pairs {
    let mut pairs = Vec::with_capacity(headers.len());
    push_headers(&mut pairs, headers);
    pairs
}

fn push_headers(pairs: &mut Pairs, headers: &HeaderMap) {
    for (name, value) in headers {
        pairs.push((name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec()));
    }
}

/// The headers of `pairs` (pseudo-headers left out), or what is wrong
/// with one a filter set.
pub fn header_map(pairs: &Pairs) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::with_capacity(pairs.len());
    for (name, value) in pairs.iter().filter(|(k, _)| !k.starts_with(b":")) {
        let header = HeaderName::from_bytes(name)
            .map_err(|_| format!("invalid header name {:?}", String::from_utf8_lossy(name)))?;
        let value = HeaderValue::from_bytes(value).map_err(|_| {
            format!(
                "invalid value for header {}: {:?}",
                header,
                String::from_utf8_lossy(value)
            )
        })?;
        headers.append(header, value);
    }
    Ok(headers)
}
