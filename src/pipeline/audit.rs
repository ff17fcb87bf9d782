//! The audit layer: the outermost layer of the pipeline, so that every
//! request gets exactly one audit line, whatever the layers inside decide.
//!
//! The line is written when the response body has been sent or dropped
//! (the client went away), so streamed responses are recorded with their
//! full size and duration. Request bytes are counted as the body is read.
//! The line itself is rendered and written by the audit thread.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, SizeHint};

use crate::audit::{AuditLog, Decision, Exchange};
use crate::connection::Connection;
use crate::metrics;

/// Writes one audit line per request of a connection.
#[derive(Clone, Debug)]
pub struct Audit<S> {
    inner: S,
    conn: Arc<Connection>,
    log: AuditLog,
}

impl<S> Audit<S> {
    pub fn new(inner: S, conn: Arc<Connection>, log: AuditLog) -> Audit<S> {
        Audit { inner, conn, log }
    }
}

impl<S, ReqB, ResB> tower::Service<Request<ReqB>> for Audit<S>
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
        let conn = self.conn.clone();
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
            let report = Some(Report {
                log,
                exchange: Exchange {
                    conn,
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
            let bytes_in = r.bytes_in.load(Ordering::Relaxed);
            let decision = r.exchange.decision.as_ref();
            let labels = metrics::RequestLabels {
                operation: decision.and_then(|d| d.operation).unwrap_or("none"),
                role: decision.and_then(|d| d.role.clone()).map(metrics::Name),
                decision: match decision {
                    Some(d) if d.allowed => "allow",
                    Some(_) => "deny",
                    None => "error",
                },
            };
            metrics::METRICS.request(&labels, elapsed, bytes_in, self.bytes_out);
            r.log.emit(
                r.exchange
                    .entry("request", r.status, bytes_in, self.bytes_out, elapsed),
            );
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
