//! Process-wide counters and timings, kept where a metrics endpoint can
//! read them. Updating one is a relaxed atomic add: cheap enough for the hot
//! path, and no lock is ever taken.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// TCP connections accepted.
pub static CONNECTIONS_ACCEPTED: AtomicU64 = AtomicU64::new(0);
/// Handshakes refused or timed out.
pub static HANDSHAKES_REFUSED: AtomicU64 = AtomicU64::new(0);
/// Client connections currently open (after the handshake).
pub static CONNECTIONS_OPEN: AtomicU64 = AtomicU64::new(0);
/// Requests finished, by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
pub static REQUESTS_BY_CLASS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
/// Total time spent serving finished requests, in microseconds.
pub static REQUEST_MICROS_TOTAL: AtomicU64 = AtomicU64::new(0);
/// Requests the daemon could not be reached for.
pub static UPSTREAM_ERRORS: AtomicU64 = AtomicU64::new(0);
/// Upgraded (hijacked) sessions currently open.
pub static SESSIONS_OPEN: AtomicU64 = AtomicU64::new(0);
/// Connections cut because their certificate stopped being accepted.
pub static CONNECTIONS_CUT: AtomicU64 = AtomicU64::new(0);
/// Reloads that were applied, and reloads that were rejected.
pub static RELOADS: AtomicU64 = AtomicU64::new(0);
pub static RELOAD_FAILURES: AtomicU64 = AtomicU64::new(0);
/// Expiry (Unix seconds) of the server certificate, and of the first CA to
/// expire; seconds remaining is this minus now.
pub static SERVER_CERT_NOT_AFTER: AtomicI64 = AtomicI64::new(0);
pub static CA_NOT_AFTER: AtomicI64 = AtomicI64::new(0);
/// Self-renewals issued, and refused.
pub static RENEWALS: AtomicU64 = AtomicU64::new(0);
pub static RENEWALS_REFUSED: AtomicU64 = AtomicU64::new(0);
/// Connections and requests refused by a limit (see `crate::limits`).
pub static LIMIT_HITS: AtomicU64 = AtomicU64::new(0);
/// Audit lines that could not be written.
pub static AUDIT_WRITE_ERRORS: AtomicU64 = AtomicU64::new(0);

pub fn record_request(status: u16, elapsed: Duration) {
    let class = usize::from(status / 100).clamp(1, 5) - 1;
    REQUESTS_BY_CLASS[class].fetch_add(1, Ordering::Relaxed);
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    REQUEST_MICROS_TOTAL.fetch_add(micros, Ordering::Relaxed);
}

/// Increments a gauge now and decrements it when the guard drops.
pub struct GaugeGuard(&'static AtomicU64);

impl GaugeGuard {
    pub fn new(gauge: &'static AtomicU64) -> GaugeGuard {
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
