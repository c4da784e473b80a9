//! Runs the demo services as a separate process, e.g. as the upstreams of a benchmark.
//!
//! Prints one `<service> listening on <addr>` line per service once all listeners are bound
//! (scripts can wait for the third line), then serves until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use switchyard_demo::{Service, spawn};

/// Switchyard's demo gRPC services (users, orders, inventory), in memory.
#[derive(Debug, Parser)]
#[command(name = "switchyard-demo", version)]
struct Args {
    /// Listen address of demo.users.v1.UserService.
    #[arg(long, env = "SWITCHYARD_DEMO_USERS", default_value = "127.0.0.1:50051")]
    users: SocketAddr,
    /// Listen address of demo.orders.v1.OrderService.
    #[arg(
        long,
        env = "SWITCHYARD_DEMO_ORDERS",
        default_value = "127.0.0.1:50052"
    )]
    orders: SocketAddr,
    /// Listen address of demo.inventory.v1.InventoryService.
    #[arg(
        long,
        env = "SWITCHYARD_DEMO_INVENTORY",
        default_value = "127.0.0.1:50053"
    )]
    inventory: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let server = match spawn(args.users, args.orders, args.inventory).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("switchyard-demo: cannot listen: {error}");
            return ExitCode::FAILURE;
        }
    };
    for service in Service::ALL {
        println!("{} listening on {}", service.name(), server.addr(service));
    }
    let result = shutdown_signal().await;
    server.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("switchyard-demo: cannot wait for signals: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM (what `kill` and container runtimes send).
async fn shutdown_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result,
            _ = terminate.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}
