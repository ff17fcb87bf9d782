//! The load run: many concurrent mutual-TLS clients, each looping over a weighted mix of what
//! users drive through dockgate (ping, list, inspect, container lifecycles, exec with stdin,
//! `logs -f` and `/events` streams, archive up and down), as administrators and as the confined
//! `ci` role. Every answer is checked; anything unexpected, a client-side timeout included, is an
//! error counted by kind with an example. Meanwhile the gateway's RSS, open descriptors and CPU
//! are sampled from `/proc`.
//!
//! One implementation serves both the short run in the end-to-end suite (`tests/load.rs`) and
//! the long one (`benches/load.rs`), so the CI test checks exactly what the 10-minute run
//! reports on.
//!
//! Each client keeps one keep-alive connection for plain requests and opens a fresh one for each
//! stream (exec, `logs -f`, events), as the docker CLI does. Clients share certificates in groups
//! small enough to stay under `limits.connections_per_identity` (a client holds at most two
//! connections). Each identity runs long-lived "ticker" containers, created through the gateway
//! as that identity (a `ci` client may only touch what its identity created), which its clients
//! inspect, exec into, follow and copy files to and from, a few clients per ticker. Every container the run creates
//! carries the label `dockgate-load.run=<run id>`, so the daemon can be asked what is left.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONNECTION, CONTENT_TYPE, HOST, UPGRADE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::gateway::Gateway;
use super::image::test_image;
use super::policy::{containers_labelled, tar};
use super::raw::client_config;
use super::{args, docker_direct, unique};

/// The API version every request names, as the negotiated docker CLI would.
const API: &str = "/v1.41";
/// Marks every container of one run.
const RUN_LABEL: &str = "dockgate-load.run";
/// Bytes per archive upload (one file in a tar).
const ARCHIVE_BYTES: usize = 64 << 10;
/// Bytes written to `cat` per exec.
const EXEC_BYTES: usize = 4 << 10;
/// Lines a `logs -f` subscriber must receive: the `tail=1` line and one the ticker wrote later,
/// which only following delivers.
const FOLLOWED_LINES: u64 = 2;
/// Writes `tick N` every second, for `logs -f` subscribers.
const TICKER: &str = "i=0; while :; do echo tick $i; i=$((i+1)); sleep 1; done";
/// Descriptors other than sockets the gateway may hold beyond its level before the run once
/// every client closed (what it opens lazily); one per client would be a leak.
pub const FD_SLACK: usize = 4;
/// Linux reports process CPU times in clock ticks of 1/100 s (USER_HZ) on every architecture.
const TICKS_PER_SECOND: u64 = 100;

/// What one client picks, with its weight out of the total. Reads dominate; what makes the
/// daemon start processes or mount a container's filesystem (a lifecycle costs it ~100 ms of CPU
/// on two cores, an exec or an archive copy tens of ms) is rare, so that the daemon is not what
/// the run measures.
const MIX: &[(Op, u32)] = &[
    (Op::Ping, 350),
    (Op::List, 150),
    (Op::Inspect, 350),
    (Op::Archive, 30),
    (Op::Exec, 30),
    (Op::Logs, 40),
    (Op::Events, 40),
    (Op::Lifecycle, 10),
];

#[derive(Debug, Clone, Copy)]
enum Op {
    Ping,
    List,
    Inspect,
    Lifecycle,
    Exec,
    Logs,
    Events,
    Archive,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Ping => "ping",
            Op::List => "list",
            Op::Inspect => "inspect",
            Op::Lifecycle => "lifecycle",
            Op::Exec => "exec",
            Op::Logs => "logs -f",
            Op::Events => "events",
            Op::Archive => "archive",
        }
    }
}

/// The shape of one run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    pub duration: Duration,
    /// Clients sharing one certificate; at most two connections each, so keep it under half of
    /// `limits.connections_per_identity`.
    pub clients_per_identity: usize,
    /// Clients sharing one ticker container. dockerd holds a container's lock while it copies an
    /// archive, so many clients on one container would mostly measure that lock.
    pub clients_per_ticker: usize,
    /// Identity `k` is `ci` when `k % ci_every == 1`, `admin` otherwise.
    pub ci_every: usize,
    /// Clients start spread over this much time, as real ones do.
    pub ramp: Duration,
    /// Operations per second all clients together start when answers are quick: each client
    /// pauses between operations for `clients / rate` seconds on average (uniformly within ±50%).
    /// Many connections at a rate the daemon sustains; throughput is the bench harness's job.
    pub rate: f64,
    /// A stream is held open for a time between these bounds once it has delivered.
    pub hold: (Duration, Duration),
    /// The longest any operation may take (besides holding a stream) before it counts as an error.
    pub op_timeout: Duration,
    pub sample_every: Duration,
    /// Samples before this are warm-up: RSS growth is measured from the first one after.
    pub warm_up: Duration,
}

impl Plan {
    pub fn new(clients: usize, duration: Duration) -> Plan {
        Plan {
            clients,
            duration,
            clients_per_identity: 50,
            clients_per_ticker: 25,
            ci_every: 4,
            ramp: (duration / 10).min(Duration::from_secs(10)),
            rate: 100.0,
            hold: (Duration::from_secs(1), Duration::from_secs(8)),
            op_timeout: Duration::from_secs(60),
            sample_every: Duration::from_secs(10),
            warm_up: (duration / 5).min(Duration::from_secs(60)),
        }
    }
}

