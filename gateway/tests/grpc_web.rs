//! gRPC-Web clients (`routes[].grpc.web`): requests built per the protocol
//! (grpc/grpc PROTOCOL-WEB.md) in the test — length-prefixed messages, the
//! binary and the base64 `-text` variants, over HTTP/1.1 as browsers send
//! them — and the trailers read back from the end of the body. CORS
//! preflights are answered by the route's `cors` plugin.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::{Reply, TestGateway};
use http::Method;
use prost::Message as _;
use switchyard_demo::pb::users::{GetUserRequest, User};

const ORIGIN: &str = "https://app.example.com";

/// CORS for gRPC-Web on every route (top-level plugin).
const CORS: &str = r#"plugins:
  - cors:
      allow_origins: ["https://app.example.com"]
      allow_methods: [POST]
      allow_headers: [content-type, x-grpc-web, x-user-agent, grpc-timeout]
      expose_headers: [grpc-status, grpc-message]
"#;

async fn gateway() -> TestGateway {
    TestGateway::demo_with(", grpc: { web: true }", CORS).await
}

/// One gRPC frame holding `message`.
fn frame(message: &impl prost::Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut out = BytesMut::new();
    out.put_u8(0);
    out.put_u32(body.len() as u32);
    out.put_slice(&body);
    out.freeze()
}

/// The messages and the trailers (lower-case `name: value` pairs) of a
/// gRPC-Web response body.
fn parse(mut body: Bytes) -> (Vec<Bytes>, Vec<(String, String)>) {
    let mut messages = Vec::new();
    let mut trailers = Vec::new();
    while body.has_remaining() {
        let flag = body.get_u8();
        let len = body.get_u32() as usize;
        let payload = body.split_to(len);
        if flag & 0x80 != 0 {
            for line in String::from_utf8(payload.to_vec()).unwrap().split("\r\n") {
                if let Some((name, value)) = line.split_once(':') {
                    trailers.push((name.trim().to_owned(), value.trim().to_owned()));
                }
            }
            assert!(!body.has_remaining(), "the trailer frame comes last");
        } else {
            messages.push(payload);
        }
    }
    (messages, trailers)
}

/// A `-text` body decoded: each chunk is padded base64 on its own, so it
/// is decoded segment by segment (a segment ends at a padded quantum).
fn from_text(text: &[u8]) -> Bytes {
    let mut decoded = Vec::new();
    let mut start = 0;
    for end in (4..=text.len()).step_by(4) {
        if text[end - 1] == b'=' || end == text.len() {
            decoded.extend(STANDARD.decode(&text[start..end]).expect("base64"));
            start = end;
        }
    }
    Bytes::from(decoded)
}

fn trailer<'a>(trailers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    trailers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

async fn call(gw: &TestGateway, content_type: &str, body: Bytes) -> Reply {
    gw.send(
        Method::POST,
        "/demo.users.v1.UserService/GetUser",
        &[
            ("content-type", content_type),
            ("x-grpc-web", "1"),
            ("origin", ORIGIN),
        ],
        body,
    )
    .await
}

fn get_user(id: &str) -> GetUserRequest {
    GetUserRequest {
        id: id.into(),
        read_mask: None,
    }
}

#[tokio::test]
async fn a_binary_grpc_web_call_gets_its_message_and_the_trailers_in_the_body() {
    let gw = gateway().await;
    let reply = call(&gw, "application/grpc-web+proto", frame(&get_user("2"))).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["content-type"], "application/grpc-web+proto");
    assert_eq!(reply.headers["access-control-allow-origin"], ORIGIN);
    let (messages, trailers) = parse(reply.body);
    assert_eq!(messages.len(), 1);
    let user = User::decode(messages[0].clone()).expect("a User");
    assert_eq!(user.name, "Grace Hopper");
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"), "{trailers:?}");
    gw.stop().await;
}

#[tokio::test]
async fn a_text_grpc_web_call_is_base64_both_ways() {
    let gw = gateway().await;
    let body = Bytes::from(STANDARD.encode(frame(&get_user("3"))));
    let reply = call(&gw, "application/grpc-web-text", body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["content-type"],
        "application/grpc-web-text+proto"
    );
    let (messages, trailers) = parse(from_text(&reply.body));
    let user = User::decode(messages[0].clone()).expect("a User");
    assert_eq!(user.id, "3");
    assert_eq!(trailer(&trailers, "grpc-status"), Some("0"));
    gw.stop().await;
}

#[tokio::test]
async fn an_upstream_error_comes_back_as_the_trailer_frame_of_a_200() {
    let gw = gateway().await;
    let reply = call(&gw, "application/grpc-web+proto", frame(&get_user("999"))).await;
    assert_eq!(reply.status, 200);
    let (messages, trailers) = parse(reply.body);
    assert!(messages.is_empty());
    assert_eq!(trailer(&trailers, "grpc-status"), Some("5"), "{trailers:?}");
    assert!(trailer(&trailers, "grpc-message").is_some_and(|m| m.contains("999")));
    // Not in the head: browsers read the trailers from the body.
    assert!(reply.headers.get("grpc-status").is_none());
    gw.stop().await;
}

#[tokio::test]
async fn malformed_text_is_refused_with_a_status_not_forwarded() {
    let gw = gateway().await;
    let reply = call(
        &gw,
        "application/grpc-web-text",
        Bytes::from("!!!!not base64"),
    )
    .await;
    assert_eq!(reply.status, 200);
    let (_, trailers) = parse(from_text(&reply.body));
    assert_eq!(trailer(&trailers, "grpc-status"), Some("3"), "{trailers:?}");
    assert!(
        trailer(&trailers, "grpc-message").is_some_and(|m| m.contains("base64")),
        "{trailers:?}"
    );
    gw.stop().await;
}

#[tokio::test]
async fn the_cors_preflight_of_a_grpc_web_method_is_answered_by_the_routes_cors() {
    let gw = gateway().await;
    let reply = gw
        .send(
            Method::OPTIONS,
            "/demo.users.v1.UserService/GetUser",
            &[
                ("origin", ORIGIN),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type,x-grpc-web"),
            ],
            Bytes::new(),
        )
        .await;
    assert!(reply.status.is_success(), "{:?}", reply.status);
    assert_eq!(reply.headers["access-control-allow-origin"], ORIGIN);
    let allowed = reply.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-grpc-web"), "{allowed}");
    gw.stop().await;
}

#[tokio::test]
async fn native_grpc_is_refused_on_a_route_that_only_allows_grpc_web() {
    let gw = gateway().await;
    let reply = gw
        .send(
            Method::POST,
            "/demo.users.v1.UserService/GetUser",
            &[("content-type", "application/grpc"), ("te", "trailers")],
            frame(&get_user("1")),
        )
        .await;
    // Over HTTP/1.1 the status can only be in the head (trailers-only).
    assert_eq!(reply.headers["grpc-status"], "12");
    gw.stop().await;
}
