//! Proxying and upgrades: forwards each allowed request to the daemon and
//! streams the answer back.
//!
//! Bodies are never buffered here: hyper's `Incoming` is handed straight to
//! the upstream client and the daemon's `Incoming` straight back, so build
//! contexts, `load`, `save` and archives of any size stream chunk by chunk,
//! and long-lived streams (`logs -f`, `events`, `stats`) flush as the daemon
//! writes. Upgraded connections are spliced by [`upgrade`].

pub mod error;
pub mod framing;
mod headers;
mod upgrade;
mod upstream;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditLog, Decision, Exchange, Metered, Peer};
use crate::metrics::{self, GaugeGuard};
use crate::policy::confine::{self, BodyRule};
use crate::policy::{Confined, Denial, Verdict};
use crate::reload::{Live, Registration};
use crate::renewal::{self, Renewer};
use error::ErrorChain;
pub use upstream::Upstream;

/// A request body on its way to the daemon: the client's stream, or bytes
/// the gateway has already read (and inspected).
pub type RequestBody = Either<Metered<Incoming>, Full<Bytes>>;
/// A response body on its way to the client: the daemon's stream, or a
/// response the gateway made itself.
pub type Body = Either<Incoming, Full<Bytes>>;

/// The gateway service for one client connection's requests.
#[derive(Clone, Debug)]
pub struct Gateway {
    upstream: Upstream,
    audit: AuditLog,
    live: Arc<Live>,
    renewer: Arc<Renewer>,
}

impl Gateway {
    pub fn new(
        upstream: Upstream,
        audit: AuditLog,
        live: Arc<Live>,
        renewer: Arc<Renewer>,
    ) -> Gateway {
        Gateway {
            upstream,
            audit,
            live,
            renewer,
        }
    }

    /// Decides, then forwards what is allowed. Every response carries the
    /// [`Decision`] for the audit layer.
    pub async fn handle(self, request: Request<Metered<Incoming>>) -> Response<Body> {
        let admitted = request.extensions().get::<framing::FramingCheck>().map_or(
            Err(framing::Violation::Unseen),
            framing::FramingCheck::admit,
        );
        let Some(peer) = request.extensions().get::<Arc<Peer>>().cloned() else {
            return error::respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                "dockgate: request without a verified peer",
            );
        };
        if let Err(violation) = admitted {
            tracing::warn!(peer = %peer.addr, reason = %violation, "request framing refused");
            let policy = self.live.policy.load();
            let role = policy
                .roles
                .resolve(&peer.identity)
                .map(|(r, _)| r.name.clone());
            return denied(&peer, violation.denial(role));
        }
        if request.uri().path() == renewal::RENEW_PATH {
            return self.renew(&peer, request).await;
        }
        let policy = self.live.policy.load_full();
        let (decision, confined, stamp) =
            match policy.decide(&peer.identity, &peer.owner, request.method(), request.uri()) {
                Verdict::Allow {
                    decision,
                    confined,
                    stamp,
                } => (decision, confined, stamp),
                Verdict::Deny(denial) => return denied(&peer, denial),
            };
        // dockerd's name conflict names the container holding the name;
        // a confined client must not learn another owner's IDs that way.
        let hide_conflict = confined
            .as_ref()
            .is_some_and(|c| c.operation == dockgate_wire::api::Operation::ContainerCreate);
        let request = match (confined, stamp) {
            (None, None) => request.map(Either::Left),
            (None, Some(owner)) => {
                match stamp_owner(request, &owner, &decision, policy.inspect_limit).await {
                    Ok(request) => request,
                    Err(denial) => return denied(&peer, denial),
                }
            }
            (Some(confined), _) => {
                match self
                    .confine(&confined, &decision, policy.inspect_limit, request)
                    .await
                {
                    Ok(request) => request,
                    Err(denial) => return denied(&peer, denial),
                }
            }
        };
        let mut response = self.forward(request, decision.clone()).await;
        if hide_conflict && response.status() == StatusCode::CONFLICT {
            response = error::respond(
                StatusCode::CONFLICT,
                "Conflict. The container name is already in use. Choose another name.",
            );
        }
        response.extensions_mut().insert(decision);
        response
    }

    /// Self-renewal: the client's own certificate is the only authority.
    async fn renew(&self, peer: &Peer, request: Request<Metered<Incoming>>) -> Response<Body> {
        let mut decision = Decision {
            operation: Some(renewal::OPERATION),
            role: peer.identity.recorded_role.as_deref().map(Arc::from),
            allowed: false,
            rule: "renewal".into(),
        };
        if request.method() != http::Method::POST {
            return denied(
                peer,
                Denial {
                    status: StatusCode::METHOD_NOT_ALLOWED,
                    message: "dockgate: renewal takes POST with a CSR".into(),
                    decision,
                },
            );
        }
        let name = peer.identity.common_name.clone().unwrap_or_default();
        let outcome = match renewal::read_csr(request.into_body()).await {
            Ok(csr) => self.renewer.renew(&name, &peer.leaf, csr).await,
            Err(refusal) => Err(refusal),
        };
        match outcome {
            Ok(renewed) => {
                metrics::RENEWALS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(peer = %peer.addr, client = %name, "certificate renewed");
                decision.allowed = true;
                let body = serde_json::to_vec(&renewed).unwrap_or_default();
                let mut response = Response::new(Either::Right(Full::new(Bytes::from(body))));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                response.extensions_mut().insert(decision);
                response
            }
            Err(refusal) => {
                metrics::RENEWALS_REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(peer = %peer.addr, client = %name, reason = %refusal.message, "renewal refused");
                decision.rule = "renewal refused".into();
                denied(
                    peer,
                    Denial {
                        status: refusal.status,
                        message: refusal.message,
                        decision,
                    },
                )
            }
        }
    }

    /// Reads what must be inspected, checks it, and applies the rewrites
    /// confinement asks for. The body read here is exactly the body
    /// forwarded: nothing is inspected in one form and sent in another.
    async fn confine(
        &self,
        confined: &Confined,
        decision: &Decision,
        limit: usize,
        request: Request<Metered<Incoming>>,
    ) -> Result<Request<RequestBody>, Denial> {
        let (mut parts, body) = request.into_parts();
        let (read, streamed) = match confine::body_rule(confined.operation) {
            BodyRule::Inspect => (Some(read_limited(body, limit, decision).await?), None),
            BodyRule::Stream | BodyRule::Empty => (None, Some(body)),
        };
        let rewrite = confine::confine(
            confined,
            decision,
            &parts.uri,
            &parts.headers,
            read.clone(),
            &self.upstream,
        )
        .await?;
        if let Some(target) = rewrite.target {
            parts.uri = target.parse().map_err(|_| {
                Denial::of(
                    decision,
                    StatusCode::BAD_REQUEST,
                    "dockgate: cannot rebuild the request target".into(),
                    "unparsable path",
                )
            })?;
        }
        let body = match rewrite.body.or(read) {
            Some(bytes) => {
                parts.headers.remove(header::TRANSFER_ENCODING);
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, bytes.len().into());
                Either::Right(Full::new(bytes))
            }
            None => match streamed {
                Some(body) => Either::Left(body),
                None => Either::Right(Full::default()),
            },
        };
        Ok(Request::from_parts(parts, body))
    }

    /// Sends the request on to the daemon and relays its response; for an
    /// upgrade the daemon accepts, also starts the session splice.
    async fn forward(
        &self,
        mut request: Request<RequestBody>,
        decision: Decision,
    ) -> Response<Body> {
        let upgrade = headers::requested_upgrade(request.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        let peer = request.extensions().get::<Arc<Peer>>().cloned();
        let cut = request
            .extensions()
            .get::<CancellationToken>()
            .cloned()
            .unwrap_or_default();
        let registered = request.extensions().get::<Arc<Registration>>().cloned();
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
                metrics::UPSTREAM_ERRORS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(socket = %self.upstream.socket().display(), error = %ErrorChain(&e), "Docker daemon unreachable");
                return error::respond(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "dockgate: cannot reach the Docker daemon at {}: {}",
                        self.upstream.socket().display(),
                        ErrorChain(&e)
                    ),
                );
            }
        };

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return error::respond(
                    StatusCode::BAD_GATEWAY,
                    "dockgate: the daemon switched protocols without being asked to",
                );
            };
            let protocol = response.headers().get(header::UPGRADE).cloned();
            let daemon_upgrade = hyper::upgrade::on(&mut response);
            let exchange = peer.zip(session_path).map(|(peer, path)| Exchange {
                peer,
                method: method.clone(),
                path,
                decision: Some(decision),
            });
            let audit = self.audit.clone();
            tokio::spawn(async move {
                let _registered = registered;
                let _open = GaugeGuard::new(&metrics::SESSIONS_OPEN);
                let started = Instant::now();
                let (end, moved) = upgrade::splice(client_upgrade, daemon_upgrade, cut).await;
                if let upgrade::SessionEnd::Failed(e) = &end {
                    tracing::debug!(error = %e, "upgraded session ended with an error");
                }
                if let Some(exchange) = exchange {
                    exchange.session_ended(
                        &audit,
                        moved.from_client,
                        moved.to_client,
                        started.elapsed(),
                    );
                }
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
        response.map(Either::Left)
    }
}

