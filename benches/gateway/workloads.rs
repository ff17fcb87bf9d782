//! The workloads of issue #12, each run against every target in turn.
//!
//! A workload is run for all targets, then again, for `rounds` rounds (A B C D A B C D …,
//! each round starting one target further along so no target always goes first), and the
//! medians are reported. Around every measured run the proxy's and the daemon's CPU time are
//! read from `/proc`, so the cost per request or per GiB is known independently of the load
//! client's own scheduling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::anchors::{Kind, Launcher, Target};
use crate::client::{self, call, request, Conn, Endpoint, Error, TarBody};
use crate::fixtures::{self, Fixtures, IMAGE};
use crate::proc::{CpuWindow, Procs};

/// How much work each workload does.
pub struct Settings {
    pub rounds: usize,
    /// How long a keep-alive, handshake or create run lasts.
    pub window: Duration,
    /// Bytes each way for the bulk and exec workloads.
    pub bulk: u64,
    /// Idle keep-alive connections held open for the RSS readings.
    pub idle_conns: Vec<usize>,
    /// Idle attach sessions held open for the RSS reading.
    pub idle_sessions: usize,
}

/// What one unit of work is: throughput and CPU are reported per request or per byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Requests,
    Bytes,
}

/// One measured run of one workload against one target.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Requests per second, or MB (10^6 bytes) per second.
    pub throughput: f64,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
    /// Proxy CPU in µs per request, or in seconds per GiB; `None` without a proxy process.
    pub proxy_cpu: Option<f64>,
    /// The daemon's CPU, in the same unit.
    pub daemon_cpu: f64,
    /// Handshakes that were resumptions, out of all handshakes made.
    pub resumed: Option<(u64, u64)>,
}

/// A workload and its samples per target, in run order.
pub struct Series {
    pub id: String,
    pub unit: Unit,
    pub samples: Vec<(Kind, Sample)>,
}

/// Memory held per idle connection or session, above the reading taken just before.
#[derive(Debug, Clone)]
pub struct RssReading {
    pub what: &'static str,
    pub kind: Kind,
    pub count: usize,
    pub before_kib: u64,
    pub after_kib: u64,
}

impl RssReading {
    pub fn per_item_kib(&self) -> f64 {
        self.after_kib.saturating_sub(self.before_kib) as f64 / self.count as f64
    }
}

/// `POST /containers/create` through dockgate as one identity, for one round.
#[derive(Debug, Clone)]
pub struct CreateSample {
    pub role: &'static str,
    pub requests: u64,
    pub per_second: f64,
    /// dockgate's CPU per create, in µs.
    pub proxy_cpu_us: f64,
}

#[derive(Default)]
pub struct Results {
    pub series: Vec<Series>,
    pub rss: Vec<RssReading>,
    pub create: Vec<CreateSample>,
}

/// What a workload's run did, before CPU readings are attached.
struct Run {
    units: u64,
    elapsed: Duration,
    /// Per-request latencies in µs, when the workload is made of requests.
    latencies: Vec<u32>,
    resumed: Option<(u64, u64)>,
}

pub struct Bench<'a> {
    pub targets: &'a [Target],
    pub daemon: Procs,
    pub fixtures: &'a Fixtures,
    /// Starts the fresh proxies the memory readings are taken on.
    pub launcher: &'a Launcher<'a>,
    /// The bare socket, for setup and clean-up that must not go through a target.
    pub socket: Endpoint,
    /// dockgate as `ci` (confined) and as `admin`, for the create workload.
    pub dockgate_ci: Endpoint,
    pub dockgate_admin: Endpoint,
    pub settings: Settings,
    pub results: Results,
}

