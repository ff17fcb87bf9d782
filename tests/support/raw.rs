//! Raw HTTP/1.1 over a client's mutual-TLS connection, for protocol-level tests.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Ceiling for any single network wait in a raw test.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

pub fn load_certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| panic!("read certificates from {}: {e}", path.display()))
}

pub fn load_key(path: &Path) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_file(path)
        .unwrap_or_else(|e| panic!("read private key from {}: {e}", path.display()))
}

/// A client configuration trusting `ca` and, if given, presenting `identity` (cert, key).
pub fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(ca) {
        roots
            .add(cert)
            .expect("add CA certificate to the root store");
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("rustls protocol versions")
            .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(load_certs(cert), load_key(key))
            .expect("client identity"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// A response head.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// First value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn parse(raw: &[u8]) -> Head {
        let text = String::from_utf8_lossy(raw);
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        assert!(
            version.starts_with("HTTP/1."),
            "not an HTTP/1.x response: {status_line:?}"
        );
        let status = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("bad header line {l:?}"));
                (k.trim().to_owned(), v.trim().to_owned())
            })
            .collect();
        Head { status, headers }
    }
}

/// One TLS connection plus the bytes read past what the test consumed so far.
pub struct RawConn {
    stream: TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl RawConn {
    /// Connects and completes the client side of the handshake. Under TLS 1.3 the server's
    /// verdict on the client certificate arrives after this returns, on the first read.
    pub async fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<RawConn> {
        RawConn::connect_from(addr, config).await.1
    }

    /// Like [`RawConn::connect`], also returning this end's TCP address (the peer address the
    /// gateway sees) even when the TLS handshake fails. Panics if TCP itself cannot connect.
    pub async fn connect_from(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
    ) -> (SocketAddr, io::Result<RawConn>) {
        let tcp = within(TcpStream::connect(addr))
            .await
            .unwrap_or_else(|e| panic!("TCP connect to {addr}: {e}"));
        let local = tcp
            .local_addr()
            .expect("local address of a connected socket");
        let name = ServerName::IpAddress(addr.ip().into());
        let tls = within(TlsConnector::from(config).connect(name, tcp))
            .await
            .map(|stream| RawConn {
                stream,
                buf: Vec::new(),
            });
        (local, tls)
    }

    /// Whether the handshake was full or resumed a session.
    pub fn handshake_kind(&self) -> Option<rustls::HandshakeKind> {
        self.stream.get_ref().1.handshake_kind()
    }

    pub async fn try_send(&mut self, bytes: &[u8]) -> io::Result<()> {
        within(async {
            self.stream.write_all(bytes).await?;
            self.stream.flush().await
        })
        .await
    }

    /// Writes `bytes` in one TLS write and flushes them.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.try_send(bytes).await.expect("write to the gateway");
    }

    /// Sends TLS close_notify (the client's half-close) and keeps the read side open.
    pub async fn close_notify(&mut self) {
        self.stream.get_mut().1.send_close_notify();
        within(self.stream.flush())
            .await
            .expect("flush close_notify");
    }

    /// Reads more bytes into the buffer; Ok(0) at a clean end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 16 * 1024];
        let n = within(self.stream.read(&mut chunk)).await?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads whatever arrives next (at least one byte), or Ok(empty) at end of stream.
    pub async fn try_read_some(&mut self) -> io::Result<Vec<u8>> {
        if self.buf.is_empty() {
            self.fill().await?;
        }
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads a response head; bytes after it stay buffered.
    pub async fn read_head(&mut self) -> Head {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = Head::parse(&self.buf[..end]);
                self.buf.drain(..end + 4);
                return head;
            }
            let n = self.fill().await.expect("read response head");
            assert!(
                n > 0,
                "connection ended before a complete response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        }
    }

    pub async fn read_exact(&mut self, len: usize) -> Vec<u8> {
        while self.buf.len() < len {
            let n = self.fill().await.expect("read from the gateway");
            assert!(
                n > 0,
                "connection ended after {} of {len} expected bytes",
                self.buf.len()
            );
        }
        self.buf.drain(..len).collect()
    }

    async fn read_line(&mut self) -> Vec<u8> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                return line;
            }
            let n = self.fill().await.expect("read a line");
            assert!(n > 0, "connection ended inside a line");
        }
    }

    /// Everything up to the end of the stream, and how the stream ended: Ok for a clean TLS
    /// close (close_notify), Err otherwise.
    pub async fn read_until_end(&mut self) -> (Vec<u8>, io::Result<()>) {
        let ended = loop {
            match self.fill().await {
                Ok(0) => break Ok(()),
                Ok(_) => {}
                Err(e) => break Err(e),
            }
        };
        (std::mem::take(&mut self.buf), ended)
    }

    /// Next frame of Docker's multiplexed stream (stream type, payload); None at a clean end.
    pub async fn read_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        while self.buf.len() < 8 {
            let n = self.fill().await.expect("read a stream frame header");
            if n == 0 {
                assert!(
                    self.buf.is_empty(),
                    "stream ended inside a frame header: {:?}",
                    self.buf
                );
                return None;
            }
        }
        let header = self.read_exact(8).await;
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        Some((header[0], self.read_exact(len).await))
    }

    /// The body that follows `head`: by Content-Length, chunked, or up to the end of stream.
    pub async fn read_body(&mut self, head: &Head, request_method: &str) -> Vec<u8> {
        if request_method == "HEAD" || matches!(head.status, 100..=199 | 204 | 304) {
            return Vec::new();
        }
        if head
            .header("transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            let mut body = Vec::new();
            loop {
                let line = String::from_utf8_lossy(&self.read_line().await).into_owned();
                let size = line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size, 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                if size == 0 {
                    while !self.read_line().await.is_empty() {}
                    return body;
                }
                body.extend(self.read_exact(size).await);
                assert!(
                    self.read_line().await.is_empty(),
                    "chunk not followed by CRLF"
                );
            }
        }
        if let Some(len) = head.header("content-length") {
            let len = len.parse().expect("numeric Content-Length");
            return self.read_exact(len).await;
        }
        let (body, ended) = self.read_until_end().await;
        ended.expect("close-delimited body ended cleanly");
        body
    }

    /// Sends one request with an optional JSON body and reads the whole response.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        json: Option<&serde_json::Value>,
    ) -> (Head, Vec<u8>) {
        let body = json.map(|v| v.to_string()).unwrap_or_default();
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: docker\r\n");
        if json.is_some() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        self.send(req.as_bytes()).await;
        let head = self.read_head().await;
        let body = self.read_body(&head, method).await;
        (head, body)
    }
}

async fn within<T>(fut: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(IO_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("no progress on the connection within {IO_TIMEOUT:?}"))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Splits a complete Docker multiplexed stream into (stdout, stderr).
pub fn demux(mut stream: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while !stream.is_empty() {
        assert!(stream.len() >= 8, "truncated frame header: {stream:?}");
        let len = u32::from_be_bytes([stream[4], stream[5], stream[6], stream[7]]) as usize;
        assert!(
            stream.len() >= 8 + len,
            "truncated frame: {len} bytes announced, {} present",
            stream.len() - 8
        );
        let payload = &stream[8..8 + len];
        match stream[0] {
            1 => out.extend_from_slice(payload),
            2 => err.extend_from_slice(payload),
            other => panic!("unexpected stream type {other} in a multiplexed stream"),
        }
        stream = &stream[8 + len..];
    }
    (out, err)
}