/// Labels an unconfined container create with its owner.
async fn stamp_owner(
    request: Request<Metered<Incoming>>,
    owner: &str,
    decision: &Decision,
    limit: usize,
) -> Result<Request<RequestBody>, Denial> {
    let (mut parts, body) = request.into_parts();
    let bytes = read_limited(body, limit, decision).await?;
    let labelled =
        crate::policy::ownership::append_owner_label(&bytes, owner).ok_or_else(|| {
            Denial::of(
                decision,
                StatusCode::BAD_REQUEST,
                "dockgate: container create body is not a JSON object".into(),
                "unparsable body",
            )
        })?;
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, labelled.len().into());
    Ok(Request::from_parts(
        parts,
        Either::Right(Full::new(Bytes::from(labelled))),
    ))
}

fn denied(peer: &Peer, denial: Denial) -> Response<Body> {
    if denial.decision.role.is_none() {
        tracing::warn!(peer = %peer.addr, client = peer.identity.display_name(), serial = %peer.identity.serial, "certificate has no role: request refused");
    }
    let mut response = error::respond(denial.status, &denial.message);
    response.extensions_mut().insert(denial.decision);
    response
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

/// Reads a whole body for inspection, chunked or sized alike, refusing
/// more than `limit` bytes with 413.
async fn read_limited(
    body: Metered<Incoming>,
    limit: usize,
    decision: &Decision,
) -> Result<Bytes, Denial> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Denial::of(
            decision,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("dockgate: request body is larger than the inspection limit of {limit} bytes"),
            "limits.inspect_body",
        )),
        Err(e) => Err(Denial::of(
            decision,
            StatusCode::BAD_REQUEST,
            format!("dockgate: cannot read request body: {e}"),
            "unreadable body",
        )),
    }
}