impl Bench<'_> {
    /// Runs every workload, reporting progress on stderr.
    pub async fn run_all(&mut self) -> Result<(), Error> {
        let window = self.settings.window;
        for path in ["/_ping", "/containers/json"] {
            for conns in [1, 16, 256] {
                let id = format!("keep-alive GET {path}, {conns} conn");
                self.series(&id, Unit::Requests, &Kind::ALL, |ep, _| {
                    keep_alive(ep.clone(), path, conns, window)
                })
                .await?;
            }
        }
        for resume in [false, true] {
            let id = if resume {
                "new TLS connection per /_ping, resumption on, 16 conc"
            } else {
                "full mTLS handshake per /_ping, 16 conc"
            };
            self.series(id, Unit::Requests, &Kind::TLS, |ep, _| {
                handshakes(ep.clone(), resume, 16, window)
            })
            .await?;
        }
        let bulk = self.settings.bulk;
        let big = self.fixtures.bulk.clone();
        let mib = bulk >> 20;
        self.series(
            &format!("archive GET {mib} MiB (down)"),
            Unit::Bytes,
            &Kind::ALL,
            |ep, _| archive_get(ep.clone(), big.clone()),
        )
        .await?;
        self.series(
            &format!("archive PUT {mib} MiB (up)"),
            Unit::Bytes,
            &Kind::ALL,
            |ep, _| archive_put(ep.clone(), big.clone(), bulk),
        )
        .await?;
        let cat = self.fixtures.cat.clone();
        for up in [false, true] {
            let dir = if up { "stdin (up)" } else { "stdout (down)" };
            self.series(
                &format!("exec stream {mib} MiB {dir}"),
                Unit::Bytes,
                &Kind::ALL,
                |ep, _| exec_stream(ep.clone(), cat.clone(), bulk, up),
            )
            .await?;
        }
        self.idle_memory().await?;
        self.create_cost().await
    }

    /// Runs one workload against `kinds`, interleaved, for every round.
    async fn series<F, Fut>(
        &mut self,
        id: &str,
        unit: Unit,
        kinds: &[Kind],
        mut work: F,
    ) -> Result<(), Error>
    where
        F: FnMut(&Endpoint, Kind) -> Fut,
        Fut: std::future::Future<Output = Result<Run, Error>>,
    {
        let mut series = Series {
            id: id.to_owned(),
            unit,
            samples: Vec::new(),
        };
        let chosen: Vec<&Target> = self
            .targets
            .iter()
            .filter(|t| kinds.contains(&t.kind))
            .collect();
        for round in 0..self.settings.rounds {
            for i in 0..chosen.len() {
                let target = chosen[(round + i) % chosen.len()];
                let proxy = target.proxy.as_ref().map(CpuWindow::start);
                let daemon = CpuWindow::start(&self.daemon);
                let run = work(&target.admin, target.kind)
                    .await
                    .map_err(|e| format!("{id} against {}: {e}", target.kind))?;
                let sample = sample(unit, &run, proxy, daemon);
                eprintln!(
                    "  {id:<58} {:<11} round {}: {:>10.1} {}",
                    target.kind.to_string(),
                    round + 1,
                    sample.throughput,
                    if unit == Unit::Requests {
                        "req/s"
                    } else {
                        "MB/s"
                    }
                );
                series.samples.push((target.kind, sample));
            }
        }
        self.results.series.push(series);
        Ok(())
    }

    /// RSS of each TLS target with idle keep-alive connections (each having served one
    /// `/_ping`), then with idle attach sessions. Each reading is taken on a proxy started for
    /// it, so that memory freed by earlier workloads but kept by the allocator does not hide
    /// the growth. dockerd's own listener is read in place (the daemon's RSS: it holds the
    /// connections), after the proxies' readings.
    async fn idle_memory(&mut self) -> Result<(), Error> {
        // Smallest first: the daemon, read in place, reuses what a bigger reading left.
        let mut readings = vec![(ATTACH, self.settings.idle_sessions)];
        readings.extend(self.settings.idle_conns.iter().map(|&n| (KEEP_ALIVE, n)));
        for target in self.targets.iter().filter(|t| Kind::TLS.contains(&t.kind)) {
            for &(what, count) in &readings {
                let reading = if target.proxy.is_some() {
                    let fresh = self
                        .launcher
                        .start(
                            target.kind,
                            &format!("rss-{}-{count}", what.replace(' ', "-")),
                        )
                        .await?;
                    let fresh_target = fresh.target(&self.launcher.pki.admin)?;
                    let procs = fresh_target
                        .proxy
                        .clone()
                        .ok_or("a proxy without processes")?;
                    self.hold_idle(&procs, &fresh_target, what, count).await?
                } else {
                    let daemon = self.daemon.clone();
                    self.hold_idle(&daemon, target, what, count).await?
                };
                self.results.rss.push(reading);
            }
        }
        Ok(())
    }

    async fn hold_idle(
        &self,
        procs: &Procs,
        target: &Target,
        what: &'static str,
        count: usize,
    ) -> Result<RssReading, Error> {
        let endpoint = target.admin.clone();
        if what == ATTACH {
            let cat = self.fixtures.cat.clone();
            hold_idle(procs, what, target.kind, count, || {
                idle_attach(endpoint.clone(), cat.clone())
            })
            .await
        } else {
            hold_idle(procs, what, target.kind, count, || {
                idle_connection(endpoint.clone())
            })
            .await
        }
    }

    /// dockgate's CPU per `POST /containers/create` as the confined `ci` role against
    /// `admin`: the price of inspecting the body and applying the role's container settings.
    async fn create_cost(&mut self) -> Result<(), Error> {
        let dockgate = self
            .targets
            .iter()
            .find(|t| t.kind == Kind::Dockgate)
            .and_then(|t| t.proxy.clone())
            .ok_or("dockgate is not among the targets")?;
        for round in 0..self.settings.rounds {
            let order = if round % 2 == 0 {
                [("ci", &self.dockgate_ci), ("admin", &self.dockgate_admin)]
            } else {
                [("admin", &self.dockgate_admin), ("ci", &self.dockgate_ci)]
            };
            for (role, endpoint) in order {
                let cpu = CpuWindow::start(&dockgate);
                let start = Instant::now();
                let ids = creates(endpoint, self.settings.window).await?;
                let elapsed = start.elapsed();
                let used = cpu.elapsed();
                remove_all(&self.socket, &ids).await?;
                let sample = CreateSample {
                    role,
                    requests: ids.len() as u64,
                    per_second: ids.len() as f64 / elapsed.as_secs_f64(),
                    proxy_cpu_us: used.as_secs_f64() * 1e6 / ids.len().max(1) as f64,
                };
                eprintln!(
                    "  container create as {role:<5} round {}: {} creates, {:.0} µs dockgate CPU each",
                    round + 1,
                    sample.requests,
                    sample.proxy_cpu_us
                );
                self.results.create.push(sample);
            }
        }
        Ok(())
    }
}

