//! Inbound webhooks with `forward:`: a verified delivery becomes one call of
//! a gRPC method on a real HTTP/2 upstream (a scripted server for
//! gateway/tests/protos/webhooks/billing_hooks.proto), through a route:
//! answered 200 once the method succeeded, the call's error when it failed
//! (and the provider's retry then forwarded), never twice for a replay.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::TestGateway;
use common::scripted::{self, Fallible, Scripted};
use common::webhooks::{
    STD_SECRET, STRIPE_SECRET, now, post_delivery, refs, std_headers, stripe_header, unique,
};
use http::StatusCode;
use prost_reflect::{DescriptorPool, DynamicMessage, Value as PValue};
use serde_json::{Value, json};

fn proto() -> std::path::PathBuf {
    common::repo_root().join("gateway/tests/protos/webhooks/billing_hooks.proto")
}

fn pool() -> DescriptorPool {
    scripted::pool(proto())
}

/// `HandleInvoiceEvent` fails its first `failures` calls with UNAVAILABLE,
/// then answers `ok`; `Record` always answers `ok`.
async fn upstream(failures: usize) -> Scripted {
    let pool = pool();
    let handled = pool
        .get_message_by_name("switchyard.test.webhooks.Handled")
        .unwrap();
    let ok = move || {
        let mut reply = DynamicMessage::new(handled.clone());
        reply.set_field_by_name("ok", PValue::Bool(true));
        reply
    };
    let seen = Arc::new(AtomicUsize::new(0));
    let ok_first = ok.clone();
    let handle: Fallible = Arc::new(move |_: &DynamicMessage| {
        if seen.fetch_add(1, Ordering::SeqCst) < failures {
            return Err((14, "billing is restarting".to_owned()));
        }
        Ok(ok_first())
    });
    let record: Fallible = Arc::new(move |_: &DynamicMessage| Ok(ok()));
    scripted::start_fallible(
        pool,
        HashMap::from([("HandleInvoiceEvent", handle), ("Record", record)]),
    )
    .await
}

/// The gateway config: route `billing` in front of `upstream`, and the
/// `webhooks:` list items given.
fn config(upstream: &Scripted, webhooks: &str) -> String {
    format!(
        r#"
listeners: [{{ address: "127.0.0.1:0" }}]
admin: {{ address: "127.0.0.1:0" }}
protos: {{ sources: ["{proto}"] }}
upstreams: {{ billing: {{ endpoints: ["http://{addr}"], timeout: 2s }} }}
routes:
  - name: billing
    service: switchyard.test.webhooks.BillingHooks
    upstream: billing
    expose_unannotated: true
    methods: [HandleInvoiceEvent, Record]
webhooks:
{webhooks}
"#,
        proto = proto().display(),
        addr = upstream.addr,
    )
}

const STANDARD: &str = r#"  - name: invoices
    path: /webhooks/invoices
    scheme: standard_webhooks
    secrets: ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
    forward: { route: billing, method: HandleInvoiceEvent, id_field: delivery_id }
"#;

async fn gateway(upstream: &Scripted, webhooks: &str) -> TestGateway {
    TestGateway::start_yaml(common::spawn_demo().await, &config(upstream, webhooks)).await
}

