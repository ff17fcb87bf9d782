//! The load client: HTTP/1.1 over mutual TLS (rustls) or the daemon's Unix socket.
//!
//! A small client of our own rather than oha, so that one process can hold 10,000 idle
//! connections, hijack exec and attach streams, count resumed handshakes and stream a
//! generated tar without buffering it.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::TlsConnector;

/// Ceiling for one request or stream; a hang fails the run instead of stalling it.
pub const IO_TIMEOUT: Duration = Duration::from_secs(120);

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type ReqBody = BoxBody<Bytes, Infallible>;

/// Where a target listens and, for TLS, who the client is.
#[derive(Clone)]
pub enum Endpoint {
    Tls {
        addr: SocketAddr,
        config: Arc<ClientConfig>,
    },
    Unix(PathBuf),
}

/// A byte stream to a target: TLS over TCP or a Unix socket.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An HTTP/1.1 client connection (upgrades enabled) and how its handshake went.
pub struct Conn {
    pub sender: SendRequest<ReqBody>,
    pub handshake: Option<HandshakeKind>,
}

impl Endpoint {
    /// Connects, completing the TLS handshake if any.
    pub async fn stream(&self) -> Result<(Box<dyn Io>, Option<HandshakeKind>), Error> {
        match self {
            Endpoint::Unix(path) => Ok((Box::new(UnixStream::connect(path).await?), None)),
            Endpoint::Tls { addr, config } => {
                let tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::IpAddress(addr.ip().into());
                let tls = TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await?;
                let kind = tls.get_ref().1.handshake_kind();
                Ok((Box::new(tls), kind))
            }
        }
    }

    /// A new HTTP/1.1 connection whose driver runs on its own task until it closes.
    pub async fn connect(&self) -> Result<Conn, Error> {
        let (io, handshake) = self.stream().await?;
        let (sender, conn) = http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(async move {
            // The connection ends when the sender is dropped or the peer closes it.
            let _ = conn.with_upgrades().await;
        });
        Ok(Conn { sender, handshake })
    }
}

/// A request with the Host header dockerd requires.
pub fn request(method: Method, path: &str, body: ReqBody) -> Request<ReqBody> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = path.parse().expect("a valid request path");
    req.headers_mut()
        .insert(http::header::HOST, http::HeaderValue::from_static("docker"));
    req
}

pub fn empty() -> ReqBody {
    Full::new(Bytes::new()).boxed()
}

/// A request with a JSON body, labelled as such (dockerd refuses it otherwise).
pub fn json_request(method: Method, path: &str, value: &serde_json::Value) -> Request<ReqBody> {
    let mut req = request(
        method,
        path,
        Full::new(Bytes::from(value.to_string())).boxed(),
    );
    req.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    req
}

/// Sends `req` and reads the whole answer, failing unless the status is `expect`.
pub async fn call(
    sender: &mut SendRequest<ReqBody>,
    req: Request<ReqBody>,
    expect: StatusCode,
) -> Result<Bytes, Error> {
    Ok(call_expecting(sender, req, &[expect]).await?.1)
}

/// Sends `req` and reads the whole answer, failing unless the status is one of `expect`.
pub async fn call_expecting(
    sender: &mut SendRequest<ReqBody>,
    req: Request<ReqBody>,
    expect: &[StatusCode],
) -> Result<(StatusCode, Bytes), Error> {
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let exchange = async {
        sender.ready().await?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, Error>((status, body))
    };
    let (status, body) = tokio::time::timeout(IO_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{method} {uri}: no answer within {IO_TIMEOUT:?}"))??;
    if !expect.contains(&status) {
        return Err(format!(
            "{method} {uri}: {status} (expected {expect:?}): {}",
            String::from_utf8_lossy(&body)
        )
        .into());
    }
    Ok((status, body))
}

/// Sends `req` and counts the bytes of a `200 OK` answer's body without keeping them.
pub async fn drain(sender: &mut SendRequest<ReqBody>, req: Request<ReqBody>) -> Result<u64, Error> {
    let what = format!("{} {}", req.method(), req.uri());
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    if resp.status() != StatusCode::OK {
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        return Err(format!("{what}: {status}: {}", String::from_utf8_lossy(&body)).into());
    }
    let mut body: Incoming = resp.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            total += data.len() as u64;
        }
    }
    Ok(total)
}

/// Sends an upgrade request (`Upgrade: tcp`, as the docker CLI does for exec and attach) and
/// returns the hijacked stream after `101 Switching Protocols`.
pub async fn hijack(mut conn: Conn, mut req: Request<ReqBody>) -> Result<TokioIo<Upgraded>, Error> {
    let what = format!("{} {}", req.method(), req.uri());
    let headers = req.headers_mut();
    headers.insert(http::header::CONNECTION, "Upgrade".parse()?);
    headers.insert(http::header::UPGRADE, "tcp".parse()?);
    conn.sender.ready().await?;
    let resp = conn.sender.send_request(req).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        return Err(format!("{what}: {status}: {}", String::from_utf8_lossy(&body)).into());
    }
    Ok(TokioIo::new(hyper::upgrade::on(resp).await?))
}

/// A rustls client configuration trusting `ca.pem` in `dir` and presenting `cert.pem` and
/// `key.pem` from it (the `DOCKER_CERT_PATH` layout `dockgate pki client` writes).
/// `resume` keeps rustls's default in-memory session store (tickets and session IDs);
/// otherwise every connection makes a full handshake.
pub fn tls_config(dir: &Path, resume: bool) -> Result<Arc<ClientConfig>, Error> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem"))? {
        roots.add(cert?)?;
    }
    let certs =
        CertificateDer::pem_file_iter(dir.join("cert.pem"))?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem"))?;
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)?;
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// An uncompressed tar archive of one file of `size` zero bytes, generated as it is sent.
pub struct TarBody {
    parts: std::vec::IntoIter<Bytes>,
    zeros_left: u64,
    trailer: Option<Bytes>,
    remaining: u64,
}

const CHUNK: usize = 256 * 1024;
static ZEROS: [u8; CHUNK] = [0; CHUNK];

impl TarBody {
    pub fn new(name: &str, size: u64) -> TarBody {
        let pad = (512 - size % 512) % 512;
        // The file's padding, then two empty blocks end the archive.
        let trailer = Bytes::from(vec![0u8; pad as usize + 1024]);
        let header = Bytes::from(ustar_header(name, size).to_vec());
        TarBody {
            remaining: header.len() as u64 + size + trailer.len() as u64,
            parts: vec![header].into_iter(),
            zeros_left: size,
            trailer: Some(trailer),
        }
    }
}

fn ustar_header(name: &str, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    // The checksum is computed with its own field read as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

impl Body for TarBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let chunk = if let Some(part) = self.parts.next() {
            part
        } else if self.zeros_left > 0 {
            let n = self.zeros_left.min(CHUNK as u64);
            self.zeros_left -= n;
            Bytes::from_static(&ZEROS[..n as usize])
        } else if let Some(trailer) = self.trailer.take() {
            trailer
        } else {
            return Poll::Ready(None);
        };
        self.remaining -= chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Reads `stream` to its end, counting bytes; the daemon closes exec streams when the process
/// exits.
pub async fn read_to_end<R: AsyncRead + Unpin>(stream: &mut R) -> io::Result<u64> {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

/// Writes `size` zero bytes to `stream`.
pub async fn write_zeros<W: AsyncWrite + Unpin>(stream: &mut W, size: u64) -> io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut left = size;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        stream.write_all(&ZEROS[..n]).await?;
        left -= n as u64;
    }
    stream.flush().await
}
