//! The admin listener: plain HTTP for operators and monitoring, on
//! loopback unless configured otherwise (`[admin] listen`,
//! `serve --admin-listen`).
//!
//! - `GET /metrics`: Prometheus text format (see [`crate::metrics`]).
//! - `GET /healthz`: 200 when the daemon answers `_ping` and the service is
//!   not draining; 503 with the reason otherwise. A load balancer or
//!   systemd can take it as "this VM can serve Docker".
//! - `GET /status`: JSON for people and `dockgate status`: version,
//!   uptime, the last reload and its result, certificate expiries, and the
//!   upgraded sessions open now by identity.
//!
//! It needs no client certificate, so it tells nothing a local user of the
//! VM could not learn otherwise: no request contents, no credentials.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;

use crate::board::rfc3339;
use crate::drain::Drain;
use crate::metrics;
use crate::proxy::{RequestBody, Upstream};
use crate::reload::Live;

/// How long `/healthz` waits for the daemon's `_ping`.
const PING_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Admin {
    live: Arc<Live>,
    upstream: Upstream,
    drain: Drain,
}

impl Admin {
    pub fn new(live: Arc<Live>, upstream: Upstream, drain: Drain) -> Admin {
        Admin {
            live,
            upstream,
            drain,
        }
    }

    /// Serves until the process ends: health checks must keep answering
    /// (503) while the service drains.
    pub async fn run(self, listener: TcpListener) {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let admin = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let admin = admin.clone();
                    async move { Ok::<_, Infallible>(admin.route(request).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    }

    async fn route(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".into());
        }
        match request.uri().path() {
            "/metrics" => {
                let mut response = text(StatusCode::OK, metrics::METRICS.encode());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            "/healthz" => match self.health().await {
                Ok(()) => text(StatusCode::OK, "ok\n".into()),
                Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
            },
            "/status" => {
                let mut response = text(StatusCode::OK, self.status().to_string());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    header::HeaderValue::from_static("application/json"),
                );
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        }
    }

    async fn health(&self) -> Result<(), String> {
        if self.drain.is_draining() {
            return Err("draining: the service is stopping".into());
        }
        let ping = Request::get("/_ping")
            .body(RequestBody::Right(http_body_util::Either::Left(
                Full::default(),
            )))
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(PING_TIMEOUT, self.upstream.send(ping)).await {
            Ok(Ok(response)) if response.status().is_success() => Ok(()),
            Ok(Ok(response)) => Err(format!(
                "the Docker daemon answered _ping with {}",
                response.status()
            )),
            Ok(Err(e)) => Err(format!(
                "cannot reach the Docker daemon at {}: {}",
                self.upstream.socket().display(),
                crate::proxy::error::ErrorChain(&e)
            )),
            Err(_) => Err("the Docker daemon did not answer _ping in time".into()),
        }
    }

    fn status(&self) -> serde_json::Value {
        let board = &self.live.board;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let expiry = |not_after: i64| {
            let at = time::OffsetDateTime::from_unix_timestamp(not_after)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                });
            json!({ "not_after": at, "seconds_left": not_after - now })
        };
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": board.uptime_seconds(),
            "draining": self.drain.is_draining(),
            "last_reload": board.last_reload(),
            "certificates": {
                "server": expiry(metrics::SERVER_CERT_NOT_AFTER.load(Ordering::Relaxed)),
                "ca": expiry(metrics::CA_NOT_AFTER.load(Ordering::Relaxed)),
            },
            "connections_open": metrics::METRICS.connections_open.get(),
            "sessions": board.sessions(),
            "time": rfc3339(std::time::SystemTime::now()),
        })
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `dockgate status`: reads `/status` from the admin listener at `addr`
/// and prints it for people.
pub fn print_status(addr: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr)
        .map_err(|e| format!("cannot reach the admin listener at {addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(tcp, "GET /status HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .ok_or("the admin listener sent no answer")?;
    let status: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("unreadable /status: {e}"))?;
    print!("{}", render(&status));
    Ok(())
}

fn render(status: &serde_json::Value) -> String {
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut out = String::new();
    out.push_str(&format!(
        "dockgate {}  up {}s{}\n",
        s(&status["version"]),
        s(&status["uptime_seconds"]),
        if status["draining"] == true {
            "  DRAINING"
        } else {
            ""
        }
    ));
    let reload = &status["last_reload"];
    out.push_str(&match reload {
        serde_json::Value::Null => "last reload: none since start\n".to_owned(),
        r if r["ok"] == true => format!("last reload: {} ok\n", s(&r["at"])),
        r => format!("last reload: {} FAILED: {}\n", s(&r["at"]), s(&r["error"])),
    });
    for which in ["server", "ca"] {
        let c = &status["certificates"][which];
        let days = c["seconds_left"].as_i64().unwrap_or(0) / 86_400;
        out.push_str(&format!(
            "{which:<6} certificate expires {} ({days} days)\n",
            s(&c["not_after"])
        ));
    }
    out.push_str(&format!(
        "connections open: {}\n",
        s(&status["connections_open"])
    ));
    let sessions = status["sessions"].as_array().cloned().unwrap_or_default();
    out.push_str(&format!("sessions: {}\n", sessions.len()));
    if !sessions.is_empty() {
        out.push_str(&format!(
            "  {:<20} {:<10} {:<22} {:<26} {}\n",
            "CN", "ROLE", "PEER", "OPERATION", "SINCE"
        ));
        for session in &sessions {
            out.push_str(&format!(
                "  {:<20} {:<10} {:<22} {:<26} {}\n",
                s(&session["cn"]),
                s(&session["role"]),
                s(&session["peer"]),
                s(&session["operation"]),
                s(&session["since"])
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_renders_as_a_table() {
        let text = render(&json!({
            "version": "0.1.0",
            "uptime_seconds": 5,
            "draining": false,
            "last_reload": { "at": "2026-12-01T00:00:00Z", "ok": false, "error": "bad key" },
            "certificates": {
                "server": { "not_after": "2027-12-01T00:00:00Z", "seconds_left": 864000 },
                "ca": { "not_after": null, "seconds_left": 0 },
            },
            "connections_open": 2,
            "sessions": [{ "cn": "runner-7", "role": "ci", "peer": "10.0.0.2:5000",
                           "operation": "ContainerAttach", "since": "2026-12-01T00:00:01Z" }],
        }));
        assert!(text.contains("FAILED: bad key"), "{text}");
        assert!(text.contains("(10 days)"), "{text}");
        assert!(
            text.contains("runner-7") && text.contains("ContainerAttach"),
            "{text}"
        );
    }
}