/// Something unexpected: `kind` groups alike failures (operation and what went wrong), `detail`
/// is one example.
#[derive(Debug, Clone)]
pub struct Failure {
    pub kind: String,
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

fn fail(op: &str, what: &str, detail: impl fmt::Display) -> Failure {
    Failure {
        kind: format!("{op}: {what}"),
        detail: detail.to_string(),
    }
}

/// One certificate, its clients' TLS configuration (sharing a session cache), and its tickers.
struct Identity {
    role: String,
    tls: Arc<ClientConfig>,
    /// Container IDs; client `i` of the run uses `tickers[i % tickers.len()]`.
    tickers: Vec<String>,
}

/// A prepared run: identities issued and their tickers running. Dropping it removes, through the
/// daemon directly, whatever containers of the run are left, so a failed run leaves nothing.
pub struct Load {
    run_id: String,
    addr: SocketAddr,
    identities: Arc<Vec<Identity>>,
}

impl Load {
    /// Issues the identities `plan` needs from `gw`'s CA and starts their tickers.
    pub async fn start(gw: &Gateway, plan: &Plan) -> Result<Load, Failure> {
        let run_id = unique("load");
        let count = plan.clients.div_ceil(plan.clients_per_identity).max(1);
        let per_identity = plan.clients_per_identity.div_ceil(plan.clients_per_ticker);
        let mut starting = Vec::with_capacity(count);
        for k in 0..count {
            let role = if k % plan.ci_every == 1 {
                "ci"
            } else {
                "admin"
            };
            let certs = gw.client(&format!("{run_id}-{role}-{k}"), role);
            let tls = client_config(&certs.ca(), Some((&certs.cert(), &certs.key())));
            // Identities start theirs side by side, each one at a time.
            let tickers = tokio::spawn(start_tickers(
                gw.addr(),
                tls.clone(),
                format!("{}-ticker", certs.name),
                per_identity,
                run_id.clone(),
            ));
            starting.push((role, tls, tickers));
        }
        let mut identities = Vec::with_capacity(count);
        for (role, tls, tickers) in starting {
            let tickers = tickers
                .await
                .map_err(|e| fail("start ticker", "panicked", e))??;
            identities.push(Identity {
                role: role.to_owned(),
                tls,
                tickers,
            });
        }
        Ok(Load {
            run_id,
            addr: gw.addr(),
            identities: Arc::new(identities),
        })
    }

    /// Runs the clients for `plan.duration`, sampling process `pid` (the gateway) meanwhile.
    pub async fn run(&self, plan: &Plan, pid: u32) -> Report {
        let start = Instant::now();
        let deadline = start + plan.ramp + plan.duration;
        let sampler = tokio::spawn(sample_until(pid, start, deadline, plan.sample_every));
        let mut tasks = Vec::with_capacity(plan.clients);
        for index in 0..plan.clients {
            let client = Client {
                index,
                addr: self.addr,
                identities: self.identities.clone(),
                identity: index / plan.clients_per_identity,
                ticker: index,
                run_id: self.run_id.clone(),
                plan: plan.clone(),
                main: None,
                rng: Rng::new(index as u64),
                seq: 0,
                payload: Vec::new(),
                stats: Stats::default(),
            };
            let offset = plan.ramp.mul_f64(index as f64 / plan.clients as f64);
            tasks.push(tokio::spawn(client.run(start + offset, deadline)));
        }
        let mut stats = Stats::default();
        for task in tasks {
            match task.await {
                Ok(s) => stats.merge(s),
                Err(e) => stats.error(fail("client", "panicked", e)),
            }
        }
        let elapsed = start.elapsed();
        let mut samples = sampler.await.unwrap_or_default();
        // After every client closed: what the gateway holds once the load is gone.
        samples.extend(Sample::take(pid, elapsed));
        for latencies in stats.latencies.values_mut() {
            latencies.sort_unstable();
        }
        let ci = self.identities.iter().filter(|i| i.role == "ci").count();
        Report {
            clients: plan.clients,
            identities: self.identities.len(),
            ci_identities: ci,
            clients_per_identity: plan.clients_per_identity,
            rate: plan.rate,
            ramp: plan.ramp,
            elapsed,
            warm_up: plan.ramp + plan.warm_up,
            stats,
            samples,
        }
    }

    /// Removes the tickers through the gateway, each as the identity that created it.
    pub async fn stop(&self) -> Vec<Failure> {
        let op = "remove ticker";
        let mut removing = Vec::new();
        for ident in self.identities.iter() {
            let (addr, tls, tickers) = (self.addr, ident.tls.clone(), ident.tickers.clone());
            removing.push(tokio::spawn(async move {
                let mut failures = Vec::new();
                for id in tickers {
                    let path = format!("{API}/containers/{id}?force=1&v=1");
                    let removed = async {
                        let mut conn = connect(addr, &tls, op).await?;
                        let resp =
                            send(&mut conn, op, request(Method::DELETE, &path, None)).await?;
                        expect(op, resp, StatusCode::NO_CONTENT).await
                    };
                    if let Err(f) = removed.await {
                        failures.push(f);
                    }
                }
                failures
            }));
        }
        let mut failures = Vec::new();
        for task in removing {
            match task.await {
                Ok(f) => failures.extend(f),
                Err(e) => failures.push(fail(op, "panicked", e)),
            }
        }
        failures
    }

