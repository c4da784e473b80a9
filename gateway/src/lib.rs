//! Switchyard: a multi-protocol API gateway that transcodes REST/JSON into
//! calls on gRPC services, driven by their `.proto` files loaded at run time.
//!
//! The request path, outside in: [`edge`] (listeners, HTTP/1.1 + h2c) →
//! [`routing`] (method + path template → binding) → the route's plugin stack
//! (`switchyard_plugins`) → [`transcode`] (JSON ⇄ protobuf) → [`upstream`]
//! (tonic channels). [`runtime`] compiles a config version into all of that;
//! [`app`] starts and stops a gateway.

pub mod admin;
pub mod app;
pub mod cache;
pub mod config;
pub mod edge;
pub mod events;
pub mod graphql;
pub mod grpc;
pub mod observability;
pub mod openapi;
pub mod pem;
pub mod protos;
pub mod proxy;
pub mod reload;
pub mod routing;
pub mod runtime;
pub mod transcode;
pub mod upstream;
pub mod webhooks;
