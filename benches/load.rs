//! The long load run of issue #12: many concurrent mutual-TLS clients driving the mixed workload
//! of `tests/support/load.rs` through a release-built gateway to the test daemon, then a Markdown
//! report: errors by kind, operations with p50/p99, the gateway's RSS, descriptors and CPU over
//! time, and what is left once the clients are gone.
//!
//! ```text
//! cargo bench --bench load -- --clients 1000 --duration 600s [--report load-report.md]
//! ```
//!
//! Exits non-zero on any error, on containers left behind, or if the gateway's descriptors do not
//! return to (about) their level before the run.

use std::process::ExitCode;
use std::time::Duration;
use std::{env, fs};

// The gateway fixture, PKI, test image and the load mix, as the end-to-end suite has them; the
// bench uses only part of that support.
#[path = "../tests/support/mod.rs"]
#[allow(dead_code)]
mod support;

use support::gateway::Gateway;
use support::load::{fds_after_settling, raise_fd_limit, Fds, Load, Plan, FD_SLACK};

const USAGE: &str = "usage: cargo bench --bench load -- [--clients N] [--duration 600s|10m] \
                     [--report FILE]";
/// How long closed connections may take to be torn down after the run.
const SETTLE: Duration = Duration::from_secs(60);

struct Args {
    clients: usize,
    duration: Duration,
    report: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut parsed = Args {
        clients: 1000,
        duration: Duration::from_secs(600),
        report: None,
    };
    let mut args = env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--clients" => {
                parsed.clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?
            }
            "--duration" => parsed.duration = parse_duration(&value()?)?,
            "--report" => parsed.report = Some(value()?),
            // cargo bench passes it to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if parsed.clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    Ok(parsed)
}

/// "600", "600s" or "10m".
fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.strip_suffix('m') {
        Some(n) => (n, 60),
        None => (text.strip_suffix('s').unwrap_or(text), 1),
    };
    number
        .parse::<u64>()
        .map(|n| Duration::from_secs(n * unit))
        .map_err(|e| format!("--duration {text}: {e}"))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(why) => {
            eprintln!("{why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Two sockets per client on this side, as many on the gateway's, which inherits the limit.
    raise_fd_limit(4 * args.clients as u64 + 1024);
    let gw = Gateway::start();
    let plan = Plan::new(args.clients, args.duration);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    eprintln!(
        "load: {} clients for {:?} against dockgate (pid {})",
        plan.clients,
        plan.duration,
        gw.pid()
    );
    let load = match rt.block_on(Load::start(&gw, &plan)) {
        Ok(load) => load,
        Err(f) => {
            eprintln!("setting up the load run: {f}");
            return ExitCode::FAILURE;
        }
    };
    let Some(baseline) = Fds::of(gw.pid()) else {
        eprintln!("the gateway exited");
        return ExitCode::FAILURE;
    };
    let report = rt.block_on(load.run(&plan, gw.pid()));
    let stop_failures = rt.block_on(load.stop());
    drop(rt);

    // Client connections must all close and nothing else stay open; idle daemon connections
    // are the gateway's pool, reported.
    let settled = |fds: &Fds| fds.tcp == 0 && fds.other() <= baseline.other() + FD_SLACK;
    let fds = fds_after_settling(gw.pid(), settled, SETTLE);
    let left = load.leftovers();

    let mut md = report.markdown();
    md.push_str(&format!(
        "\n### After the run\n\n- gateway file descriptors before the clients started: {} \
         ({} client connections, {} daemon connections); {SETTLE:?} at most after they closed \
         and the tickers were removed: {} ({} client connections, {} daemon connections)\n\
         - containers of the run left on the daemon: {}\n- ticker removals that failed: {}\n",
        baseline.total,
        baseline.tcp,
        baseline.unix,
        fds.total,
        fds.tcp,
        fds.unix,
        left.len(),
        stop_failures.len()
    ));
    for f in &stop_failures {
        md.push_str(&format!("  - {f}\n"));
    }
    println!("{md}");
    if let Some(path) = &args.report {
        if let Err(e) = fs::write(path, &md) {
            eprintln!("cannot write {path}: {e}");
            return ExitCode::FAILURE;
        }
    }
    if report.errors() > 0 || !left.is_empty() || !stop_failures.is_empty() || !settled(&fds) {
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
