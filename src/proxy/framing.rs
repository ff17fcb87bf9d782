//! Request framing checks below hyper: refuses request-smuggling shapes.
//!
//! hyper accepts a request head carrying both `Content-Length` and
//! `Transfer-Encoding` (RFC 9112 §6.3: it drops the length and reads
//! chunked), so the service cannot tell that the length was ever there.
//! [`Framing`] wraps the client's TLS stream and hands every byte hyper
//! reads to a [`Tracker`], which follows the request messages with the same
//! grammar hyper applies (dockgate-wire's `framing` module lists the rules).
//! Because the wrapper sees every byte before hyper parses it, a bad head
//! has been recorded by the time hyper hands its request to the gateway,
//! which asks [`FramingCheck::admit`] first and answers 400 instead of
//! forwarding. Requests pipelined ahead of the violation are well framed and
//! still served; the violating request and every later one are refused.
//!
//! A body that is streamed to the daemon and turns out to be badly chunked
//! midway is cut by hyper itself: its decoder errors, the upstream request
//! fails and the connection is closed, so nothing after the bad chunk is
//! forwarded.
//!
//! Cost on the hot path: one uncontended lock per read; body data is
//! skipped by count and only head bytes are buffered.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use dockgate_wire::framing::{self as wire, Tracker};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::audit::Decision;
use crate::policy::Denial;

/// Why a request's framing is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    LengthWithTransferEncoding,
    DifferingLengths,
    InvalidLength,
    UnchunkedTransferEncoding,
    TransferEncodingInHttp10,
    UnparsableHead,
    HeadTooLarge,
    ChunkSize,
    ChunkSizeOverflow,
    ChunkSizeLine,
    ChunkExtension,
    ChunkExtensionsTooLong,
    ChunkDataEnd,
    LastChunkEnd,
    Trailer,
    TrailersTooLarge,
    /// More than 64 KiB behind an upgrade the daemon declined.
    EarlyUpgradeData,
    /// A request the check never saw a head for; the two parsers disagree.
    Unseen,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Violation::LengthWithTransferEncoding => {
                "Content-Length together with Transfer-Encoding"
            }
            Violation::DifferingLengths => "differing Content-Length values",
            Violation::InvalidLength => "invalid Content-Length",
            Violation::UnchunkedTransferEncoding => {
                "Transfer-Encoding whose final coding is not chunked"
            }
            Violation::TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            Violation::UnparsableHead => "unparsable request head",
            Violation::HeadTooLarge => "request head larger than 408 KiB",
            Violation::ChunkSize => "invalid chunk size",
            Violation::ChunkSizeOverflow => "chunk size overflows",
            Violation::ChunkSizeLine => "chunk size line not ended by CRLF",
            Violation::ChunkExtension => "invalid chunk extension",
            Violation::ChunkExtensionsTooLong => "chunk extensions longer than 16 KiB",
            Violation::ChunkDataEnd => "chunk data not followed by CRLF",
            Violation::LastChunkEnd => "last chunk not followed by CRLF",
            Violation::Trailer => "invalid chunked trailer",
            Violation::TrailersTooLarge => "chunked trailers larger than 16 KiB",
            Violation::EarlyUpgradeData => {
                "more than 64 KiB sent behind an upgrade request that was not upgraded"
            }
            Violation::Unseen => "request not seen by the framing check",
        })
    }
}

impl Violation {
    /// The 400 refusal for the client and the audit log.
    pub fn denial(self, role: Option<std::sync::Arc<str>>) -> Denial {
        Denial {
            status: StatusCode::BAD_REQUEST,
            message: format!("dockgate: refused request framing: {self}"),
            decision: Decision {
                operation: None,
                role,
                allowed: false,
                rule: "request framing".into(),
            },
        }
    }
}

/// The tracker's refusal, under the name the gateway reports it by.
impl From<wire::Error> for Violation {
    fn from(error: wire::Error) -> Violation {
        match error {
            wire::Error::LengthWithTransferEncoding => Violation::LengthWithTransferEncoding,
            wire::Error::DifferingLengths => Violation::DifferingLengths,
            wire::Error::InvalidLength => Violation::InvalidLength,
            wire::Error::UnchunkedTransferEncoding => Violation::UnchunkedTransferEncoding,
            wire::Error::TransferEncodingInHttp10 => Violation::TransferEncodingInHttp10,
            wire::Error::UnparsableHead => Violation::UnparsableHead,
            wire::Error::HeadTooLarge => Violation::HeadTooLarge,
            wire::Error::ChunkSize => Violation::ChunkSize,
            wire::Error::ChunkSizeOverflow => Violation::ChunkSizeOverflow,
            wire::Error::ChunkSizeLine => Violation::ChunkSizeLine,
            wire::Error::ChunkExtension => Violation::ChunkExtension,
            wire::Error::ChunkExtensionsTooLong => Violation::ChunkExtensionsTooLong,
            wire::Error::ChunkDataEnd => Violation::ChunkDataEnd,
            wire::Error::LastChunkEnd => Violation::LastChunkEnd,
            wire::Error::Trailer => Violation::Trailer,
            wire::Error::TrailersTooLarge => Violation::TrailersTooLarge,
            wire::Error::EarlyUpgradeData => Violation::EarlyUpgradeData,
            wire::Error::Unseen => Violation::Unseen,
        }
    }
}

