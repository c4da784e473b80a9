//! A scripted gRPC upstream: a raw HTTP/2 server that answers unary calls
//! of any service in a descriptor pool with a handler per method, decoding
//! and encoding with prost-reflect (no generated code), and records every
//! call with its metadata. A call's `x-reply-cache-control` metadata comes
//! back as the reply's `cache-control` metadata. For tests whose upstream behaviour the demo
//! services do not have.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};

/// A method's behaviour: the request in, the reply out.
pub type Handler = Arc<dyn Fn(&DynamicMessage) -> DynamicMessage + Send + Sync>;

/// A method's behaviour that may fail: the reply, or a gRPC status (code,
/// message) sent as trailers only.
pub type Fallible =
    Arc<dyn Fn(&DynamicMessage) -> Result<DynamicMessage, (u8, String)> + Send + Sync>;

/// One call received.
#[derive(Clone)]
pub struct Recorded {
    /// `/pkg.Service/Method`.
    pub path: String,
    pub request: DynamicMessage,
    /// The request's headers (the gRPC metadata).
    pub metadata: http::HeaderMap,
}

type Calls = Arc<Mutex<Vec<Recorded>>>;

/// A running scripted upstream.
pub struct Scripted {
    pub addr: SocketAddr,
    /// Every call, in order.
    pub calls: Calls,
}

impl Scripted {
    /// The requests received for `method` (its name, e.g. `GetThing`).
    pub fn calls_to(&self, method: &str) -> Vec<DynamicMessage> {
        self.recorded(method)
            .into_iter()
            .map(|r| r.request)
            .collect()
    }

    /// The calls received for `method`, with their metadata.
    pub fn recorded(&self, method: &str) -> Vec<Recorded> {
        let suffix = format!("/{method}");
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.ends_with(&suffix))
            .cloned()
            .collect()
    }
}

/// The descriptor pool of `source` (a `.proto` file or a folder of them),
/// compiled as the gateway compiles its protos.
pub fn pool(source: std::path::PathBuf) -> DescriptorPool {
    switchyard::protos::load(&switchyard::protos::ProtoSources {
        sources: vec![source],
        includes: Vec::new(),
    })
    .expect("the test protos compile")
}

/// Starts the upstream; `handlers` by method name (`GetThing`).
pub async fn start(pool: DescriptorPool, handlers: HashMap<&'static str, Handler>) -> Scripted {
    let handlers = handlers
        .into_iter()
        .map(|(name, handler)| {
            let fallible: Fallible = Arc::new(move |req: &DynamicMessage| Ok(handler(req)));
            (name, fallible)
        })
        .collect();
    start_fallible(pool, handlers).await
}

/// Starts the upstream with handlers that may answer a gRPC error.
pub async fn start_fallible(
    pool: DescriptorPool,
    handlers: HashMap<&'static str, Fallible>,
) -> Scripted {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let state = Arc::new((pool, handlers, calls.clone()));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let state = state.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((request, respond))) = conn.accept().await {
                    let state = state.clone();
                    tokio::spawn(async move {
                        let (pool, handlers, calls) = &*state;
                        answer(pool, handlers, calls, request, respond).await;
                    });
                }
            });
        }
    });
    Scripted { addr, calls }
}

async fn answer(
    pool: &DescriptorPool,
    handlers: &HashMap<&'static str, Fallible>,
    calls: &Mutex<Vec<Recorded>>,
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let path = request.uri().path().to_owned();
    let (head, mut body) = request.into_parts();
    let mut data = BytesMut::new();
    while let Some(Ok(chunk)) = body.data().await {
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .expect("a gRPC path");
    let method = pool
        .get_service_by_name(service)
        .and_then(|s| s.methods().find(|m| m.name() == method))
        .unwrap_or_else(|| panic!("unknown method {path}"));
    let input = DynamicMessage::decode(method.input(), &data[5..]).expect("a request message");
    let reply_cache_control = head.headers.get("x-reply-cache-control").cloned();
    calls.lock().unwrap().push(Recorded {
        path: path.clone(),
        request: input.clone(),
        metadata: head.headers,
    });
    let handler = handlers
        .get(method.name())
        .unwrap_or_else(|| panic!("no handler for {path}"));
    let reply = match handler(&input) {
        Ok(reply) => reply,
        Err((code, message)) => {
            let head = http::Response::builder()
                .header("content-type", "application/grpc")
                .header("grpc-status", code.to_string())
                .header("grpc-message", message)
                .body(())
                .unwrap();
            let _ = respond.send_response(head, true);
            return;
        }
    };
    let mut frame = BytesMut::new();
    frame.put_u8(0);
    frame.put_u32(reply.encoded_len() as u32);
    reply.encode(&mut frame).unwrap();
    let mut head = http::Response::builder().header("content-type", "application/grpc");
    // A test can ask for response metadata: `x-reply-cache-control` comes
    // back as `cache-control`.
    if let Some(value) = reply_cache_control {
        head = head.header("cache-control", value);
    }
    let head = head.body(()).unwrap();
    let Ok(mut send) = respond.send_response(head, false) else {
        return;
    };
    let _ = send.send_data(frame.freeze(), false);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let _ = send.send_trailers(trailers);
}
