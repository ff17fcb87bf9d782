//! A confined classic build's context, checked as it streams to the
//! daemon ([`crate::policy::context`]).
//!
//! [`prefetch`] reads the start of the context before the daemon is
//! contacted, until the Dockerfile has been checked, the archive ended, or
//! `limits.inspect_body` bytes were read. So an ordinary refusal is a 403
//! that reaches nothing. The rest streams through [`ScannedContext`], which
//! forwards only bytes the scanner has cleared and holds a Dockerfile's
//! bytes until it is checked. A refusal found there (a Dockerfile far into
//! a large context) ends the upstream request with an error ([`Refused`]):
//! the daemon's untar fails on the cut archive before any step runs, and
//! the client gets the 403 all the same.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use super::ClientBody;
use crate::audit::Decision;
use crate::policy::context::ContextScanner;
use crate::policy::inspect::Violation;
use crate::policy::Denial;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The context body on its way to the daemon.
#[derive(Debug)]
pub struct ScannedContext {
    inner: ClientBody,
    scanner: ContextScanner,
    /// Scanned and cleared: forwarded next.
    ready: VecDeque<Bytes>,
    /// Scanned, not cleared yet.
    held: Vec<Bytes>,
    ended: bool,
}

/// The refusal of a context already under way to the daemon: the error
/// that cuts the upload, found again by the proxy in the send error.
#[derive(Debug)]
pub struct Refused(pub Violation);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "dockgate: build context refused (rule {}): may not {}",
            self.0.rule, self.0.what
        )
    }
}

impl std::error::Error for Refused {}

/// Reads and checks the start of a context; refuses with the rule named
/// when the Dockerfile in it fails its check.
pub async fn prefetch(
    body: ClientBody,
    mut scanner: ContextScanner,
    limit: usize,
    timeout: std::time::Duration,
    decision: &Decision,
) -> Result<ScannedContext, Denial> {
    let role = decision.role.as_deref().unwrap_or("?");
    let refuse = |v: Violation| {
        Denial::of(
            decision,
            StatusCode::FORBIDDEN,
            format!("dockgate: role {role} may not {} (rule {})", v.what, v.rule),
            v.rule,
        )
    };
    let mut context = ScannedContext {
        inner: body,
        scanner: ContextScanner::new(Vec::new(), 0),
        ready: VecDeque::new(),
        held: Vec::new(),
        ended: false,
    };
    let mut read = 0;
    let reading = async {
        while !scanner.settled() && read <= limit {
            match context.inner.frame().await {
                None => {
                    context.ended = true;
                    scanner.finish().map_err(refuse)?;
                    break;
                }
                Some(Err(e)) => {
                    return Err(Denial::of(
                        decision,
                        StatusCode::BAD_REQUEST,
                        format!("dockgate: cannot read the build context: {e}"),
                        "unreadable body",
                    ))
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        scanner.feed(&data).map_err(refuse)?;
                        read += data.len();
                        context.held.push(data);
                    }
                }
            }
        }
        Ok(())
    };
    match tokio::time::timeout(timeout, reading).await {
        Ok(Ok(())) => {}
        Ok(Err(denial)) => {
            // Refused while the client may still be sending: let it see why.
            if !context.ended {
                super::linger::linger(context.inner);
            }
            return Err(denial);
        }
        Err(_) => {
            return Err(Denial::of(
                decision,
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "dockgate: the start of the build context was not received within {} s",
                    timeout.as_secs_f64()
                ),
                "limits.body_read_timeout",
            ))
        }
    }
    context.scanner = scanner;
    context.release();
    Ok(context)
}

impl ScannedContext {
    fn release(&mut self) {
        if !self.scanner.holding() {
            self.ready.extend(self.held.drain(..));
        }
    }
}

impl Body for ScannedContext {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if let Some(data) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            if self.ended {
                // Bytes still held belong to an unchecked Dockerfile.
                return Poll::Ready(match self.held.is_empty() {
                    true => None,
                    false => Some(Err(
                        "dockgate: build context ended inside the Dockerfile".into()
                    )),
                });
            }
            let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(frame) => frame,
            };
            let this = &mut *self;
            match frame {
                None => {
                    this.ended = true;
                    if let Err(v) = this.scanner.finish() {
                        return Poll::Ready(Some(Err(refused(v))));
                    }
                    this.release();
                }
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                // Trailers are dropped: the daemon ignores them.
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if let Err(v) = this.scanner.feed(&data) {
                            this.held.clear();
                            return Poll::Ready(Some(Err(refused(v))));
                        }
                        this.held.push(data);
                        this.release();
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.ready.is_empty() && self.held.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        let buffered: usize = self.ready.iter().chain(&self.held).map(Bytes::len).sum();
        let mut hint = self.inner.size_hint();
        if self.ended {
            hint = SizeHint::with_exact(0);
        }
        let lower = hint.lower() + buffered as u64;
        match hint.upper() {
            Some(upper) => {
                let mut sized = SizeHint::new();
                sized.set_lower(lower);
                sized.set_upper(upper + buffered as u64);
                sized
            }
            None => {
                let mut open = SizeHint::new();
                open.set_lower(lower);
                open
            }
        }
    }
}

fn refused(v: Violation) -> BoxError {
    tracing::warn!(
        rule = v.rule,
        "build context refused while streaming: {}",
        v.what
    );
    Box::new(Refused(v))
}
