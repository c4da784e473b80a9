//! The standard `grpc.health.v1.Health` service, as each demo server answers it.
//!
//! A server reports SERVING for the empty service name (the server as a whole) and for the full
//! name of the service it hosts, until a test flips it with
//! [`DemoServer::set_serving`](crate::DemoServer::set_serving). Unknown names are NOT_FOUND, as
//! the health-checking protocol asks. `Watch` answers UNIMPLEMENTED, which the protocol allows.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tonic::{Request, Response, Status};

use crate::pb::health::health_check_response::ServingStatus;
use crate::pb::health::health_server::Health;
use crate::pb::health::{HealthCheckRequest, HealthCheckResponse};

/// The health of one demo server: whether it is serving, shared with its
/// [`DemoServer`](crate::DemoServer) so it survives restarts and can be flipped.
#[derive(Debug, Clone)]
pub struct DemoHealth {
    service: &'static str,
    serving: Arc<AtomicBool>,
}

impl DemoHealth {
    /// A server hosting `service` (a full name like `demo.users.v1.UserService`), serving.
    pub fn new(service: &'static str) -> DemoHealth {
        DemoHealth {
            service,
            serving: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Sets whether the server reports SERVING (otherwise NOT_SERVING).
    pub fn set_serving(&self, serving: bool) {
        self.serving.store(serving, Ordering::SeqCst);
    }

    /// Whether the server reports SERVING.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
    }
}

type WatchStream =
    Pin<Box<dyn futures_util::Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for DemoHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let name = request.into_inner().service;
        if !name.is_empty() && name != self.service {
            return Err(Status::not_found(format!("unknown service {name:?}")));
        }
        let status = if self.is_serving() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        Ok(Response::new(HealthCheckResponse {
            status: status as i32,
        }))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        _request: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("the demo servers answer Check only"))
    }
}
