//! Stopping the service, as a signal separate from cutting.
//!
//! Two things end connections, and they must not be confused:
//! - a **cut** (each connection's own token, see [`crate::connection`])
//!   ends a connection at once, because its certificate is no longer
//!   accepted (revoked, CA retired);
//! - a **drain** (this module) means the service is stopping: the listener
//!   stops accepting, idle keep-alive connections close, and requests and
//!   upgraded sessions already under way (attach, exec, builds, `logs -f`)
//!   are let finish within a grace period.
//!
//! Everything a drain waits for runs under [`Drain::spawn`], so
//! [`Drain::drained`] knows when the last connection and session ended.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// The drain signal and the work it waits for. Cloning shares both.
#[derive(Clone, Debug, Default)]
pub struct Drain {
    signal: CancellationToken,
    tasks: TaskTracker,
}

impl Drain {
    pub fn new() -> Drain {
        Drain::default()
    }

    /// Starts draining: no new connections, and every connection finishes
    /// what it is doing, then closes.
    pub fn start(&self) {
        self.signal.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.signal.is_cancelled()
    }

    /// Resolves once draining has started.
    pub fn signaled(&self) -> WaitForCancellationFuture<'_> {
        self.signal.cancelled()
    }

    /// Runs `task` as work a drain waits for (a connection, a session).
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// Waits until all tracked work has ended or `grace` has passed;
    /// returns whether everything ended in time.
    pub async fn drained(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn drained_waits_for_tracked_work_and_honours_the_grace() {
        let drain = Drain::new();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        let watcher = drain.clone();
        drain.spawn(async move {
            watcher.signaled().await;
            let _ = done_rx.await;
        });
        assert!(!drain.is_draining());
        drain.start();
        assert!(drain.is_draining());
        assert!(!drain.drained(Duration::from_millis(50)).await);
        let _ = done_tx.send(());
        assert!(drain.drained(Duration::from_secs(5)).await);
    }
}