    /// Containers of this run the daemon still has, by name.
    pub fn leftovers(&self) -> Vec<String> {
        containers_labelled(RUN_LABEL, &self.run_id)
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        // Best effort and never panicking: this may run while a test is already failing.
        let label = format!("label={RUN_LABEL}={}", self.run_id);
        let Ok(listed) = args(docker_direct(), ["ps", "-aq", "--filter", &label]).output() else {
            return;
        };
        let ids = String::from_utf8_lossy(&listed.stdout).into_owned();
        if ids.trim().is_empty() {
            return;
        }
        let _ = args(docker_direct(), ["rm", "-f", "-v"])
            .args(ids.split_whitespace())
            .output();
    }
}

/// Raises this process's open-file limit (children such as the gateway inherit it) to at
/// least `needed`, or panics: a client that cannot open a socket would count as a gateway error.
pub fn raise_fd_limit(needed: u64) {
    let got = rlimit::increase_nofile_limit(needed).expect("raise RLIMIT_NOFILE");
    assert!(
        got >= needed,
        "RLIMIT_NOFILE is {got}, the run needs {needed}"
    );
}

/// Creates and starts `count` tickers named `prefix-N` as the identity `tls` presents.
async fn start_tickers(
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    prefix: String,
    count: usize,
    run_id: String,
) -> Result<Vec<String>, Failure> {
    let op = "start ticker";
    let mut conn = connect(addr, &tls, op).await?;
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let body = json!({
            "Image": test_image(),
            "Cmd": ["sh", "-c", TICKER],
            "Labels": { RUN_LABEL: run_id },
            "HostConfig": { "NetworkMode": "none" },
        });
        let path = format!("{API}/containers/create?name={prefix}-{n}");
        let resp = send(&mut conn, op, request(Method::POST, &path, Some(body))).await?;
        let id = json_id(op, &expect(op, resp, StatusCode::CREATED).await?)?;
        let path = format!("{API}/containers/{id}/start");
        let resp = send(&mut conn, op, request(Method::POST, &path, None)).await?;
        expect(op, resp, StatusCode::NO_CONTENT).await?;
        ids.push(id);
    }
    Ok(ids)
}

// ---- One client ----

type Sender = SendRequest<Full<Bytes>>;

struct Client {
    index: usize,
    addr: SocketAddr,
    identities: Arc<Vec<Identity>>,
    identity: usize,
    /// Which of the identity's tickers (modulo their number).
    ticker: usize,
    run_id: String,
    plan: Plan,
    /// The keep-alive connection for plain requests; reopened after a failure.
    main: Option<Sender>,
    rng: Rng,
    /// Makes each lifecycle's container name and each upload's content unique.
    seq: u64,
    payload: Vec<u8>,
    stats: Stats,
}

impl Client {
    async fn run(mut self, start: Instant, deadline: Instant) -> Stats {
        tokio::time::sleep_until(start.into()).await;
        self.payload = self.rng.bytes(ARCHIVE_BYTES);
        let total: u32 = MIX.iter().map(|(_, w)| w).sum();
        while Instant::now() < deadline {
            let mut pick = (self.rng.next_u64() % u64::from(total)) as u32;
            let op = MIX
                .iter()
                .find(|(_, w)| {
                    let hit = pick < *w;
                    pick = pick.saturating_sub(*w);
                    hit
                })
                .map_or(Op::Ping, |(op, _)| *op);
            // A stream's hold is on top of the time it may take to deliver.
            let limit = self.plan.op_timeout + self.plan.hold.1;
            match tokio::time::timeout(limit, self.op(op, deadline)).await {
                Ok(Ok(())) => {}
                Ok(Err(f)) => {
                    self.stats.error(f);
                    self.main = None;
                }
                Err(_) => {
                    self.stats.error(fail(
                        op.name(),
                        "timeout",
                        format!("not done within {limit:?}"),
                    ));
                    self.main = None;
                }
            }
            let mean = self.plan.clients as f64 / self.plan.rate;
            let pause = Duration::from_secs_f64(mean * (0.5 + self.rng.unit()));
            tokio::time::sleep_until((Instant::now() + pause).min(deadline).into()).await;
        }
        self.stats
    }

    fn ident(&self) -> &Identity {
        &self.identities[self.identity]
    }

    async fn op(&mut self, op: Op, deadline: Instant) -> Result<(), Failure> {
        let name = op.name();
        let tickers = &self.ident().tickers;
        let ticker = tickers[self.ticker % tickers.len()].clone();
        let started = Instant::now();
        match op {
            Op::Ping => {
                let body = self.call(name, Method::GET, "/_ping", None).await?;
                if &body[..] != b"OK" {
                    return Err(fail(name, "content", lossy(&body)));
                }
            }
            Op::List => {
                let path = format!("{API}/containers/json");
                let body = self.call(name, Method::GET, &path, None).await?;
                if !contains(&body, ticker.as_bytes()) {
                    return Err(fail(name, "content", "the ticker is not listed"));
                }
            }
            Op::Inspect => {
                let path = format!("{API}/containers/{ticker}/json");
                let body = self.call(name, Method::GET, &path, None).await?;
                if !contains(&body, br#""Running":true"#) {
                    return Err(fail(name, "content", "the ticker is not running"));
                }
            }
            Op::Lifecycle => return self.lifecycle().await,
            Op::Exec => self.exec(&ticker).await?,
            Op::Logs => return self.logs(&ticker, deadline).await,
            Op::Events => return self.events(&ticker, deadline).await,
            Op::Archive => return self.archive(&ticker).await,
        }
        self.stats.record(name, started);
        Ok(())
    }

