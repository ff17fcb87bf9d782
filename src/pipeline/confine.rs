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
//! - [`Next::NoCache`]: an unconfined build, forwarded with `nocache=1`.
//! - [`Next::Forward`]: passed on untouched, body streaming.
//!
//! A confined classic build's context streams through
//! [`context::prefetch`], which checks the Dockerfile inside it.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use dockgate_wire::query::Query;
use futures_util::future::Either;
use http::{header, Request, Response, StatusCode};
use http_body_util::{Either as BodyEither, Full};

use super::context;
use super::visible;
use super::{Allowed, BoxFuture, Checked, ClientBody, Outcome};
use crate::audit::Decision;
use crate::limits::InspectBudget;
use crate::metrics;
use crate::policy::confine::confine;
use crate::policy::context::ContextScanner;
use crate::policy::records::{Owners, Records};
use crate::policy::reference;
use crate::policy::rules::{self, BodyRule};
use crate::policy::{ownership, Confined, Denial, Next};
use crate::proxy::{Body, RequestBody, Upstream};
use crate::reload::Live;
use dockgate_wire::api::Operation;

#[derive(Clone, Debug)]
pub struct Confine<S> {
    inner: S,
    live: Arc<Live>,
    upstream: Upstream,
    budget: InspectBudget,
    records: Arc<Records>,
}

impl<S> Confine<S> {
    /// How bodies are read now; confined roles' share `budget`.
    fn reading(&self, budget: Option<InspectBudget>) -> Reading {
        let policy = self.live.policy.load();
        Reading {
            limit: policy.inspect_limit,
            timeout: policy.body_read_timeout,
            budget,
        }
    }

    pub fn new(
        inner: S,
        live: Arc<Live>,
        upstream: Upstream,
        budget: InspectBudget,
        records: Arc<Records>,
    ) -> Confine<S> {
        Confine {
            inner,
            live,
            upstream,
            budget,
            records,
        }
    }
}

/// How a body is read for inspection.
#[derive(Debug, Clone)]
struct Reading {
    limit: usize,
    timeout: Duration,
    /// Confined roles' bodies share this budget; an unconfined role's
    /// (an administrator's container create) are not held back by it.
    budget: Option<InspectBudget>,
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
        match next {
            Next::Forward => {
                // A tag an unconfined role creates is no longer its
                // recorded owner's.
                if let Err(denial) = take_over_tags(&self.records, &request, &decision) {
                    return Either::Right(Box::pin(std::future::ready(Err(denial))));
                }
                Either::Left(self.inner.call(Checked {
                    request: request.map(RequestBody::Left),
                    decision,
                    masks_conflicts: false,
                }))
            }
            Next::NoCache => {
                if let Err(denial) = take_over_tags(&self.records, &request, &decision) {
                    return Either::Right(Box::pin(std::future::ready(Err(denial))));
                }
                let mut inner = self.inner.clone();
                Either::Right(Box::pin(async move {
                    let request = without_cache(request, &decision)?;
                    inner
                        .call(Checked {
                            request,
                            decision,
                            masks_conflicts: false,
                        })
                        .await
                }))
            }
            Next::Stamp(owner) => {
                let reading = self.reading(None);
                let mut inner = self.inner.clone();
                Either::Right(Box::pin(async move {
                    let request = stamp_owner(request, &owner, &decision, &reading).await?;
                    inner
                        .call(Checked {
                            request,
                            decision,
                            masks_conflicts: false,
                        })
                        .await
                }))
            }
            Next::Confine(confined) => {
                let reading = self.reading(Some(self.budget.clone()));
                let mut inner = self.inner.clone();
                let upstream = self.upstream.clone();
                let records = self.records.clone();
                Either::Right(Box::pin(async move {
                    let (request, tags) = match confined_request(
                        &confined, &decision, &reading, request, &upstream, &*records,
                    )
                    .await?
                    {
                        Ready::Forward(request, tags) => (*request, tags),
                        Ready::Answer(reply) => return Ok(answer(reply, decision)),
                    };
                    for tag in &tags {
                        records
                            .record_tag(tag, &confined.owner)
                            .map_err(|e| unrecorded(&records, &decision, &e))?;
                    }
                    let masks_conflicts =
                        rules::rule(confined.operation).is_some_and(|r| r.masks_conflicts);
                    let response = inner
                        .call(Checked {
                            request,
                            decision: decision.clone(),
                            masks_conflicts,
                        })
                        .await?;
                    record_outcome(&records, &confined, &decision, response).await
                }))
            }
        }
    }
}

