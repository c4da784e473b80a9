//! Buffering a request body for a method that signs it (see
//! [`super::Method::body_limit`]).

use bytes::BytesMut;
use http::request::Parts;
use http::{StatusCode, header};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};

use super::BodyDigest;
use crate::error::{Code, ErrorResponse};
use crate::stage::{Body, Request, full_body};

/// Reads the whole body (at most `limit` bytes, else 413: up front from
/// `content-length`, and while reading), and rebuilds the request with the
/// same bytes and their [`BodyDigest`].
pub(super) async fn buffer(
    mut parts: Parts,
    mut body: Body,
    limit: usize,
) -> Result<Request, ErrorResponse> {
    let too_large = || {
        ErrorResponse::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::InvalidArgument,
            format!("request body is larger than the signed-request limit of {limit} bytes"),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ErrorResponse::new(
                Code::InvalidArgument,
                format!("could not read the request body: {e}"),
            )
        })?;
        if let Some(data) = frame.data_ref() {
            if buf.len() + data.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(data);
        }
    }
    let bytes = buf.freeze();
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    parts.extensions.insert(BodyDigest(digest));
    Ok(Request::from_parts(parts, full_body(bytes)))
}
