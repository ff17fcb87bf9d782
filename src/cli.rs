//! The command line. `main` stays thin; everything here is plain library
//! code that integration tests drive through the real binary.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::policy::Policy;
use crate::proxy::{Gateway, Upstream};
use crate::reload::Live;
use crate::server::Server;

/// dockgate: a mutual-TLS gateway for the Docker Engine API.
///
/// dockgate listens on TCP (2376 by default), requires every client to
/// present a certificate from your CA, and forwards the Docker API to the
/// local daemon socket — including attach, exec and BuildKit streams.
#[derive(Debug, Parser)]
#[command(name = "dockgate", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Docker API over mutual TLS.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Config file (TOML). Without one, built-in defaults apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 0.0.0.0:2376].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Directory with ca.pem, server-cert.pem, server-key.pem (and crl.pem) [default: certs].
    #[arg(long, value_name = "DIR")]
    certs: Option<PathBuf>,
    /// The Docker daemon's socket [default: /var/run/docker.sock].
    #[arg(long, value_name = "PATH")]
    docker_socket: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let result = match cli.command {
        Command::Serve(args) => serve(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dockgate: {e}");
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn serve(args: ServeArgs) -> Result<(), BoxError> {
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(certs) = args.certs {
        config.certs = certs;
    }
    if let Some(socket) = args.docker_socket {
        config.docker_socket = socket;
    }
    run_server(config)
}

fn run_server(config: Config) -> Result<(), BoxError> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let tls = crate::tls::load(&config.certs, &config.client_cas)?;
        let policy = Policy::new(&config)?;
        let audit = AuditLog::open(config.audit.path.as_deref())?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        tracing::info!(
            addr = %listener.local_addr()?,
            certs = %config.certs.display(),
            docker = %config.docker_socket.display(),
            "listening"
        );
        tracing::info!(roles = ?policy.roles.names().collect::<Vec<_>>(), "policy loaded");
        let live = Arc::new(Live::new(tls, policy));
        let server = Server {
            listener,
            live: live.clone(),
            gateway: Gateway::new(
                Upstream::new(config.docker_socket.clone()),
                audit.clone(),
                live,
            ),
            audit,
            limits: config.limits.clone(),
        };
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down");
            stop.cancel();
        });
        server.run(shutdown).await;
        Ok(())
    })
}
