//! Refuses requests whose framing dockgate's own byte tracker disagrees
//! with.
//!
//! hyper parses the request, but silently resolves some ambiguous framings
//! (Content-Length with Transfer-Encoding, for one) that another parser
//! might resolve differently. The connection's tracker (see
//! [`crate::proxy::framing`]) reads the same bytes independently; a request
//! it did not see the same way is refused with 400 before anything else
//! looks at it.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::Request;

use super::{ClientBody, Outcome};
use crate::connection::Connection;
use crate::policy::Denial;
use crate::reload::Live;

#[derive(Clone, Debug)]
pub struct FramingGuard<S> {
    inner: S,
    conn: Arc<Connection>,
    live: Arc<Live>,
}

impl<S> FramingGuard<S> {
    pub fn new(inner: S, conn: Arc<Connection>, live: Arc<Live>) -> FramingGuard<S> {
        FramingGuard { inner, conn, live }
    }
}

impl<S> tower::Service<Request<ClientBody>> for FramingGuard<S>
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
        match self.conn.framing.admit() {
            Ok(()) => Either::Right(self.inner.call(request)),
            Err(violation) => {
                tracing::warn!(peer = %self.conn.peer, reason = %violation, "request framing refused");
                let policy = self.live.policy.load();
                let role = policy
                    .roles
                    .resolve(&self.conn.identity)
                    .map(|(r, _)| r.name.clone());
                Either::Left(ready(Err(violation.denial(role))))
            }
        }
    }
}
