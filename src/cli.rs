//! The command line. `main` stays thin; everything here is plain library
//! code that integration tests drive through the real binary.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};

use crate::admin::Admin;
use crate::audit::AuditLog;
use crate::config::{parse_listen, Config};
use crate::drain::Drain;
use crate::limits::{ConnectionLimits, InspectBudget};
use crate::logging::LogFormat;
use crate::pipeline::rate::RequestRates;
use crate::pipeline::Gateway;
use crate::pki;
use crate::policy::records::{reconcile, Records};
use crate::policy::Policy;
use crate::proxy::Upstream;
use crate::reload::{Live, Reloader};
use crate::renewal::Renewer;
use crate::server::Server;

/// dockgate: a mutual-TLS gateway for the Docker Engine API.
///
/// dockgate listens on TCP (2376 by default) and requires every client to
/// present a certificate from your CA. It maps each certificate to a role,
/// checks every request against that role's policy, and forwards what is
/// allowed to the local daemon socket, attach, exec and BuildKit streams
/// included.
///
/// Start with `dockgate quickstart`; see `dockgate pki --help` to issue,
/// revoke and rotate certificates.
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
    /// Make a development PKI in ./certs if there is none, then serve.
    ///
    /// Creates a CA, a server certificate for localhost, 127.0.0.1 and this
    /// host's name, and an `admin` client in certs/clients/admin; prints the
    /// environment and `docker context` lines to use it; then serves with
    /// the shipped configuration.
    Quickstart(QuickstartArgs),
    /// Manage the certificate authority and client certificates.
    Pki {
        #[command(subcommand)]
        command: crate::pki::PkiCommand,
    },
    /// Renew this client's certificate through the gateway.
    ///
    /// Makes a new key, authenticates with the current certificate, sends a
    /// CSR for the new key, and replaces key.pem, cert.pem and ca.pem in
    /// DIR. The new certificate has the same name and role and no longer a
    /// lifetime; the one it replaces is then revoked. Run it from cron or a
    /// CI job well before expiry.
    Renew {
        /// The DOCKER_CERT_PATH directory holding ca.pem, cert.pem, key.pem.
        #[arg(
            long,
            value_name = "DIR",
            env = "DOCKER_CERT_PATH",
            required_unless_present = "context"
        )]
        cert_path: Option<PathBuf>,
        /// The gateway, as tcp://HOST:PORT.
        #[arg(
            long,
            value_name = "URL",
            env = "DOCKER_HOST",
            required_unless_present = "context"
        )]
        host: Option<String>,
        /// Renew the certificate a docker context holds (as `docker context
        /// import` stored it, under DOCKER_CONFIG or ~/.docker), in place:
        /// the context keeps working, with the new certificate.
        #[arg(long, value_name = "NAME", conflicts_with_all = ["cert_path", "host"])]
        context: Option<String>,
        /// Renew only when the certificate expires within DURATION (7d,
        /// 36h, 90m, 2w); otherwise change nothing and exit 0, so a cron job
        /// or a pipeline step can run it every time.
        #[arg(long, value_name = "DURATION", value_parser = crate::renewal::parse_duration)]
        expires_in: Option<std::time::Duration>,
    },
    /// Show a running gateway's status: reloads, certificate expiries,
    /// open sessions by identity. Reads the admin listener's /status.
    Status {
        /// The admin listener.
        #[arg(
            long,
            value_name = "ADDR",
            env = "DOCKGATE_ADMIN",
            default_value = "127.0.0.1:9376"
        )]
        admin: String,
    },
    /// Validate and explain the policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Show configuration.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the manual page (roff) to standard output.
    ///
    /// Install it with e.g. `dockgate man > /usr/local/share/man/man1/dockgate.1`.
    Man,
    /// Print a shell completion script to standard output.
    ///
    /// For bash: `dockgate completions bash > /etc/bash_completion.d/dockgate`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the built-in configuration (config/dockgate.toml), every setting
    /// documented; a starting point for /etc/dockgate/dockgate.toml.
    Default,
}

