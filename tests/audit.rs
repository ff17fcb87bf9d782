//! The audit log cannot vanish: a sink that cannot be written refuses requests (or, when
//! the operator allows it, serves them with the loss logged), and SIGUSR1 reopens the file
//! for logrotate.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::gateway::Gateway;
use crate::support::{ok, run, TempDir};

const WAIT: Duration = Duration::from_secs(20);

fn audit_error_logged(gw: &Gateway) -> bool {
    gw.wait_for_log_line(WAIT, |l| {
        l.contains("ERROR") && l.contains("audit log write failed")
    })
    .is_some()
}

/// Waits until the audit file holds a line naming `path`; returns the file.
fn wait_for_audit_line(file: &Path, path: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = fs::read_to_string(file).unwrap_or_default();
        if text.lines().any(|l| l.contains(path)) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no audit line for {path} in {file:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_audit_log_that_cannot_be_written_refuses_requests_with_503() {
    let gw = Gateway::start_with_config("[audit]\npath = \"/dev/full\"\n");
    let out = run(gw.docker(gw.admin()).args(["ps", "-q"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        stderr.contains("dockgate: audit log unavailable"),
        "{stderr}"
    );
    assert!(audit_error_logged(&gw), "{}", gw.log());
}

#[tokio::test]
async fn the_refusal_is_a_docker_style_503() {
    let gw = Gateway::start_with_config("[audit]\npath = \"/dev/full\"\n");
    let mut conn = gw.raw(gw.admin()).await;
    conn.send(b"GET /v1.41/containers/json HTTP/1.1\r\nHost: docker\r\n\r\n")
        .await;
    let head = conn.read_head().await;
    let len = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = String::from_utf8_lossy(&conn.read_exact(len).await).into_owned();
    assert_eq!(head.status, 503, "{body}");
    assert_eq!(
        body.trim(),
        r#"{"message":"dockgate: audit log unavailable"}"#
    );
}

#[test]
fn with_on_failure_allow_requests_are_served_and_the_loss_logged() {
    let gw = Gateway::start_with_config("[audit]\npath = \"/dev/full\"\non_failure = \"allow\"\n");
    ok(gw.docker(gw.admin()).args(["ps", "-q"]));
    assert!(audit_error_logged(&gw), "{}", gw.log());
}

#[test]
fn sigusr1_reopens_the_audit_file_after_a_rename() {
    let dir = TempDir::new("audit");
    let file = dir.join("audit.log");
    let gw = Gateway::start_with_config(&format!("[audit]\npath = {:?}\n", file));
    ok(gw.docker(gw.admin()).args(["ps", "-q"]));
    wait_for_audit_line(&file, "/containers/json");
    let rotated = dir.join("audit.log.1");
    fs::rename(&file, &rotated).expect("rotate the audit log");
    gw.signal("USR1");
    assert!(
        gw.wait_for_log_line(WAIT, |l| l.contains("audit log reopened"))
            .is_some(),
        "{}",
        gw.log()
    );
    ok(gw.docker(gw.admin()).args(["images", "-q"]));
    let new = wait_for_audit_line(&file, "/images/json");
    assert!(!new.contains("/containers/json"), "{new}");
    let old = fs::read_to_string(&rotated).expect("read the rotated log");
    assert!(!old.contains("/images/json"), "{old}");
}
