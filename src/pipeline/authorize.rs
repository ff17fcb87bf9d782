//! Authorization: certificate → role, request target → operation (as
//! dockerd's router would route it), role → allowed or not.
//!
//! This is synchronous and cheap; it reads nothing but the request head.
//! An allowed request goes on as [`Allowed`], carrying its decision and
//! what must happen before forwarding ([`crate::policy::Next`]). `dockgate
//! policy explain` runs the same [`crate::policy::Policy::decide_for`].

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::{Request, Response};

use super::{Allowed, ClientBody, Outcome};
use crate::connection::Connection;
use crate::policy::{Denial, Verdict};
use crate::proxy::Body;
use crate::reload::Live;

#[derive(Clone, Debug)]
pub struct Authorize<S> {
    inner: S,
    conn: Arc<Connection>,
    live: Arc<Live>,
}

impl<S> Authorize<S> {
    pub fn new(inner: S, conn: Arc<Connection>, live: Arc<Live>) -> Authorize<S> {
        Authorize { inner, conn, live }
    }
}

impl<S> tower::Service<Request<ClientBody>> for Authorize<S>
where
    S: tower::Service<Allowed, Response = Response<Body>, Error = Denial>,
{
    type Response = Response<Body>;
    type Error = Denial;
    type Future = Either<Ready<Outcome>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Denial>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ClientBody>) -> Self::Future {
        let conn = &self.conn;
        let verdict = self.live.policy.load().decide(
            &conn.identity,
            &conn.owner,
            request.method(),
            request.uri(),
        );
        match verdict {
            Verdict::Allow { decision, next } => Either::Right(self.inner.call(Allowed {
                request,
                decision,
                next,
            })),
            Verdict::Deny(denial) => {
                if denial.decision.role.is_none() {
                    tracing::warn!(peer = %conn.peer, client = conn.identity.display_name(), serial = %conn.identity.serial, "certificate has no role: request refused");
                }
                super::linger::linger(request.into_body());
                Either::Left(ready(Err(denial)))
            }
        }
    }
}
