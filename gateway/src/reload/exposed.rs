//! What a runtime exposes to clients, method by method: the route table
//! `/admin/routes` shows, and what `reload.strict` refuses to drop.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::runtime::Runtime;

/// One way a client reaches one method.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Exposure {
    /// `REST`, `gRPC`, `gRPC-Web` or `WebSocket`.
    pub protocol: &'static str,
    /// The HTTP method (`GET`, `POST`, …).
    pub method: String,
    /// The path template (REST) or the gRPC path.
    pub path: String,
    /// `package.Service/Method`.
    pub rpc: String,
    /// The route's name.
    pub route: String,
}

impl Exposure {
    /// `REST GET /v1/users/{id}`: what a client would miss.
    pub fn describe(&self) -> String {
        format!(
            "{} {} {} ({})",
            self.protocol, self.method, self.path, self.rpc
        )
    }
}

/// Every exposure of `runtime`, sorted.
pub fn exposures(runtime: &Runtime) -> BTreeSet<Exposure> {
    let mut out = BTreeSet::new();
    for binding in runtime.table.bindings() {
        out.insert(Exposure {
            protocol: "REST",
            method: binding.http_method.to_string(),
            path: binding.template.to_string(),
            rpc: rpc_name(&binding.rpc),
            route: binding.route.name.clone(),
        });
    }
    for target in runtime.grpc.targets() {
        let mut add = |protocol, method: &str| {
            out.insert(Exposure {
                protocol,
                method: method.to_owned(),
                path: target.path.to_string(),
                rpc: rpc_name(&target.rpc),
                route: target.route.name.clone(),
            });
        };
        if target.exposure.passthrough {
            add("gRPC", "POST");
        }
        if target.exposure.web {
            add("gRPC-Web", "POST");
        }
        if target.websocket {
            add("WebSocket", "GET");
        }
    }
    out
}

/// What `previous` exposes and `next` does not, as client-facing lines
/// (the route may have been renamed: only protocol, method, path and rpc
/// count).
pub fn dropped(previous: &Runtime, next: &Runtime) -> Vec<String> {
    let key = |e: &Exposure| (e.protocol, e.method.clone(), e.path.clone(), e.rpc.clone());
    let kept: BTreeSet<_> = exposures(next).iter().map(key).collect();
    exposures(previous)
        .into_iter()
        .filter(|e| !kept.contains(&key(e)))
        .map(|e| e.describe())
        .collect()
}

fn rpc_name(rpc: &prost_reflect::MethodDescriptor) -> String {
    format!("{}/{}", rpc.parent_service().full_name(), rpc.name())
}
