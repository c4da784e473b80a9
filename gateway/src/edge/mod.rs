//! The edge: listeners, the hyper-util auto (HTTP/1.1 + h2c) server with its
//! limits and timers, dispatch into the live runtime, and graceful drain.

pub mod dispatch;
pub mod head;
pub mod pages;
pub mod rules;
pub mod server;
pub mod shedding;
pub mod tls;
pub mod websocket;
pub mod workers;

pub use dispatch::Gateway;
pub use server::{EdgeSettings, Shutdown, serve};
pub use workers::WorkerPool;
