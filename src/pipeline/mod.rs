//! The request pipeline: every request of a client connection goes through
//! these tower layers, outermost first.
//!
//! 1. [`audit`]: one audit line per request, written when the response
//!    body ends, with the decision the inner layers report.
//! 2. [`respond`]: the one place a [`Denial`] becomes a Docker-style error
//!    response. Every layer below refuses by returning a `Denial`.
//! 3. [`framing_guard`]: refuses a request whose framing the gateway's own
//!    byte tracker disagrees with (request smuggling).
//! 4. [`audit_guard`]: while the audit log cannot be written, refuses
//!    with 503 (`audit.on_failure = "deny"`).
//! 5. [`rate`]: an owner over its request rate gets a 429.
//! 6. [`renewal`]: `POST /_dockgate/renew` goes to self-renewal, not to the
//!    daemon.
//! 7. [`authorize`]: role, route and operation → a [`Verdict`]. An allowed
//!    request carries the decision and what must happen next ([`Next`]).
//!    [`sessions`] then binds BuildKit session uuids to the owner who first
//!    names them (by `/session` or a confined build), and refuses anyone
//!    else naming them.
//! 8. [`redact`]: a role with `redact_env` gets container inspect answers
//!    with the environment's values replaced.
//! 9. [`confine`]: a confined role's request is inspected, ownership-checked
//!    and rewritten; an unconfined container create is stamped with its
//!    owner. A classic build's context is checked as it streams
//!    ([`context`]); what the daemon answers is recorded in the ownership
//!    records, and lists and events are filtered to them ([`visible`]).
//! 10. [`conflict`]: masks dockerd's name-conflict answers where the rule
//!     table says so.
//! 11. [`crate::proxy::Forward`]: sends the request to the daemon, relays
//!     the answer, and splices upgraded sessions.
//!
//! Each layer is built per connection with the connection's context
//! ([`Connection`]), so no layer looks anything up in request extensions.
//! The stack is built once per connection and serves each of its requests
//! in turn ([`PerConnection`]); nothing is cloned per request.
//!
//! [`Verdict`]: crate::policy::Verdict

pub mod audit;
pub mod audit_guard;
pub mod authorize;
pub mod confine;
pub mod conflict;
pub mod context;
pub mod framing_guard;
pub mod linger;
pub mod rate;
pub mod redact;
pub mod renewal;
pub mod respond;
pub mod sessions;
pub mod visible;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use hyper::body::Incoming;
use tower::ServiceBuilder;

use crate::audit::{AuditLog, Decision};
use crate::connection::Connection;
use crate::limits::InspectBudget;
use crate::policy::records::Records;
use crate::policy::{Denial, Next};
use crate::proxy::{Body, Forward, RequestBody, Upstream};
use crate::reload::Live;
use crate::renewal::Renewer;
use audit::{Audit, Metered, Reported};

/// A client's request body, counted for the audit line.
pub type ClientBody = Metered<Incoming>;

/// What the layers below [`respond`] return.
pub type Outcome = Result<Response<Body>, Denial>;

/// A boxed future, for layers that must await before calling inward.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A request the role may make, with what must happen before forwarding.
#[derive(Debug)]
pub struct Allowed {
    pub request: Request<ClientBody>,
    pub decision: Decision,
    pub next: Next,
}

/// A request ready for the daemon: inspected and rewritten where needed.
#[derive(Debug)]
pub struct Checked {
    pub request: Request<RequestBody>,
    pub decision: Decision,
    /// Whether a name-conflict answer must be masked (see [`conflict`]).
    pub masks_conflicts: bool,
}

/// What every connection's pipeline shares.
#[derive(Clone, Debug)]
pub struct Gateway {
    live: Arc<Live>,
    upstream: Upstream,
    audit: AuditLog,
    renewer: Arc<Renewer>,
    budget: InspectBudget,
    records: Arc<Records>,
    sessions: Arc<crate::sessions::Sessions>,
    rates: Arc<rate::RequestRates>,
}

impl Gateway {
    pub fn new(
        live: Arc<Live>,
        upstream: Upstream,
        audit: AuditLog,
        renewer: Arc<Renewer>,
        budget: InspectBudget,
        records: Arc<Records>,
        rates: rate::RequestRates,
    ) -> Gateway {
        Gateway {
            live,
            upstream,
            audit,
            renewer,
            budget,
            records,
            sessions: Arc::default(),
            rates: Arc::new(rates),
        }
    }

    /// The pipeline for one client connection, as hyper calls it.
    pub fn service(
        &self,
        conn: &Arc<Connection>,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Reported<Body>>,
        Error = Infallible,
        Future = impl Send,
    > + Send
           + 'static {
        PerConnection(Mutex::new(self.stack(conn)))
    }

    fn stack(
        &self,
        conn: &Arc<Connection>,
    ) -> impl tower::Service<
        Request<Incoming>,
        Response = Response<Reported<Body>>,
        Error = Infallible,
        Future = impl Send,
    > + Send
           + 'static {
        ServiceBuilder::new()
            .layer_fn(|inner| Audit::new(inner, conn.clone(), self.audit.clone()))
            .layer_fn(respond::Respond::new)
            .layer_fn(|inner| {
                framing_guard::FramingGuard::new(inner, conn.clone(), self.live.clone())
            })
            .layer_fn(|inner| {
                audit_guard::AuditGuard::new(
                    inner,
                    conn.clone(),
                    self.live.clone(),
                    self.audit.clone(),
                )
            })
            .layer_fn(|inner| {
                rate::RateLimit::new(inner, conn.clone(), self.live.clone(), self.rates.clone())
            })
            .layer_fn(|inner| renewal::RenewalRoute::new(inner, conn.clone(), self.renewer.clone()))
            .layer_fn(|inner| authorize::Authorize::new(inner, conn.clone(), self.live.clone()))
            .layer_fn(|inner| {
                sessions::SessionOwners::new(inner, conn.clone(), self.sessions.clone())
            })
            .layer_fn(|inner| redact::RedactEnv::new(inner, self.live.clone()))
            .layer_fn(|inner| {
                confine::Confine::new(
                    inner,
                    self.live.clone(),
                    self.upstream.clone(),
                    self.budget.clone(),
                    self.records.clone(),
                )
            })
            .layer_fn(conflict::MaskConflicts::new)
            .service(Forward::new(
                conn.clone(),
                self.upstream.clone(),
                self.audit.clone(),
                self.live.clone(),
            ))
    }
}

/// Serves a connection's requests with its one pipeline. hyper's adapter
/// for tower services clones the whole stack (a dozen layers and their
/// shared handles) for every request; this calls the same stack each time.
/// A connection's requests come one at a time, so the lock is never
/// contended.
struct PerConnection<S>(Mutex<S>);

impl<S> hyper::service::Service<Request<Incoming>> for PerConnection<S>
where
    S: tower::Service<Request<Incoming>, Error = Infallible>,
{
    type Response = S::Response;
    type Error = Infallible;
    type Future = S::Future;

    fn call(&self, request: Request<Incoming>) -> S::Future {
        let mut stack = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Every layer is ready when the one inside it is, and the innermost
        // (Forward) always is: no layer applies backpressure.
        let ready = stack.poll_ready(&mut Context::from_waker(Waker::noop()));
        debug_assert!(matches!(ready, Poll::Ready(Ok(()))));
        stack.call(request)
    }
}
