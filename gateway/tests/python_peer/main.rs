//! REST → gRPC against a gRPC implementation we did not write in Rust: a Python
//! `grpcio` server (`tests/peers/python/server.py`) serving `peer.v1.PeerService`
//! (`tests/protos/peer/v1/peer.proto`). Every method echoes its request, the
//! Python runtime's own proto3 JSON rendering of it (`seen`), and the request
//! metadata, so each case asserts exactly what the gateway sent upstream and
//! exactly what it renders back.
//!
//! Needs a Python with `grpcio`, `grpcio-tools` and `grpcio-status`
//! (`tests/peers/python/requirements.txt`): `$SWITCHYARD_PYTHON`, else `python3`.
//! `scripts/test.sh` creates the venv; by hand:
//!
//! ```text
//! python3 -m venv .venv
//! .venv/bin/pip install -r gateway/tests/peers/python/requirements.txt
//! SWITCHYARD_PYTHON=$PWD/.venv/bin/python cargo test -p switchyard --test python_peer
//! ```
//!
//! Numbers are compared by value (`1` equals `1.0`): proto3 JSON lets a
//! writer choose either spelling, and 64-bit integers are strings anyway.
//!
//! Every reply also carries a field peer.proto does not define (as from a
//! server with a newer schema), which the gateway must skip.

mod cases;
mod errors;
mod harness;
mod headers;
mod json;
mod mapping;
mod upstreams;
