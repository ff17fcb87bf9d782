//! Stopping the service drains it: SIGTERM stops new connections, lets the sessions under
//! way finish, and exits 0. Draining is not cutting: only revocation cuts at once.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::gateway::Gateway;
use crate::support::image::test_image;
use crate::support::lifecycle::{docker_version, Session};
use crate::support::{args, docker_direct, ok, run, unique, Janitor};

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

/// Everything under way when SIGTERM arrives runs to its end: a `docker logs -f` keeps
/// receiving lines, an interactive session keeps echoing, and a build in flight finishes and
/// leaves its image. Then the gateway exits 0.
#[test]
fn sigterm_lets_logs_follow_a_session_and_a_build_finish() {
    let mut gw = Gateway::start();
    let mut janitor = Janitor::new();
    let admin = gw.admin().clone();

    let ticker = janitor.container(&unique("drain-ticker"));
    ok(&mut args(
        docker_direct(),
        [
            "run",
            "-d",
            "--name",
            &ticker,
            test_image(),
            "sh",
            "-c",
            "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done",
        ],
    ));
    let mut logs = args(gw.docker(&admin), ["logs", "-f", &ticker])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker logs -f");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = logs.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    lines
        .recv_timeout(SETTLE)
        .expect("docker logs -f printed nothing");

    let mut session = Session::start(
        &gw,
        &admin,
        &janitor.container(&unique("drain-session")),
        test_image(),
    );

    let context = gw.scratch().join(unique("drain-build"));
    std::fs::create_dir_all(&context).expect("create the build context");
    let marker = unique("drain-step");
    std::fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo {marker} && sleep 3 && echo built > /built\n",
            test_image()
        ),
    )
    .expect("write the Dockerfile");
    let tag = janitor.image(&unique("drain-built"));
    let mut build = args(
        gw.docker(&admin),
        ["build", "-t", &tag, &context.to_string_lossy()],
    );
    build.env("DOCKER_BUILDKIT", "0");
    let step_running = || {
        ok(&mut args(
            docker_direct(),
            ["ps", "--no-trunc", "--format", "{{.Command}}"],
        ))
        .contains(&marker)
    };
    let build = std::thread::spawn(move || run(&mut build));
    // In flight: its RUN step's container is up (the build's request is still open).
    let deadline = std::time::Instant::now() + SETTLE;
    while !step_running() {
        assert!(
            std::time::Instant::now() < deadline,
            "the build's RUN step never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    gw.signal("TERM");
    gw.wait_for_log_line(SETTLE, |l| l.contains("draining"))
        .unwrap_or_else(|| panic!("no drain logged after SIGTERM:\n{}", gw.log()));
    assert!(
        !docker_version(&gw, &admin).status.success(),
        "a new connection was served while draining"
    );

    // Lines written after the signal still arrive.
    while lines.try_recv().is_ok() {}
    lines
        .recv_timeout(SETTLE)
        .expect("docker logs -f stopped receiving after SIGTERM");
    session
        .echo(ECHO)
        .unwrap_or_else(|e| panic!("the session did not survive SIGTERM: {e}"));
    let built = build.join().expect("the build thread");
    built.assert_success();
    assert!(
        run(&mut args(docker_direct(), ["image", "inspect", &tag]))
            .status
            .success(),
        "the build in flight left no image"
    );

    // The rest ends, and so does the gateway.
    session.finish(SETTLE);
    ok(&mut args(docker_direct(), ["rm", "-f", &ticker]));
    let _ = logs.wait();
    let status = gw
        .wait_exit(SETTLE)
        .unwrap_or_else(|| panic!("the gateway did not exit once drained:\n{}", gw.log()));
    assert!(status.success(), "the gateway exited with {status}");
}