fn text(message: &DynamicMessage, field: &str) -> String {
    message
        .get_field_by_name(field)
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

// === tests ===

#[tokio::test]
async fn a_verified_delivery_is_forwarded_once_with_its_webhook_id_and_its_replay_acknowledged() {
    let billing = upstream(0).await;
    let gw = gateway(&billing, STANDARD).await;
    let id = format!("msg_{}", unique());
    // `livemode` is not in the message: providers add fields, they are ignored.
    let body = r#"{"type": "invoice.paid", "data": {"invoiceId": "in_7", "amount": "1250"}, "livemode": false}"#;
    let signed = std_headers(STD_SECRET, &id, now(), body);
    let reply = post_delivery(&gw, "/webhooks/invoices", &refs(&signed), body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.json(), json!({"status": "delivered", "id": id}));
    let calls = billing.recorded("HandleInvoiceEvent");
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(text(&call.request, "type"), "invoice.paid");
    assert_eq!(text(&call.request, "delivery_id"), id, "id_field");
    let data = call.request.get_field_by_name("data").unwrap();
    let data = data.as_message().unwrap();
    assert_eq!(text(data, "invoice_id"), "in_7");
    assert_eq!(
        data.get_field_by_name("amount").unwrap().as_i64(),
        Some(1250)
    );
    assert_eq!(call.metadata["webhook-id"], id.as_str());
    // The provider redelivers: acknowledged, not forwarded again.
    let replay = post_delivery(&gw, "/webhooks/invoices", &refs(&signed), body).await;
    assert_eq!(replay.status, StatusCode::OK);
    assert_eq!(replay.json(), json!({"status": "duplicate", "id": id}));
    assert_eq!(billing.recorded("HandleInvoiceEvent").len(), 1);
    let forwarded =
        r#"switchyard_webhooks_received_total{endpoint="invoices",outcome="forwarded"}"#;
    assert_eq!(gw.metric(forwarded).await, Some(1.0));
    gw.stop().await;
}

#[tokio::test]
async fn a_failed_call_answers_its_error_and_the_providers_retry_is_forwarded() {
    let billing = upstream(1).await;
    let gw = gateway(&billing, STANDARD).await;
    let id = format!("msg_{}", unique());
    let body = r#"{"type": "invoice.paid", "data": {"invoiceId": "in_8"}}"#;
    let signed = std_headers(STD_SECRET, &id, now(), body);
    let failed = post_delivery(&gw, "/webhooks/invoices", &refs(&signed), body).await;
    assert_eq!(
        failed.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        failed.text()
    );
    assert_eq!(failed.error(), (14, "billing is restarting".to_owned()));
    // Not marked as done: the retry is forwarded, and then it is done.
    let retry = post_delivery(&gw, "/webhooks/invoices", &refs(&signed), body).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text());
    assert_eq!(retry.json()["status"], "delivered");
    assert_eq!(billing.recorded("HandleInvoiceEvent").len(), 2);
    let replay = post_delivery(&gw, "/webhooks/invoices", &refs(&signed), body).await;
    assert_eq!(replay.json()["status"], "duplicate");
    assert_eq!(billing.recorded("HandleInvoiceEvent").len(), 2);
    for (outcome, n) in [
        ("upstream_error", 1.0),
        ("forwarded", 1.0),
        ("duplicate", 1.0),
    ] {
        let line = format!(
            r#"switchyard_webhooks_received_total{{endpoint="invoices",outcome="{outcome}"}}"#
        );
        assert_eq!(gw.metric(&line).await, Some(n), "{outcome}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_stripe_delivery_goes_into_a_struct_field_as_json() {
    let billing = upstream(0).await;
    let webhooks = format!(
        r#"  - path: /webhooks/stripe
    scheme: stripe
    secrets: ["{STRIPE_SECRET}"]
    forward: {{ route: billing, method: Record, body: payload, id_field: delivery_id }}
"#
    );
    let gw = gateway(&billing, &webhooks).await;
    let id = format!("evt_{}", unique());
    let body = format!(
        r#"{{"id": "{id}", "type": "charge.refunded", "data": {{"object": {{"amount": 300.5, "tags": ["a"]}}}}}}"#
    );
    let header = stripe_header(now(), &body);
    let reply = post_delivery(
        &gw,
        "/webhooks/stripe",
        &[("stripe-signature", &header)],
        &body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let calls = billing.calls_to("Record");
    assert_eq!(calls.len(), 1);
    assert_eq!(
        text(&calls[0], "delivery_id"),
        id,
        "Stripe's id is the webhook id"
    );
    // The Struct, back as JSON, is the body.
    let payload = calls[0].get_field_by_name("payload").unwrap();
    let payload = payload.as_message().unwrap();
    let mut json = serde_json::Serializer::new(Vec::new());
    payload
        .serialize_with_options(&mut json, &Default::default())
        .unwrap();
    let got: Value = serde_json::from_slice(&json.into_inner()).unwrap();
    assert_eq!(got, serde_json::from_str::<Value>(&body).unwrap());
    gw.stop().await;
}

#[tokio::test]
async fn a_body_that_does_not_fit_the_request_is_400_and_not_forwarded() {
    let billing = upstream(0).await;
    let gw = gateway(&billing, STANDARD).await;
    let id = format!("msg_{}", unique());
    let body = r#"{"type": "invoice.paid", "data": {"amount": "lots"}}"#;
    let signed = std_headers(STD_SECRET, &id, now(), body);
    let reply = post_delivery(&gw, "/webhooks/invoices", &refs(&signed), body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
    let (code, message) = reply.error();
    assert_eq!(code, 3);
    assert!(
        message.contains("does not fit switchyard.test.webhooks.InvoiceEvent"),
        "{message}"
    );
    assert!(billing.recorded("HandleInvoiceEvent").is_empty());
    gw.stop().await;
}

#[tokio::test]
async fn forward_targets_are_checked_when_the_config_loads() {
    let billing = upstream(0).await;
    let endpoint = |forward: &str| {
        format!(
            r#"  - path: /webhooks/x
    scheme: standard_webhooks
    secrets: ["{STD_SECRET}"]
    {forward}
"#
        )
    };
    for (forward, expected) in [
        (
            "forward: { route: nope, method: Record }",
            "`webhooks[0].forward.route`: unknown route `nope`; routes: [billing]",
        ),
        (
            "forward: { route: billing, method: Nope }",
            "`webhooks[0].forward.method`: switchyard.test.webhooks.BillingHooks has no method `Nope`",
        ),
        (
            "forward: { route: billing, method: Watch }",
            "`webhooks[0].forward.method`: switchyard.test.webhooks.BillingHooks.Watch is a streaming method; forward needs a unary one",
        ),
        (
            "forward: { route: billing, method: Refund }",
            "`webhooks[0].forward.method`: route `billing` does not expose `Refund` (its `methods` are [HandleInvoiceEvent, Record])",
        ),
        (
            "forward: { route: billing, method: Record, body: tags }",
            "`webhooks[0].forward.body`: `tags` must be a singular message, `string` or `bytes` field",
        ),
        (
            "forward: { route: billing, method: Record, body: raw, id_field: raw }",
            "`webhooks[0].forward.id_field`: `raw` is also the `body` field",
        ),
        (
            "forward: { route: billing, method: Record }\n    publish: { sink: bus, type: t, destination: d }",
            "`webhooks[0].forward`: set one of `publish` (to an events sink) and `forward` (to a gRPC method), not both",
        ),
        (
            "max_body: 1KiB",
            "`webhooks[0]`: missing `publish` (to an events sink) or `forward` (to a gRPC method)",
        ),
    ] {
        let error = common::config_error(&config(&billing, &endpoint(forward))).await;
        assert!(error.contains(expected), "{forward}\n{error}");
    }
}
