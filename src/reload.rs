//! Live state, and reloading it without a restart.
//!
//! TLS material and policy each sit behind an [`ArcSwap`]: readers take a
//! cheap snapshot per handshake or per request, and a reload builds the new
//! state completely — every file read, parsed and validated — before
//! swapping it in. A reload that fails anywhere swaps nothing: the old state
//! keeps serving and the log says why.
//!
//! Reloads happen on SIGHUP and whenever a watched file changes (polled, so
//! editors' rename-over-writes and `pki` commands' atomic replaces are seen
//! alike). After a reload every open connection is re-verified against the
//! new trust material, and those it no longer accepts — revoked
//! certificates, retired CAs — are cut, with their hijacked sessions. Nobody
//! else's connection is touched.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics;
use crate::notify;
use crate::policy::Policy;
use crate::tls::{self, TlsState};

/// How often watched files are checked for changes.
const POLL: Duration = Duration::from_millis(500);
/// After a change, how long files must stay unchanged before reloading,
/// and how many times that is waited for at most.
const SETTLE: Duration = Duration::from_millis(100);
const SETTLE_CHECKS: usize = 10;
/// Warn when the server certificate or a CA has less than this left.
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often expiry is re-checked between reloads.
const EXPIRY_CHECK: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub struct Live {
    pub tls: ArcSwap<TlsState>,
    pub policy: ArcSwap<Policy>,
    pub connections: Connections,
    /// What `/status` reports: reloads, open sessions.
    pub board: crate::board::Board,
}

impl Live {
    pub fn new(tls: TlsState, policy: Policy) -> Live {
        record_expiry(&tls);
        Live {
            tls: ArcSwap::from_pointee(tls),
            policy: ArcSwap::from_pointee(policy),
            connections: Connections::default(),
            board: crate::board::Board::default(),
        }
    }
}

/// Open client connections and what they authenticated with.
#[derive(Debug, Default)]
pub struct Connections {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Open>>,
}

#[derive(Debug)]
struct Open {
    peer: SocketAddr,
    chain: Vec<CertificateDer<'static>>,
    cut: CancellationToken,
}

/// Keeps a connection registered until dropped.
pub struct Registration {
    id: u64,
    live: Arc<Live>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut open) = self.live.connections.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl Connections {
    /// Registers a verified connection; `chain` is the client's leaf first.
    pub fn register(
        live: &Arc<Live>,
        peer: SocketAddr,
        chain: Vec<CertificateDer<'static>>,
        cut: CancellationToken,
    ) -> Registration {
        let id = live.connections.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut open) = live.connections.open.lock() {
            open.insert(id, Open { peer, chain, cut });
        }
        Registration {
            id,
            live: live.clone(),
        }
    }

    /// Cuts every connection `tls` would no longer accept; returns how many.
    fn cut_unaccepted(&self, tls: &TlsState) -> usize {
        let Ok(open) = self.open.lock() else {
            return 0;
        };
        let mut cut = 0;
        for conn in open.values() {
            let Some((leaf, intermediates)) = conn.chain.split_first() else {
                continue;
            };
            if let Err(reason) = tls.still_accepts(leaf, intermediates) {
                tracing::warn!(peer = %conn.peer, %reason, "cutting connection: its certificate is no longer accepted");
                conn.cut.cancel();
                cut += 1;
            }
        }
        metrics::METRICS.connections_cut.inc_by(cut as u64);
        cut
    }
}

/// Re-reads config and TLS material on demand.
pub struct Reloader {
    live: Arc<Live>,
    /// Produces the current config: the file re-read, flags re-applied.
    load: Box<dyn Fn() -> Result<Config, String> + Send + Sync>,
    /// Settings that only a restart changes, to warn when they differ.
    fixed: Config,
}

impl Reloader {
    pub fn new(
        live: Arc<Live>,
        fixed: Config,
        load: impl Fn() -> Result<Config, String> + Send + Sync + 'static,
    ) -> Reloader {
        Reloader {
            live,
            load: Box::new(load),
            fixed,
        }
    }

