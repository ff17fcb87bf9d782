//! Fails closed when the audit log cannot be written.
//!
//! With `audit.on_failure = "deny"` (the default), a request that arrives
//! while the last audit write failed, or while the queue is full, gets 503
//! `dockgate: audit log unavailable` before anything is decided or sent to
//! the daemon: nothing happens on the daemon that the log does not show.
//! The refusal's own line is still tried, and the first line written again
//! ends the refusals. With `"allow"` requests are served and the lost lines
//! are logged and counted by [`crate::audit`].

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::{Request, StatusCode};

use super::{ClientBody, Outcome};
use crate::audit::{AuditLog, Decision};
use crate::connection::Connection;
use crate::policy::Denial;
use crate::reload::Live;

const RULE: &str = "audit.on_failure";

#[derive(Clone, Debug)]
pub struct AuditGuard<S> {
    inner: S,
    conn: Arc<Connection>,
    live: Arc<Live>,
    log: AuditLog,
}

impl<S> AuditGuard<S> {
    pub fn new(inner: S, conn: Arc<Connection>, live: Arc<Live>, log: AuditLog) -> AuditGuard<S> {
        AuditGuard {
            inner,
            conn,
            live,
            log,
        }
    }
}

impl<S> tower::Service<Request<ClientBody>> for AuditGuard<S>
where
    S: tower::Service<
        Request<ClientBody>,
        Response = http::Response<crate::proxy::Body>,
        Error = Denial,
    >,
{
    type Response = S::Response;
    type Error = Denial;
    type Future = Either<Ready<Outcome>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Denial>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ClientBody>) -> Self::Future {
        if !self.log.refuses() {
            return Either::Right(self.inner.call(request));
        }
        let role = self
            .live
            .policy
            .load()
            .roles
            .resolve(&self.conn.identity)
            .map(|(r, _)| r.name.clone());
        Either::Left(ready(Err(Denial {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "dockgate: audit log unavailable".to_owned(),
            decision: Decision {
                operation: None,
                role,
                allowed: false,
                rule: Arc::from(RULE),
            },
        })))
    }
}