    /// create, start, wait and remove a container running `true`.
    async fn lifecycle(&mut self) -> Result<(), Failure> {
        let op = "lifecycle";
        self.seq += 1;
        let started = Instant::now();
        let name = format!("{}-c{}-{}", self.run_id, self.index, self.seq);
        let body = json!({
            "Image": test_image(),
            "Cmd": ["true"],
            "Labels": { RUN_LABEL: self.run_id },
            "HostConfig": { "NetworkMode": "none" },
        });
        let path = format!("{API}/containers/create?name={name}");
        let created = self
            .call_status(op, Method::POST, &path, Some(body), StatusCode::CREATED)
            .await?;
        let id = json_id(op, &created)?;
        let ran = async {
            let path = format!("{API}/containers/{id}/start");
            self.call_status(op, Method::POST, &path, None, StatusCode::NO_CONTENT)
                .await?;
            let path = format!("{API}/containers/{id}/wait");
            let waited = self.call(op, Method::POST, &path, None).await?;
            let code = serde_json::from_slice::<Value>(&waited)
                .ok()
                .and_then(|v| v["StatusCode"].as_i64());
            if code != Some(0) {
                return Err(fail(op, "exit code", lossy(&waited)));
            }
            let path = format!("{API}/containers/{id}?v=1");
            self.call_status(op, Method::DELETE, &path, None, StatusCode::NO_CONTENT)
                .await?;
            Ok(())
        };
        if let Err(f) = ran.await {
            // Already an error; the removal only keeps the daemon tidy.
            self.main = None;
            let path = format!("{API}/containers/{id}?force=1&v=1");
            let _ = self.call(op, Method::DELETE, &path, None).await;
            return Err(f);
        }
        self.stats.containers += 1;
        self.stats.record(op, started);
        Ok(())
    }

