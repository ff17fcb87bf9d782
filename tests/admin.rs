//! The admin listener: metrics after real docker CLI sessions as two roles, health that follows
//! the daemon, status with the sessions open now, and `dockgate status`.

use std::time::{Duration, Instant};

use crate::support::dockerd::docker_socket;
use crate::support::gateway::{dockgate, Gateway};
use crate::support::image::test_image;
use crate::support::lifecycle::Session;
use crate::support::{args, run, unique, Janitor, TempDir};

/// The value of one sample line (`name{labels} value`) in a Prometheus text scrape.
fn sample(metrics: &str, line_start: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_count_requests_by_operation_role_and_decision() {
    let gw = Gateway::start();
    let ci = gw.client(&unique("metrics-ci"), "ci");
    for _ in 0..2 {
        run(&mut args(gw.docker(gw.admin()), ["ps"])).assert_success();
    }
    run(&mut args(gw.docker(&ci), ["ps"])).assert_success();
    let refused = run(&mut args(gw.docker(&ci), ["swarm", "init"]));
    assert!(!refused.status.success(), "ci initialised a swarm");

    let (status, metrics) = gw.admin_get("/metrics");
    assert_eq!(status, 200, "{metrics}");
    let admin_lists = sample(
        &metrics,
        r#"dockgate_requests_total{operation="ContainerList",role="admin",decision="allow"}"#,
    );
    assert_eq!(admin_lists, Some(2.0), "{metrics}");
    let ci_lists = sample(
        &metrics,
        r#"dockgate_requests_total{operation="ContainerList",role="ci",decision="allow"}"#,
    );
    assert_eq!(ci_lists, Some(1.0), "{metrics}");
    let ci_denied = sample(
        &metrics,
        r#"dockgate_requests_total{operation="SwarmInit",role="ci",decision="deny"}"#,
    );
    assert_eq!(ci_denied, Some(1.0), "{metrics}");
    assert!(
        sample(
            &metrics,
            "dockgate_certificate_expiry_seconds{certificate=\"server\"}"
        )
        .is_some_and(|s| s > 0.0),
        "{metrics}"
    );
    assert!(metrics.contains("dockgate_request_duration_seconds_bucket"));
}

/// `/healthz` is 503 with the reason while the daemon's socket is missing, and 200 once it
/// answers again, without a restart.
#[test]
fn healthz_follows_the_daemon() {
    let dir = TempDir::new("health-sock");
    let socket = dir.join("docker.sock");
    let gw = Gateway::start_with_socket(&socket);
    let (status, body) = gw.admin_get("/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cannot reach the Docker daemon"), "{body}");

    std::os::unix::fs::symlink(docker_socket(), &socket).expect("link the daemon socket");
    let (status, body) = gw.admin_get("/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));
}

/// `/status` lists an open `docker run -i` session with who holds it, and `dockgate status`
/// prints it; the session leaves the list when it ends.
#[test]
fn status_lists_open_sessions_by_identity() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let ci = gw.client(&unique("status-ci"), "ci");
    let session = Session::start(
        &gw,
        &ci,
        &janitor.container(&unique("status")),
        test_image(),
    );

    let (status, body) = gw.admin_get("/status");
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).expect("JSON status");
    assert_eq!(value["version"], env!("CARGO_PKG_VERSION"));
    let sessions = value["sessions"].as_array().expect("a session list");
    let mine = sessions
        .iter()
        .find(|s| s["cn"] == ci.name.as_str())
        .unwrap_or_else(|| panic!("ci's session is not listed: {body}"));
    assert_eq!(mine["role"], "ci");
    assert_eq!(mine["operation"], "ContainerAttach");

    let printed = run(&mut args(
        dockgate(),
        ["status", "--admin", &gw.admin_addr().to_string()],
    ));
    printed.assert_success();
    assert!(
        printed.stdout_str().contains(&ci.name),
        "{}",
        printed.stdout_str()
    );

    session.finish(Duration::from_secs(15));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = gw.admin_get("/status");
        assert_eq!(status, 200, "{body}");
        if !body.contains(&ci.name) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ended session is still listed: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
