//! Stopping the service drains it: SIGTERM stops new connections, lets the sessions under
//! way finish, and exits 0. Draining is not cutting: only revocation cuts at once.

use std::time::Duration;

use crate::support::gateway::Gateway;
use crate::support::image::test_image;
use crate::support::lifecycle::{docker_version, Session};
use crate::support::{unique, Janitor};

/// Generous bounds for things that happen promptly; a hang fails, nothing is timed.
const ECHO: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(15);

#[test]
fn sigterm_lets_an_open_session_finish_and_refuses_new_connections() {
    let mut gw = Gateway::start();
    let mut janitor = Janitor::new();
    let admin = gw.admin().clone();
    let mut session = Session::start(
        &gw,
        &admin,
        &janitor.container(&unique("drain")),
        test_image(),
    );

    gw.signal("TERM");
    gw.wait_for_log_line(SETTLE, |l| l.contains("draining"))
        .unwrap_or_else(|| panic!("no drain logged after SIGTERM:\n{}", gw.log()));
    let refused = docker_version(&gw, &admin);
    assert!(
        !refused.status.success(),
        "a new connection was served while draining"
    );

    session.echo(ECHO).unwrap_or_else(|e| {
        panic!(
            "the open session did not survive SIGTERM: {e}\n{}\n--- log ---\n{}",
            session.stderr(),
            gw.log()
        )
    });
    assert!(gw.is_running(), "the gateway exited with a session open");

    session.finish(SETTLE);
    let status = gw
        .wait_exit(SETTLE)
        .unwrap_or_else(|| panic!("the gateway did not exit once drained:\n{}", gw.log()));
    assert!(status.success(), "the gateway exited with {status}");
}

/// A second signal does not wait for the grace period.
#[test]
fn a_second_signal_stops_at_once() {
    let mut gw = Gateway::start_with_config("shutdown_grace = 600\n");
    let mut janitor = Janitor::new();
    let admin = gw.admin().clone();
    let _session = Session::start(
        &gw,
        &admin,
        &janitor.container(&unique("drain-twice")),
        test_image(),
    );
    gw.signal("TERM");
    gw.wait_for_log_line(SETTLE, |l| l.contains("draining"))
        .unwrap_or_else(|| panic!("no drain logged after SIGTERM:\n{}", gw.log()));
    gw.signal("INT");
    let status = gw
        .wait_exit(SETTLE)
        .unwrap_or_else(|| panic!("a second signal did not stop the gateway:\n{}", gw.log()));
    assert!(status.success(), "the gateway exited with {status}");
}
