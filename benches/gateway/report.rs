//! The Markdown report: the machine, the command, then medians per target with dockgate's
//! ratio to each anchor.
//!
//! Only ratios from the same run mean anything on a shared 2-core machine, so every table
//! puts dockgate beside its anchors and spells out the ratio rather than leaving the reader
//! to divide.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;

use crate::anchors::{find_program, Kind};
use crate::workloads::{Results, Sample, Series, Settings, Unit};

/// Facts about the run that a reader needs to judge the numbers.
pub struct Context {
    pub date: String,
    pub command: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub dockerd: String,
    pub nginx: String,
    pub dockgate: String,
}

impl Context {
    pub fn gather(command: String) -> Context {
        let output = |program: &str, args: &[&str]| -> String {
            let Some(path) = find_program(program) else {
                return format!("{program} not found");
            };
            Command::new(path)
                .args(args)
                .output()
                .map(|o| {
                    // nginx -v writes to stderr.
                    let text = [o.stdout, o.stderr].concat();
                    String::from_utf8_lossy(&text).trim().to_owned()
                })
                .unwrap_or_default()
        };
        let repo = env!("CARGO_MANIFEST_DIR");
        let rev = output("git", &["-C", repo, "rev-parse", "--short", "HEAD"]);
        let dirty = !output(
            "git",
            &["-C", repo, "status", "--porcelain", "--", "src", "crates"],
        )
        .is_empty();
        Context {
            date: output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            command,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model: fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|c| {
                    c.lines()
                        .find_map(|l| l.strip_prefix("model name"))
                        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
                })
                .unwrap_or_else(|| "unknown".to_owned()),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| k.trim().to_owned())
                .unwrap_or_default(),
            dockerd: output("dockerd", &["--version"]),
            nginx: output("nginx", &["-v"]),
            dockgate: format!("{rev}{}", if dirty { " (src/ modified)" } else { "" }),
        }
    }
}

pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The median of one field of a series' samples for `kind`.
pub fn median_of(
    series: &Series,
    kind: Kind,
    field: impl Fn(&Sample) -> Option<f64>,
) -> Option<f64> {
    let mut values: Vec<f64> = series
        .samples
        .iter()
        .filter(|(k, _)| *k == kind)
        .filter_map(|(_, s)| field(s))
        .collect();
    median(&mut values)
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "—".to_owned(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "—".to_owned(),
    }
}

fn throughput_unit(unit: Unit) -> &'static str {
    match unit {
        Unit::Requests => "req/s",
        Unit::Bytes => "MB/s",
    }
}

fn cpu_unit(unit: Unit) -> &'static str {
    match unit {
        Unit::Requests => "µs/req",
        Unit::Bytes => "s/GiB",
    }
}

pub fn render(ctx: &Context, settings: &Settings, results: &Results) -> String {
    let mut md = String::new();
    let w = &mut md;
    let _ = writeln!(w, "# dockgate benchmark\n");
    let _ = writeln!(w, "| | |\n|---|---|");
    let _ = writeln!(w, "| date | {} |", ctx.date);
    let _ = writeln!(w, "| command | `{}` |", ctx.command);
    let _ = writeln!(
        w,
        "| machine | {} CPUs, {}, Linux {} |",
        ctx.cpus, ctx.cpu_model, ctx.kernel
    );
    let _ = writeln!(
        w,
        "| dockgate | {} (bench profile = release) |",
        ctx.dockgate
    );
    let _ = writeln!(w, "| dockerd | {} |", ctx.dockerd);
    let _ = writeln!(w, "| nginx | {} |", ctx.nginx);
    let _ = writeln!(
        w,
        "| settings | {} interleaved rounds, {:.1} s per request run, {} MiB per bulk/exec transfer; medians shown |",
        settings.rounds,
        settings.window.as_secs_f64(),
        settings.bulk >> 20
    );
    let _ = writeln!(
        w,
        "| CPU accounting | per-thread on-CPU time from /proc/PID/task/*/schedstat, summed (nginx: master + workers) |\n"
    );
    let _ = writeln!(
        w,
        "Targets: **dockgate** (the default config: audit, metrics and limits on, with \
         `limits.connections` and `limits.connections_per_identity` raised to 30000 for the idle \
         readings; admin client), **nginx** (mTLS reverse proxy to the socket, access log on), **dockerd-tls** (dockerd's own `--tlsverify` listener, no extra hop), **socket** \
         (the daemon's Unix socket, plain HTTP: the floor). All forward to one private dockerd.\n"
    );

    goals_table(w, results);
    throughput_table(w, results);
    latency_table(w, results);
    cpu_table(w, results);
    resumption_table(w, results);
    rss_table(w, results);
    create_table(w, results);
    md
}