    /// Builds and swaps in new state; on any error swaps nothing.
    pub fn reload(&self) -> Result<(), String> {
        let config = (self.load)()?;
        let tls = tls::load(&config.certs, &config.client_cas).map_err(|e| e.to_string())?;
        let policy = Policy::new(&config).map_err(|e| e.to_string())?;
        if config.listen != self.fixed.listen
            || config.docker_socket != self.fixed.docker_socket
            || config.audit.path != self.fixed.audit.path
            || config.audit.queue != self.fixed.audit.queue
            || config.audit.on_failure != self.fixed.audit.on_failure
        {
            tracing::warn!(
                "listen, docker_socket and [audit] changes take effect only after a restart"
            );
        }
        record_expiry(&tls);
        let tls = Arc::new(tls);
        self.live.tls.store(tls.clone());
        self.live.policy.store(Arc::new(policy));
        let cut = self.live.connections.cut_unaccepted(&tls);
        tracing::info!(connections_cut = cut, "reloaded certificates and policy");
        Ok(())
    }

    fn reload_logged(&self, why: &str) {
        notify::reloading();
        let result = self.reload();
        notify::reloaded(&result);
        self.live
            .board
            .reloaded(result.as_ref().map(|_| ()).map_err(ToString::to_string));
        match result {
            Ok(()) => {
                metrics::METRICS
                    .reloads
                    .get_or_create(&metrics::Outcome { result: "ok" })
                    .inc();
            }
            Err(e) => {
                metrics::METRICS
                    .reloads
                    .get_or_create(&metrics::Outcome { result: "error" })
                    .inc();
                tracing::error!(trigger = why, error = %e, "reload rejected; the previous certificates and policy keep serving");
            }
        }
    }

    /// Files whose change triggers a reload.
    fn watched(&self, config_file: Option<&PathBuf>) -> Vec<PathBuf> {
        let config = (self.load)().unwrap_or_else(|_| self.fixed.clone());
        let mut files: Vec<PathBuf> = crate::pki::Layout::new(&config.certs).served().into();
        files.extend(config.client_cas.iter().cloned());
        files.extend(config_file.cloned());
        files
    }

    /// Reloads on SIGHUP and on file changes for as long as the process
    /// runs: a draining service still cuts revoked connections.
    pub async fn watch(self, config_file: Option<PathBuf>) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reloading on file changes only");
                None
            }
        };
        let mut files = self.watched(config_file.as_ref());
        let mut seen = stamps(&files);
        let mut tick = tokio::time::interval(POLL);
        let mut expiry = tokio::time::interval(EXPIRY_CHECK);
        loop {
            tokio::select! {
                Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => std::future::pending().await } } => {
                    self.reload_logged("SIGHUP");
                }
                _ = tick.tick() => {
                    let now = stamps(&files);
                    if now == seen {
                        continue;
                    }
                    // Recorded before reading: a file replaced while the
                    // reload reads is seen as a change at the next tick.
                    seen = settle(&files, now).await;
                    self.reload_logged("file change");
                    let watched = self.watched(config_file.as_ref());
                    if watched != files {
                        files = watched;
                        seen = stamps(&files);
                    }
                }
                _ = expiry.tick() => warn_expiry(&self.live.tls.load()),
            }
        }
    }
}

/// Waits until the files stop changing (a `pki` command replaces a key and
/// then its certificate), for at most a second; returns their stamps.
async fn settle(files: &[PathBuf], mut current: Vec<Option<Stamp>>) -> Vec<Option<Stamp>> {
    for _ in 0..SETTLE_CHECKS {
        tokio::time::sleep(SETTLE).await;
        let again = stamps(files);
        if again == current {
            break;
        }
        current = again;
    }
    current
}

fn stamps(files: &[PathBuf]) -> Vec<Option<Stamp>> {
    files.iter().map(|f| stamp(f)).collect()
}

/// What identifies a file's version: a rename-over gives a new inode, an
/// in-place write a new mtime or size.
#[derive(Debug, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    Some(Stamp {
        inode: meta.ino(),
        len: meta.len(),
        modified: meta.modified().ok(),
    })
}

fn record_expiry(tls: &TlsState) {
    metrics::SERVER_CERT_NOT_AFTER.store(tls.server_not_after, Ordering::Relaxed);
    metrics::CA_NOT_AFTER.store(tls.ca_not_after, Ordering::Relaxed);
    warn_expiry(tls);
}

fn warn_expiry(tls: &TlsState) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let limit = EXPIRY_WARNING.as_secs() as i64;
    for (what, not_after) in [
        ("server certificate", tls.server_not_after),
        ("CA certificate", tls.ca_not_after),
    ] {
        let left = not_after - now;
        if left < limit {
            tracing::warn!(
                days_left = left / 86400,
                "the {what} expires soon; rotate it (dockgate pki server / rotate-ca)"
            );
        }
    }
}
