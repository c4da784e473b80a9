//! The `switchyard` command.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard::{app, config, runtime::Runtime};

/// mimalloc instead of glibc malloc: the request path allocates many small,
/// short-lived objects across threads, where glibc's arenas cost ~10% of CPU.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Switchyard: an API gateway that exposes gRPC services as REST/JSON, driven
/// by their .proto files and google.api.http annotations.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log filter, e.g. `info` or `switchyard=debug` (also RUST_LOG). The
    /// default quiets rskafka, which logs each internal retry at info.
    #[arg(
        long,
        global = true,
        env = "RUST_LOG",
        default_value = "info,rskafka=warn"
    )]
    log: String,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a config file. The file (and its protos) is
    /// watched and reloaded without a restart; SIGHUP reloads too.
    Run {
        /// The YAML config file.
        #[arg(short, long, default_value = "config/gateway.yaml")]
        config: PathBuf,
        /// Refuse a reload that stops exposing a method the running config
        /// exposes (as `reload.strict: true`).
        #[arg(long)]
        strict_reload: bool,
    },
    /// Start the sample users, orders and inventory gRPC services on
    /// 127.0.0.1:50051-50053 and the gateway in front of them on :8080
    /// (admin on :9090). Try: curl http://127.0.0.1:8080/v1/users/1
    Demo {
        /// The gateway config for the demo.
        #[arg(short, long, default_value = "config/gateway.yaml")]
        config: PathBuf,
        /// As for `run`.
        #[arg(long)]
        strict_reload: bool,
    },
    /// Check a config file (YAML, types, protos, routes) without starting.
    /// Prints the file, line and column of the first problem and exits 1.
    Validate {
        /// The YAML config file.
        config: PathBuf,
    },
    /// Print the JSON Schema of the config file (or write it with --out).
    Schema {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The Markdown configuration reference instead (docs/configuration.md).
        #[arg(long)]
        reference: bool,
    },
    /// Print the OpenAPI 3.1 document of a config's REST routes, generated
    /// from the protos (or write it with --out).
    Openapi {
        /// The YAML config file.
        #[arg(short, long, default_value = "config/gateway.yaml")]
        config: PathBuf,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// GraphQL tools (see docs/graphql.md).
    Graphql {
        #[command(subcommand)]
        command: GraphqlCommand,
    },
    /// The event outbox: what waits per sink, what was dead-lettered. Asks
    /// the running gateway's admin listener, or reads the outbox file of a
    /// stopped one (see docs/events.md).
    Events {
        /// The YAML config file.
        #[arg(short, long, default_value = "config/gateway.yaml", global = true)]
        config: PathBuf,
        /// The admin listener (`host:port`); the config's `admin.address`
        /// when omitted.
        #[arg(long, global = true)]
        admin: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long, global = true)]
        json: bool,
        #[command(subcommand)]
        command: EventsCommand,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Events waiting per sink, the oldest one's age, dead letters kept.
    Status,
    /// A sink's newest dead letters: id, reason, times and the event.
    Dead {
        /// The sink (a key of `events.sinks`).
        sink: String,
        /// At most this many, newest first.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum GraphqlCommand {
    /// Print the SDL of the GraphQL schema generated from a config's protos
    /// and routes (with the `graphql:` defaults when the config has none).
    Schema {
        /// The YAML config file.
        #[arg(short, long, default_value = "config/gateway.yaml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // `tracing:` is bound at start: read before the subscriber is set.
        let spans = match &cli.command {
            Command::Run { config, .. } | Command::Demo { config, .. } => config::load(config)
                .ok()
                .and_then(|loaded| loaded.config.tracing),
            _ => None,
        };
        let provider = match init_tracing(&cli.log, spans.as_ref()) {
            Ok(provider) => provider,
            Err(e) => return fail(&e),
        };
        let code = match cli.command {
            Command::Run {
                config,
                strict_reload,
            } => run(&config, options(strict_reload)).await,
            Command::Demo {
                config,
                strict_reload,
            } => demo(&config, options(strict_reload)).await,
            Command::Validate { config } => validate(&config).await,
            Command::Schema { out, reference } => schema(out.as_deref(), reference),
            Command::Openapi { config, out } => openapi(&config, out.as_deref()).await,
            Command::Graphql {
                command: GraphqlCommand::Schema { config },
            } => graphql_schema(&config).await,
            Command::Events {
                config,
                admin,
                json,
                command,
            } => events(&config, admin.as_deref(), json, command).await,
        };
        if let Some(provider) = provider {
            // Sends the spans still queued.
            let _ = provider.shutdown();
        }
        code
    })
}

