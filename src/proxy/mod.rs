//! Proxying and upgrades: forwards each allowed request to the daemon and
//! streams the answer back.
//!
//! Bodies are never buffered here: hyper's `Incoming` is handed straight to
//! the upstream client and the daemon's `Incoming` straight back, so build
//! contexts, `load`, `save` and archives of any size stream chunk by chunk,
//! and long-lived streams (`logs -f`, `events`, `stats`) flush as the daemon
//! writes. Upgraded connections are spliced by [`upgrade`].

mod body;
pub mod error;
pub mod framing;
mod headers;
mod upgrade;
mod upstream;

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::audit::{AuditLog, Decision, Exchange};
use crate::connection::Connection;
use crate::metrics::{self, GaugeGuard};
use crate::pipeline::context::{Refused, ScannedContext};
use crate::pipeline::{BoxFuture, Checked, ClientBody, Outcome};
use crate::policy::inspect::Violation;
use crate::policy::Denial;
use crate::reload::Live;
use error::ErrorChain;
pub use upstream::Upstream;

/// A request body on its way to the daemon: the client's stream, bytes
/// the gateway has already read (and inspected), or a build context the
/// gateway checks as it streams.
pub type RequestBody = Either<ClientBody, Either<Full<Bytes>, ScannedContext>>;
pub use body::{Body, BoxError};

/// The innermost service: forwards a checked request to the daemon.
#[derive(Clone, Debug)]
pub struct Forward {
    conn: Arc<Connection>,
    upstream: Upstream,
    audit: AuditLog,
    live: Arc<Live>,
}

impl Forward {
    pub fn new(
        conn: Arc<Connection>,
        upstream: Upstream,
        audit: AuditLog,
        live: Arc<Live>,
    ) -> Forward {
        Forward {
            conn,
            upstream,
            audit,
            live,
        }
    }
}

impl tower::Service<Checked> for Forward {
    type Response = Response<Body>;
    type Error = Denial;
    type Future = BoxFuture<Outcome>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Denial>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, checked: Checked) -> Self::Future {
        let forward = self.clone();
        Box::pin(async move {
            let mut response = forward.forward(checked.request, &checked.decision).await?;
            response.extensions_mut().insert(checked.decision);
            Ok(response)
        })
    }
}

impl Forward {
    /// Sends the request on to the daemon and relays its response; for an
    /// upgrade the daemon accepts, also starts the session splice.
    async fn forward(&self, mut request: Request<RequestBody>, decision: &Decision) -> Outcome {
        let upgrade = headers::requested_upgrade(request.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        let method = request.method().clone();
        // Only a session's own audit line needs the path after forwarding.
        let session_path = client_upgrade
            .is_some()
            .then(|| request.uri().path().to_owned());

        let (mut parts, body) = request.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        parts.extensions = http::Extensions::new();
        let upstream_request = Request::from_parts(parts, body);

        let mut response = match self.upstream.send(upstream_request).await {
            Ok(response) => response,
            Err(e) => {
                if let Some(refused) = refused_context(&e) {
                    let role = decision.role.as_deref().unwrap_or("?");
                    let message = format!(
                        "dockgate: role {role} may not {} (rule {})",
                        refused.what, refused.rule
                    );
                    return Err(Denial::of(
                        decision,
                        StatusCode::FORBIDDEN,
                        message,
                        refused.rule,
                    ));
                }
                metrics::METRICS.upstream_errors.inc();
                tracing::warn!(socket = %self.upstream.socket().display(), error = %ErrorChain(&e), "Docker daemon unreachable");
                return Ok(error::respond(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "dockgate: cannot reach the Docker daemon at {}: {}",
                        self.upstream.socket().display(),
                        ErrorChain(&e)
                    ),
                ));
            }
        };

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Ok(error::respond(
                    StatusCode::BAD_GATEWAY,
                    "dockgate: the daemon switched protocols without being asked to",
                ));
            };
            let protocol = response.headers().get(header::UPGRADE).cloned();
            let daemon_upgrade = hyper::upgrade::on(&mut response);
            // The session holds the connection context, and so stays
            // registered for re-verification (and cuttable) until it ends.
            let exchange = Exchange {
                conn: self.conn.clone(),
                method: method.clone(),
                path: session_path.unwrap_or_default(),
                decision: Some(decision.clone()),
            };
            let audit = self.audit.clone();
            let listed = self.live.board.open(crate::board::Session {
                cn: self.conn.identity.common_name.clone(),
                role: decision.role.as_deref().map(str::to_owned),
                peer: self.conn.peer,
                operation: decision.operation,
                since: crate::board::rfc3339(std::time::SystemTime::now()),
            });
            self.conn.drain.spawn(async move {
                let _listed = listed;
                let _open = GaugeGuard::new(&metrics::METRICS.sessions_open);
                let started = Instant::now();
                let cut = exchange.conn.cut.clone();
                let (end, moved) = upgrade::splice(client_upgrade, daemon_upgrade, cut).await;
                if let upgrade::SessionEnd::Failed(e) = &end {
                    tracing::debug!(error = %e, "upgraded session ended with an error");
                }
                exchange.session_ended(
                    &audit,
                    moved.from_client,
                    moved.to_client,
                    started.elapsed(),
                );
            });
            headers::strip_hop_by_hop(response.headers_mut(), protocol);
        } else {
            if is_close_delimited(&method, &response) {
                // The old non-upgrade hijack (attach, exec start): dockerd
                // writes the raw stream after the head and closes. hyper
                // frames an unknown-length body that way only in an
                // HTTP/1.0 response, so say 1.0: the client then gets the
                // daemon's bytes as they are, followed by a close.
                *response.version_mut() = http::Version::HTTP_10;
            }
            headers::strip_hop_by_hop(response.headers_mut(), None);
        }
        Ok(response.map(Body::Daemon))
    }
}

/// The build-context refusal that cut a request body, if that is why the
/// request failed.
fn refused_context<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Violation> {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(Refused(violation)) = e.downcast_ref::<Refused>() {
            return Some(violation);
        }
        cause = e.source();
    }
    None
}

/// Whether the daemon delimited this response's body by closing the
/// connection: it has a body but neither a length nor chunked framing.
fn is_close_delimited(method: &http::Method, response: &Response<Incoming>) -> bool {
    let status = response.status();
    let bodiless = method == http::Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    !bodiless
        && !response.headers().contains_key(header::CONTENT_LENGTH)
        && !response.headers().contains_key(header::TRANSFER_ENCODING)
}
