//! The audit log: one JSON line per request, and one per upgraded session
//! when it ends.
//!
//! Lines carry who (peer, certificate identity, role), what (method, path,
//! operation), the decision and the rule behind it, and the outcome (status,
//! bytes each way, duration). They never carry bodies or registry
//! credentials. Lines are serialized on the request's task and written by a
//! dedicated thread, so a slow disk never stalls the proxy.
//!
//! The queue to that thread is bounded (`audit.queue`). A line that cannot
//! be written, or finds the queue full, is counted and logged at ERROR, and
//! [`AuditLog::available`] says so until a write succeeds again:
//! [`crate::pipeline::audit_guard`] then refuses new requests. SIGUSR1
//! reopens the file, so logrotate can rename it without `copytruncate`.
//!
//! [`crate::pipeline::audit`] is the tower layer that writes request lines;
//! the inner layers report their decision through a [`Decision`] response
//! extension.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{self, OnAuditFailure};
use crate::connection::Connection;
use crate::metrics;

/// How often, at most, lost audit lines are logged at ERROR while the sink
/// keeps failing (every one is counted).
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Where audit lines go. Cloning shares the writer.
#[derive(Clone, Debug)]
pub struct AuditLog {
    lines: mpsc::SyncSender<Message>,
    state: Arc<State>,
    on_failure: OnAuditFailure,
}

#[derive(Debug)]
enum Message {
    Line(Vec<u8>),
    /// Wakes the writer to act on a reopen request.
    Wake,
}

/// What the request path and the writer thread share.
#[derive(Debug)]
struct State {
    capacity: usize,
    /// Lines sent and not yet taken by the writer.
    queued: AtomicUsize,
    /// The last write failed; cleared by the next one that succeeds.
    failing: AtomicBool,
    reopen: AtomicBool,
    /// Lines lost since the last ERROR line, and when that was.
    lost: Mutex<(u64, Option<Instant>)>,
}

impl AuditLog {
    /// Appends to `audit.path`, or writes to standard output when unset,
    /// through a queue of at most `audit.queue` lines. A start line is
    /// written at once, so a sink that cannot be written is known before the
    /// first request.
    pub fn open(settings: &config::Audit) -> std::io::Result<AuditLog> {
        let mut sink = Sink::open(settings.path.as_deref())?;
        let queue = settings.queue;
        let state = Arc::new(State {
            capacity: queue.max(1),
            queued: AtomicUsize::new(0),
            failing: AtomicBool::new(false),
            reopen: AtomicBool::new(false),
            lost: Mutex::new((0, None)),
        });
        let start = Start {
            time: now_rfc3339(),
            kind: "start",
            version: env!("CARGO_PKG_VERSION"),
        };
        let mut line = serde_json::to_vec(&start).expect("audit records serialize");
        line.push(b'\n');
        state.write(&mut sink, &line, 1);
        let (lines, rx) = mpsc::sync_channel::<Message>(state.capacity);
        let writer = state.clone();
        std::thread::Builder::new()
            .name("dockgate-audit".into())
            .spawn(move || writer.write_lines(rx, sink))?;
        Ok(AuditLog {
            lines,
            state,
            on_failure: settings.on_failure,
        })
    }

    pub(crate) fn emit(&self, record: &Record<'_>) {
        let mut line = serde_json::to_vec(record).expect("audit records serialize");
        line.push(b'\n');
        // Counted before sending, so the writer never sees it negative.
        self.state.queued.fetch_add(1, Ordering::SeqCst);
        if self.lines.try_send(Message::Line(line)).is_err() {
            self.state.queued.fetch_sub(1, Ordering::SeqCst);
            self.state
                .lost(1, &std::io::Error::other("the audit queue is full"));
        }
    }

    /// Whether a new line would be written now: the last write succeeded
    /// and the queue has room.
    pub fn available(&self) -> bool {
        !self.state.failing.load(Ordering::SeqCst)
            && self.state.queued.load(Ordering::SeqCst) < self.state.capacity
    }