/// Logs to stdout, filtered by `--log`; with `tracing:`, spans exported
/// over OTLP too (the provider to shut down at exit).
fn init_tracing(
    filter: &str,
    spans: Option<&config::tracing::TracingConfig>,
) -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, String> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: logs piped to files or collectors stay plain.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout())
        && std::env::var_os("NO_COLOR").is_none();
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let logs = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(ansi)
        .with_filter(filter);
    let (otel, provider) = match spans {
        Some(config) => {
            let (layer, provider) = switchyard::observability::otel::layer(config)?;
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    tracing_subscriber::registry().with(otel).with(logs).init();
    Ok(provider)
}

fn options(strict_reload: bool) -> app::StartOptions {
    app::StartOptions { strict_reload }
}

async fn run(path: &Path, options: app::StartOptions) -> ExitCode {
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    match app::start_with(loaded, options).await {
        Ok(running) => {
            running.run_until_signal().await;
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

async fn demo(path: &Path, options: app::StartOptions) -> ExitCode {
    let addr = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let services = match switchyard_demo::spawn(addr(50051), addr(50052), addr(50053)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the demo services on 127.0.0.1:50051-50053: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(users = %services.users, orders = %services.orders, inventory = %services.inventory, "demo services up");
    let code = run(path, options).await;
    services.shutdown().await;
    code
}

async fn validate(path: &Path) -> ExitCode {
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let routes = loaded.config.routes.len();
    let proxies = loaded.config.proxies.len();
    match Runtime::check(loaded).await {
        Ok(runtime) => {
            let proxies = match proxies {
                0 => String::new(),
                n => format!(", {n} proxies"),
            };
            println!(
                "{}: ok ({} routes, {} HTTP bindings{proxies})",
                path.display(),
                routes,
                runtime.table.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn schema(out: Option<&Path>, reference: bool) -> ExitCode {
    let text = if reference {
        config::reference::markdown()
    } else {
        config::json_schema_text()
    };
    match out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}

async fn openapi(path: &Path, out: Option<&Path>) -> ExitCode {
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let title = loaded
        .config
        .openapi
        .as_ref()
        .map_or_else(|| "Switchyard API".to_owned(), |o| o.title.clone());
    let runtime = match Runtime::check(loaded).await {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    let document = switchyard::openapi::document(&runtime, &title);
    let text = serde_json::to_string_pretty(&document).expect("a JSON value serializes") + "\n";
    match out {
        Some(out) => match std::fs::write(out, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("{}: {e}", out.display())),
        },
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
    }
}

async fn graphql_schema(path: &Path) -> ExitCode {
    let mut loaded = match config::load(path) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    loaded.config.graphql.get_or_insert_with(Default::default);
    match Runtime::check(loaded).await {
        Ok(runtime) => match &runtime.graphql {
            Some(graphql) => {
                print!("{}", graphql.schema.sdl());
                ExitCode::SUCCESS
            }
            None => fail(&"the config has no GraphQL endpoint"),
        },
        Err(e) => fail(&e),
    }
}

async fn events(path: &Path, admin: Option<&str>, json: bool, command: EventsCommand) -> ExitCode {
    use switchyard::events::inspect::{self, Query};
    let loaded = match config::load(path) {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let query = match command {
        EventsCommand::Status => Query::Status,
        EventsCommand::Dead { sink, limit } => Query::Dead { sink, limit },
    };
    match inspect::query(&loaded, admin, &query).await {
        Ok(answer) => {
            match (&query, json) {
                (Query::Status, false) => print!("{}", inspect::status_table(&answer)),
                _ => println!(
                    "{}",
                    serde_json::to_string_pretty(&answer).unwrap_or_default()
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
