//! REST/JSON ⇄ gRPC transcoding driven by `google.api.http` annotations.
//!
//! - [`http_rule`] reads the annotations, [`path_template`] parses their URL
//!   templates, [`binding`] compiles one binding per method and template;
//! - [`request`] builds the request message (body, then path, then query via
//!   [`field_path`] and [`query`]), [`response`] renders the reply or the error;
//! - [`handler`] is the tower service that ties them to an upstream call;
//!   [`cached`] answers a cached route's GETs from `crate::cache`;
//!   [`stream`] answers server-streaming methods (SSE, NDJSON), [`websocket`]
//!   runs any kind of method over a WebSocket (JSON text frames).

pub mod binding;
pub mod cached;
pub mod duplicates;
pub mod field_path;
pub mod handler;
pub mod http_rule;
pub mod path_template;
pub mod query;
pub mod request;
pub mod response;
pub mod stream;
pub mod websocket;