/// One goal of issue #12: dockgate's figure over an anchor's must stay on one side of a bound.
struct Goal {
    what: String,
    ratio: Option<f64>,
    bound: f64,
    /// The ratio must be at least the bound (else at most).
    at_least: bool,
}

/// The median `field` of the first series whose id starts with `prefix`, for `kind`.
fn figure(
    results: &Results,
    prefix: &str,
    kind: Kind,
    field: impl Fn(&Sample) -> Option<f64>,
) -> Option<f64> {
    let series = results.series.iter().find(|s| s.id.starts_with(prefix))?;
    median_of(series, kind, field)
}

/// The targets of issue #12 as ratios from this run, each met or not.
fn goals_table(w: &mut String, results: &Results) {
    let rate = |x: &Sample| Some(x.throughput);
    let cpu = |x: &Sample| x.proxy_cpu;
    let p99 = |x: &Sample| x.p99_us;
    let vs = |prefix: &str, field: &dyn Fn(&Sample) -> Option<f64>, anchor: Kind| match (
        figure(results, prefix, Kind::Dockgate, field),
        figure(results, prefix, anchor, field),
    ) {
        (Some(d), Some(a)) if a > 0.0 => Some(d / a),
        _ => None,
    };
    let goal = |what: String, ratio: Option<f64>, bound: f64, at_least: bool| Goal {
        what,
        ratio,
        bound,
        at_least,
    };
    let ping16 = "keep-alive GET /_ping, 16 conn";
    let mut goals = vec![
        goal(
            format!("{ping16}: req/s vs nginx"),
            vs(ping16, &rate, Kind::Nginx),
            1.5,
            true,
        ),
        goal(
            format!("{ping16}: req/s vs dockerd-tls"),
            vs(ping16, &rate, Kind::DockerdTls),
            0.9,
            true,
        ),
        goal(
            format!("{ping16}: proxy CPU/req vs nginx"),
            vs(ping16, &cpu, Kind::Nginx),
            0.5,
            false,
        ),
    ];
    let full = "full mTLS handshake";
    goals.push(goal(
        format!("{full}: req/s vs nginx"),
        vs(full, &rate, Kind::Nginx),
        1.5,
        true,
    ));
    goals.push(goal(
        format!("{full}: req/s vs dockerd-tls"),
        vs(full, &rate, Kind::DockerdTls),
        1.2,
        true,
    ));
    for bulk in ["archive GET", "archive PUT"] {
        goals.push(goal(
            format!("{bulk}: MB/s vs nginx"),
            vs(bulk, &rate, Kind::Nginx),
            1.5,
            true,
        ));
        goals.push(goal(
            format!("{bulk}: MB/s vs dockerd-tls"),
            vs(bulk, &rate, Kind::DockerdTls),
            1.0,
            true,
        ));
        goals.push(goal(
            format!("{bulk}: proxy CPU/GiB vs nginx"),
            vs(bulk, &cpu, Kind::Nginx),
            0.5,
            false,
        ));
    }
    for conns in [16, 256] {
        let id = format!("keep-alive GET /_ping, {conns} conn");
        goals.push(goal(
            format!("{id}: p99 vs nginx"),
            vs(&id, &p99, Kind::Nginx),
            1.0,
            false,
        ));
    }
    let _ = writeln!(
        w,
        "## Issue #12 targets
"
    );
    let _ = writeln!(w, "| target | dockgate / anchor | goal | met |");
    let _ = writeln!(w, "|---|---:|---:|---|");
    for g in goals {
        let met = g.ratio.map(|r| {
            if g.at_least {
                r >= g.bound
            } else {
                r <= g.bound
            }
        });
        let _ = writeln!(
            w,
            "| {} | {} | {} {:.2}× | {} |",
            g.what,
            g.ratio.map_or("—".to_owned(), |r| format!("{r:.2}×")),
            if g.at_least { "≥" } else { "≤" },
            g.bound,
            match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            }
        );
    }
    for (what, bound) in [("keep-alive connection", 16.0), ("attach session", 32.0)] {
        for r in results
            .rss
            .iter()
            .filter(|r| r.kind == Kind::Dockgate && r.what == what)
        {
            let kib = r.per_item_kib();
            let _ = writeln!(
                w,
                "| RSS per idle {what}, {} of them | {kib:.1} KiB | ≤ {bound} KiB | {} |",
                r.count,
                if kib <= bound { "yes" } else { "**no**" }
            );
        }
    }
    let _ = writeln!(w);
}