/// A checked confined request: forwarded, or answered by dockgate.
enum Ready {
    /// With the tags (normalized) it gives the caller, to record first.
    Forward(Box<Request<RequestBody>>, Vec<String>),
    Answer(serde_json::Value),
}

/// dockgate's own 200 answer to a confined request.
fn answer(reply: serde_json::Value, decision: Decision) -> Response<Body> {
    let mut response = Response::new(Body::made(reply.to_string()));
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
    reading: &Reading,
    request: Request<ClientBody>,
    upstream: &Upstream,
    owners: &dyn Owners,
) -> Result<Ready, Denial> {
    let (mut parts, body) = request.into_parts();
    let (read, streamed) = match rules::body_rule(confined.operation) {
        BodyRule::Inspect => (
            Some(read_whole(body, &parts.headers, reading, decision).await?),
            None,
        ),
        BodyRule::Stream | BodyRule::Empty => (None, Some(body)),
    };
    let rewrite = match confine(
        confined,
        decision,
        &parts.uri,
        &parts.headers,
        read.clone(),
        upstream,
        owners,
    )
    .await
    {
        Ok(rewrite) => rewrite,
        Err(denial) => {
            if let Some(body) = streamed {
                super::linger::linger(body);
            }
            return Err(denial);
        }
    };
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
    let body = match (rewrite.body.or(read), streamed, rewrite.dockerfiles) {
        (Some(bytes), _, _) => sized(&mut parts, bytes),
        (None, Some(body), Some(dockerfiles)) => {
            let _reserved = reserve(reading, reading.limit, decision)?;
            let scanner = ContextScanner::new(dockerfiles, reading.limit);
            let scanned =
                context::prefetch(body, scanner, reading.limit, reading.timeout, decision).await?;
            RequestBody::Right(BodyEither::Right(scanned))
        }
        (None, Some(body), None) => RequestBody::Left(body),
        (None, None, _) => RequestBody::Right(BodyEither::Left(Full::default())),
    };
    Ok(Ready::Forward(
        Box::new(Request::from_parts(parts, body)),
        rewrite.tags,
    ))
}

/// Largest container-create answer read to learn the new container's ID.
const CREATED_LIMIT: usize = 64 << 10;

/// Records what a confined request created or removed, once the daemon
/// has answered: a new container is its creator's; a deleted tag is no
/// one's. A creation that cannot be recorded is reported as a failure, and
/// the container stays no confined identity's. Lists and event streams are
/// filtered to what the record gives the caller (see [`visible`]).
async fn record_outcome(
    records: &Arc<Records>,
    confined: &Confined,
    decision: &Decision,
    response: Response<Body>,
) -> Outcome {
    use http_body_util::BodyExt;
    let status = response.status();
    match confined.operation {
        Operation::ContainerCreate if status == StatusCode::CREATED => {
            let (parts, body) = response.into_parts();
            let bytes = http_body_util::Limited::new(body, CREATED_LIMIT)
                .collect()
                .await
                .map_err(|e| unrecorded(records, decision, &e))?
                .to_bytes();
            let id = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("Id")?.as_str().map(str::to_owned))
                .ok_or_else(|| unrecorded(records, decision, &"the answer names no Id"))?;
            records
                .record_container(&id, &confined.owner)
                .map_err(|e| unrecorded(records, decision, &e))?;
            Ok(Response::from_parts(parts, Body::made(bytes)))
        }
        Operation::ContainerList => {
            Ok(visible::list(response, &confined.owner, records, false).await)
        }
        Operation::ImageList => Ok(visible::list(response, &confined.owner, records, true).await),
        Operation::SystemEvents => Ok(visible::events(response, &confined.owner, records.clone())),
        Operation::ImageDelete if status.is_success() => {
            if let Some(tag) = confined.param("name").and_then(reference::normalize) {
                records
                    .forget_tag(&tag)
                    .map_err(|e| unrecorded(records, decision, &e))?;
            }
            Ok(response)
        }
        _ => Ok(response),
    }
}