    /// Whether new requests must be refused: the log is not available and
    /// `audit.on_failure` is `deny`.
    pub fn refuses(&self) -> bool {
        self.on_failure == OnAuditFailure::Deny && !self.available()
    }

    /// Reopens the file on SIGUSR1 (after logrotate renamed it), for as long
    /// as the process runs.
    pub async fn reopen_on_sigusr1(self) {
        use tokio::signal::unix::{signal, SignalKind};
        let mut usr1 = match signal(SignalKind::user_defined1()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGUSR1; the audit log is never reopened");
                return;
            }
        };
        while usr1.recv().await.is_some() {
            self.state.reopen.store(true, Ordering::SeqCst);
            // A full queue wakes the writer anyway.
            let _ = self.lines.try_send(Message::Wake);
        }
    }
}

impl State {
    /// Writes lines as they come, a batch per wake-up.
    fn write_lines(&self, rx: mpsc::Receiver<Message>, mut sink: Sink) {
        while let Ok(first) = rx.recv() {
            let mut batch = Vec::new();
            let mut count = 0;
            for message in std::iter::once(first).chain(rx.try_iter()) {
                if let Message::Line(line) = message {
                    self.queued.fetch_sub(1, Ordering::SeqCst);
                    batch.extend_from_slice(&line);
                    count += 1;
                }
            }
            if self.reopen.swap(false, Ordering::SeqCst) {
                sink.reopen();
            }
            if count > 0 {
                self.write(&mut sink, &batch, count);
            }
        }
    }

    fn write(&self, sink: &mut Sink, batch: &[u8], lines: u64) {
        match sink.write(batch) {
            Ok(()) => {
                if self.failing.swap(false, Ordering::SeqCst) {
                    tracing::warn!("the audit log is written again");
                }
            }
            Err(e) => {
                self.failing.store(true, Ordering::SeqCst);
                self.lost(lines, &e);
            }
        }
    }

    /// Counts lost lines and logs them at ERROR, at most once an interval.
    fn lost(&self, lines: u64, error: &std::io::Error) {
        metrics::METRICS.audit_write_errors.inc_by(lines);
        let Ok(mut lost) = self.lost.lock() else {
            return;
        };
        lost.0 += lines;
        if lost.1.is_none_or(|at| at.elapsed() >= ERROR_LOG_INTERVAL) {
            tracing::error!(lines_lost = lost.0, %error, "audit log write failed");
            *lost = (0, Some(Instant::now()));
        }
    }
}

/// The audit file, or standard output.
enum Sink {
    Stdout,
    File { path: PathBuf, file: File },
}

impl Sink {
    fn open(path: Option<&Path>) -> std::io::Result<Sink> {
        Ok(match path {
            Some(path) => Sink::File {
                path: path.to_owned(),
                file: append(path)?,
            },
            None => Sink::Stdout,
        })
    }

    /// One `write_all` per batch: no buffer is left half-written after a
    /// failure.
    fn write(&mut self, batch: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(batch).and_then(|()| out.flush())
            }
            Sink::File { file, .. } => file.write_all(batch),
        }
    }

    /// Opens the path again; if that fails, lines keep going to the old file.
    fn reopen(&mut self) {
        let Sink::File { path, file } = self else {
            return;
        };
        match append(path) {
            Ok(new) => {
                *file = new;
                tracing::info!(path = %path.display(), "audit log reopened");
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot reopen the audit log; writing to the old file")
            }
        }
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// The first line after each start.
#[derive(Serialize)]
struct Start {
    time: String,
    kind: &'static str,
    version: &'static str,
}

/// What the gateway decided about a request, and why.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The Engine API operation, when the request mapped to one.
    pub operation: Option<&'static str>,
    pub role: Option<Arc<str>>,
    pub allowed: bool,
    /// The rule that made the decision, e.g. `roles.admin.operations: *`
    /// or `no route`. Shared, so carrying a decision along never copies it.
    pub rule: Arc<str>,
}

#[derive(Serialize)]
pub(crate) struct Record<'a> {
    time: String,
    kind: &'static str,
    peer: SocketAddr,
    cn: Option<&'a str>,
    serial: &'a str,
    fingerprint: &'a str,
    role: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    operation: Option<&'static str>,
    decision: &'static str,
    rule: &'a str,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    duration_ms: f64,
}

