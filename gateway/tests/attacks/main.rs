//! The attack suite: what the open internet sends a gateway, through the
//! real gateway in front of the real demo services. Each case asserts the
//! exact answer, whether the connection was closed, and that the upstream
//! saw nothing it should not (the demo services count the calls they get).
//! HTTP/1 attacks go over raw sockets (`raw.rs`), so nothing between the
//! test and the gateway tidies them up. The rules they hold the gateway to
//! are written in docs/security.md.

#[path = "../common/mod.rs"]
mod common;
mod faults;
mod forwarded;
mod graphql;
mod http1;
mod http2;
mod json;
mod limits;
mod paths;
mod proxy;
mod raw;

use std::time::Duration;

/// How long a raw exchange waits for more bytes before deciding the gateway
/// keeps the connection open.
const QUIET: Duration = Duration::from_millis(400);
