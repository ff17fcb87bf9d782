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
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::CertificateDer;
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
            metrics::CONNECTIONS_ACCEPTED.fetch_add(1, Ordering::Relaxed);
            let Some(place) = server.connections.admit() else {
                metrics::LIMIT_HITS.fetch_add(1, Ordering::Relaxed);
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
                Ok(Err(e)) => return refused(addr, &e),
                Err(_) => return refused(addr, &"handshake timed out"),
            };
        let chain: Vec<CertificateDer<'static>> = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        let Some(leaf) = chain.first().cloned() else {
            return refused(addr, &"no client certificate");
        };
        let Some(identity) = tls_state.identify(&chain) else {
            return refused(addr, &"no usable client certificate");
        };
        let _open = GaugeGuard::new(&metrics::CONNECTIONS_OPEN);
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
            .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
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
    metrics::LIMIT_HITS.fetch_add(1, Ordering::Relaxed);
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

fn refused(addr: SocketAddr, reason: &dyn std::fmt::Display) {
    metrics::HANDSHAKES_REFUSED.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(peer = %addr, reason = %reason, "TLS handshake refused");
}
