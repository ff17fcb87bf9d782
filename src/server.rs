//! The listener: accepts TCP, completes the TLS handshake, builds the
//! connection's context, and serves its HTTP/1.1 requests through the
//! pipeline.
//!
//! Nothing a peer sends can stop the accept loop: every connection runs on
//! its own task, handshakes are bounded by a timeout, and each refusal is
//! logged with the peer's address and the reason. The TLS configuration is
//! read from the live state at every handshake, so a reload applies to the
//! next connection without touching established ones.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::UnixTime;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::config::Limits;
use crate::connection::Connection;
use crate::drain::Drain;
use crate::limits::{Admitted, ConnectionLimits};
use crate::metrics::{self, GaugeGuard};
use crate::pipeline::Gateway;
use crate::proxy::framing::Framing;
use crate::reload::{Connections, Live};

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub struct Server {
    pub listener: TcpListener,
    pub live: Arc<Live>,
    pub gateway: Gateway,
    pub limits: Limits,
    pub connections: ConnectionLimits,
}

impl Server {
    /// Serves until `drain` is signalled: then stops accepting, and each
    /// connection finishes its requests in flight and closes. Connections
    /// and sessions run under the drain, which knows when the last ends.
    pub async fn run(self, drain: Drain) {
        // The listener stays here, so it closes when draining starts: new
        // clients are refused at once rather than left waiting.
        let Server {
            listener,
            live,
            gateway,
            limits,
            connections,
        } = self;
        let server = Arc::new(Accepted {
            live,
            gateway,
            limits,
            connections,
        });
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = drain.signaled() => return,
            };
            let (tcp, addr) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            metrics::METRICS.connections_accepted.inc();
            let Some(place) = server.connections.admit() else {
                metrics::METRICS.limit_hit("limits.connections");
                tracing::warn!(peer = %addr, limit = server.limits.connections, "connection refused: limits.connections reached");
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let server = server.clone();
            let connection_drain = drain.clone();
            drain.spawn(async move { server.connection(tcp, addr, place, connection_drain).await });
        }
    }
}

/// What every accepted connection shares.
struct Accepted {
    live: Arc<Live>,
    gateway: Gateway,
    limits: Limits,
    connections: ConnectionLimits,
}

impl Accepted {
    async fn connection(&self, tcp: TcpStream, addr: SocketAddr, place: Admitted, drain: Drain) {
        let tls_state = self.live.tls.load_full();
        let acceptor = TlsAcceptor::from(tls_state.config.clone());
        let tls =
            match tokio::time::timeout(self.limits.handshake_timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return refused(addr, refusal_reason(&e), &e),
                Err(_) => return refused(addr, "timeout", &"handshake timed out"),
            };
        let chain = match tls_state.session_chain(tls.get_ref().1, UnixTime::now()) {
            Ok(chain) => chain,
            Err(e) => return refused(addr, tls_reason(&e), &e),
        };
        let Some(leaf) = chain.first().cloned() else {
            return refused(addr, "no certificate", &"no client certificate");
        };
        let Some(identity) = tls_state.identify(&chain) else {
            return refused(
                addr,
                "unusable certificate",
                &"no usable client certificate",
            );
        };
        let _open = GaugeGuard::new(&metrics::METRICS.connections_open);
        tracing::debug!(peer = %addr, client = identity.display_name(), serial = %identity.serial, "client connected");

        let owner = crate::policy::ownership::owner_of(&identity);
        let Some(slot) = self.connections.identity(&owner) else {
            return too_many(tls, addr, &owner, self.connections.per_identity()).await;
        };
        let cut = CancellationToken::new();
        // Watches request framing below hyper; see `proxy::framing`.
        let (tls, framing) = Framing::new(tls);
        let conn = Arc::new(Connection {
            peer: addr,
            audit_who: crate::audit::Who::of(addr, &identity),
            owner,
            identity,
            leaf,
            framing,
            cut: cut.clone(),
            drain: drain.clone(),
            registration: Connections::register(&self.live, addr, chain, cut.clone()),
            place,
            slot,
        });
        let service = self.gateway.service(&conn);
        drop(conn);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .serve_connection(TokioIo::new(tls), service)
            .with_upgrades();
        tokio::pin!(connection);
        let ended = tokio::select! {
            result = connection.as_mut() => Some(result),
            () = cut.cancelled() => None,
            () = drain.signaled() => {
                // Finish the request in flight (if any), then close.
                connection.as_mut().graceful_shutdown();
                tokio::select! {
                    result = connection.as_mut() => Some(result),
                    () = cut.cancelled() => None,
                }
            }
        };
        match ended {
            Some(Err(e)) => {
                tracing::debug!(peer = %addr, error = %e, "connection ended with an error")
            }
            Some(Ok(())) => {}
            None => tracing::info!(peer = %addr, "connection cut"),
        }
    }
}