fn sample(unit: Unit, run: &Run, proxy: Option<CpuWindow>, daemon: CpuWindow) -> Sample {
    let secs = run.elapsed.as_secs_f64();
    let units = run.units.max(1) as f64;
    let per_unit = |cpu: Duration| match unit {
        Unit::Requests => cpu.as_secs_f64() * 1e6 / units,
        Unit::Bytes => cpu.as_secs_f64() / (units / f64::from(1u32 << 30)),
    };
    let (p50_us, p99_us) = percentiles(&run.latencies);
    Sample {
        throughput: match unit {
            Unit::Requests => run.units as f64 / secs,
            Unit::Bytes => run.units as f64 / 1e6 / secs,
        },
        p50_us,
        p99_us,
        proxy_cpu: proxy.map(|w| per_unit(w.elapsed())),
        daemon_cpu: per_unit(daemon.elapsed()),
        resumed: run.resumed,
    }
}

fn percentiles(latencies: &[u32]) -> (Option<f64>, Option<f64>) {
    if latencies.is_empty() {
        return (None, None);
    }
    let mut sorted = latencies.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| f64::from(sorted[((sorted.len() - 1) as f64 * q).round() as usize]);
    (Some(at(0.50)), Some(at(0.99)))
}

fn ping_request() -> http::Request<client::ReqBody> {
    request(Method::GET, "/_ping", client::empty())
}

/// `conns` keep-alive connections, each sending `GET path` back to back for `window`.
async fn keep_alive(
    endpoint: Endpoint,
    path: &'static str,
    conns: usize,
    window: Duration,
) -> Result<Run, Error> {
    // Connected and warmed up before the clock starts: handshakes are not part of this.
    let mut ready = Vec::with_capacity(conns);
    for _ in 0..conns {
        let mut conn = endpoint.connect().await?;
        call(&mut conn.sender, ping_request(), StatusCode::OK).await?;
        ready.push(conn);
    }
    let start = Instant::now();
    let deadline = start + window;
    let mut tasks = JoinSet::new();
    for mut conn in ready {
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let req = request(Method::GET, path, client::empty());
                call(&mut conn.sender, req, StatusCode::OK).await?;
                latencies.push(sent.elapsed().as_micros() as u32);
            }
            Ok::<_, Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    Ok(Run {
        units: latencies.len() as u64,
        elapsed: start.elapsed(),
        latencies,
        resumed: None,
    })
}

