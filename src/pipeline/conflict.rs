//! Masks dockerd's name-conflict answers where the rule table says so.
//!
//! dockerd's 409 for a container create names the container that holds the
//! name, with its full ID. A confined client must not learn another owner's
//! IDs that way, so for such operations the 409 is replaced with the same
//! answer minus the other container.

use std::task::{Context, Poll};

use futures_util::future::Either;
use http::{Response, StatusCode};

use super::{BoxFuture, Checked, Outcome};
use crate::audit::Decision;
use crate::policy::Denial;
use crate::proxy::{error, Body};

#[derive(Clone, Debug)]
pub struct MaskConflicts<S> {
    inner: S,
}

impl<S> MaskConflicts<S> {
    pub fn new(inner: S) -> MaskConflicts<S> {
        MaskConflicts { inner }
    }
}

impl<S> tower::Service<Checked> for MaskConflicts<S>
where
    S: tower::Service<Checked, Response = Response<Body>, Error = Denial>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Denial;
    type Future = Either<S::Future, BoxFuture<Outcome>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Denial>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, checked: Checked) -> Self::Future {
        if !checked.masks_conflicts {
            return Either::Left(self.inner.call(checked));
        }
        let response = self.inner.call(checked);
        Either::Right(Box::pin(async move {
            let response = response.await?;
            if response.status() != StatusCode::CONFLICT {
                return Ok(response);
            }
            let mut masked = error::respond(
                StatusCode::CONFLICT,
                "Conflict. The container name is already in use. Choose another name.",
            );
            if let Some(decision) = response.extensions().get::<Decision>() {
                masked.extensions_mut().insert(decision.clone());
            }
            Ok(masked)
        }))
    }
}
