//! The audit log: one JSON line per request, and one per upgraded session
//! when it ends.
//!
//! Lines carry who (peer, certificate identity, role), what (method, path,
//! operation), the decision and the rule behind it, and the outcome (status,
//! bytes each way, duration). They never carry bodies or registry
//! credentials. A request hands its [`Entry`] (a few words and the path) to a
//! dedicated thread, which renders and writes the line, so neither JSON nor
//! a slow disk is on the request path. What a connection's lines share
//! (peer and certificate) is rendered once per connection ([`Who`]). The
//! lines are byte for byte what `serde_json` writes for the same fields;
//! the renderer only skips escaping strings that need none.
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
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config::{self, OnAuditFailure};
use crate::connection::Connection;
use crate::metrics;
use crate::tls::Identity;

/// How often, at most, lost audit lines are logged at ERROR while the sink
/// keeps failing (every one is counted).
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Bytes of rendered lines the writer keeps allocated between batches.
const BATCH_KEPT: usize = 64 * 1024;
/// The writer's pause after each batch. Lines that arrive meanwhile wait
/// for the next batch, so a busy gateway wakes the writer and writes once a
/// pause, not once a request; an idle one writes each line when it comes.
const GATHER: Duration = Duration::from_millis(1);

/// Where audit lines go. Cloning shares the writer.
#[derive(Clone, Debug)]
pub struct AuditLog {
    lines: mpsc::SyncSender<Message>,
    state: Arc<State>,
    on_failure: OnAuditFailure,
}

#[derive(Debug)]
enum Message {
    Entry(Box<Entry>),
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