/// `workers` loops of: new TLS connection, `GET /_ping`, close. With `resume`, all workers
/// share one client configuration and so its session store.
async fn handshakes(
    endpoint: Endpoint,
    resume: bool,
    workers: usize,
    window: Duration,
) -> Result<Run, Error> {
    let Endpoint::Tls { addr, config } = endpoint else {
        return Err("handshakes need a TLS target".into());
    };
    let mut shared = rustls::ClientConfig::clone(&config);
    shared.resumption = if resume {
        rustls::client::Resumption::in_memory_sessions(4096)
    } else {
        rustls::client::Resumption::disabled()
    };
    let endpoint = Endpoint::Tls {
        addr,
        config: Arc::new(shared),
    };
    let resumed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + window;
    let mut tasks = JoinSet::new();
    for _ in 0..workers {
        let endpoint = endpoint.clone();
        let resumed = resumed.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let mut conn: Conn = endpoint.connect().await?;
                if conn.handshake == Some(rustls::HandshakeKind::Resumed) {
                    resumed.fetch_add(1, Ordering::Relaxed);
                }
                call(&mut conn.sender, ping_request(), StatusCode::OK).await?;
                latencies.push(sent.elapsed().as_micros() as u32);
            }
            Ok::<_, Error>(latencies)
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done??);
    }
    let total = latencies.len() as u64;
    Ok(Run {
        units: total,
        elapsed: start.elapsed(),
        latencies,
        resumed: Some((resumed.load(Ordering::Relaxed), total)),
    })
}

/// `GET /containers/{id}/archive?path=/big`: the tar of one large file.
async fn archive_get(endpoint: Endpoint, container: String) -> Result<Run, Error> {
    let mut conn = endpoint.connect().await?;
    let path = format!("/containers/{container}/archive?path=/big");
    let start = Instant::now();
    let units = client::drain(
        &mut conn.sender,
        request(Method::GET, &path, client::empty()),
    )
    .await?;
    Ok(Run {
        units,
        elapsed: start.elapsed(),
        latencies: Vec::new(),
        resumed: None,
    })
}

/// `PUT /containers/{id}/archive?path=/tmp` of a tar holding one file of `size` bytes.
async fn archive_put(endpoint: Endpoint, container: String, size: u64) -> Result<Run, Error> {
    let mut conn = endpoint.connect().await?;
    let path = format!("/containers/{container}/archive?path=/tmp");
    let body = TarBody::new("up.bin", size);
    let units = hyper::body::Body::size_hint(&body).exact().unwrap_or(size);
    let start = Instant::now();
    call(
        &mut conn.sender,
        request(Method::PUT, &path, body.boxed()),
        StatusCode::OK,
    )
    .await?;
    Ok(Run {
        units,
        elapsed: start.elapsed(),
        latencies: Vec::new(),
        resumed: None,
    })
}