    /// Runs `cat` with stdin over an upgraded connection: what goes in must come back.
    async fn exec(&mut self, ticker: &str) -> Result<(), Failure> {
        let op = "exec";
        let create = json!({
            "AttachStdin": true, "AttachStdout": true, "AttachStderr": true, "Cmd": ["cat"],
        });
        let path = format!("{API}/containers/{ticker}/exec");
        let created = self
            .call_status(op, Method::POST, &path, Some(create), StatusCode::CREATED)
            .await?;
        let id = json_id(op, &created)?;

        let mut conn = connect(self.addr, &self.ident().tls, op).await?;
        let start = Request::post(format!("{API}/exec/{id}/start"))
            .header(HOST, "docker")
            .header(CONNECTION, "Upgrade")
            .header(UPGRADE, "tcp")
            .header(CONTENT_TYPE, "application/json")
            .body(Full::from(r#"{"Detach":false,"Tty":false}"#))
            .map_err(|e| fail(op, "request", e))?;
        let resp = send(&mut conn, op, start).await?;
        let resp = streaming(op, resp, StatusCode::SWITCHING_PROTOCOLS).await?;
        let upgraded = hyper::upgrade::on(resp)
            .await
            .map_err(|e| fail(op, "upgrade", e))?;
        let mut io = TokioIo::new(upgraded);
        let at = (self.rng.next_u64() as usize) % (ARCHIVE_BYTES - EXEC_BYTES);
        let input = &self.payload[at..at + EXEC_BYTES];
        io.write_all(input)
            .await
            .map_err(|e| fail(op, "write stdin", e))?;
        // close_notify and FIN: the half-close that becomes EOF on cat's stdin.
        io.shutdown()
            .await
            .map_err(|e| fail(op, "close stdin", e))?;
        let mut stream = Vec::new();
        io.read_to_end(&mut stream)
            .await
            .map_err(|e| fail(op, "read output", e))?;
        let mut frames = Frames::default();
        frames.push(&stream);
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some((kind, payload)) = frames.pop() {
            match kind {
                1 => stdout.extend_from_slice(&payload),
                _ => stderr.extend_from_slice(&payload),
            }
        }
        if !frames.buf.is_empty() || !stderr.is_empty() || stdout != input {
            return Err(fail(
                op,
                "content",
                format!(
                    "{} bytes in, {} out ({} unframed), stderr {:?}",
                    input.len(),
                    stdout.len(),
                    frames.buf.len(),
                    lossy(&stderr)
                ),
            ));
        }
        Ok(())
    }

    /// Follows the ticker's log until it delivers lines written after the request, then holds
    /// the stream a while.
    async fn logs(&mut self, ticker: &str, deadline: Instant) -> Result<(), Failure> {
        let op = "logs -f";
        let started = Instant::now();
        let mut conn = connect(self.addr, &self.ident().tls, op).await?;
        let path = format!("{API}/containers/{ticker}/logs?follow=1&stdout=1&stderr=1&tail=1");
        let resp = send(&mut conn, op, request(Method::GET, &path, None)).await?;
        let resp = streaming(op, resp, StatusCode::OK).await?;
        let mut body = resp.into_body();
        let mut frames = Frames::default();
        let mut lines = 0;
        let hold = self.hold(deadline);
        while let Some(data) = next_data(&mut body, op, lines >= FOLLOWED_LINES, hold).await? {
            frames.push(&data);
            while let Some((kind, line)) = frames.pop() {
                if kind != 1 || !line.starts_with(b"tick ") {
                    return Err(fail(op, "content", format!("{kind}: {}", lossy(&line))));
                }
                lines += 1;
                if lines == FOLLOWED_LINES {
                    self.stats.record("logs -f", started);
                }
            }
        }
        self.stats.log_lines += lines;
        Ok(())
    }

    /// Subscribes to the ticker's `archive-path` events, makes one (an archive read), waits for
    /// it to be delivered, then holds the stream a while.
    async fn events(&mut self, ticker: &str, deadline: Instant) -> Result<(), Failure> {
        let op = "events";
        let started = Instant::now();
        // dockerd flushes the answer's head before it subscribes; `since` replays what falls in
        // between, so the event made below cannot be missed.
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| fail(op, "clock", e))?;
        let filters =
            json!({ "type": ["container"], "container": [ticker], "event": ["archive-path"] });
        let path = format!(
            "{API}/events?since={}.{:09}&filters={}",
            since.as_secs(),
            since.subsec_nanos(),
            percent_encode(&filters.to_string())
        );
        let mut conn = connect(self.addr, &self.ident().tls, op).await?;
        let resp = send(&mut conn, op, request(Method::GET, &path, None)).await?;
        let resp = streaming(op, resp, StatusCode::OK).await?;
        let path = format!("{API}/containers/{ticker}/archive?path=/etc/passwd");
        self.call(op, Method::GET, &path, None).await?;

        let mut body = resp.into_body();
        let mut buf = Vec::new();
        let mut seen = 0;
        let hold = self.hold(deadline);
        while let Some(data) = next_data(&mut body, op, seen > 0, hold).await? {
            buf.extend_from_slice(&data);
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=end).collect();
                let event: Value = serde_json::from_slice(&line)
                    .map_err(|e| fail(op, "content", format!("{e}: {}", lossy(&line))))?;
                if event["Action"] != "archive-path" || event["Actor"]["ID"] != ticker {
                    return Err(fail(op, "content", format!("unasked-for event {event}")));
                }
                seen += 1;
                if seen == 1 {
                    self.stats.record("events", started);
                }
            }
        }
        self.stats.events += seen;
        Ok(())
    }

    /// Uploads a tar with one file into the ticker's /tmp, then downloads it: same bytes back.
    async fn archive(&mut self, ticker: &str) -> Result<(), Failure> {
        self.seq += 1;
        // Fresh content each time, so the download must be this upload's.
        self.payload[..8].copy_from_slice(&self.seq.to_le_bytes());
        let file = format!("load-{}.bin", self.index);
        let upload = tar(&[(file.as_str(), self.payload.as_slice())]);

        let op = "archive put";
        let started = Instant::now();
        let path = format!("{API}/containers/{ticker}/archive?path=/tmp");
        let put = Request::put(path)
            .header(HOST, "docker")
            .header(CONTENT_TYPE, "application/x-tar")
            .body(Full::from(upload))
            .map_err(|e| fail(op, "request", e))?;
        let resp = self.send_main(op, put).await?;
        expect(op, resp, StatusCode::OK).await?;
        self.stats.record(op, started);

        let op = "archive get";
        let started = Instant::now();
        let path = format!("{API}/containers/{ticker}/archive?path=/tmp/{file}");
        let body = self.call(op, Method::GET, &path, None).await?;
        match first_file(&body) {
            Some((name, data)) if name == file && data == self.payload => {}
            Some((name, data)) => {
                return Err(fail(
                    op,
                    "content",
                    format!("{name}: {} bytes, not the {} uploaded", data.len(), file),
                ))
            }
            None => return Err(fail(op, "content", "no file in the tar")),
        }
        self.stats.record(op, started);
        Ok(())
    }

    /// When a stream that has delivered is let go: a random time within the plan's bounds, or
    /// the end of the run.
    fn hold(&mut self, deadline: Instant) -> Instant {
        let (min, max) = self.plan.hold;
        (Instant::now() + min + (max - min).mul_f64(self.rng.unit())).min(deadline)
    }

    /// Sends on the keep-alive connection, opening it first if needed.
    async fn send_main(
        &mut self,
        op: &str,
        req: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, Failure> {
        let tls = self.ident().tls.clone();
        // A connection the gateway closed while idle is reopened, as any client's pool does.
        let reused = match self.main.take() {
            Some(mut conn) if !conn.is_closed() => conn.ready().await.is_ok().then_some(conn),
            _ => None,
        };
        let Some(mut conn) = reused else {
            let mut conn = connect(self.addr, &tls, op).await?;
            let resp = send(&mut conn, op, req).await?;
            self.main = Some(conn);
            return Ok(resp);
        };
        match conn.try_send_request(req).await {
            Ok(resp) => {
                self.main = Some(conn);
                Ok(resp)
            }
            // The gateway closed the idle connection as the request went out, before any of it
            // was written: sent again on a new one, as Go's transport (the docker CLI's) does.
            Err(mut e) => match e.take_message() {
                Some(req) => {
                    self.stats.resent += 1;
                    let mut conn = connect(self.addr, &tls, op).await?;
                    let resp = send(&mut conn, op, req).await?;
                    self.main = Some(conn);
                    Ok(resp)
                }
                None => Err(fail(op, "request", e.into_error())),
            },
        }
    }

    /// A request on the keep-alive connection that must answer 200; its body.
    async fn call(
        &mut self,
        op: &str,
        method: Method,
        path: &str,
        json: Option<Value>,
    ) -> Result<Bytes, Failure> {
        self.call_status(op, method, path, json, StatusCode::OK)
            .await
    }

    async fn call_status(
        &mut self,
        op: &str,
        method: Method,
        path: &str,
        json: Option<Value>,
        want: StatusCode,
    ) -> Result<Bytes, Failure> {
        let resp = self.send_main(op, request(method, path, json)).await?;
        expect(op, resp, want).await
    }
}