/// The client's stream, watched: reads are observed by the connection's
/// tracker, writes pass through untouched.
pub struct Framing<T> {
    io: T,
    tracker: Arc<Mutex<Tracker>>,
}

/// The gateway's side of a connection's [`Framing`]; one per connection,
/// cloned into each request.
#[derive(Clone)]
pub struct FramingCheck(Arc<Mutex<Tracker>>);

impl<T> Framing<T> {
    pub fn new(io: T) -> (Framing<T>, FramingCheck) {
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let check = FramingCheck(tracker.clone());
        (Framing { io, tracker }, check)
    }
}

impl FramingCheck {
    /// Admits the connection's next request, or says why it is refused.
    /// Must be called exactly once per request, in order.
    pub fn admit(&self) -> Result<(), Violation> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit()
            .map_err(Violation::from)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Framing<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                this.tracker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .observe(read);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Framing<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const GET: &str = "GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\n\r\n";

    const ATTACH: &str = "POST /v1.41/containers/c/attach?stream=1&stdin=1 HTTP/1.1\r\n\
                          Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";

    #[tokio::test]
    async fn the_wrapper_observes_reads_and_passes_writes() {
        let (client, server) = tokio::io::duplex(64);
        let (mut wrapped, check) = Framing::new(server);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let bad = "POST /containers/create HTTP/1.1\r\nContent-Length: 5\r\n\
                   Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let sent = format!("{GET}{bad}");
        let writer = tokio::spawn(async move {
            client_write.write_all(sent.as_bytes()).await.unwrap();
            client_write.shutdown().await.unwrap();
        });
        let mut read = Vec::new();
        wrapped.read_to_end(&mut read).await.unwrap();
        writer.await.unwrap();
        assert_eq!(read, format!("{GET}{bad}").as_bytes());
        assert_eq!(check.admit(), Ok(()));
        assert_eq!(check.admit(), Err(Violation::LengthWithTransferEncoding));

        wrapped
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        wrapped.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client_read.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 400 Bad Request\r\n\r\n");
    }

    /// Serves `input` with hyper over a [`Framing`]-wrapped stream, the way
    /// the server does, and returns what each request was told.
    async fn serve(input: String, requests: usize) -> Vec<Result<(), Violation>> {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Incoming;

        let (client, server) = tokio::io::duplex(1 << 16);
        let (io, check) = Framing::new(server);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let verdict = check.admit();
            let tx = tx.clone();
            async move {
                // Declines every upgrade; reads every body to its end.
                let body = request.into_body().collect().await.map(|b| b.to_bytes());
                let _ = tx.send((verdict, body.is_ok()));
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                    bytes::Bytes::new(),
                )))
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        tokio::spawn(connection);
        let (mut from_server, mut to_server) = tokio::io::split(client);
        tokio::spawn(async move { to_server.write_all(input.as_bytes()).await });
        tokio::spawn(
            async move { tokio::io::copy(&mut from_server, &mut tokio::io::sink()).await },
        );
        let mut told = Vec::new();
        while told.len() < requests {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
            let Ok(Some((verdict, body_read))) = next else {
                break;
            };
            assert!(body_read, "hyper read request {} whole", told.len());
            told.push(verdict);
        }
        told
    }

    #[tokio::test]
    async fn hyper_sees_the_same_requests() {
        let body = "GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let sized = format!(
            "POST /containers/create HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let chunked = "POST /build HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                       5;name=value\r\nhello\r\nA \t;x\r\n0\r\n\r\n0\r\n\r\n\r\n\
                       0;last\r\nX-Trailer: 1\r\n\r\n";
        let bare = "\r\nGET /_ping HTTP/1.1\nHost: docker\n\n";
        let input = format!("{GET}{sized}{chunked}{bare}{ATTACH}{sized}{GET}");
        assert_eq!(serve(input, 7).await, [Ok(()); 7]);

        let smuggled = "POST /containers/create HTTP/1.1\r\nContent-Length: 5\r\n\
                        Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let input = format!("{GET}{ATTACH}{smuggled}");
        assert_eq!(
            serve(input, 3).await,
            [Ok(()), Ok(()), Err(Violation::LengthWithTransferEncoding)]
        );
    }

    #[test]
    fn refusal_is_docker_shaped() {
        let denial = Violation::LengthWithTransferEncoding.denial(Some("admin".into()));
        assert_eq!(denial.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            denial.message,
            "dockgate: refused request framing: Content-Length together with Transfer-Encoding"
        );
        assert!(!denial.decision.allowed);
        assert_eq!(denial.decision.role.as_deref(), Some("admin"));
    }
}
