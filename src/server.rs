//! The listener: accepts TCP, completes the TLS handshake, and serves each
//! connection's HTTP/1.1 requests through the gateway.
//!
//! Nothing a peer sends can stop the accept loop: every connection runs on
//! its own task, handshakes are bounded by a timeout, and each refusal is
//! logged with the peer's address and the reason. The TLS configuration is
//! read from the live state at every handshake, so a reload applies to the
//! next connection without touching established ones.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

use crate::audit::{AuditLayer, AuditLog, Metered, Peer};
use crate::config::Limits;
use crate::metrics::{self, GaugeGuard};
use crate::proxy::framing::Framing;
use crate::proxy::{Body, Gateway};
use crate::reload::{Connections, Live};
use crate::tls::Identity;

/// Pause after a failed accept (e.g. out of file descriptors) so the loop
/// does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

pub struct Server {
    pub listener: TcpListener,
    pub live: Arc<Live>,
    pub gateway: Gateway,
    pub audit: AuditLog,
    pub limits: Limits,
}

impl Server {
    /// Serves until `shutdown` is cancelled; open connections are cut then.
    pub async fn run(self, shutdown: CancellationToken) {
        let server = Arc::new(self);
        loop {
            let accepted = tokio::select! {
                accepted = server.listener.accept() => accepted,
                () = shutdown.cancelled() => return,
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
            let _ = tcp.set_nodelay(true);
            let server = server.clone();
            let cut = shutdown.child_token();
            tokio::spawn(async move { server.connection(tcp, addr, cut).await });
        }
    }

    async fn connection(&self, tcp: TcpStream, addr: SocketAddr, cut: CancellationToken) {
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
        let identity = chain.first().and_then(|leaf| {
            let mut identity = Identity::from_verified_leaf(leaf)?;
            identity.recorded_role = tls_state.recorded_role(leaf);
            Some(identity)
        });
        let Some(identity) = identity else {
            return refused(addr, &"no usable client certificate");
        };
        let Some(leaf) = chain.first().cloned() else {
            return refused(addr, &"no client certificate");
        };
        let _open = GaugeGuard::new(&metrics::CONNECTIONS_OPEN);
        // Shared with hijacked sessions, which outlive the HTTP connection
        // and must stay re-verifiable until they end.
        let registered = Arc::new(Connections::register(&self.live, addr, chain, cut.clone()));
        tracing::debug!(peer = %addr, client = identity.display_name(), serial = %identity.serial, "client connected");

        let peer = Arc::new(Peer {
            addr,
            owner: crate::policy::ownership::owner_of(&identity),
            identity,
            leaf,
        });
        // Watches request framing below hyper; see `proxy::framing`.
        let (tls, framing) = Framing::new(tls);
        let tag_cut = cut.clone();
        let service = ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(peer.clone());
                request.extensions_mut().insert(tag_cut.clone());
                request.extensions_mut().insert(registered.clone());
                request.extensions_mut().insert(framing.clone());
                request
            })
            .layer(AuditLayer::new(self.audit.clone()))
            .service(GatewayService(self.gateway.clone()));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service))
            .with_upgrades();
        tokio::select! {
            result = connection => {
                if let Err(e) = result {
                    tracing::debug!(peer = %addr, error = %e, "connection ended with an error");
                }
            }
            () = cut.cancelled() => {
                tracing::info!(peer = %addr, "connection cut");
            }
        }
    }
}

fn refused(addr: SocketAddr, reason: &dyn std::fmt::Display) {
    metrics::HANDSHAKES_REFUSED.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(peer = %addr, reason = %reason, "TLS handshake refused");
}

/// Adapts the gateway to tower; the server has tagged each request with its
/// connection's [`Peer`] and cut-off token by the time it gets here.
#[derive(Clone)]
struct GatewayService(Gateway);

impl tower::Service<Request<Metered<Incoming>>> for GatewayService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Metered<Incoming>>) -> Self::Future {
        let gateway = self.0.clone();
        Box::pin(async move { Ok(gateway.handle(request).await) })
    }
}