    pub(crate) fn emit(&self, entry: Entry) {
        // Counted before sending, so the writer never sees it negative.
        self.state.queued.fetch_add(1, Ordering::SeqCst);
        if self
            .lines
            .try_send(Message::Entry(Box::new(entry)))
            .is_err()
        {
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
    /// Writes lines as they come, a batch per wake-up (see [`GATHER`]).
    fn write_lines(&self, rx: mpsc::Receiver<Message>, mut sink: Sink) {
        // One buffer for every batch; a burst's is given back afterwards.
        let mut batch = Vec::with_capacity(BATCH_KEPT);
        while let Ok(first) = rx.recv() {
            batch.clear();
            batch.shrink_to(BATCH_KEPT);
            let mut count = 0;
            for message in std::iter::once(first).chain(rx.try_iter()) {
                if let Message::Entry(entry) = message {
                    self.queued.fetch_sub(1, Ordering::SeqCst);
                    entry.render(&mut batch);
                    count += 1;
                }
            }
            if self.reopen.swap(false, Ordering::SeqCst) {
                sink.reopen();
            }
            if count > 0 {
                self.write(&mut sink, &batch, count);
            }
            std::thread::sleep(GATHER);
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

/// The peer and certificate fields of a connection's lines, rendered
/// once: `"peer":…,"cn":…,"serial":…,"fingerprint":…`.
#[derive(Debug, Clone)]
pub struct Who(Arc<str>);

impl Who {
    pub fn of(peer: SocketAddr, identity: &Identity) -> Who {
        let mut out = Vec::with_capacity(160);
        field(&mut out, "peer", &peer.to_string());
        out.push(b',');
        match &identity.common_name {
            Some(cn) => field(&mut out, "cn", cn),
            None => out.extend_from_slice(br#""cn":null"#),
        }
        out.push(b',');
        field(&mut out, "serial", &identity.serial);
        out.push(b',');
        field(&mut out, "fingerprint", &identity.fingerprint);
        Who(String::from_utf8(out)
            .expect("rendered from strings")
            .into())
    }
}

/// One audit line, as the request path hands it to the writer thread.
#[derive(Debug)]
pub(crate) struct Entry {
    time: SystemTime,
    kind: &'static str,
    who: Who,
    method: http::Method,
    path: String,
    decision: Option<Decision>,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    elapsed: Duration,
}

impl Entry {
    /// Appends the JSON line, newline included.
    fn render(&self, out: &mut Vec<u8>) {
        let decision = self.decision.as_ref();
        out.push(b'{');
        field(out, "time", &rfc3339(self.time));
        out.push(b',');
        field(out, "kind", self.kind);
        out.push(b',');
        out.extend_from_slice(self.who.0.as_bytes());
        out.extend_from_slice(br#","role":"#);
        optional(out, decision.and_then(|d| d.role.as_deref()));
        out.push(b',');
        field(out, "method", self.method.as_str());
        out.push(b',');
        field(out, "path", &self.path);
        out.extend_from_slice(br#","operation":"#);
        optional(out, decision.and_then(|d| d.operation));
        out.push(b',');
        let verdict = match decision {
            Some(d) if d.allowed => "allow",
            Some(_) => "deny",
            None => "error",
        };
        field(out, "decision", verdict);
        out.push(b',');
        field(out, "rule", decision.map_or("", |d| &d.rule));
        out.extend_from_slice(br#","status":"#);
        number(out, &self.status);
        out.extend_from_slice(br#","bytes_in":"#);
        number(out, &self.bytes_in);
        out.extend_from_slice(br#","bytes_out":"#);
        number(out, &self.bytes_out);
        out.extend_from_slice(br#","duration_ms":"#);
        number(out, &(self.elapsed.as_secs_f64() * 1000.0));
        out.extend_from_slice(b"}\n");
    }
}

/// `"name":"value"`.
fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    string(out, name);
    out.push(b':');
    string(out, value);
}

fn optional(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => string(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string as `serde_json` writes it; most need no escaping and are
/// copied as they are.
fn string(out: &mut Vec<u8>, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, value).expect("a string serializes");
    }
}

fn number(out: &mut Vec<u8>, value: &impl Serialize) {
    serde_json::to_writer(out, value).expect("a number serializes");
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
    /// The line for this exchange, ending now.
    pub(crate) fn entry(
        self,
        kind: &'static str,
        status: u16,
        bytes_in: u64,
        bytes_out: u64,
        elapsed: Duration,
    ) -> Entry {
        Entry {
            time: SystemTime::now(),
            kind,
            who: self.conn.audit_who.clone(),
            method: self.method,
            path: self.path,
            decision: self.decision,
            status,
            bytes_in,
            bytes_out,
            elapsed,
        }
    }

    /// Records an upgraded session that has ended.
    pub fn session_ended(
        self,
        log: &AuditLog,
        from_client: u64,
        to_client: u64,
        elapsed: Duration,
    ) {
        log.emit(self.entry("session", 101, from_client, to_client, elapsed));
    }
}

fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

fn rfc3339(time: SystemTime) -> String {
    time::OffsetDateTime::from(time)
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

    fn entry() -> Entry {
        Entry {
            time: SystemTime::now(),
            kind: "request",
            who: Who::of("127.0.0.1:1".parse().unwrap(), &Identity::default()),
            method: http::Method::GET,
            path: "/_ping".into(),
            decision: None,
            status: 200,
            bytes_in: 0,
            bytes_out: 0,
            elapsed: Duration::ZERO,
        }
    }

    /// The line's fields, in order, as `serde_json` serializes them.
    #[derive(Serialize)]
    struct Reference<'a> {
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

    /// The renderer writes what serializing the same fields with
    /// `serde_json` writes, escapes included.
    #[test]
    fn lines_are_what_serde_json_writes() {
        let identity = Identity {
            common_name: Some("quote \" back\\slash \u{1} tab\t é".into()),
            serial: "0a".into(),
            fingerprint: "ff00".into(),
            ..Identity::default()
        };
        let time = SystemTime::UNIX_EPOCH + Duration::from_nanos(1_764_625_000_123_456_789);
        let cases = [
            (
                Some(Decision {
                    operation: Some("ContainerList"),
                    role: Some(Arc::from("ci\n")),
                    allowed: true,
                    rule: Arc::from("roles.ci.operations: Container*"),
                }),
                Duration::from_micros(1500),
            ),
            (
                Some(Decision {
                    operation: None,
                    role: None,
                    allowed: false,
                    rule: Arc::from("no route"),
                }),
                Duration::from_nanos(1),
            ),
            (None, Duration::from_secs(7200)),
        ];
        for (decision, elapsed) in cases {
            let entry = Entry {
                time,
                kind: "session",
                who: Who::of("[::1]:2376".parse().unwrap(), &identity),
                method: http::Method::from_bytes(b"PROPFIND").unwrap(),
                path: "/containers/\"x\"/json\u{7f}".into(),
                decision: decision.clone(),
                status: 101,
                bytes_in: u64::MAX,
                bytes_out: 0,
                elapsed,
            };
            let mut rendered = Vec::new();
            entry.render(&mut rendered);
            let d = decision.as_ref();
            let mut expected = serde_json::to_vec(&Reference {
                time: rfc3339(time),
                kind: "session",
                peer: "[::1]:2376".parse().unwrap(),
                cn: identity.common_name.as_deref(),
                serial: "0a",
                fingerprint: "ff00",
                role: d.and_then(|d| d.role.as_deref()),
                method: "PROPFIND",
                path: &entry.path,
                operation: d.and_then(|d| d.operation),
                decision: match d {
                    Some(d) if d.allowed => "allow",
                    Some(_) => "deny",
                    None => "error",
                },
                rule: d.map_or("", |d| &d.rule),
                status: 101,
                bytes_in: u64::MAX,
                bytes_out: 0,
                duration_ms: elapsed.as_secs_f64() * 1000.0,
            })
            .unwrap();
            expected.push(b'\n');
            assert_eq!(
                String::from_utf8(rendered).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    #[test]
    fn lines_that_cannot_be_written_are_counted_and_the_log_is_unavailable() {
        let before = metrics::METRICS.audit_write_errors.get();
        let log = AuditLog::open(&settings(Path::new("/dev/full"))).unwrap();
        // The start line already failed.
        assert!(!log.available() && log.refuses());
        for _ in 0..3 {
            log.emit(entry());
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
            log.emit(entry());
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