fn throughput_table(w: &mut String, results: &Results) {
    let _ = writeln!(w, "## Throughput\n");
    let _ = writeln!(
        w,
        "| workload | unit | dockgate | nginx | dockerd-tls | socket | dockgate / nginx | dockgate / dockerd-tls | dockgate / socket |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in &results.series {
        let m: Vec<Option<f64>> = Kind::ALL
            .iter()
            .map(|&k| median_of(s, k, |x| Some(x.throughput)))
            .collect();
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.id,
            throughput_unit(s.unit),
            fmt_num(m[0]),
            fmt_num(m[1]),
            fmt_num(m[2]),
            fmt_num(m[3]),
            ratio(m[0], m[1]),
            ratio(m[0], m[2]),
            ratio(m[0], m[3]),
        );
    }
    let _ = writeln!(w);
}

fn latency_table(w: &mut String, results: &Results) {
    let _ = writeln!(w, "## Latency, p50 / p99 in ms\n");
    let _ = writeln!(
        w,
        "| workload | dockgate | nginx | dockerd-tls | socket | dockgate p99 / nginx | dockgate p99 / dockerd-tls |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|");
    for s in results.series.iter().filter(|s| s.unit == Unit::Requests) {
        let cell = |k: Kind| {
            let p50 = median_of(s, k, |x| x.p50_us);
            let p99 = median_of(s, k, |x| x.p99_us);
            match (p50, p99) {
                (Some(a), Some(b)) => format!("{:.2} / {:.2}", a / 1e3, b / 1e3),
                _ => "—".to_owned(),
            }
        };
        let p99 = |k: Kind| median_of(s, k, |x| x.p99_us);
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} |",
            s.id,
            cell(Kind::Dockgate),
            cell(Kind::Nginx),
            cell(Kind::DockerdTls),
            cell(Kind::Socket),
            ratio(p99(Kind::Dockgate), p99(Kind::Nginx)),
            ratio(p99(Kind::Dockgate), p99(Kind::DockerdTls)),
        );
    }
    let _ = writeln!(w);
}

fn cpu_table(w: &mut String, results: &Results) {
    let _ = writeln!(w, "## CPU per request or per GiB\n");
    let _ = writeln!(
        w,
        "Proxy CPU is the proxy process's own time (n/a for dockerd-tls and the socket, where the \
         daemon answers). Daemon CPU is dockerd's, under each target, so a reader sees where time goes.\n"
    );
    let _ = writeln!(
        w,
        "| workload | unit | dockgate proxy | nginx proxy | dockgate / nginx | daemon under dockgate | nginx | dockerd-tls | socket |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for s in &results.series {
        let proxy = |k: Kind| median_of(s, k, |x| x.proxy_cpu);
        let daemon = |k: Kind| median_of(s, k, |x| Some(x.daemon_cpu));
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.id,
            cpu_unit(s.unit),
            fmt_num(proxy(Kind::Dockgate)),
            fmt_num(proxy(Kind::Nginx)),
            ratio(proxy(Kind::Dockgate), proxy(Kind::Nginx)),
            fmt_num(daemon(Kind::Dockgate)),
            fmt_num(daemon(Kind::Nginx)),
            fmt_num(daemon(Kind::DockerdTls)),
            fmt_num(daemon(Kind::Socket)),
        );
    }
    let _ = writeln!(w);
}