/// An exec in the running `cat` container streaming `size` bytes: down, `head -c` of
/// /dev/zero to stdout; up, the client's bytes into `head -c` on stdin. The daemon closes
/// the hijacked stream when the process exits, which ends the measurement.
async fn exec_stream(
    endpoint: Endpoint,
    container: String,
    size: u64,
    up: bool,
) -> Result<Run, Error> {
    let mut conn = endpoint.connect().await?;
    let cmd = if up {
        json!(["sh", "-c", format!("head -c {size} >/dev/null")])
    } else {
        json!(["head", "-c", size.to_string(), "/dev/zero"])
    };
    let create = client::json_request(
        Method::POST,
        &format!("/containers/{container}/exec"),
        &json!({"AttachStdin": up, "AttachStdout": true, "AttachStderr": true,
                             "Cmd": cmd}),
    );
    let created: serde_json::Value =
        serde_json::from_slice(&call(&mut conn.sender, create, StatusCode::CREATED).await?)?;
    let exec = created["Id"].as_str().ok_or("exec create without an Id")?;
    let start_req = client::json_request(
        Method::POST,
        &format!("/exec/{exec}/start"),
        &json!({"Detach": false, "Tty": false}),
    );
    let start = Instant::now();
    let stream = client::hijack(conn, start_req).await?;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let transfer = async {
        let write = async {
            if up {
                client::write_zeros(&mut writer, size).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (read, written) = tokio::join!(client::read_to_end(&mut reader), write);
        written?;
        read
    };
    let received = tokio::time::timeout(client::IO_TIMEOUT, transfer)
        .await
        .map_err(|_| "the exec stream did not end")??;
    if !up && received < size {
        return Err(format!("the exec stream ended after {received} of {size} bytes").into());
    }
    Ok(Run {
        units: size,
        elapsed: start.elapsed(),
        latencies: Vec::new(),
        resumed: None,
    })
}

const KEEP_ALIVE: &str = "keep-alive connection";
const ATTACH: &str = "attach session";

/// Something held open while memory is read: a connection or a hijacked stream.
type Held = Box<dyn Send>;

/// Reads RSS, opens `count` idle items with `open` (64 at a time), lets the target settle,
/// reads RSS again and closes them.
async fn hold_idle<F, Fut>(
    procs: &Procs,
    what: &'static str,
    kind: Kind,
    count: usize,
    open: F,
) -> Result<RssReading, Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Held, Error>> + Send + 'static,
{
    let before_kib = procs.rss_kib();
    let gate = Arc::new(Semaphore::new(64));
    let mut tasks = JoinSet::new();
    for _ in 0..count {
        let gate = gate.clone();
        let opening = open();
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            opening.await
        });
    }
    let mut held = Vec::with_capacity(count);
    while let Some(done) = tasks.join_next().await {
        held.push(
            done.map_err(|e| format!("{what} against {kind}: {e}"))?
                .map_err(|e| format!("opening {count} idle {what}s against {kind}: {e}"))?,
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_kib = procs.rss_kib();
    drop(held);
    let reading = RssReading {
        what,
        kind,
        count,
        before_kib,
        after_kib,
    };
    eprintln!(
        "  RSS with {count} idle {what}s {:<11}: {:.1} KiB each",
        kind.to_string(),
        reading.per_item_kib()
    );
    // Let the target notice the closes before the next reading's baseline.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(reading)
}

async fn idle_connection(endpoint: Endpoint) -> Result<Held, Error> {
    let mut conn = endpoint.connect().await?;
    call(&mut conn.sender, ping_request(), StatusCode::OK).await?;
    Ok(Box::new(conn.sender))
}

async fn idle_attach(endpoint: Endpoint, container: String) -> Result<Held, Error> {
    let conn = endpoint.connect().await?;
    let req = request(
        Method::POST,
        &format!("/containers/{container}/attach?stream=1&stdin=1&stdout=1&stderr=1"),
        client::empty(),
    );
    Ok(Box::new(client::hijack(conn, req).await?))
}

/// Creates containers back to back for `window`; returns their IDs.
async fn creates(endpoint: &Endpoint, window: Duration) -> Result<Vec<String>, Error> {
    let mut conn = endpoint.connect().await?;
    let deadline = Instant::now() + window;
    let mut ids = Vec::new();
    while Instant::now() < deadline {
        let req = client::json_request(
            Method::POST,
            "/containers/create",
            &json!({"Image": IMAGE, "Cmd": ["true"],
                                 "HostConfig": {"NetworkMode": "none"}}),
        );
        let answer = call(&mut conn.sender, req, StatusCode::CREATED).await?;
        let created: serde_json::Value = serde_json::from_slice(&answer)?;
        ids.push(
            created["Id"]
                .as_str()
                .ok_or("container create answered without an Id")?
                .to_owned(),
        );
    }
    Ok(ids)
}

async fn remove_all(socket: &Endpoint, ids: &[String]) -> Result<(), Error> {
    let mut conn = socket.connect().await?;
    for id in ids {
        fixtures::remove(&mut conn.sender, id).await?;
    }
    Ok(())
}
