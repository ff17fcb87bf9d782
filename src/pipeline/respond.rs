//! The one place a refusal becomes a response.
//!
//! Every layer below refuses by returning a [`Denial`]; here it becomes a
//! Docker-style `{"message": "…"}` error with the denial's status, carrying
//! the decision for the audit line. The docker CLI and SDKs print that
//! message as they print dockerd's own errors.

use std::convert::Infallible;
use std::task::{Context, Poll};

use futures_util::future::{FutureExt, Map};
use http::{Request, Response};

use super::Outcome;
use crate::policy::Denial;
use crate::proxy::{error, Body};

#[derive(Clone, Debug)]
pub struct Respond<S> {
    inner: S,
}

impl<S> Respond<S> {
    pub fn new(inner: S) -> Respond<S> {
        Respond { inner }
    }
}

impl<S, B> tower::Service<Request<B>> for Respond<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>, Error = Denial>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Map<S::Future, fn(Outcome) -> Result<Response<Body>, Infallible>>;

    /// The layers below are always ready: they refuse requests, never
    /// readiness.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx).map(|_| Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.inner
            .call(request)
            .map(|outcome| Ok(outcome.unwrap_or_else(respond)))
    }
}

/// A denial as the client and the audit layer see it.
pub fn respond(denial: Denial) -> Response<Body> {
    let mut response = error::respond(denial.status, &denial.message);
    response.extensions_mut().insert(denial.decision);
    response
}
