//! Buffering a request body for a method that signs it (see
//! [`super::Method::body_limit`]).

use http::request::Parts;
use sha2::{Digest, Sha256};

use super::BodyDigest;
use crate::error::ErrorResponse;
use crate::stage::{Body, Request, full_body, read_body_limited};

/// Reads the whole body (at most `limit` bytes, else 413: up front from
/// `content-length`, and while reading), and rebuilds the request with the
/// same bytes and their [`BodyDigest`].
pub(super) async fn buffer(
    mut parts: Parts,
    body: Body,
    limit: usize,
) -> Result<Request, ErrorResponse> {
    let bytes = read_body_limited(&parts.headers, body, limit, "the signed-request limit").await?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    parts.extensions.insert(BodyDigest(digest));
    Ok(Request::from_parts(parts, full_body(bytes)))
}
