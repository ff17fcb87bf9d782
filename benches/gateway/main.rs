//! `cargo bench --bench gateway [-- --quick] [-- --out DIR]`: dockgate beside its anchors.
//!
//! One run starts a private dockerd (with its own `--tlsverify` listener), dockgate and nginx
//! in front of the same socket, then runs the workloads of issue #12 against every target,
//! interleaved, and writes `report.md` (Markdown tables of medians and ratios) and `chart.svg`
//! to `--out` (default: `$CARGO_TARGET_DIR/bench`, else `target/bench`). It needs root: it
//! starts dockerd and may install docker.io, nginx-light and busybox-static.
//!
//! Flow: check the machine → issue the PKI → start the daemon and its fixtures → start the
//! proxies → run the workloads → stop everything → write the report.

mod anchors;
mod chart;
mod client;
mod fixtures;
mod proc;
mod report;
// The test support's program lookup and apt installs, shared rather than written twice.
#[path = "../../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;
mod workloads;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use std::{env, fs};

use anchors::{Daemon, Kind, Launcher, Pki, Target};
use client::{Endpoint, Error};
use fixtures::Fixtures;
use workloads::{Bench, Settings};

/// Scratch space of one run (PKI, configs, logs), replaced at each start.
const WORK_DIR: &str = "/tmp/dockgate-bench-run";
/// Descriptors the client needs besides its idle connections.
const SPARE_FDS: u64 = 1024;

struct Args {
    quick: bool,
    out: PathBuf,
}

fn parse_args() -> Result<Args, Error> {
    let default_out = env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("bench");
    let mut args = Args {
        quick: false,
        out: default_out,
    };
    let mut it = env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            // cargo passes `--bench` to benchmarks with `harness = false`.
            "--bench" => {}
            "--quick" => args.quick = true,
            "--out" => args.out = it.next().ok_or("--out needs a directory")?.into(),
            other => {
                return Err(format!("unknown argument {other:?}; use [--quick] [--out DIR]").into())
            }
        }
    }
    Ok(args)
}

fn settings(quick: bool) -> Settings {
    if quick {
        Settings {
            rounds: 3,
            window: Duration::from_millis(400),
            bulk: 32 << 20,
            idle_conns: vec![500],
            idle_sessions: 100,
        }
    } else {
        Settings {
            rounds: 3,
            window: Duration::from_secs(3),
            bulk: 256 << 20,
            idle_conns: vec![1000, 10_000],
            idle_sessions: 1000,
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard one, which the targets started from here
/// inherit; fails if that cannot hold the most idle connections a workload opens.
fn raise_nofile(settings: &Settings) -> Result<u64, Error> {
    let needed = settings.idle_conns.iter().max().copied().unwrap_or(0) as u64 + SPARE_FDS;
    let (soft, hard) = rlimit::Resource::NOFILE.get()?;
    if hard < needed {
        return Err(format!(
            "the hard RLIMIT_NOFILE is {hard}; the idle-connection workload needs {needed}"
        )
        .into());
    }
    if soft < hard {
        rlimit::Resource::NOFILE.set(hard, hard)?;
    }
    Ok(hard)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Error> {
    let args = parse_args()?;
    let command = format!(
        "cargo bench --bench gateway{}",
        if args.quick { " -- --quick" } else { "" }
    );
    if !support::dockerd::is_root() {
        return Err("the gateway bench starts its own dockerd and must run as root".into());
    }
    let settings = settings(args.quick);
    let nofile = raise_nofile(&settings)?;
    anchors::ensure_installed("dockerd", "docker.io")?;
    anchors::ensure_installed("nginx", "nginx-light")?;
    let began = Instant::now();

    let work = PathBuf::from(WORK_DIR);
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    anchors::stage_dockgate(&work)?;
    let pki = Pki::issue(&work)?;
    eprintln!("starting the bench dockerd under {}", anchors::DAEMON_DIR);
    let daemon = Daemon::start(&pki).await?;
    let socket = Endpoint::Unix(daemon.socket.clone());
    let fixtures = Fixtures::create(socket.clone(), &work, settings.bulk).await?;
    eprintln!("starting dockgate and nginx");
    let launcher = Launcher {
        pki: &pki,
        work: &work,
        socket: &daemon.socket,
        nofile,
    };
    let dockgate = launcher.start(Kind::Dockgate, "main").await?;
    let nginx = launcher.start(Kind::Nginx, "main").await?;
    let targets = [
        dockgate.target(&pki.admin)?,
        nginx.target(&pki.admin)?,
        Target {
            kind: Kind::DockerdTls,
            admin: Endpoint::Tls {
                addr: daemon.tls_addr,
                config: client::tls_config(&pki.admin, false)?,
            },
            proxy: None,
        },
        Target {
            kind: Kind::Socket,
            admin: socket.clone(),
            proxy: None,
        },
    ];
    let mut bench = Bench {
        targets: &targets,
        daemon: daemon.procs(),
        fixtures: &fixtures,
        socket: socket.clone(),
        launcher: &launcher,
        dockgate_ci: Endpoint::Tls {
            addr: dockgate.addr(),
            config: client::tls_config(&pki.ci, false)?,
        },
        dockgate_admin: targets[0].admin.clone(),
        settings,
        results: Default::default(),
    };
    eprintln!("running the workloads");
    bench.run_all().await?;
    let Bench {
        settings, results, ..
    } = bench;
    fixtures.remove().await?;
    drop((nginx, dockgate, daemon));

    let ctx = report::Context::gather(command);
    let mut md = report::render(&ctx, &settings, &results);
    md.push_str(&format!(
        "The run took {:.1} minutes.\n",
        began.elapsed().as_secs_f64() / 60.0
    ));
    let svg = chart::render(
        &results,
        &format!("{}, {} ({})", ctx.date, ctx.cpu_model, ctx.command),
    );
    report::write(&args.out, "report.md", &md)?;
    report::write(&args.out, "chart.svg", &svg)?;
    println!("{md}");
    eprintln!(
        "wrote {} and {}",
        args.out.join("report.md").display(),
        args.out.join("chart.svg").display()
    );
    Ok(())
}
