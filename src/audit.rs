//! The audit log: one JSON line per request, and one per upgraded session
//! when it ends.
//!
//! Lines carry who (peer, certificate identity, role), what (method, path,
//! operation), the decision and the rule behind it, and the outcome (status,
//! bytes each way, duration). They never carry bodies or registry
//! credentials. Lines are serialized on the request's task and written by a
//! dedicated thread, so a slow disk never stalls the proxy.
//!
//! [`AuditLayer`] composes this as a tower layer around the gateway; the
//! inner service reports its decision through a [`Decision`] response
//! extension.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, SizeHint};
use serde::Serialize;

use crate::metrics;
use crate::tls::Identity;

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

    fn emit(&self, record: &Record<'_>) {
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
            metrics::AUDIT_WRITE_ERRORS.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Who is on the other end of a client connection. The server puts one in
/// every request's extensions.
#[derive(Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    pub identity: Identity,
    /// The owner label of objects this client creates, computed once per
    /// connection.
    pub owner: String,
    /// The verified leaf certificate, for self-renewal.
    pub leaf: rustls::pki_types::CertificateDer<'static>,
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
struct Record<'a> {
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
    pub peer: Arc<Peer>,
    pub method: http::Method,
    pub path: String,
    pub decision: Option<Decision>,
}

impl Exchange {
    fn record(
        &self,
        kind: &'static str,
        status: u16,
        bytes_in: u64,
        bytes_out: u64,
        elapsed: Duration,
    ) -> Record<'_> {
        let identity = &self.peer.identity;
        let decision = self.decision.as_ref();
        Record {
            time: now_rfc3339(),
            kind,
            peer: self.peer.addr,
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

/// Tower layer that writes one audit line per request.
#[derive(Clone, Debug)]
pub struct AuditLayer {
    log: AuditLog,
}

impl AuditLayer {
    pub fn new(log: AuditLog) -> AuditLayer {
        AuditLayer { log }
    }
}

impl<S> tower::Layer<S> for AuditLayer {
    type Service = Audited<S>;

    fn layer(&self, inner: S) -> Audited<S> {
        Audited {
            inner,
            log: self.log.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Audited<S> {
    inner: S,
    log: AuditLog,
}

impl<S, ReqB, ResB> tower::Service<Request<ReqB>> for Audited<S>
where
    S: tower::Service<Request<Metered<ReqB>>, Response = Response<ResB>>,
    S::Future: Send + 'static,
    ResB: Body<Data = Bytes> + Unpin,
{
    type Response = Response<Reported<ResB>>;
    type Error = S::Error;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let started = Instant::now();
        let bytes_in = Arc::new(AtomicU64::new(0));
        let peer = request.extensions().get::<Arc<Peer>>().cloned();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let request = request.map(|body| Metered {
            inner: body,
            count: bytes_in.clone(),
        });
        let response = self.inner.call(request);
        let log = self.log.clone();
        Box::pin(async move {
            let response = response.await?;
            let status = response.status().as_u16();
            let report = peer.map(|peer| Report {
                log,
                exchange: Exchange {
                    peer,
                    method,
                    path,
                    decision: response.extensions().get::<Decision>().cloned(),
                },
                status,
                started,
                bytes_in,
            });
            Ok(response.map(|inner| Reported {
                inner,
                bytes_out: 0,
                report,
            }))
        })
    }
}

/// The data bytes in a polled frame.
fn data_len<E>(polled: &Poll<Option<Result<Frame<Bytes>, E>>>) -> u64 {
    match polled {
        Poll::Ready(Some(Ok(frame))) => frame.data_ref().map_or(0, |d| d.len() as u64),
        _ => 0,
    }
}

/// A body that counts the data bytes passing through it.
#[derive(Debug)]
pub struct Metered<B> {
    inner: B,
    count: Arc<AtomicU64>,
}

impl<B: Body<Data = Bytes> + Unpin> Body for Metered<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        self.count.fetch_add(data_len(&polled), Ordering::Relaxed);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

struct Report {
    log: AuditLog,
    exchange: Exchange,
    status: u16,
    started: Instant,
    bytes_in: Arc<AtomicU64>,
}

/// A response body that writes the audit line once it is finished or
/// dropped (the client went away), so streamed responses are recorded with
/// their full size and duration.
pub struct Reported<B> {
    inner: B,
    bytes_out: u64,
    report: Option<Report>,
}

impl<B> Drop for Reported<B> {
    fn drop(&mut self) {
        if let Some(r) = self.report.take() {
            let elapsed = r.started.elapsed();
            metrics::record_request(r.status, elapsed);
            r.log.emit(&r.exchange.record(
                "request",
                r.status,
                r.bytes_in.load(Ordering::Relaxed),
                self.bytes_out,
                elapsed,
            ));
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Reported<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        self.bytes_out += data_len(&polled);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
