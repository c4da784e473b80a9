//! Active health checks: a task per endpoint calls the standard
//! `grpc.health.v1.Health/Check` every `interval`, on a connection of its own,
//! and marks the endpoint unhealthy after `unhealthy_threshold` failed checks
//! in a row (not SERVING, an error, or no answer within `timeout`), healthy
//! again after `healthy_threshold` SERVING answers in a row.
//!
//! The tasks belong to the [`Upstream`](super::Upstream) that started them:
//! its clones share one [`Checks`], whose drop (with the last clone, when a
//! config version is retired) aborts them.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::uri::PathAndQuery;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};
use tokio::task::JoinHandle;

use super::endpoint::{Endpoint, Live};
use super::grpc;

/// `HealthCheckResponse.ServingStatus.SERVING`.
const SERVING: i32 = 1;
/// A health answer is a few bytes; anything larger is not one.
const MAX_REPLY: usize = 4096;

/// How endpoints are checked.
#[derive(Clone, Debug)]
pub struct HealthPolicy {
    pub interval: Duration,
    pub timeout: Duration,
    pub service: String,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
}

/// The running checks of one upstream; dropping it stops them.
#[derive(Debug)]
pub struct Checks {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Checks {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts a check task per endpoint on the current tokio runtime (none
/// outside one, e.g. in a synchronous unit test).
pub fn spawn(upstream: &str, endpoints: &Arc<[Endpoint]>, policy: HealthPolicy) -> Option<Checks> {
    let runtime = tokio::runtime::Handle::try_current().ok()?;
    let policy = Arc::new(policy);
    let tasks = (0..endpoints.len())
        .map(|index| {
            runtime.spawn(check_loop(
                upstream.to_owned(),
                endpoints.clone(),
                index,
                policy.clone(),
            ))
        })
        .collect();
    Some(Checks { tasks })
}

async fn check_loop(
    upstream: String,
    endpoints: Arc<[Endpoint]>,
    index: usize,
    policy: Arc<HealthPolicy>,
) {
    let endpoint = &endpoints[index];
    let mut conn = None;
    let (mut passed, mut failed) = (0u32, 0u32);
    let mut healthy = true;
    let mut ticker = tokio::time::interval(policy.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let verdict = tokio::time::timeout(policy.timeout, check(endpoint, &mut conn, &policy))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {:?}", policy.timeout)));
        match verdict {
            Ok(()) => {
                failed = 0;
                passed = passed.saturating_add(1);
                if !healthy && passed >= policy.healthy_threshold {
                    healthy = true;
                    tracing::info!(%upstream, endpoint = endpoint.address(), "upstream endpoint passes its health checks again");
                    endpoint.set_healthy(true);
                }
            }
            Err(reason) => {
                passed = 0;
                failed = failed.saturating_add(1);
                if healthy && failed >= policy.unhealthy_threshold {
                    healthy = false;
                    tracing::warn!(%upstream, endpoint = endpoint.address(), %reason, "upstream endpoint fails its health checks");
                    endpoint.set_healthy(false);
                }
            }
        }
    }
}

/// One check: SERVING is `Ok`, anything else a reason it failed.
async fn check(
    endpoint: &Endpoint,
    conn: &mut Option<Live>,
    policy: &HealthPolicy,
) -> Result<(), String> {
    let sender = match conn.as_ref().filter(|c| !c.is_closed()) {
        Some(live) => live.sender.clone(),
        None => {
            *conn = None;
            let live = endpoint.dedicated().await?;
            let sender = live.sender.clone();
            *conn = Some(live);
            sender
        }
    };
    let (request, response) = descriptors();
    let mut message = DynamicMessage::new(request.clone());
    message.set_field_by_number(1, Value::String(policy.service.clone()));
    let path = PathAndQuery::from_static("/grpc.health.v1.Health/Check");
    let call = grpc::UnaryCall {
        origin: &endpoint.origin,
        path: &path,
        metadata: http::HeaderMap::new(),
        timeout: policy.timeout,
        output: response,
        max_message: MAX_REPLY,
    };
    let reply = grpc::unary(sender, call, &message).await.map_err(|e| {
        if let super::UpstreamError::Transport { .. } = e {
            *conn = None;
        }
        format!("{e:?}")
    })?;
    let status = reply
        .message
        .get_field_by_number(1)
        .and_then(|v| v.as_i32())
        .unwrap_or(0);
    if status == SERVING {
        Ok(())
    } else {
        Err(format!("health status {status} (not SERVING)"))
    }
}

/// `grpc.health.v1.HealthCheckRequest` and `HealthCheckResponse`, built by
/// hand (the status enum read as its number), so checks need no proto files.
fn descriptors() -> &'static (MessageDescriptor, MessageDescriptor) {
    static DESCRIPTORS: OnceLock<(MessageDescriptor, MessageDescriptor)> = OnceLock::new();
    DESCRIPTORS.get_or_init(|| {
        let field = |name: &str, kind: Type| FieldDescriptorProto {
            name: Some(name.into()),
            json_name: Some(name.into()),
            number: Some(1),
            label: Some(Label::Optional as i32),
            r#type: Some(kind as i32),
            ..Default::default()
        };
        let message = |name: &str, field: FieldDescriptorProto| DescriptorProto {
            name: Some(name.into()),
            field: vec![field],
            ..Default::default()
        };
        let file = FileDescriptorProto {
            name: Some("switchyard/health_check.proto".into()),
            package: Some("grpc.health.v1".into()),
            syntax: Some("proto3".into()),
            message_type: vec![
                message("HealthCheckRequest", field("service", Type::String)),
                message("HealthCheckResponse", field("status", Type::Int32)),
            ],
            ..Default::default()
        };
        let mut pool = DescriptorPool::new();
        pool.add_file_descriptor_proto(file)
            .expect("a valid static descriptor");
        let get = |name: &str| pool.get_message_by_name(name).expect("declared just above");
        (
            get("grpc.health.v1.HealthCheckRequest"),
            get("grpc.health.v1.HealthCheckResponse"),
        )
    })
}

#[cfg(test)]
mod tests {
    use prost::Message as _;

    use super::*;

    #[test]
    fn the_hand_built_messages_match_the_standard_wire_format() {
        let (request, response) = descriptors();
        let mut message = DynamicMessage::new(request.clone());
        message.set_field_by_number(1, Value::String("demo.users.v1.UserService".into()));
        let bytes = message.encode_to_vec();
        assert_eq!(&bytes[..2], &[0x0a, 25], "field 1, length-delimited");
        // HealthCheckResponse{status: NOT_SERVING}.
        let reply = DynamicMessage::decode(response.clone(), &[0x08, 0x02][..]).unwrap();
        assert_eq!(reply.get_field_by_number(1).unwrap().as_i32(), Some(2));
    }
}
