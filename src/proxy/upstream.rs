//! The Docker daemon side: HTTP/1.1 over its Unix socket.
//!
//! One pooled hyper client serves every client connection, so idle daemon
//! connections are reused across requests and across clients. A connection
//! that upgrades (attach, exec, BuildKit) leaves the pool for good. When the
//! daemon is down, each request fails on its own with a connect error and the
//! next one dials again, so a restarted daemon is picked up with no action.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::UnixStream;

use super::RequestBody;

/// How long an idle pooled connection to the daemon is kept. A Unix socket
/// is cheap to dial again; an idle one holds buffers here and a goroutine in
/// dockerd.
const POOL_IDLE: Duration = Duration::from_secs(10);
/// Idle daemon connections kept at most. Above the connection counts a busy
/// gateway keeps in flight, so keep-alive clients never pay a new dial per
/// request; the idle timeout closes what a burst leaves behind.
const POOL_MAX_IDLE: usize = 512;

#[derive(Clone, Debug)]
pub struct Upstream {
    client: Client<UnixConnector, RequestBody>,
    socket: Arc<Path>,
}

impl Upstream {
    pub fn new(socket: PathBuf) -> Upstream {
        let socket: Arc<Path> = socket.into();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            // Without a timer the pool never evicts on its own: idle
            // connections would stay until the next request came along.
            .pool_timer(TokioTimer::new())
            .build(UnixConnector {
                socket: socket.clone(),
            });
        Upstream { client, socket }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends a request whose URI is origin-form; the authority is a fixed
    /// placeholder that only keys the connection pool.
    pub async fn send(
        &self,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        *request.uri_mut() = pool_uri(request.uri());
        self.client.request(request).await
    }
}

/// Largest daemon answer read for an ownership check.
const LOOKUP_LIMIT: usize = 8 << 20;

impl crate::policy::confine::Daemon for Upstream {
    async fn get_json(&self, path: &str) -> Result<Option<serde_json::Value>, String> {
        use http_body_util::BodyExt;
        let request = Request::get(path)
            .body(http_body_util::Either::Right(http_body_util::Either::Left(
                http_body_util::Full::default(),
            )))
            .map_err(|e| e.to_string())?;
        let response = self.send(request).await.map_err(|e| e.to_string())?;
        match response.status() {
            http::StatusCode::NOT_FOUND => return Ok(None),
            s if s.is_success() => {}
            s => return Err(format!("daemon answered {s}")),
        }
        let body = http_body_util::Limited::new(response.into_body(), LOOKUP_LIMIT)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| format!("unreadable daemon answer: {e}"))
    }
}

fn pool_uri(uri: &Uri) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(http::uri::Scheme::HTTP);
    parts.authority = Some(http::uri::Authority::from_static("docker"));
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).expect("scheme, authority and path make a valid URI")
}

/// Dials the daemon's socket whatever the URI says.
#[derive(Clone, Debug)]
struct UnixConnector {
    socket: Arc<Path>,
}

impl tower::Service<Uri> for UnixConnector {
    type Response = TokioIo<UnixStream>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let socket = self.socket.clone();
        Box::pin(async move { UnixStream::connect(&*socket).await.map(TokioIo::new) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_uri_keeps_path_and_query_only() {
        let uri: Uri = "http://evil.example:99/v1.41/containers/json?all=1"
            .parse()
            .unwrap();
        assert_eq!(
            pool_uri(&uri).to_string(),
            "http://docker/v1.41/containers/json?all=1"
        );
        let origin: Uri = "/_ping".parse().unwrap();
        assert_eq!(pool_uri(&origin).to_string(), "http://docker/_ping");
    }
}
