//! The webhook client's TCP connector: resolves the host once, has the
//! SSRF guard check every address, then connects to a checked address
//! itself. Nothing resolves the name a second time between the check and
//! the connection, so a DNS answer that changes in between (DNS rebinding)
//! cannot slip a private address past the guard. TLS, when the URL is
//! `https`, is layered on top of this (the `tls` module), so the server
//! name checked in the certificate is still the URL's host.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ssrf::{Guard, Host, parse_host};

/// Connects to the checked addresses of a URI's host.
#[derive(Clone, Debug)]
pub struct GuardedConnector {
    guard: Arc<Guard>,
    /// For name resolution and the TCP connection together.
    connect_timeout: Duration,
}

/// Why no connection was made.
#[derive(Debug)]
pub enum ConnectError {
    /// The SSRF guard refused an address the host is or resolves to.
    Blocked(String),
    /// The name did not resolve, or no address accepted a connection.
    Failed(String),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Blocked(m) => write!(f, "target refused by the SSRF guard: {m}"),
            ConnectError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ConnectError {}

impl GuardedConnector {
    pub fn new(guard: Arc<Guard>, connect_timeout: Duration) -> GuardedConnector {
        GuardedConnector {
            guard,
            connect_timeout,
        }
    }

    async fn connect(self, uri: Uri) -> Result<TokioIo<TcpStream>, ConnectError> {
        let deadline = Instant::now() + self.connect_timeout;
        let addrs = tokio::time::timeout_at(deadline, self.resolve(&uri))
            .await
            .map_err(|_| {
                ConnectError::Failed(format!(
                    "resolving {:?} took longer than the connect timeout ({:?})",
                    uri.host().unwrap_or_default(),
                    self.connect_timeout
                ))
            })??;
        connect_any(&addrs, deadline).await
    }

    /// The host's addresses, every one of them allowed by the guard.
    async fn resolve(&self, uri: &Uri) -> Result<Vec<SocketAddr>, ConnectError> {
        let host = uri
            .host()
            .ok_or_else(|| ConnectError::Failed(format!("{uri} has no host")))?;
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        let addrs: Vec<SocketAddr> = match parse_host(host).map_err(ConnectError::Blocked)? {
            Host::Ip(ip) => vec![SocketAddr::new(ip, port)],
            Host::Name(name) => tokio::net::lookup_host((name.as_str(), port))
                .await
                .map_err(|e| ConnectError::Failed(format!("cannot resolve {name:?}: {e}")))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(ConnectError::Failed(format!(
                "{host:?} resolves to no address"
            )));
        }
        // All or nothing: a name answering with a public and a private
        // address is how rebinding attacks are staged.
        for addr in &addrs {
            self.guard.check(addr.ip()).map_err(|blocked| {
                ConnectError::Blocked(if host.trim_matches(['[', ']']) == addr.ip().to_string() {
                    blocked.to_string()
                } else {
                    format!(
                        "{host} resolves to {}, which {}",
                        blocked.ip,
                        blocked.which()
                    )
                })
            })?;
        }
        Ok(addrs)
    }
}

/// Connects to the first of `addrs` that accepts by `deadline`, each
/// getting an equal share of the time left so one black hole does not
/// use it all.
async fn connect_any(
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<TokioIo<TcpStream>, ConnectError> {
    let mut errors = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        match tokio::time::timeout(share, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Small request/response exchanges: no Nagle delay.
                let _ = stream.set_nodelay(true);
                return Ok(TokioIo::new(stream));
            }
            Ok(Err(e)) => errors.push(format!("{addr}: {e}")),
            Err(_) => errors.push(format!("{addr}: no connection within {share:?}")),
        }
    }
    Err(ConnectError::Failed(format!(
        "cannot connect: {}",
        errors.join("; ")
    )))
}

impl tower::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = BoxFuture<'static, Result<Self::Response, ConnectError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect(uri))
    }
}

/// The [`ConnectError`] behind a client error, if there is one (hyper and
/// the TLS layer wrap it).
pub fn find_connect_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ConnectError> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<ConnectError>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}