#[derive(Debug, clap::Args)]
struct QuickstartArgs {
    /// Directory for the development PKI.
    #[arg(long, value_name = "DIR", default_value = "certs")]
    certs: PathBuf,
    /// Address to listen on (`:2376` and `localhost:2376` work too).
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:2376", value_parser = parse_listen)]
    listen: SocketAddr,
    /// Another name or address for the server certificate, beside
    /// localhost, 127.0.0.1 and this host's name (repeatable). Applies when
    /// the development PKI is made.
    #[arg(long, value_name = "NAME_OR_IP")]
    san: Vec<String>,
    /// The Docker daemon's socket.
    #[arg(long, value_name = "PATH", default_value = crate::config::DEFAULT_DOCKER_SOCKET)]
    docker_socket: PathBuf,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check that a config file parses and its roles are valid.
    Check {
        /// Config file; the shipped default when omitted.
        #[arg(long, value_name = "FILE", env = "DOCKGATE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Show what dockgate would decide for one request, without a daemon.
    ///
    /// Ownership checks are assumed to pass: the answer is what a client of
    /// ROLE gets for its own objects.
    Explain {
        #[arg(long, value_name = "FILE", env = "DOCKGATE_CONFIG")]
        config: Option<PathBuf>,
        /// The role to decide for.
        #[arg(long)]
        role: String,
        /// HTTP method, e.g. POST.
        method: http::Method,
        /// Request target, e.g. /v1.41/containers/create?name=web.
        path: http::Uri,
        /// Request body to inspect (JSON).
        #[arg(long, value_name = "FILE")]
        body: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct ServeArgs {
    /// Config file (TOML). Without one, the shipped config applies (roles
    /// admin, ci and readonly; see config/dockgate.toml).
    #[arg(long, value_name = "FILE", env = "DOCKGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 0.0.0.0:2376, :2376 or localhost:2376
    /// [default: 0.0.0.0:2376].
    #[arg(long, value_name = "ADDR", env = "DOCKGATE_LISTEN", value_parser = parse_listen)]
    listen: Option<SocketAddr>,
    /// Directory with ca.pem, server-cert.pem, server-key.pem (and crl.pem) [default: certs].
    #[arg(long, value_name = "DIR", env = "DOCKGATE_CERTS")]
    certs: Option<PathBuf>,
    /// The Docker daemon's socket [default: /var/run/docker.sock].
    #[arg(long, value_name = "PATH")]
    docker_socket: Option<PathBuf>,
    /// Address of the admin listener (/metrics, /healthz, /status)
    /// [default: 127.0.0.1:9376].
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Service log format, one line per event [default: the config's log_format, text].
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_format = cli.log_format();
    crate::logging::init(log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Quickstart(args) => quickstart(args),
        Command::Pki { command } => crate::pki::run(command).map_err(Into::into),
        Command::Policy { command } => policy(command),
        Command::Renew {
            cert_path,
            host,
            context,
            expires_in,
        } => match (context, cert_path, host) {
            (Some(name), _, _) => crate::renewal::context_certs(&name)
                .map_err(Into::into)
                .and_then(|(certs, host)| {
                    renew(&certs, &host, crate::renewal::Save::Exchange, expires_in)
                }),
            (None, Some(cert_path), Some(host)) => {
                renew(&cert_path, &host, crate::renewal::Save::Swap, expires_in)
            }
            _ => Err("pass --context NAME, or --cert-path DIR and --host URL".into()),
        },
        Command::Status { admin } => crate::admin::print_status(&admin).map_err(Into::into),
        Command::Config {
            command: ConfigCommand::Default,
        } => {
            print!("{}", crate::config::SHIPPED);
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(Into::into),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "dockgate",
                &mut std::io::stdout(),
            );
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = crate::logging::one_line(&e.to_string());
            match log_format {
                LogFormat::Text => eprintln!("dockgate: {e}"),
                LogFormat::Json => tracing::error!(error = %e, "dockgate failed"),
            }
            ExitCode::FAILURE
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Cli {
    /// `serve --log-format`, else the config file's `log_format` when it
    /// reads, else text.
    fn log_format(&self) -> LogFormat {
        let Command::Serve(args) = &self.command else {
            return LogFormat::Text;
        };
        args.log_format.unwrap_or_else(|| {
            args.config
                .as_deref()
                .and_then(|path| Config::load(path).ok())
                .map_or(LogFormat::Text, |config| config.log_format)
        })
    }
}

fn serve(args: ServeArgs) -> Result<(), BoxError> {
    let config = serve_config(&args)?;
    run_server(config, args.config.clone(), move || {
        serve_config(&args).map_err(|e| e.to_string())
    })
}

/// The config file (or the shipped default) with the flags applied.
fn serve_config(args: &ServeArgs) -> Result<Config, BoxError> {
    let mut config = load_config(args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(certs) = &args.certs {
        config.certs = certs.clone();
    }
    if let Some(socket) = &args.docker_socket {
        config.docker_socket = socket.clone();
    }
    if let Some(admin) = args.admin_listen {
        config.admin.listen = admin;
    }
    Ok(config)
}

fn load_config(path: Option<&std::path::Path>) -> Result<Config, BoxError> {
    Ok(match path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    })
}

fn quickstart(args: QuickstartArgs) -> Result<(), BoxError> {
    let dir = &args.certs;
    let layout = pki::Layout::new(dir);
    let admin = layout.client("admin").dir().to_owned();
    if !layout.bundle().exists() {
        pki::init(dir, &pki::InitOptions::default())?;
        let mut sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        sans.extend(hostname());
        sans.extend(args.san.iter().cloned());
        pki::issue_server(dir, &pki::ServerRequest::new(sans))?;
        pki::issue_client(dir, &pki::ClientRequest::new("admin", "admin"))?.write_to(&admin)?;
        println!("Created a development PKI in {}", dir.display());
    }
    let cert_path = std::fs::canonicalize(&admin).unwrap_or(admin);
    let port = args.listen.port();
    println!(
        "\nUse it from this machine:\n\n  export DOCKER_HOST=tcp://127.0.0.1:{port} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={}\n  docker version\n\nor as a docker context:\n\n  docker context create dockgate --docker \"host=tcp://127.0.0.1:{port},ca={p}/ca.pem,cert={p}/cert.pem,key={p}/key.pem\"\n  docker --context dockgate version\n",
        cert_path.display(),
        p = cert_path.display(),
    );
    let config = Config {
        certs: args.certs,
        listen: args.listen,
        docker_socket: args.docker_socket,
        ..Config::default()
    };
    let again = config.clone();
    run_server(config, None, move || Ok(again.clone()))
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    let dns_name = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (dns_name && name != "localhost").then(|| name.to_owned())
}

fn renew(
    cert_path: &std::path::Path,
    host: &str,
    save: crate::renewal::Save,
    expires_in: Option<std::time::Duration>,
) -> Result<(), BoxError> {
    if let Some(within) = expires_in {
        if let Some(not_after) = crate::renewal::not_due(cert_path, within)? {
            println!(
                "Not renewed: {} is valid until {not_after}, later than the --expires-in window",
                cert_path.display()
            );
            return Ok(());
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let certificate = runtime.block_on(crate::renewal::renew(cert_path, host, save))?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(certificate.as_bytes())?;
    let cert = pem.parse_x509()?;
    println!(
        "Renewed {}: serial {}, valid until {}",
        cert_path.display(),
        crate::pki::serial_hex(cert.raw_serial()),
        cert.validity().not_after
    );
    Ok(())
}

fn policy(command: PolicyCommand) -> Result<(), BoxError> {
    match command {
        PolicyCommand::Check { config } => {
            let config = load_config(config.as_deref())?;
            let policy = Policy::new(&config)?;
            println!(
                "ok: roles {}",
                policy.roles.names().collect::<Vec<_>>().join(", ")
            );
            Ok(())
        }
        PolicyCommand::Explain {
            config,
            role,
            method,
            path,
            body,
        } => {
            let config = load_config(config.as_deref())?;
            let policy = Policy::new(&config)?;
            let body = body.map(std::fs::read).transpose()?;
            let explained = tokio::runtime::Builder::new_current_thread()
                .build()?
                .block_on(crate::policy::explain::explain(
                    &policy, &role, &method, &path, body,
                ))?;
            print!("{explained}");
            if explained.allowed {
                Ok(())
            } else {
                Err("denied".into())
            }
        }
    }
}

/// The runtime connections are served on: `workers` threads, or one per
/// CPU the process may use (its affinity and cgroup quota) when 0. More
/// threads than CPUs only add context switches under load.
fn serving_runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder.enable_all().build()
}

/// Serves `config`; `reload` produces the config again for each reload,
/// and `config_file` is watched for changes.
fn run_server(
    config: Config,
    config_file: Option<PathBuf>,
    reload: impl Fn() -> Result<Config, String> + Send + Sync + 'static,
) -> Result<(), BoxError> {
    let runtime = serving_runtime(config.workers)?;
    runtime.block_on(async move {
        raise_file_limit(config.limits.connections);
        let tls = crate::tls::load(&config.certs, &config.client_cas)?;
        if !pki::Layout::new(&config.certs).crl().exists() {
            tracing::warn!(
                crl = %pki::Layout::new(&config.certs).crl().display(),
                "no CRL: revocation is off until `dockgate pki revoke` or `dockgate pki refresh-crl` writes one"
            );
        }
        let policy = Policy::new(&config)?;
        let audit = AuditLog::open(&config.audit)?;
        tokio::spawn(audit.clone().reopen_on_sigusr1());
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
        let admin_listener = tokio::net::TcpListener::bind(config.admin.listen)
            .await
            .map_err(|e| {
                format!(
                    "cannot listen for the admin endpoints on {}: {e}",
                    config.admin.listen
                )
            })?;
        tracing::info!(addr = %admin_listener.local_addr()?, "admin endpoints: /metrics /healthz /status");
        let records = Arc::new(Records::open(&config.records_path()).map_err(|e| {
            format!(
                "cannot open the ownership records {}: {e}",
                config.records_path().display()
            )
        })?);
        let upstream = Upstream::new(config.docker_socket.clone());
        let admin_upstream = upstream.clone();
        tokio::spawn(reconcile(records.clone(), upstream.clone()));
        let live = Arc::new(Live::new(tls, policy));
        let server = Server {
            listener,
            live: live.clone(),
            gateway: Gateway::new(
                live.clone(),
                upstream,
                audit,
                Arc::new(Renewer::new(config.certs.clone())),
                InspectBudget::new(config.limits.inspect_memory),
                records,
                RequestRates::new(&config.limits),
            ),
            limits: config.limits.clone(),
            connections: ConnectionLimits::new(&config.limits),
        };
        let drain = Drain::new();
        let admin = Admin::new(live.clone(), admin_upstream, drain.clone());
        tokio::spawn(admin.run(admin_listener));
        let reloader = Reloader::new(live, config.clone(), reload);
        tokio::spawn(reloader.watch(config_file));
        let mut stop = Stop::new()?;
        crate::notify::ready();
        tokio::spawn(crate::notify::watchdog());
        tokio::select! {
            () = server.run(drain.clone()) => {}
            () = stop.next() => {}
        }
        tracing::info!(grace = ?config.shutdown_grace, "draining: no new connections");
        crate::notify::stopping();
        drain.start();
        tokio::select! {
            ended = drain.drained(config.shutdown_grace) => {
                if ended {
                    tracing::info!("drained: every connection ended");
                } else {
                    tracing::warn!("shutdown grace over: closing what is left");
                }
            }
            () = stop.next() => tracing::warn!("second signal: stopping now"),
        }
        Ok(())
    })
}

/// SIGTERM and SIGINT, which stop the service.
struct Stop {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl Stop {
    fn new() -> std::io::Result<Stop> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Stop {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}

/// Raises the open-file limit to its hard limit: every connection, its
/// daemon connection and the audit file need descriptors, and running out
/// would refuse everyone. Warns when `limits.connections` does not fit.
fn raise_file_limit(connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            // A client connection can hold two descriptors (it and its
            // daemon connection), plus a margin for files and listeners.
            let needed = connections as u64 * 2 + 64;
            if limit < needed {
                tracing::warn!(open_files = limit, connections, "limits.connections needs about {needed} open files; raise LimitNOFILE or lower limits.connections");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}