/// The fields shared by a request's line and its session's line.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub conn: Arc<Connection>,
    pub method: http::Method,
    pub path: String,
    pub decision: Option<Decision>,
}

impl Exchange {
    pub(crate) fn record(
        &self,
        kind: &'static str,
        status: u16,
        bytes_in: u64,
        bytes_out: u64,
        elapsed: Duration,
    ) -> Record<'_> {
        let identity = &self.conn.identity;
        let decision = self.decision.as_ref();
        Record {
            time: now_rfc3339(),
            kind,
            peer: self.conn.peer,
            cn: identity.common_name.as_deref(),
            serial: &identity.serial,
            fingerprint: &identity.fingerprint,
            role: decision.and_then(|d| d.role.as_deref()),
            method: self.method.as_str(),
            path: &self.path,
            operation: decision.and_then(|d| d.operation),
            decision: match decision {
                Some(d) if d.allowed => "allow",
                Some(_) => "deny",
                None => "error",
            },
            rule: decision.map_or("", |d| &d.rule),
            status,
            bytes_in,
            bytes_out,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
        }
    }

    /// Records an upgraded session that has ended.
    pub fn session_ended(
        &self,
        log: &AuditLog,
        from_client: u64,
        to_client: u64,
        elapsed: Duration,
    ) {
        log.emit(&self.record("session", 101, from_client, to_client, elapsed));
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(path: &Path) -> config::Audit {
        config::Audit {
            path: Some(path.to_owned()),
            queue: 10,
            on_failure: OnAuditFailure::Deny,
        }
    }

    fn record() -> Record<'static> {
        Record {
            time: now_rfc3339(),
            kind: "request",
            peer: "127.0.0.1:1".parse().unwrap(),
            cn: Some("t"),
            serial: "01",
            fingerprint: "ff",
            role: None,
            method: "GET",
            path: "/_ping",
            operation: None,
            decision: "allow",
            rule: "",
            status: 200,
            bytes_in: 0,
            bytes_out: 0,
            duration_ms: 0.0,
        }
    }

    #[test]
    fn lines_that_cannot_be_written_are_counted_and_the_log_is_unavailable() {
        let before = metrics::METRICS.audit_write_errors.get();
        let log = AuditLog::open(&settings(Path::new("/dev/full"))).unwrap();
        // The start line already failed.
        assert!(!log.available() && log.refuses());
        for _ in 0..3 {
            log.emit(&record());
        }
        // Other tests may count too: at least the start line and these three.
        let deadline = Instant::now() + Duration::from_secs(20);
        while metrics::METRICS.audit_write_errors.get() < before + 4 {
            assert!(Instant::now() < deadline, "lost lines were not counted");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!log.available());
    }

    #[test]
    fn a_full_queue_makes_the_log_unavailable_and_its_overflow_is_counted() {
        let dir = std::env::temp_dir().join(format!("dockgate-audit-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("audit.pipe");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // A reader that never reads: once the pipe is full, the writer blocks.
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || File::open(fifo).unwrap())
        };
        let log = AuditLog::open(&config::Audit {
            queue: 4,
            ..settings(&fifo)
        })
        .unwrap();
        let _reader = reader.join().unwrap();
        let before = metrics::METRICS.audit_write_errors.get();
        // Once the pipe is full the queue fills, and lines that find it full are lost.
        let mut emitted = 0;
        while log.available() || metrics::METRICS.audit_write_errors.get() == before {
            assert!(emitted < 100_000, "the queue never filled");
            log.emit(&record());
            emitted += 1;
        }
        assert!(log.refuses());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_writable_file_is_available_and_gets_a_start_line() {
        let path = std::env::temp_dir().join(format!("dockgate-audit-{}.log", std::process::id()));
        let log = AuditLog::open(&settings(&path)).unwrap();
        assert!(log.available());
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(
            text.starts_with('{') && text.contains(r#""kind":"start""#),
            "{text}"
        );
    }
}
