//! The gRPC services the gateway answers itself, for the services routes
//! pass through (`grpc.passthrough`), so `grpcurl`-style tools and load
//! balancers' health checks work against the edge:
//!
//! - `grpc.health.v1.Health` (tonic-health): each exposed service is
//!   SERVING while its route's upstream has an endpoint in service (not
//!   ejected, not failing health checks), else NOT_SERVING; the empty name
//!   (the gateway) is SERVING. Refreshed every second, so `Watch` streams see
//!   changes.
//! - `grpc.reflection.v1` and `v1alpha` `ServerReflection`
//!   (tonic-reflection), when `grpc.reflection` is on: the exposed services
//!   listed, and the files that define them (with their imports) served —
//!   not the rest of the descriptor pool.
//!
//! A route that passes one of these services through to an upstream takes
//! precedence over the built-in one.

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::time::Duration;

use prost_reflect::{DescriptorPool, FileDescriptor};
use prost_types::FileDescriptorSet;
use switchyard_plugins::stage::{HttpService, Request, box_body};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;
use tower::ServiceExt as _;

use super::GrpcMethods;
use crate::config::GrpcServices;
use crate::upstream::Upstream;

const HEALTH: &str = "/grpc.health.v1.Health/";
const REFLECTION_V1: &str = "/grpc.reflection.v1.ServerReflection/";
const REFLECTION_V1ALPHA: &str = "/grpc.reflection.v1alpha.ServerReflection/";

/// How often health statuses follow the upstreams.
const REFRESH: Duration = Duration::from_secs(1);

/// The built-in services of one config version.
pub struct Builtins {
    health: Option<HttpService>,
    reflection_v1: Option<HttpService>,
    reflection_v1alpha: Option<HttpService>,
    /// Follows the upstreams' state; stopped with the config version.
    _refresh: Option<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

// === impl Builtins ===

impl Builtins {
    /// The built-in services for the passed-through services of `methods`
    /// (none when no route passes gRPC through). `spawn`: whether to start
    /// the health refresher (not when only checking a config).
    pub fn build(
        config: &GrpcServices,
        methods: &GrpcMethods,
        pool: &DescriptorPool,
        spawn: bool,
    ) -> Result<Builtins, String> {
        // Exposed service → the upstream serving it.
        let mut services: BTreeMap<String, Upstream> = BTreeMap::new();
        for target in methods.targets().filter(|t| t.exposure.passthrough) {
            let service = target.rpc.parent_service().full_name().to_owned();
            services
                .entry(service)
                .or_insert_with(|| target.route.upstream.clone());
        }
        let mut builtins = Builtins {
            health: None,
            reflection_v1: None,
            reflection_v1alpha: None,
            _refresh: None,
        };
        if services.is_empty() {
            return Ok(builtins);
        }
        if config.health {
            let (reporter, server) = tonic_health::server::health_reporter();
            builtins.health = Some(erase(server));
            if spawn {
                let services: Vec<(String, Upstream)> = services.clone().into_iter().collect();
                builtins._refresh = Some(AbortOnDrop(tokio::spawn(refresh(reporter, services))));
            }
        }
        if config.reflection {
            let set = files_of(pool, services.keys().map(String::as_str));
            let v1 = reflection(&set, services.keys()).build_v1();
            let v1alpha = reflection(&set, services.keys()).build_v1alpha();
            builtins.reflection_v1 = Some(erase(v1.map_err(|e| e.to_string())?));
            builtins.reflection_v1alpha = Some(erase(v1alpha.map_err(|e| e.to_string())?));
        }
        Ok(builtins)
    }

    /// The built-in service for a request to `path`, if one answers it.
    pub fn find(&self, path: &str) -> Option<HttpService> {
        let service = if path.starts_with(HEALTH) {
            &self.health
        } else if path.starts_with(REFLECTION_V1) {
            &self.reflection_v1
        } else if path.starts_with(REFLECTION_V1ALPHA) {
            &self.reflection_v1alpha
        } else {
            return None;
        };
        service.clone()
    }
}

/// A tonic server as a pipeline service.
fn erase<S>(server: S) -> HttpService
where
    S: tower::Service<Request, Response = http::Response<tonic::body::Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    HttpService::new(server.map_response(|response| response.map(box_body)))
}

fn reflection<'a>(
    set: &FileDescriptorSet,
    services: impl Iterator<Item = &'a String>,
) -> tonic_reflection::server::Builder<'static> {
    let mut builder = tonic_reflection::server::Builder::configure()
        .register_file_descriptor_set(set.clone())
        .include_reflection_service(false);
    for service in services {
        builder = builder.with_service_name(service.clone());
    }
    builder
}

/// The files defining `services`, and every file they import, imports
/// first.
fn files_of<'a>(
    pool: &DescriptorPool,
    services: impl Iterator<Item = &'a str>,
) -> FileDescriptorSet {
    fn visit(file: FileDescriptor, seen: &mut HashSet<String>, out: &mut FileDescriptorSet) {
        if !seen.insert(file.name().to_owned()) {
            return;
        }
        for dependency in file.dependencies() {
            visit(dependency, seen, out);
        }
        out.file.push(file.file_descriptor_proto().clone());
    }
    let mut seen = HashSet::new();
    let mut out = FileDescriptorSet::default();
    for name in services {
        if let Some(service) = pool.get_service_by_name(name) {
            visit(service.parent_file(), &mut seen, &mut out);
        }
    }
    out
}

/// Keeps each service's health status in step with its upstream.
async fn refresh(reporter: HealthReporter, services: Vec<(String, Upstream)>) {
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let mut ticks = tokio::time::interval(REFRESH);
    loop {
        ticks.tick().await;
        for (service, upstream) in &services {
            let status = if upstream.is_serving() {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            reporter.set_service_status(service, status).await;
        }
    }
}