// ---- HTTP over mutual TLS ----

async fn connect(addr: SocketAddr, tls: &Arc<ClientConfig>, op: &str) -> Result<Sender, Failure> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| fail(op, "connect", e))?;
    tcp.set_nodelay(true).map_err(|e| fail(op, "connect", e))?;
    let tls = TlsConnector::from(tls.clone())
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
        .map_err(|e| fail(op, "TLS handshake", e))?;
    let (sender, conn) = http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| fail(op, "HTTP handshake", e))?;
    // Its errors reach the requests sent on it.
    tokio::spawn(conn.with_upgrades());
    Ok(sender)
}

fn request(method: Method, path: &str, json: Option<Value>) -> Request<Full<Bytes>> {
    let builder = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, "docker");
    let built = match json {
        Some(v) => builder
            .header(CONTENT_TYPE, "application/json")
            .body(Full::from(v.to_string())),
        None => builder.body(Full::default()),
    };
    built.expect("a request from a valid method and path")
}

async fn send(
    conn: &mut Sender,
    op: &str,
    req: Request<Full<Bytes>>,
) -> Result<Response<Incoming>, Failure> {
    conn.ready().await.map_err(|e| fail(op, "connection", e))?;
    conn.send_request(req)
        .await
        .map_err(|e| fail(op, "request", e))
}

/// The whole body, if the status is `want`; otherwise [`unexpected`].
async fn expect(op: &str, resp: Response<Incoming>, want: StatusCode) -> Result<Bytes, Failure> {
    let resp = streaming(op, resp, want).await?;
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| fail(op, "body", e))?;
    Ok(body.to_bytes())
}

/// `resp` with its body unread (a stream, an upgrade), if the status is `want`; otherwise
/// [`unexpected`].
async fn streaming(
    op: &str,
    resp: Response<Incoming>,
    want: StatusCode,
) -> Result<Response<Incoming>, Failure> {
    if resp.status() == want {
        return Ok(resp);
    }
    Err(unexpected(op, resp).await)
}

/// An error naming the status, with the body (Docker's `{"message":…}`) as the example.
async fn unexpected(op: &str, resp: Response<Incoming>) -> Failure {
    let status = resp.status().as_u16();
    match resp.into_body().collect().await {
        Ok(body) => fail(op, &format!("status {status}"), lossy(&body.to_bytes())),
        Err(e) => fail(
            op,
            &format!("status {status}"),
            format!("(body unreadable: {e})"),
        ),
    }
}

fn json_id(op: &str, body: &[u8]) -> Result<String, Failure> {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["Id"].as_str().map(str::to_owned))
        .ok_or_else(|| fail(op, "content", format!("no Id in {}", lossy(body))))
}

/// Docker's multiplexed stream: frames of an 8-byte header (stream type, three zero bytes,
/// big-endian length) and a payload, split anywhere by the transport.
#[derive(Default)]
struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn pop(&mut self) -> Option<(u8, Vec<u8>)> {
        let header = self.buf.get(..8)?;
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let kind = header[0];
        let payload = self.buf.get(8..8 + len)?.to_vec();
        self.buf.drain(..8 + len);
        Some((kind, payload))
    }
}

