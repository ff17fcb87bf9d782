//! Metrics, exported in Prometheus text format on the admin listener
//! (see [`crate::admin`]).
//!
//! Every metric is registered once, in [`METRICS`]. Updating one is an
//! atomic add (label sets are looked up in a read-locked map), cheap enough
//! for the request path. Label values come from small, closed sets: the
//! operation names of the route table, the configured role names, the
//! decision, a refusal reason, a limit's config key.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// A label value shared with the rest of the gateway (role names).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Name(pub Arc<str>);

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&&*self.0, encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The Engine API operation, or "none" for unrouted requests.
    pub operation: &'static str,
    /// The role, or "none" for a certificate without one.
    pub role: Option<Name>,
    /// "allow", "deny" or "error".
    pub decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Limit {
    /// The config key of the limit that was hit.
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Certificate {
    pub certificate: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_duration: Histogram,
    pub bytes_received: Counter,
    pub bytes_sent: Counter,
    pub connections_accepted: Counter,
    pub connections_open: Gauge,
    pub sessions_open: Gauge,
    pub connections_cut: Counter,
    pub handshakes_refused: Family<Reason, Counter>,
    pub reloads: Family<Outcome, Counter>,
    pub renewals: Family<Outcome, Counter>,
    pub audit_write_errors: Counter,
    pub upstream_errors: Counter,
    pub limit_hits: Family<Limit, Counter>,
    expiry: Family<Certificate, Gauge>,
}

/// Expiry (Unix seconds) of the server certificate and of the first CA to
/// expire; [`Metrics::encode`] turns them into seconds remaining.
pub static SERVER_CERT_NOT_AFTER: AtomicI64 = AtomicI64::new(0);
pub static CA_NOT_AFTER: AtomicI64 = AtomicI64::new(0);

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("dockgate");
        fn registered<M: prometheus_client::registry::Metric + Clone>(
            registry: &mut Registry,
            name: &str,
            help: &str,
            metric: M,
        ) -> M {
            registry.register(name, help, metric.clone());
            metric
        }
        let r = &mut registry;
        Metrics {
            requests: registered(
                r,
                "requests",
                "Requests by operation, role and decision",
                Family::default(),
            ),
            request_duration: registered(
                r,
                "request_duration_seconds",
                "Time from a request's head to the end of its response",
                Histogram::new(exponential_buckets(0.0005, 4.0, 10)),
            ),
            bytes_received: registered(
                r,
                "received_bytes",
                "Body bytes received from clients, sessions included",
                Counter::default(),
            ),
            bytes_sent: registered(
                r,
                "sent_bytes",
                "Body bytes sent to clients, sessions included",
                Counter::default(),
            ),
            connections_accepted: registered(
                r,
                "connections_accepted",
                "TCP connections accepted",
                Counter::default(),
            ),
            connections_open: registered(
                r,
                "connections_open",
                "Client connections open after the handshake",
                Gauge::default(),
            ),
            sessions_open: registered(
                r,
                "sessions_open",
                "Upgraded sessions open (attach, exec, BuildKit)",
                Gauge::default(),
            ),
            connections_cut: registered(
                r,
                "connections_cut",
                "Connections cut because their certificate stopped being accepted",
                Counter::default(),
            ),
            handshakes_refused: registered(
                r,
                "handshakes_refused",
                "TLS handshakes refused, by reason",
                Family::default(),
            ),
            reloads: registered(r, "reloads", "Reloads, by result", Family::default()),
            renewals: registered(
                r,
                "renewals",
                "Client self-renewals, by result",
                Family::default(),
            ),
            audit_write_errors: registered(
                r,
                "audit_write_errors",
                "Audit lines that could not be written",
                Counter::default(),
            ),
            upstream_errors: registered(
                r,
                "upstream_errors",
                "Requests the Docker daemon could not be reached for",
                Counter::default(),
            ),
            limit_hits: registered(
                r,
                "limit_hits",
                "Connections and requests refused by a limit, by its config key",
                Family::default(),
            ),
            expiry: registered(
                r,
                "certificate_expiry_seconds",
                "Seconds until the server certificate and the first CA expire",
                Family::default(),
            ),
            registry,
        }
    }

    /// Everything, in Prometheus text format.
    pub fn encode(&self) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for (certificate, not_after) in [("server", &SERVER_CERT_NOT_AFTER), ("ca", &CA_NOT_AFTER)]
        {
            self.expiry
                .get_or_create(&Certificate { certificate })
                .set(not_after.load(Ordering::Relaxed) - now);
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    pub fn request(&self, labels: &RequestLabels, elapsed: Duration, received: u64, sent: u64) {
        self.requests.get_or_create(labels).inc();
        self.request_duration.observe(elapsed.as_secs_f64());
        self.bytes_received.inc_by(received);
        self.bytes_sent.inc_by(sent);
    }

    pub fn limit_hit(&self, limit: &'static str) {
        self.limit_hits.get_or_create(&Limit { limit }).inc();
    }

    pub fn handshake_refused(&self, reason: &'static str) {
        self.handshakes_refused
            .get_or_create(&Reason { reason })
            .inc();
    }
}

/// Increments a gauge now and decrements it when the guard drops.
pub struct GaugeGuard(&'static Gauge);

impl GaugeGuard {
    pub fn new(gauge: &'static Gauge) -> GaugeGuard {
        gauge.inc();
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_operation_role_and_decision() {
        let m = Metrics::new();
        let labels = RequestLabels {
            operation: "ContainerList",
            role: Some(Name("ci".into())),
            decision: "allow",
        };
        m.request(&labels, Duration::from_millis(3), 10, 20);
        m.request(&labels, Duration::from_millis(3), 0, 5);
        m.limit_hit("limits.connections_per_identity");
        let text = m.encode();
        assert!(
            text.contains(
                r#"dockgate_requests_total{operation="ContainerList",role="ci",decision="allow"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains("dockgate_sent_bytes_total 25"), "{text}");
        assert!(
            text.contains(
                r#"dockgate_limit_hits_total{limit="limits.connections_per_identity"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("dockgate_certificate_expiry_seconds{certificate=\"server\"}"));
    }
}
