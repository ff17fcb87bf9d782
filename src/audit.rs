//! The audit log: one JSON line per request, and one per upgraded session
//! when it ends.
//!
//! Lines carry who (peer, certificate identity, role), what (method, path,
//! operation), the decision and the rule behind it, and the outcome (status,
//! bytes each way, duration). They never carry bodies or registry
//! credentials. Lines are serialized on the request's task and written by a
//! dedicated thread, so a slow disk never stalls the proxy.
//!
//! [`crate::pipeline::audit`] is the tower layer that writes request lines;
//! the inner layers report their decision through a [`Decision`] response
//! extension.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use serde::Serialize;

use crate::connection::Connection;
use crate::metrics;

/// Where audit lines go. Cloning shares the writer.
#[derive(Clone, Debug)]
pub struct AuditLog {
    lines: mpsc::Sender<Vec<u8>>,
}

impl AuditLog {
    /// Appends to `path`, or writes to standard output when `None`.
    pub fn open(path: Option<&Path>) -> std::io::Result<AuditLog> {
        let sink: Box<dyn Write + Send> = match path {
            Some(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => Box::new(std::io::stdout()),
        };
        let (lines, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::Builder::new()
            .name("dockgate-audit".into())
            .spawn(move || write_lines(rx, sink))?;
        Ok(AuditLog { lines })
    }

    pub(crate) fn emit(&self, record: &Record<'_>) {
        let mut line = serde_json::to_vec(record).expect("audit records serialize");
        line.push(b'\n');
        // The writer only goes away at process exit.
        let _ = self.lines.send(line);
    }
}

/// Writes lines as they come and flushes whenever the queue is drained.
fn write_lines(rx: mpsc::Receiver<Vec<u8>>, sink: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::new(sink);
    while let Ok(line) = rx.recv() {
        let mut ok = out.write_all(&line).is_ok();
        while let Ok(more) = rx.try_recv() {
            ok &= out.write_all(&more).is_ok();
        }
        if !(ok && out.flush().is_ok()) {
            metrics::METRICS.audit_write_errors.inc();
        }
    }
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
