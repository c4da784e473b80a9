//! The gateway's own spans reach an OpenTelemetry collector: the real
//! `switchyard run` (spans need the process's subscriber) in front of a
//! scripted upstream, exporting over OTLP/gRPC to a collector in this test
//! (the generated OTLP `TraceService`). A request with a `traceparent`
//! gives a server span named after its route whose parent is the client's
//! span, a span per plugin stage inside it, the upstream call's client span
//! inside that, and the upstream receives the gateway's span as its
//! parent: one trace from the client through the upstream.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::nats::free_port;
use common::scripted::{self, Fallible};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost_reflect::{DynamicMessage, Value as PValue};

/// A collector that keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_trace_from_the_client_through_the_gateway_to_the_upstream() {
    // The collector.
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    // The upstream.
    let pool = scripted::pool(common::repo_root().join("proto"));
    let user = pool.get_message_by_name("demo.users.v1.User").unwrap();
    let get: Fallible = Arc::new(move |req: &DynamicMessage| {
        let mut reply = DynamicMessage::new(user.clone());
        reply.set_field_by_name("id", req.get_field_by_name("id").unwrap().into_owned());
        reply.set_field_by_name("name", PValue::String("Ada".into()));
        Ok(reply)
    });
    let upstream = scripted::start_fallible(pool, HashMap::from([("GetUser", get)])).await;
    // The gateway, as a process.
    let (public, admin) = (free_port(), free_port());
    let dir = common::scratch_dir("otlp");
    let config = dir.join("gateway.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
listeners: [{{ address: "127.0.0.1:{public}" }}]
admin: {{ address: "127.0.0.1:{admin}" }}
protos: {{ sources: ["{proto}"] }}
upstreams: {{ users: {{ endpoints: ["http://{upstream}"], timeout: 2s }} }}
routes: [{{ name: users, service: demo.users.v1.UserService, upstream: users, plugins: [{{ request_id: {{}} }}] }}]
graphql: {{}}
tracing: {{ otlp_endpoint: "http://{otlp}", export_interval: 100ms, service_name: gw-test }}
"#,
            proto = common::repo_root().join("proto").display(),
            upstream = upstream.addr,
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "--config"])
        .arg(&config)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the gateway starts");
    common::nats::wait_for_port(public).await;

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let req = http::Request::get(format!("http://127.0.0.1:{public}/v1/users/7"))
        .header("traceparent", format!("00-{TRACE}-{CLIENT_SPAN}-01"))
        .body(Full::new(bytes::Bytes::new()))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.into_body().collect().await;

    // A GraphQL query: its field's resolver is a span, its call under it.
    let req = http::Request::post(format!("http://127.0.0.1:{public}/graphql"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(
            r#"{"query":"{ user(id: \"8\") { id name } }"}"#,
        )))
        .unwrap();
    let res = client.request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    let _ = res.into_body().collect().await;

    // The spans arrive within a few export intervals.
    let mut spans = Vec::new();
    for _ in 0..100 {
        spans = collector.0.lock().unwrap().clone();
        if spans.len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let named = |name: &str| {
        spans
            .iter()
            .find(|s| s.name.contains(name))
            .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"))
            .clone()
    };
    let request = named("GET /v1/users/{id}");
    let plugin = named("request_id");
    let call = named("demo.users.v1.UserService/GetUser");
    assert_eq!(hex(&request.trace_id), TRACE, "the client's trace");
    assert_eq!(
        hex(&request.parent_span_id),
        CLIENT_SPAN,
        "under the client's span"
    );
    assert_eq!(
        plugin.parent_span_id, request.span_id,
        "the plugin's stage is under the request"
    );
    assert_eq!(hex(&call.trace_id), TRACE);
    assert_eq!(
        call.parent_span_id, plugin.span_id,
        "the call is inside the plugin's stage"
    );
    let resolve = spans
        .iter()
        .find(|s| s.name == "user")
        .unwrap_or_else(|| panic!("no resolver span in {spans:#?}"))
        .clone();
    let graphql = named("POST graphql");
    assert_eq!(
        resolve.parent_span_id, graphql.span_id,
        "the resolver is under its request"
    );
    let calls: Vec<&Span> = spans
        .iter()
        .filter(|s| s.name == "demo.users.v1.UserService/GetUser")
        .collect();
    assert!(
        calls.iter().any(|c| c.parent_span_id == resolve.span_id),
        "the resolver's call is under it: {spans:#?}"
    );
    // The upstream was told the gateway's span is its parent.
    let sent = upstream.recorded("GetUser")[0].metadata["traceparent"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(sent, format!("00-{TRACE}-{}-01", hex(&request.span_id)));
    child.kill().await.unwrap();
}
