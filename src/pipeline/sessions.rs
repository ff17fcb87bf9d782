//! BuildKit sessions bound to their owner (see [`crate::sessions`]).
//!
//! - Every `POST /session` upgrade, whatever the role, claims the uuid its
//!   `X-Docker-Expose-Session-Uuid` header names (the header dockerd's
//!   session manager reads) before it is forwarded, and is refused when
//!   another owner holds that uuid (rule `session.uuid-held`). dockerd reads
//!   the header's first value; every value is claimed. A confined one must
//!   name exactly one uuid (rule `confined.session-uuid`). The claims are
//!   dropped when the daemon does not switch protocols.
//! - A confined `POST /build` claims every uuid it names in `session` and
//!   is refused when another owner holds one (rule
//!   `confined.build-session`). `session` is the only parameter through
//!   which dockerd's build route reaches a session (`newImageBuildOptions`
//!   reads it into `SessionID`, in 20.10 and in current moby); every value
//!   is checked, not only the first that Go's `FormValue` reads.
//!
//! A build may come before its session: the docker CLI and bollard send
//! both at once, and bollard never opens a session for a confined role at
//! all (it dials the admin-only `/grpc` first). So an unopened uuid is not
//! refused but claimed, which keeps the victim's session from opening
//! under it. Limit: a session opened on the daemon's socket directly is
//! unknown to the gateway; keep such clients off the hosts confined roles
//! build on.

use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::header::HeaderName;
use http::{Response, StatusCode};

use super::{Allowed, BoxFuture, Outcome};
use crate::audit::Decision;
use crate::connection::Connection;
use crate::policy::{Denial, Next};
use crate::proxy::Body;
use crate::sessions::Sessions;
use dockgate_wire::api::Operation;
use dockgate_wire::query::Query;

/// The header naming a BuildKit session (`session/session.go`).
pub const SESSION_UUID: HeaderName = HeaderName::from_static("x-docker-expose-session-uuid");

#[derive(Clone, Debug)]
pub struct SessionOwners<S> {
    inner: S,
    conn: Arc<Connection>,
    sessions: Arc<Sessions>,
}

impl<S> SessionOwners<S> {
    pub fn new(inner: S, conn: Arc<Connection>, sessions: Arc<Sessions>) -> SessionOwners<S> {
        SessionOwners {
            inner,
            conn,
            sessions,
        }
    }
}

impl<S> tower::Service<Allowed> for SessionOwners<S>
where
    S: tower::Service<Allowed, Response = Response<Body>, Error = Denial> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Denial;
    type Future = Either<S::Future, BoxFuture<Outcome>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Denial>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, allowed: Allowed) -> Self::Future {
        let confined = matches!(allowed.next, Next::Confine(_));
        let operation = allowed.decision.operation;
        if operation == Some(Operation::ImageBuild.as_str()) && confined {
            let holder: Weak<dyn Send + Sync> = Arc::downgrade(&self.conn) as _;
            if let Err(denial) = claim_build(&allowed, &self.conn.owner, &self.sessions, &holder) {
                return Either::Right(Box::pin(std::future::ready(Err(denial))));
            }
            return Either::Left(self.inner.call(allowed));
        }
        if operation != Some(Operation::Session.as_str()) {
            return Either::Left(self.inner.call(allowed));
        }
        // A session's claims are released when it does not open: the
        // clone that was made ready serves this request.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let conn = self.conn.clone();
        let sessions = self.sessions.clone();
        Either::Right(Box::pin(async move {
            let holder: Weak<dyn Send + Sync> = Arc::downgrade(&conn) as _;
            let uuids = session_uuids(allowed.request.headers());
            if confined && uuids.len() != 1 {
                return Err(refuse(
                    &allowed.decision,
                    "confined.session-uuid",
                    format!("open a BuildKit session without exactly one {SESSION_UUID} header"),
                ));
            }
            for (i, uuid) in uuids.iter().enumerate() {
                if !sessions.claim(uuid, &conn.owner, holder.clone()) {
                    for claimed in &uuids[..i] {
                        sessions.release(claimed, &holder);
                    }
                    return Err(refuse(
                        &allowed.decision,
                        "session.uuid-held",
                        format!("open BuildKit session {uuid:?}: another client holds it"),
                    ));
                }
            }
            let outcome = inner.call(allowed).await;
            let opened = outcome
                .as_ref()
                .is_ok_and(|r| r.status() == StatusCode::SWITCHING_PROTOCOLS);
            if !opened {
                for uuid in &uuids {
                    sessions.release(uuid, &holder);
                }
            }
            outcome
        }))
    }
}

/// The non-empty session uuids a `/session` request names. dockerd reads the
/// first (Go's `Header.Get`); all are claimed, so none can be another's.
fn session_uuids(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all(&SESSION_UUID)
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .filter(|v| !v.is_empty())
        .collect()
}

/// Claims every session a confined build names.
fn claim_build(
    allowed: &Allowed,
    owner: &str,
    sessions: &Sessions,
    holder: &Weak<dyn Send + Sync>,
) -> Result<(), Denial> {
    let decision = &allowed.decision;
    let query = Query::parse(allowed.request.uri().query()).map_err(|e| {
        Denial::of(
            decision,
            StatusCode::BAD_REQUEST,
            format!("dockgate: {e}"),
            "unparsable query",
        )
    })?;
    for uuid in query.all("session").filter(|s| !s.is_empty()) {
        if !sessions.claim(uuid, owner, holder.clone()) {
            return Err(refuse(
                decision,
                "confined.build-session",
                format!("build with BuildKit session {uuid:?}: another client holds it"),
            ));
        }
    }
    Ok(())
}

fn refuse(decision: &Decision, rule: &str, what: String) -> Denial {
    let role = decision.role.as_deref().unwrap_or("?");
    Denial::of(
        decision,
        StatusCode::FORBIDDEN,
        format!("dockgate: role {role} may not {what} (rule {rule})"),
        rule,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uuid_a_session_request_names_counts() {
        let mut headers = http::HeaderMap::new();
        assert!(session_uuids(&headers).is_empty());
        headers.insert(SESSION_UUID, "".parse().unwrap());
        assert!(session_uuids(&headers).is_empty());
        headers.insert(SESSION_UUID, "abc".parse().unwrap());
        assert_eq!(session_uuids(&headers), ["abc"]);
        headers.append(SESSION_UUID, "def".parse().unwrap());
        assert_eq!(session_uuids(&headers), ["abc", "def"]);
    }
}