fn resumption_table(w: &mut String, results: &Results) {
    let rows: Vec<&Series> = results
        .series
        .iter()
        .filter(|s| s.samples.iter().any(|(_, x)| x.resumed.is_some()))
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(w, "## Resumed handshakes (all rounds)\n");
    let _ = writeln!(w, "| workload | dockgate | nginx | dockerd-tls |");
    let _ = writeln!(w, "|---|---:|---:|---:|");
    for s in rows {
        let cell = |k: Kind| {
            let (resumed, total) = s
                .samples
                .iter()
                .filter(|(kind, _)| *kind == k)
                .filter_map(|(_, x)| x.resumed)
                .fold((0, 0), |(a, b), (r, t)| (a + r, b + t));
            format!("{resumed} of {total}")
        };
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} |",
            s.id,
            cell(Kind::Dockgate),
            cell(Kind::Nginx),
            cell(Kind::DockerdTls)
        );
    }
    let _ = writeln!(w);
}

fn rss_table(w: &mut String, results: &Results) {
    if results.rss.is_empty() {
        return;
    }
    let _ = writeln!(w, "## Memory per idle connection or session\n");
    let _ = writeln!(
        w,
        "RSS growth over the reading just before opening them, in KiB each (one pass). dockgate \
         and nginx are read on an instance started for each reading, so that memory an earlier \
         workload left in the allocator does not hide the growth; for dockerd-tls it is the \
         running daemon's RSS. Each keep-alive connection served one `/_ping`; attach sessions \
         are to a running `cat`.\n"
    );
    let _ = writeln!(
        w,
        "| idle | dockgate | nginx | dockerd-tls | dockgate / nginx | dockgate / dockerd-tls |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|");
    let mut keys: Vec<(&str, usize)> = Vec::new();
    for r in &results.rss {
        if !keys.contains(&(r.what, r.count)) {
            keys.push((r.what, r.count));
        }
    }
    for (what, count) in keys {
        let per = |k: Kind| {
            results
                .rss
                .iter()
                .find(|r| r.what == what && r.count == count && r.kind == k)
                .map(|r| r.per_item_kib())
        };
        let _ = writeln!(
            w,
            "| {count} {what}s | {} | {} | {} | {} | {} |",
            fmt_num(per(Kind::Dockgate)),
            fmt_num(per(Kind::Nginx)),
            fmt_num(per(Kind::DockerdTls)),
            ratio(per(Kind::Dockgate), per(Kind::Nginx)),
            ratio(per(Kind::Dockgate), per(Kind::DockerdTls)),
        );
    }
    let _ = writeln!(w);
}

fn create_table(w: &mut String, results: &Results) {
    if results.create.is_empty() {
        return;
    }
    let med = |role: &str, f: fn(&crate::workloads::CreateSample) -> f64| {
        let mut v: Vec<f64> = results
            .create
            .iter()
            .filter(|c| c.role == role)
            .map(f)
            .collect();
        median(&mut v)
    };
    let _ = writeln!(
        w,
        "## Policy inspection: `POST /containers/create` through dockgate\n"
    );
    let _ = writeln!(
        w,
        "`ci` is confined: dockgate reads and checks the body, adds the role's container settings \
         and records the owner; `admin` is forwarded unread. Containers are removed outside the \
         measurement.\n"
    );
    let _ = writeln!(
        w,
        "| role | creates | creates/s | dockgate CPU per create (µs) |"
    );
    let _ = writeln!(w, "|---|---:|---:|---:|");
    for role in ["ci", "admin"] {
        let total: u64 = results
            .create
            .iter()
            .filter(|c| c.role == role)
            .map(|c| c.requests)
            .sum();
        let _ = writeln!(
            w,
            "| {role} | {total} | {} | {} |",
            fmt_num(med(role, |c| c.per_second)),
            fmt_num(med(role, |c| c.proxy_cpu_us)),
        );
    }
    if let (Some(ci), Some(admin)) = (
        med("ci", |c| c.proxy_cpu_us),
        med("admin", |c| c.proxy_cpu_us),
    ) {
        let _ = writeln!(
            w,
            "\nAdded cost of inspection: **{:.0} µs** of dockgate CPU per create (ci − admin).\n",
            ci - admin
        );
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> Result<(), crate::client::Error> {
    fs::create_dir_all(dir)?;
    fs::write(dir.join(name), text)?;
    Ok(())
}
