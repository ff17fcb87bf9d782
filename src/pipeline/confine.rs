//! Confinement and owner stamping: what an allowed request needs before it
//! may be forwarded.
//!
//! - [`Next::Confine`]: a confined role's request. Bodies the operation's
//!   rule inspects are read whole (up to `limits.inspect_body`), checked by
//!   [`policy::confine`](crate::policy::confine::confine) with ownership
//!   lookups against the daemon, and rewritten (resolved IDs, owner labels,
//!   list filters). The bytes inspected are exactly the bytes forwarded.
//! - [`Next::Stamp`]: an unconfined container create, labelled with its
//!   creator.
//! - [`Next::Forward`]: passed on untouched, body streaming.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use http::{header, Request, Response, StatusCode};
use http_body_util::Full;

use super::{Allowed, BoxFuture, Checked, ClientBody, Outcome};
use crate::audit::Decision;
use crate::policy::confine::confine;
use crate::policy::rules::{self, BodyRule};
use crate::policy::{ownership, Confined, Denial, Next};
use crate::proxy::{Body, RequestBody, Upstream};
use crate::reload::Live;

#[derive(Clone, Debug)]
pub struct Confine<S> {
    inner: S,
    live: Arc<Live>,
    upstream: Upstream,
}

impl<S> Confine<S> {
    pub fn new(inner: S, live: Arc<Live>, upstream: Upstream) -> Confine<S> {
        Confine {
            inner,
            live,
            upstream,
        }
    }
}

impl<S> tower::Service<Allowed> for Confine<S>
where
    S: tower::Service<Checked, Response = Response<Body>, Error = Denial> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Denial;
    type Future = Either<S::Future, BoxFuture<Outcome>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Denial>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, allowed: Allowed) -> Self::Future {
        let Allowed {
            request,
            decision,
            next,
        } = allowed;
        let limit = self.live.policy.load().inspect_limit;
        let mut inner = self.inner.clone();
        match next {
            Next::Forward => Either::Left(self.inner.call(Checked {
                request: request.map(RequestBody::Left),
                decision,
                masks_conflicts: false,
            })),
            Next::Stamp(owner) => Either::Right(Box::pin(async move {
                let request = stamp_owner(request, &owner, &decision, limit).await?;
                inner
                    .call(Checked {
                        request,
                        decision,
                        masks_conflicts: false,
                    })
                    .await
            })),
            Next::Confine(confined) => {
                let upstream = self.upstream.clone();
                Either::Right(Box::pin(async move {
                    let request =
                        match confined_request(&confined, &decision, limit, request, &upstream)
                            .await?
                        {
                            Ready::Forward(request) => *request,
                            Ready::Answer(reply) => return Ok(answer(reply, decision)),
                        };
                    let masks_conflicts =
                        rules::rule(confined.operation).is_some_and(|r| r.masks_conflicts);
                    inner
                        .call(Checked {
                            request,
                            decision,
                            masks_conflicts,
                        })
                        .await
                }))
            }
        }
    }
}

/// A checked confined request: forwarded, or answered by dockgate.
enum Ready {
    Forward(Box<Request<RequestBody>>),
    Answer(serde_json::Value),
}

/// dockgate's own 200 answer to a confined request.
fn answer(reply: serde_json::Value, decision: Decision) -> Response<Body> {
    let mut response: Response<Body> = Response::new(http_body_util::Either::Right(Full::new(
        Bytes::from(reply.to_string()),
    )));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response.extensions_mut().insert(decision);
    response
}

/// Reads what must be inspected, checks it, and applies the rewrites
/// confinement asks for.
async fn confined_request(
    confined: &Confined,
    decision: &Decision,
    limit: usize,
    request: Request<ClientBody>,
    upstream: &Upstream,
) -> Result<Ready, Denial> {
    let (mut parts, body) = request.into_parts();
    let (read, streamed) = match rules::body_rule(confined.operation) {
        BodyRule::Inspect => (Some(read_limited(body, limit, decision).await?), None),
        BodyRule::Stream | BodyRule::Empty => (None, Some(body)),
    };
    let rewrite = confine(
        confined,
        decision,
        &parts.uri,
        &parts.headers,
        read.clone(),
        upstream,
    )
    .await?;
    if let Some(reply) = rewrite.reply {
        return Ok(Ready::Answer(reply));
    }
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
        Some(bytes) => sized(&mut parts, bytes),
        None => match streamed {
            Some(body) => RequestBody::Left(body),
            None => RequestBody::Right(Full::default()),
        },
    };
    Ok(Ready::Forward(Box::new(Request::from_parts(parts, body))))
}

/// Labels an unconfined container create with its owner.
async fn stamp_owner(
    request: Request<ClientBody>,
    owner: &str,
    decision: &Decision,
    limit: usize,
) -> Result<Request<RequestBody>, Denial> {
    let (mut parts, body) = request.into_parts();
    let bytes = read_limited(body, limit, decision).await?;
    let labelled = ownership::append_owner_label(&bytes, owner).ok_or_else(|| {
        Denial::of(
            decision,
            StatusCode::BAD_REQUEST,
            "dockgate: container create body is not a JSON object".into(),
            "unparsable body",
        )
    })?;
    let body = sized(&mut parts, Bytes::from(labelled));
    Ok(Request::from_parts(parts, body))
}

/// A body the gateway holds whole, framed by its length.
fn sized(parts: &mut http::request::Parts, bytes: Bytes) -> RequestBody {
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, bytes.len().into());
    RequestBody::Right(Full::new(bytes))
}

/// Reads a whole body for inspection, chunked or sized alike, refusing
/// more than `limit` bytes with 413.
async fn read_limited(
    body: ClientBody,
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
