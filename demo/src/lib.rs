//! Sample in-memory gRPC services (users, orders, inventory) for Switchyard's demo, its tests
//! and its benchmarks.
//!
//! Every service starts from the same deterministic seed data, so gateway tests can assert on
//! exact payloads, and each one runs on its own listener so a test can stop one upstream while
//! the others keep serving. See [`spawn`] and [`DemoServer`].

mod errors;
mod health;
mod inventory;
mod orders;
mod paging;
mod server;
mod users;

use std::path::PathBuf;

use prost_types::Timestamp;

pub use errors::{find_detail, rich_status};
pub use health::DemoHealth;
pub use inventory::InMemoryInventory;
pub use orders::{InMemoryOrders, PRICES, SEED_ORDERS, price_of};
pub use server::{DemoServer, Service, spawn};
pub use users::{InMemoryUsers, SEED_USERS};

/// Generated messages, clients (`*_client`) and servers (`*_server`) of the demo protos.
///
/// The modules are flattened (`pb::users` rather than `demo::users::v1`); the generated code
/// only refers to other packages through `prost_types`, so that is safe.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    /// `demo.users.v1`
    pub mod users {
        tonic::include_proto!("demo.users.v1");
    }
    /// `demo.orders.v1`
    pub mod orders {
        tonic::include_proto!("demo.orders.v1");
    }
    /// `demo.inventory.v1`
    pub mod inventory {
        tonic::include_proto!("demo.inventory.v1");
    }
    /// `grpc.health.v1`: the standard health service every demo server answers.
    pub mod health {
        tonic::include_proto!("grpc.health.v1");
    }
    /// `google.*` packages the demo services use.
    pub mod google {
        /// `google.rpc`: `Status` and the standard error details the services attach.
        pub mod rpc {
            tonic::include_proto!("google.rpc");
        }
    }
}

/// Encoded `google.protobuf.FileDescriptorSet` of the demo protos and all their imports, with
/// custom options such as `google.api.http` preserved.
///
/// Lets a test build a `prost_reflect::DescriptorPool` without re-parsing the protos.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/demo_descriptor.bin"));

/// Absolute path of the repository's `proto/` directory (the include root of the demo protos).
///
/// Computed from this crate's manifest directory, so it is right for tests and benchmarks run
/// from any working directory of this checkout.
pub fn proto_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("proto"), |root| root.join("proto"))
}

/// Seconds since the Unix epoch as a protobuf `Timestamp`.
pub(crate) fn timestamp(seconds: i64) -> Timestamp {
    Timestamp { seconds, nanos: 0 }
}

/// Numeric key of an id like "12"; `None` for anything else.
///
/// Ids are decimal strings, but "012" or "+12" must not alias user "12", hence the round trip.
pub(crate) fn canonical_id(id: &str) -> Option<u64> {
    id.parse::<u64>().ok().filter(|key| key.to_string() == id)
}
