//! systemd's service notifications (`sd_notify`), for `Type=notify-reload`.
//!
//! systemd learns that the gateway listens (`READY=1`), that a reload runs
//! (`RELOADING=1` with `MONOTONIC_USEC`, which systemd ≥ 253 requires) and
//! ended (`READY=1`, with a `STATUS=` line saying whether the new material
//! was taken or refused), that it drains (`STOPPING=1`), and that it is
//! alive (`WATCHDOG=1` at half of `WatchdogSec`). Without `NOTIFY_SOCKET`
//! (not started by systemd) nothing is sent.

use sd_notify::NotifyState;

/// The listener is up: `systemctl start` returns.
pub fn ready() {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
}

/// A reload starts.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading"),
        ]),
        Err(e) => tracing::warn!(error = %e, "cannot read CLOCK_MONOTONIC for systemd"),
    }
}

/// A reload ended; a refused one keeps the previous state serving.
pub fn reloaded(result: &Result<(), String>) {
    let status = match result {
        Ok(()) => "serving; reloaded".to_owned(),
        Err(e) => format!("serving the previous state; reload refused: {e}"),
    };
    // One line: STATUS= ends at the newline.
    let status = status.replace('\n', " ");
    send(&[NotifyState::Ready, NotifyState::Status(&status)]);
}

/// Draining on SIGTERM or SIGINT.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("draining")]);
}

/// Pets systemd's watchdog at half of `WatchdogSec`, when it is set.
pub async fn watchdog() {
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        return;
    };
    let mut tick = tokio::time::interval(timeout / 2);
    loop {
        tick.tick().await;
        send(&[NotifyState::Watchdog]);
    }
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}