/// The name and content of the first regular file in a tar (skipping PAX headers).
fn first_file(mut tar: &[u8]) -> Option<(String, &[u8])> {
    while tar.len() >= 512 {
        let (header, rest) = tar.split_at(512);
        if header.iter().all(|b| *b == 0) {
            return None;
        }
        let field = |range: std::ops::Range<usize>| {
            let raw = &header[range];
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            String::from_utf8_lossy(&raw[..end]).trim().to_owned()
        };
        let size = usize::from_str_radix(&field(124..136), 8).ok()?;
        let data = rest.get(..size)?;
        if matches!(header[156], b'0' | 0) {
            return Some((field(0..100), data));
        }
        tar = rest.get(size.div_ceil(512) * 512..)?;
    }
    None
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// At most 300 bytes of `bytes`, as text, for an error's example.
/// The next data of a followed stream, which must not end: waited for as long as it takes
/// until the stream has `delivered`, then only until `hold`; None once the hold is over.
async fn next_data(
    body: &mut Incoming,
    op: &str,
    delivered: bool,
    hold: Instant,
) -> Result<Option<Bytes>, Failure> {
    loop {
        let frame = if delivered {
            match tokio::time::timeout_at(hold.into(), body.frame()).await {
                Ok(frame) => frame,
                Err(_) => return Ok(None),
            }
        } else {
            body.frame().await
        };
        match frame {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
            Some(Err(e)) => return Err(fail(op, "stream", e)),
            None => return Err(fail(op, "stream", "ended while followed")),
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned()
}

/// xorshift64*: each client's own reproducible sequence, no shared state.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len.div_ceil(8))
            .flat_map(|_| self.next_u64().to_le_bytes())
            .take(len)
            .collect()
    }
}

// ---- Measurements ----

/// What the clients saw: latencies (µs) by operation, errors by kind, and what streams delivered.
#[derive(Default)]
pub struct Stats {
    pub latencies: BTreeMap<&'static str, Vec<u32>>,
    /// kind → (count, first example).
    pub errors: BTreeMap<String, (u64, String)>,
    pub log_lines: u64,
    pub events: u64,
    pub containers: u64,
    /// Requests sent again because their keep-alive connection closed before they went out.
    pub resent: u64,
}

impl Stats {
    fn record(&mut self, op: &'static str, started: Instant) {
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        self.latencies.entry(op).or_default().push(micros);
    }

    fn error(&mut self, f: Failure) {
        self.errors.entry(f.kind).or_insert((0, f.detail)).0 += 1;
    }

    fn merge(&mut self, other: Stats) {
        for (op, mut latencies) in other.latencies {
            self.latencies.entry(op).or_default().append(&mut latencies);
        }
        for (kind, (count, example)) in other.errors {
            self.errors.entry(kind).or_insert((0, example)).0 += count;
        }
        self.log_lines += other.log_lines;
        self.events += other.events;
        self.containers += other.containers;
        self.resent += other.resent;
    }
}

/// The gateway process at one moment.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Since the run started.
    pub at: Duration,
    pub rss_kib: u64,
    pub fds: Fds,
    /// User plus system CPU time so far.
    pub cpu: Duration,
}

impl Sample {
    /// Reads `/proc/PID`; None once the process is gone.
    pub fn take(pid: u32, at: Duration) -> Option<Sample> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        let fds = Fds::of(pid)?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the parenthesized command name; utime and stime are the 14th and 15th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(Sample {
            at,
            rss_kib,
            fds,
            cpu: Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND),
        })
    }
}

/// A process's open file descriptors, and what the gateway's sockets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fds {
    pub total: usize,
    /// TCP sockets that are not listening: client connections.
    pub tcp: usize,
    /// Unix sockets: connections to the daemon.
    pub unix: usize,
}

impl Fds {
    /// Reads `/proc/PID/fd` and matches its sockets' inodes against the process's
    /// `/proc/PID/net` tables; None once the process is gone.
    pub fn of(pid: u32) -> Option<Fds> {
        let mut inodes = Vec::new();
        let mut total = 0;
        for entry in fs::read_dir(format!("/proc/{pid}/fd")).ok()? {
            total += 1;
            let Ok(target) = entry.and_then(|e| fs::read_link(e.path())) else {
                continue;
            };
            let target = target.to_string_lossy().into_owned();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.push(inode.to_owned());
            }
        }
        // /proc/net/tcp{,6}: the state is the 4th column (0A: listening), the inode the 10th;
        // /proc/net/unix: the inode is the 7th.
        let count = |table: &str, inode_at: usize, listening: Option<usize>| {
            let text = fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
            text.lines()
                .skip(1)
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .filter(|f| listening.is_none_or(|at| f.get(at) != Some(&"0A")))
                .filter(|f| {
                    f.get(inode_at)
                        .is_some_and(|i| inodes.iter().any(|n| n == i))
                })
                .count()
        };
        Some(Fds {
            total,
            tcp: count("tcp", 9, Some(3)) + count("tcp6", 9, Some(3)),
            unix: count("unix", 6, None),
        })
    }

    /// Descriptors that are neither client connections nor daemon connections (files, pipes,
    /// the runtime's own).
    pub fn other(&self) -> usize {
        self.total - self.tcp - self.unix
    }
}

