//! Routes `POST /_dockgate/renew` to self-renewal, and
//! `POST /_dockgate/renew/retire` to revoking the certificate a renewal
//! replaced (see [`crate::renewal`]), instead of the daemon. The client's own verified certificate is the only
//! authority: no role is needed, and the decision is audited like any
//! other.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::{header, Request, Response, StatusCode};

use super::{BoxFuture, ClientBody, Outcome};
use crate::audit::Decision;
use crate::connection::Connection;
use crate::metrics;
use crate::policy::Denial;
use crate::proxy::Body;
use crate::renewal::{self, Renewer};

#[derive(Clone, Debug)]
pub struct RenewalRoute<S> {
    inner: S,
    conn: Arc<Connection>,
    renewer: Arc<Renewer>,
}

impl<S> RenewalRoute<S> {
    pub fn new(inner: S, conn: Arc<Connection>, renewer: Arc<Renewer>) -> RenewalRoute<S> {
        RenewalRoute {
            inner,
            conn,
            renewer,
        }
    }
}

impl<S> tower::Service<Request<ClientBody>> for RenewalRoute<S>
where
    S: tower::Service<Request<ClientBody>, Response = Response<Body>, Error = Denial>,
{
    type Response = Response<Body>;
    type Error = Denial;
    type Future = Either<BoxFuture<Outcome>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Denial>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ClientBody>) -> Self::Future {
        let (conn, renewer) = (self.conn.clone(), self.renewer.clone());
        match request.uri().path() {
            renewal::RENEW_PATH => Either::Left(Box::pin(renew(conn, renewer, request))),
            renewal::RETIRE_PATH => Either::Left(Box::pin(retire(conn, renewer, request))),
            _ => Either::Right(self.inner.call(request)),
        }
    }
}

async fn renew(
    conn: Arc<Connection>,
    renewer: Arc<Renewer>,
    request: Request<ClientBody>,
) -> Outcome {
    let mut decision = posted(
        &conn,
        &request,
        renewal::OPERATION,
        "renewal takes POST with a CSR",
    )?;
    let name = conn.identity.common_name.clone().unwrap_or_default();
    let outcome = match renewal::read_csr(request.into_body()).await {
        Ok(csr) => renewer.renew(&name, &conn.leaf, csr).await,
        Err(refusal) => Err(refusal),
    };
    match outcome {
        Ok(renewed) => {
            metrics::METRICS
                .renewals
                .get_or_create(&metrics::Outcome { result: "ok" })
                .inc();
            tracing::info!(peer = %conn.peer, client = %name, "certificate renewed");
            decision.allowed = true;
            Ok(json(
                serde_json::to_vec(&renewed).unwrap_or_default(),
                decision,
            ))
        }
        Err(refusal) => {
            metrics::METRICS
                .renewals
                .get_or_create(&metrics::Outcome { result: "refused" })
                .inc();
            tracing::warn!(peer = %conn.peer, client = %name, reason = %refusal.message, "renewal refused");
            Err(refused(refusal, decision))
        }
    }
}

/// The renewed client retires the certificate it replaced.
async fn retire(
    conn: Arc<Connection>,
    renewer: Arc<Renewer>,
    request: Request<ClientBody>,
) -> Outcome {
    let mut decision = posted(
        &conn,
        &request,
        renewal::RETIRE_OPERATION,
        "retiring takes POST with a fingerprint",
    )?;
    let name = conn.identity.common_name.clone().unwrap_or_default();
    let outcome = match renewal::read_csr(request.into_body()).await {
        Ok(fingerprint) => renewer.retire(&conn.leaf, fingerprint).await,
        Err(refusal) => Err(refusal),
    };
    match outcome {
        Ok(serial) => {
            tracing::info!(peer = %conn.peer, client = %name, %serial, "replaced certificate revoked");
            decision.allowed = true;
            let body = serde_json::json!({ "revoked": serial }).to_string();
            Ok(json(body.into_bytes(), decision))
        }
        Err(refusal) => {
            tracing::warn!(peer = %conn.peer, client = %name, reason = %refusal.message, "retiring refused");
            Err(refused(refusal, decision))
        }
    }
}

/// The decision for a request on the renewal routes, which take POST only.
fn posted(
    conn: &Connection,
    request: &Request<ClientBody>,
    operation: &'static str,
    takes: &str,
) -> Result<Decision, Denial> {
    let decision = Decision {
        operation: Some(operation),
        role: conn.identity.recorded_role.as_deref().map(Arc::from),
        allowed: false,
        rule: "renewal".into(),
    };
    if request.method() != http::Method::POST {
        return Err(Denial {
            status: StatusCode::METHOD_NOT_ALLOWED,
            message: format!("dockgate: {takes}"),
            decision,
        });
    }
    Ok(decision)
}

fn json(body: Vec<u8>, decision: Decision) -> Response<Body> {
    let mut response = Response::new(Body::made(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response.extensions_mut().insert(decision);
    response
}

fn refused(refusal: renewal::Refusal, mut decision: Decision) -> Denial {
    decision.rule = "renewal refused".into();
    Denial {
        status: refusal.status,
        message: refusal.message,
        decision,
    }
}