/// Answers the requests of a connection over its owner's limit with a
/// Docker-style 429, then closes it.
async fn too_many(
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    addr: SocketAddr,
    owner: &str,
    limit: usize,
) {
    metrics::METRICS.limit_hit("limits.connections_per_identity");
    tracing::warn!(peer = %addr, %owner, limit, "connection refused: limits.connections_per_identity reached");
    let message = format!(
        "dockgate: {owner} already has {limit} open connections (rule limits.connections_per_identity)"
    );
    let service = hyper::service::service_fn(move |_| {
        let response = crate::proxy::error::respond(http::StatusCode::TOO_MANY_REQUESTS, &message);
        std::future::ready(Ok::<_, std::convert::Infallible>(response))
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(false)
        .header_read_timeout(Duration::from_secs(10))
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

/// Counts every refused handshake, and logs them through [`REFUSALS`]:
/// a flood of bad handshakes must not flood the log.
fn refused(addr: SocketAddr, reason: &'static str, detail: &dyn std::fmt::Display) {
    metrics::METRICS.handshake_refused(reason);
    REFUSALS.log(addr, reason, detail);
}

static REFUSALS: RefusalLog = RefusalLog::new();

/// Handshake refusals logged in detail, at most [`REFUSALS_LOGGED`] per
/// [`REFUSAL_WINDOW`]; the rest of a window is summed up in one line with
/// counts by reason when the next refusal comes after it.
struct RefusalLog(std::sync::Mutex<RefusalWindow>);

struct RefusalWindow {
    started: Option<std::time::Instant>,
    logged: usize,
    suppressed: std::collections::BTreeMap<&'static str, u64>,
}

const REFUSAL_WINDOW: Duration = Duration::from_secs(10);
const REFUSALS_LOGGED: usize = 10;

impl RefusalLog {
    const fn new() -> RefusalLog {
        RefusalLog(std::sync::Mutex::new(RefusalWindow {
            started: None,
            logged: 0,
            suppressed: std::collections::BTreeMap::new(),
        }))
    }

    fn log(&self, addr: SocketAddr, reason: &'static str, detail: &dyn std::fmt::Display) {
        let Ok(mut window) = self.0.lock() else {
            return;
        };
        let now = std::time::Instant::now();
        if window
            .started
            .is_none_or(|started| now.duration_since(started) >= REFUSAL_WINDOW)
        {
            if !window.suppressed.is_empty() {
                let counts: Vec<String> = window
                    .suppressed
                    .iter()
                    .map(|(reason, n)| format!("{reason}: {n}"))
                    .collect();
                tracing::warn!(suppressed = %counts.join(", "), "more TLS handshakes were refused than were logged");
            }
            *window = RefusalWindow {
                started: Some(now),
                logged: 0,
                suppressed: std::collections::BTreeMap::new(),
            };
        }
        if window.logged < REFUSALS_LOGGED {
            window.logged += 1;
            tracing::warn!(peer = %addr, reason, detail = %detail, "TLS handshake refused");
        } else {
            *window.suppressed.entry(reason).or_insert(0) += 1;
        }
    }
}

/// A short, closed-set reason for a failed handshake, for metrics.
fn refusal_reason(e: &std::io::Error) -> &'static str {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => tls_reason(tls),
        None => "connection closed",
    }
}

/// [`refusal_reason`] for a TLS error, also a resumed session's.
fn tls_reason(tls: &rustls::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match tls {
        Error::NoCertificatesPresented => "no certificate",
        Error::InvalidCertificate(cert) => match cert {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not yet valid"
            }
            CertificateError::Revoked => "revoked",
            CertificateError::UnknownIssuer => "unknown issuer",
            CertificateError::BadSignature => "bad signature",
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "wrong purpose"
            }
            _ => "invalid certificate",
        },
        Error::AlertReceived(_) => "client alert",
        Error::PeerIncompatible(_) | Error::NoApplicationProtocol => "incompatible client",
        _ => "protocol error",
    }
}
