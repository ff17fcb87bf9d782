//! The request rate of one identity: a token bucket per owner.
//!
//! Each owner may make `limits.requests_per_second` requests on average,
//! in bursts of up to `limits.request_burst`; a request over that rate gets
//! a Docker-style 429 naming the rule, before anything is decided or sent
//! to the daemon. Only new requests are counted, so an established stream
//! (attach, exec, `logs -f`, a build) is never cut. A rate of 0 turns the
//! limit off.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::{ready, Either, Ready};
use http::{Request, StatusCode};

use super::{ClientBody, Outcome};
use crate::audit::Decision;
use crate::config::Limits;
use crate::connection::Connection;
use crate::metrics;
use crate::policy::Denial;
use crate::reload::Live;

const RULE: &str = "limits.requests_per_second";
/// Owners tracked before full buckets are forgotten (a full bucket is what
/// a new owner gets anyway).
const PRUNE_AT: usize = 4096;

/// Every owner's bucket.
#[derive(Debug)]
pub struct RequestRates {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RequestRates {
    pub fn new(limits: &Limits) -> RequestRates {
        RequestRates {
            per_second: limits.requests_per_second,
            burst: f64::from(limits.request_burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Takes a token from `owner`'s bucket, unless it is empty.
    pub fn take(&self, owner: &str, now: Instant) -> bool {
        if self.per_second <= 0.0 {
            return true;
        }
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        if buckets.len() >= PRUNE_AT {
            buckets.retain(|_, b| self.refilled(*b, now) < self.burst);
        }
        let bucket = buckets.entry(owner.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = self.refilled(*bucket, now);
        let allowed = tokens >= 1.0;
        *bucket = Bucket {
            tokens: if allowed { tokens - 1.0 } else { tokens },
            at: now,
        };
        allowed
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }
}

#[derive(Clone, Debug)]
pub struct RateLimit<S> {
    inner: S,
    conn: Arc<Connection>,
    live: Arc<Live>,
    rates: Arc<RequestRates>,
}

impl<S> RateLimit<S> {
    pub fn new(
        inner: S,
        conn: Arc<Connection>,
        live: Arc<Live>,
        rates: Arc<RequestRates>,
    ) -> RateLimit<S> {
        RateLimit {
            inner,
            conn,
            live,
            rates,
        }
    }
}

impl<S> tower::Service<Request<ClientBody>> for RateLimit<S>
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
        let owner = &self.conn.owner;
        if self.rates.take(owner, Instant::now()) {
            return Either::Right(self.inner.call(request));
        }
        metrics::METRICS.limit_hit(RULE);
        tracing::warn!(peer = %self.conn.peer, %owner, "request refused: {RULE} reached");
        let role = self
            .live
            .policy
            .load()
            .roles
            .resolve(&self.conn.identity)
            .map(|(r, _)| r.name.clone());
        Either::Left(ready(Err(Denial {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: format!(
                "dockgate: {owner} is over its request rate of {}/s, burst {} (rule {RULE})",
                self.rates.per_second, self.rates.burst
            ),
            decision: Decision {
                operation: None,
                role,
                allowed: false,
                rule: Arc::from(RULE),
            },
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rates(per_second: f64, burst: u32) -> RequestRates {
        RequestRates::new(&Limits {
            requests_per_second: per_second,
            request_burst: burst,
            ..Limits::default()
        })
    }

    #[test]
    fn a_burst_then_the_rate_per_owner() {
        let rates = rates(2.0, 3);
        let t0 = Instant::now();
        assert!((0..3).all(|_| rates.take("cn=a", t0)));
        assert!(!rates.take("cn=a", t0));
        // Another owner has its own bucket.
        assert!(rates.take("cn=b", t0));
        // Half a second at 2/s refills one token, and no more than the burst.
        assert!(rates.take("cn=a", t0 + Duration::from_millis(500)));
        assert!(!rates.take("cn=a", t0 + Duration::from_millis(500)));
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| rates.take("cn=a", later)));
        assert!(!rates.take("cn=a", later));
    }

    #[test]
    fn a_rate_of_zero_is_no_limit() {
        let rates = rates(0.0, 1);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| rates.take("cn=a", t0)));
    }
}