/// Forgets the records of tags an unconfined request creates.
fn take_over_tags(
    records: &Records,
    request: &Request<ClientBody>,
    decision: &Decision,
) -> Result<(), Denial> {
    let Some(operation) = decision.operation else {
        return Ok(());
    };
    if !matches!(operation, "ImageBuild" | "ImageTag" | "ImageCreate") {
        return Ok(());
    }
    // dockerd keeps the valid pairs of a query it cannot parse whole, so a
    // tag could still be created: refuse what cannot be read.
    let query = Query::parse(request.uri().query()).map_err(|e| {
        Denial::of(
            decision,
            StatusCode::BAD_REQUEST,
            format!("dockgate: {e}"),
            "unparsable query",
        )
    })?;
    for tag in reference::tags_created(operation, &query) {
        records
            .forget_tag(&tag)
            .map_err(|e| unrecorded(records, decision, &e))?;
    }
    Ok(())
}

fn unrecorded(records: &Records, decision: &Decision, e: &dyn std::fmt::Display) -> Denial {
    tracing::error!(path = %records.path().display(), error = %e, "cannot write the ownership record");
    Denial::of(
        decision,
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("dockgate: cannot record ownership: {e}"),
        "records",
    )
}

/// An unconfined build with `nocache=1` forced (`builds.nocache`).
fn without_cache(
    request: Request<ClientBody>,
    decision: &Decision,
) -> Result<Request<RequestBody>, Denial> {
    let (mut parts, body) = request.into_parts();
    let unparsable = || {
        Denial::of(
            decision,
            StatusCode::BAD_REQUEST,
            "dockgate: cannot rebuild the request target".into(),
            "unparsable query",
        )
    };
    let mut query = Query::parse(parts.uri.query()).map_err(|_| unparsable())?;
    query.set("nocache", "1".into());
    parts.uri = format!("{}?{}", parts.uri.path(), query.encode())
        .parse()
        .map_err(|_| unparsable())?;
    Ok(Request::from_parts(parts, RequestBody::Left(body)))
}

/// Labels an unconfined container create with its owner.
async fn stamp_owner(
    request: Request<ClientBody>,
    owner: &str,
    decision: &Decision,
    reading: &Reading,
) -> Result<Request<RequestBody>, Denial> {
    let (mut parts, body) = request.into_parts();
    let bytes = read_whole(body, &parts.headers, reading, decision).await?;
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

/// Holds `bytes` of the shared inspection budget (503 when it is spent)
/// for a confined role's body while it is read.
fn reserve(
    reading: &Reading,
    bytes: usize,
    decision: &Decision,
) -> Result<Option<crate::limits::Reserved>, Denial> {
    let Some(budget) = &reading.budget else {
        return Ok(None);
    };
    budget.reserve(bytes).map(Some).ok_or_else(|| {
        metrics::METRICS.limit_hit("limits.inspect_memory");
        Denial::of(
            decision,
            StatusCode::SERVICE_UNAVAILABLE,
            "dockgate: too many request bodies are being inspected; retry later".into(),
            "limits.inspect_memory",
        )
    })
}

/// A body the gateway holds whole, framed by its length.
fn sized(parts: &mut http::request::Parts, bytes: Bytes) -> RequestBody {
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, bytes.len().into());
    RequestBody::Right(BodyEither::Left(Full::new(bytes)))
}

/// Reads a whole body for inspection, chunked or sized alike: at most
/// `limit` bytes (413), within the read timeout (408), and within the
/// shared inspection budget (503). The budget is held for what the body
/// may hold (its length, or the limit when chunked) while it is read.
async fn read_whole(
    body: ClientBody,
    headers: &http::HeaderMap,
    reading: &Reading,
    decision: &Decision,
) -> Result<Bytes, Denial> {
    use http_body_util::BodyExt;
    let limit = reading.limit;
    let too_large = || {
        Denial::of(
            decision,
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("dockgate: request body is larger than the inspection limit of {limit} bytes"),
            "limits.inspect_body",
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let _reserved = reserve(reading, declared.unwrap_or(limit), decision)?;
    let collect = http_body_util::Limited::new(body, limit).collect();
    match tokio::time::timeout(reading.timeout, collect).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(Denial::of(
            decision,
            StatusCode::BAD_REQUEST,
            format!("dockgate: cannot read request body: {e}"),
            "unreadable body",
        )),
        Err(_) => {
            metrics::METRICS.limit_hit("limits.body_read_timeout");
            Err(Denial::of(
                decision,
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "dockgate: request body not received within {} s",
                    reading.timeout.as_secs_f64()
                ),
                "limits.body_read_timeout",
            ))
        }
    }
}
