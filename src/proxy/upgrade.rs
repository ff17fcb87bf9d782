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
//!
//! A direction holds its copy buffer only while bytes are in flight: when
//! its source has nothing to read and everything read is written, the
//! buffer is freed. Most sessions sit idle (`docker attach`, `exec -it`, a
//! BuildKit session between builds), so they cost no copy buffers.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

/// Copy buffer per direction while bytes flow; large enough for bulk
/// stdin/stdout.
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
        let copy = copy_both(&mut client, &mut daemon);
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

/// Copies both directions until each source reaches EOF (shutting down its
/// destination for writing then), or until either side fails.
async fn copy_both<A, B>(a: &mut A, b: &mut B) -> io::Result<()>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut up, mut down) = (Pump::default(), Pump::default());
    std::future::poll_fn(|cx| {
        let up_done = up
            .poll(cx, Pin::new(&mut *a), Pin::new(&mut *b))?
            .is_ready();
        let down_done = down
            .poll(cx, Pin::new(&mut *b), Pin::new(&mut *a))?
            .is_ready();
        if up_done && down_done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// One direction of a session. `buf[start..end]` is read and not yet
/// written; `buf` is empty (unallocated) whenever that range is empty and
/// the source has nothing to read.
#[derive(Default)]
struct Pump {
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    need_flush: bool,
    done: bool,
}

impl Pump {
    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        mut reader: Pin<&mut R>,
        mut writer: Pin<&mut W>,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + ?Sized,
        W: AsyncWrite + ?Sized,
    {
        if self.done {
            return Poll::Ready(Ok(()));
        }
        loop {
            while self.start < self.end {
                let n = ready!(writer
                    .as_mut()
                    .poll_write(cx, &self.buf[self.start..self.end]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.start += n;
                self.need_flush = true;
            }
            if self.eof {
                ready!(writer.as_mut().poll_shutdown(cx))?;
                self.done = true;
                return Poll::Ready(Ok(()));
            }
            if self.buf.is_empty() {
                self.buf = vec![0; BUFFER].into_boxed_slice();
            }
            let mut read = ReadBuf::new(&mut self.buf);
            match reader.as_mut().poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    (self.start, self.end) = (0, n);
                    self.eof = n == 0;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // Idle: nothing is buffered, so the buffer goes back.
                    self.buf = Box::default();
                    if self.need_flush {
                        ready!(writer.as_mut().poll_flush(cx))?;
                        self.need_flush = false;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn each_direction_half_closes_on_its_own_and_idle_holds_no_buffer() {
        let (mut client, mut client_end) = tokio::io::duplex(1024);
        let (mut daemon, mut daemon_end) = tokio::io::duplex(1024);
        let splice = tokio::spawn(async move { copy_both(&mut client_end, &mut daemon_end).await });

        // More than one buffer's worth up, then stdin EOF; output keeps coming after it.
        let up: Vec<u8> = (0..3 * BUFFER).map(|i| i as u8).collect();
        let sent = up.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap();
            client
        });
        let mut got = Vec::new();
        daemon.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, up, "stdin arrives whole, then EOF");
        let mut client = writer.await.unwrap();
        daemon
            .write_all(b"output after stdin closed")
            .await
            .unwrap();
        drop(daemon);
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"output after stdin closed");
        splice.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_pump_whose_source_is_quiet_frees_its_buffer() {
        let (mut source, mut from) = tokio::io::duplex(1024);
        let (mut to, mut sink) = tokio::io::duplex(1024);
        let mut pump = Pump::default();
        source.write_all(b"burst").await.unwrap();
        let polled = std::future::poll_fn(|cx| {
            Poll::Ready(pump.poll(cx, Pin::new(&mut from), Pin::new(&mut to)))
        })
        .await;
        assert!(polled.is_pending(), "the session is still open");
        assert!(pump.buf.is_empty(), "an idle direction holds no buffer");
        let mut got = [0; 5];
        sink.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"burst");
    }
}