/// Waits up to `within` for process `pid`'s descriptors to satisfy `settled` (closed
/// connections are torn down asynchronously); the descriptors at the end.
pub fn fds_after_settling(pid: u32, settled: impl Fn(&Fds) -> bool, within: Duration) -> Fds {
    let deadline = Instant::now() + within;
    loop {
        let fds = Fds::of(pid).unwrap_or(Fds {
            total: 0,
            tcp: 0,
            unix: 0,
        });
        if settled(&fds) || Instant::now() >= deadline {
            return fds;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn sample_until(pid: u32, start: Instant, deadline: Instant, every: Duration) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut next = start;
    while next <= deadline {
        tokio::time::sleep_until(next.into()).await;
        samples.extend(Sample::take(pid, start.elapsed()));
        next += every;
    }
    samples
}

/// The outcome of a run, rendered as Markdown by [`Report::markdown`].
pub struct Report {
    pub clients: usize,
    pub identities: usize,
    pub ci_identities: usize,
    pub clients_per_identity: usize,
    pub rate: f64,
    pub ramp: Duration,
    pub elapsed: Duration,
    /// Samples from this point on are past warm-up.
    pub warm_up: Duration,
    pub stats: Stats,
    /// Every `sample_every` during the run, then one after all clients closed.
    pub samples: Vec<Sample>,
}

impl Report {
    pub fn errors(&self) -> u64 {
        self.stats.errors.values().map(|(n, _)| n).sum()
    }

    /// Completed operations of `op` (as named in the report).
    pub fn count(&self, op: &str) -> usize {
        self.stats.latencies.get(op).map_or(0, Vec::len)
    }

    /// The first sample past warm-up and the last one taken under load.
    pub fn rss_after_warm_up_and_at_end(&self) -> Option<(Sample, Sample)> {
        let under_load = self.samples.get(..self.samples.len().checked_sub(1)?)?;
        let first = *under_load.iter().find(|s| s.at >= self.warm_up)?;
        Some((first, *under_load.last()?))
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let secs = self.elapsed.as_secs_f64();
        let ops: usize = self.stats.latencies.values().map(Vec::len).sum();
        let _ = writeln!(md, "## dockgate load run\n");
        let _ = writeln!(
            md,
            "- {} clients over {} identities ({} `ci`, the rest `admin`; {} clients per \
             identity), started over {:.0} s; {:.0} s in all",
            self.clients,
            self.identities,
            self.ci_identities,
            self.clients_per_identity,
            self.ramp.as_secs_f64(),
            secs
        );
        let _ = writeln!(
            md,
            "- {ops} operations completed ({:.0}/s; offered: {:.0}/s, each client pausing {:.1} s \
             on average between operations); **{} errors**",
            ops as f64 / secs,
            self.rate,
            self.clients as f64 / self.rate,
            self.errors()
        );
        let _ = writeln!(
            md,
            "- streams delivered {} log lines and {} events; {} containers created, run and \
             removed; {} requests resent because the gateway had closed their idle keep-alive \
             connection as they went out\n",
            self.stats.log_lines, self.stats.events, self.stats.containers, self.stats.resent
        );

        let _ = writeln!(md, "### Operations\n");
        let _ = writeln!(md, "| operation | completed | p50 ms | p99 ms | max ms |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        for (op, lat) in &self.stats.latencies {
            let ms = |q: f64| {
                let i = ((lat.len() - 1) as f64 * q).round() as usize;
                f64::from(lat[i]) / 1000.0
            };
            let _ = writeln!(
                md,
                "| {op} | {} | {:.1} | {:.1} | {:.1} |",
                lat.len(),
                ms(0.5),
                ms(0.99),
                ms(1.0)
            );
        }
        let _ = writeln!(
            md,
            "\nlifecycle: create, start, wait, remove; exec: create, start, write {EXEC_BYTES} \
             bytes to `cat`, read them back; logs -f: until {FOLLOWED_LINES} lines; events: \
             until the subscriber's own archive read is delivered; archive: {} KiB.\n",
            ARCHIVE_BYTES >> 10
        );

        let _ = writeln!(md, "### Errors\n");
        if self.stats.errors.is_empty() {
            let _ = writeln!(md, "None.\n");
        } else {
            let _ = writeln!(md, "| kind | count | example |");
            let _ = writeln!(md, "|---|---:|---|");
            for (kind, (count, example)) in &self.stats.errors {
                let example = example.replace('|', "\\|").replace('\n', " ");
                let _ = writeln!(md, "| {kind} | {count} | {example} |");
            }
            let _ = writeln!(md);
        }

        let _ = writeln!(md, "### The dockgate process\n");
        if let Some((warm, end)) = self.rss_after_warm_up_and_at_end() {
            let _ = writeln!(
                md,
                "- RSS after warm-up (t = {:.0} s): {:.1} MiB; at the end of the load (t = {:.0} \
                 s): {:.1} MiB ({:+.1} MiB)",
                warm.at.as_secs_f64(),
                mib(warm.rss_kib),
                end.at.as_secs_f64(),
                mib(end.rss_kib),
                mib(end.rss_kib) - mib(warm.rss_kib)
            );
        }
        if let (Some(first), Some(last)) = (self.samples.first(), self.samples.last()) {
            let peak = self.samples.iter().map(|s| s.fds.total).max().unwrap_or(0);
            let cpu = last.cpu.saturating_sub(first.cpu).as_secs_f64();
            let _ = writeln!(
                md,
                "- open file descriptors: {} at the start, {peak} at the peak, {} after every \
                 client closed ({} client connections, {} daemon connections)",
                first.fds.total, last.fds.total, last.fds.tcp, last.fds.unix
            );
            let _ = writeln!(
                md,
                "- CPU: {cpu:.1} s, {:.2} cores on average, {:.0} µs per operation\n",
                cpu / secs,
                cpu * 1e6 / ops.max(1) as f64
            );
        }
        let _ = writeln!(
            md,
            "| t s | RSS MiB | fds | client connections | daemon connections | CPU s |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|");
        for s in &self.samples {
            let _ = writeln!(
                md,
                "| {:.0} | {:.1} | {} | {} | {} | {:.1} |",
                s.at.as_secs_f64(),
                mib(s.rss_kib),
                s.fds.total,
                s.fds.tcp,
                s.fds.unix,
                s.cpu.as_secs_f64()
            );
        }
        md
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
