//! Hijacked streams: attach, exec start, BuildKit `/session` and `/grpc`.
//!
//! After both sides have switched protocols, the two upgraded connections
//! are spliced. Each direction is copied until its source reaches EOF, and
//! then only that direction's destination is shut down for writing:
//! - client → daemon carries stdin. The docker CLI signals stdin EOF with a
//!   TLS close_notify; that becomes `shutdown(SHUT_WR)` on the Unix socket,
//!   so the process in the container sees EOF while its output keeps coming.
//! - daemon → client carries output. When the daemon closes, the client gets
//!   a close_notify and the session is over.
//!
//! Bytes either side sent right behind its headers (stdin pipelined after
//! the request, output right behind the 101) are kept by hyper's upgrade
//! buffers and are the first bytes copied.

use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// Copy buffer per direction; large enough for bulk stdin/stdout.
const BUFFER: usize = 64 * 1024;

/// Bytes a session carried, however it ended.
#[derive(Debug, Default, Clone, Copy)]
pub struct Transferred {
    /// Client to daemon (stdin, BuildKit requests).
    pub from_client: u64,
    /// Daemon to client (output, BuildKit responses).
    pub to_client: u64,
}

#[derive(Debug)]
pub enum SessionEnd {
    /// Both directions reached EOF.
    Closed,
    /// One side failed or vanished mid-stream (often a client that closes
    /// without a TLS close_notify).
    Failed(std::io::Error),
    /// The gateway cut the session (revocation, shutdown).
    Cut,
}

/// Waits for both upgrades to complete, then splices them until the
/// session ends or `cut` is cancelled.
pub async fn splice(
    client: OnUpgrade,
    daemon: OnUpgrade,
    cut: CancellationToken,
) -> (SessionEnd, Transferred) {
    let (client, daemon) = match tokio::try_join!(client, daemon) {
        Ok(pair) => pair,
        Err(e) => {
            return (
                SessionEnd::Failed(std::io::Error::other(e)),
                Transferred::default(),
            )
        }
    };
    let mut client = Counted::new(TokioIo::new(client));
    let mut daemon = Counted::new(TokioIo::new(daemon));
    let end = {
        let copy =
            tokio::io::copy_bidirectional_with_sizes(&mut client, &mut daemon, BUFFER, BUFFER);
        tokio::select! {
            result = copy => match result {
                Ok(_) => SessionEnd::Closed,
                Err(e) => SessionEnd::Failed(e),
            },
            () = cut.cancelled() => SessionEnd::Cut,
        }
    };
    let moved = Transferred {
        from_client: client.read,
        to_client: daemon.read,
    };
    (end, moved)
}

/// Counts the bytes read from a stream as they arrive, so a session that
/// ends in an error still reports what it carried.
struct Counted<T> {
    inner: T,
    read: u64,
}

impl<T> Counted<T> {
    fn new(inner: T) -> Self {
        Counted { inner, read: 0 }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read += (buf.filled().len() - before) as u64;
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
