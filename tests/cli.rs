//! The real `docker` CLI through dockgate as `admin` (full access), against the real daemon.
//! Every test checks the outcome, not just the exit status; setup checks and cleanup go to the
//! daemon directly so they do not depend on the gateway.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::gateway::Gateway;
use crate::support::image::test_image;
use crate::support::{
    args, docker_direct, ok, random_bytes, run, run_with, sha256_hex, unique, Janitor, CLI_TIMEOUT,
};

/// `docker ARGS…` through the gateway as its admin client.
fn docker(gw: &Gateway, list: &[&str]) -> Command {
    args(gw.docker(gw.admin()), list)
}

/// The first 64-hex-digit token of `text` (what `sha256sum` prints first).
fn first_sha256(text: &str) -> Option<&str> {
    text.split_whitespace()
        .find(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// Runs a detached `sleep 300` container through the gateway and returns its name.
fn start_sleeper(gw: &Gateway, janitor: &mut Janitor, prefix: &str) -> String {
    let name = janitor.container(&unique(prefix));
    ok(&mut docker(
        gw,
        &["run", "-d", "--name", &name, test_image(), "sleep", "300"],
    ));
    name
}

/// A long-running CLI command whose stdout lines are observed as they arrive.
struct LineStream {
    child: Child,
    lines: Receiver<(Instant, String)>,
}

impl LineStream {
    fn spawn(mut cmd: Command) -> LineStream {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start docker CLI");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        LineStream { child, lines }
    }

    /// The next line, or None once stdout has closed; panics after `timeout`.
    fn next(&self, timeout: Duration) -> Option<(Instant, String)> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Disconnected) => None,
            Err(RecvTimeoutError::Timeout) => panic!("no output line within {timeout:?}"),
        }
    }

    /// Waits for the command to exit by itself.
    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll docker CLI") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the command did not exit within {timeout:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for LineStream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn version_negotiation_and_ping() {
    let gw = Gateway::start();
    let daemon_api = ok(&mut args(
        docker_direct(),
        ["version", "--format", "{{.Server.APIVersion}}"],
    ));
    let daemon_api = daemon_api.trim();
    assert!(daemon_api.starts_with("1."), "daemon API {daemon_api:?}");

    // The v28 client negotiates down to what the daemon behind the gateway speaks.
    let versions = ok(&mut docker(
        &gw,
        &[
            "version",
            "--format",
            "{{.Server.APIVersion}} {{.Client.APIVersion}}",
        ],
    ));
    assert_eq!(versions.trim(), format!("{daemon_api} {daemon_api}"));

    let mut conn = gw.raw(gw.admin()).await;
    conn.send(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        .await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 200, "HEAD /_ping: {head:?}");
    assert_eq!(head.header("Api-Version"), Some(daemon_api), "{head:?}");

    conn.send(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        .await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 200, "GET /_ping: {head:?}");
    assert_eq!(head.header("Api-Version"), Some(daemon_api), "{head:?}");
    assert_eq!(conn.read_body(&head, "GET").await, b"OK");
}

#[test]
fn run_keeps_stdout_and_stderr_apart() {
    let gw = Gateway::start();
    let out = run(&mut docker(
        &gw,
        &[
            "run",
            "--rm",
            test_image(),
            "sh",
            "-c",
            "echo to-out; echo to-err >&2; echo more-out",
        ],
    ));
    out.assert_success();
    assert_eq!(out.stdout_str(), "to-out\nmore-out\n");
    let err = out.stderr_str();
    assert!(err.contains("to-err\n"), "stderr: {err:?}");
    assert!(
        !err.contains("to-out"),
        "stdout leaked into stderr: {err:?}"
    );
}

#[test]
fn run_propagates_the_exit_code() {
    let gw = Gateway::start();
    let out = run(&mut docker(
        &gw,
        &["run", "--rm", test_image(), "sh", "-c", "exit 3"],
    ));
    assert_eq!(out.code(), Some(3), "{}", out.stderr_str());
}

#[test]
fn run_interactive_reads_piped_stdin_until_eof() {
    let gw = Gateway::start();
    let out = run_with(
        &mut docker(&gw, &["run", "-i", "--rm", test_image(), "cat"]),
        Some(b"data\n".to_vec()),
        Duration::from_secs(60),
    );
    out.assert_success();
    assert_eq!(out.stdout_str(), "data\n");
}

#[test]
fn run_with_a_tty() {
    let gw = Gateway::start();
    let out = ok(&mut docker(
        &gw,
        &[
            "run",
            "-t",
            "--rm",
            test_image(),
            "sh",
            "-c",
            "test -t 0 && test -t 1 && echo tty",
        ],
    ));
    // The pty turns "\n" into "\r\n".
    assert_eq!(out, "tty\r\n");
}

#[test]
fn run_streams_24_mib_of_stdin() {
    let gw = Gateway::start();
    let data = random_bytes(24 << 20);
    let expected = sha256_hex(&data);
    let out = run_with(
        &mut docker(&gw, &["run", "-i", "--rm", test_image(), "sha256sum"]),
        Some(data),
        CLI_TIMEOUT,
    );
    out.assert_success();
    assert_eq!(first_sha256(&out.stdout_str()), Some(expected.as_str()));
}

#[test]
fn run_streams_24_mib_of_stdout() {
    let gw = Gateway::start();
    // Random bytes (including values that look like stream-frame headers), hashed in the
    // container onto stderr, then sent in full on stdout.
    let script =
        "dd if=/dev/urandom bs=1048576 count=24 2>/dev/null | tee /tmp/x | sha256sum >&2; \
                  cat /tmp/x";
    let out = run(&mut docker(
        &gw,
        &["run", "--rm", test_image(), "sh", "-c", script],
    ));
    out.assert_success();
    assert_eq!(out.stdout.len(), 24 << 20, "stdout length");
    let stderr = out.stderr_str();
    let in_container = first_sha256(&stderr)
        .unwrap_or_else(|| panic!("no sha256 on stderr: {stderr:?}"))
        .to_owned();
    assert_eq!(sha256_hex(&out.stdout), in_container);
}

#[test]
fn exec_with_stdin_and_exit_codes() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = start_sleeper(&gw, &mut janitor, "exec");

    let out = run_with(
        &mut docker(&gw, &["exec", "-i", &name, "cat"]),
        Some(b"hello exec\n".to_vec()),
        Duration::from_secs(60),
    );
    out.assert_success();
    assert_eq!(out.stdout_str(), "hello exec\n");

    let out = run(&mut docker(&gw, &["exec", &name, "sh", "-c", "exit 7"]));
    assert_eq!(out.code(), Some(7), "{}", out.stderr_str());

    let out = run(&mut docker(
        &gw,
        &[
            "exec",
            &name,
            "sh",
            "-c",
            "echo exec-out; echo exec-err >&2",
        ],
    ));
    out.assert_success();
    assert_eq!(out.stdout_str(), "exec-out\n");
    assert!(
        out.stderr_str().contains("exec-err\n"),
        "{}",
        out.stderr_str()
    );
}

#[test]
fn cp_both_ways() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = start_sleeper(&gw, &mut janitor, "cp");

    let data = random_bytes(3 << 20);
    let local_in = gw.scratch().join("upload.bin");
    std::fs::write(&local_in, &data).expect("write upload file");
    let target = format!("{name}:/tmp/upload.bin");
    ok(&mut docker(
        &gw,
        &["cp", local_in.to_str().unwrap(), &target],
    ));
    let hashed = ok(&mut args(
        docker_direct(),
        ["exec", &name, "sha256sum", "/tmp/upload.bin"],
    ));
    assert_eq!(first_sha256(&hashed), Some(sha256_hex(&data).as_str()));

    ok(&mut args(
        docker_direct(),
        [
            "exec",
            &name,
            "sh",
            "-c",
            "mkdir -p /tmp/out && printf from-container > /tmp/out/a.txt && seq 1 50000 > /tmp/out/b.txt",
        ],
    ));
    let local_out = gw.scratch().join("download");
    let source = format!("{name}:/tmp/out");
    ok(&mut docker(
        &gw,
        &["cp", &source, local_out.to_str().unwrap()],
    ));
    let a = std::fs::read_to_string(local_out.join("a.txt")).expect("a.txt copied out");
    assert_eq!(a, "from-container");
    let b = std::fs::read_to_string(local_out.join("b.txt")).expect("b.txt copied out");
    let expected: String = (1..=50000).map(|i| format!("{i}\n")).collect();
    assert!(b == expected, "b.txt differs ({} bytes)", b.len());
}

#[test]
fn logs_follow_streams_lines_as_they_are_written() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = janitor.container(&unique("logs"));
    ok(&mut docker(
        &gw,
        &[
            "run",
            "-d",
            "--name",
            &name,
            test_image(),
            "sh",
            "-c",
            "for i in 1 2 3 4 5; do echo line-$i; sleep 1; done",
        ],
    ));
    let mut follow = LineStream::spawn(docker(&gw, &["logs", "-f", &name]));
    let mut seen = Vec::new();
    while let Some(line) = follow.next(Duration::from_secs(30)) {
        seen.push(line);
    }
    let text: Vec<&str> = seen.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(text, ["line-1", "line-2", "line-3", "line-4", "line-5"]);
    // Streamed as written, not delivered in one piece when the container ended.
    let spread = seen[4].0.duration_since(seen[0].0);
    assert!(
        spread >= Duration::from_secs(2),
        "all lines arrived within {spread:?}"
    );
    // `logs -f` ends on its own when the container exits.
    assert!(follow.wait(Duration::from_secs(30)).success());
}

#[test]
fn events_in_a_time_window() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = janitor.container(&unique("events"));
    let since = (unix_now() - 1).to_string();
    ok(&mut docker(
        &gw,
        &["create", "--name", &name, test_image(), "true"],
    ));
    ok(&mut docker(&gw, &["start", &name]));
    assert_eq!(ok(&mut docker(&gw, &["wait", &name])).trim(), "0");
    let until = (unix_now() + 1).to_string();
    let filter = format!("container={name}");
    let out = ok(&mut docker(
        &gw,
        &[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            &filter,
            "--format",
            "{{.Type}} {{.Action}}",
        ],
    ));
    let actions: Vec<&str> = out.lines().collect();
    for expected in ["container create", "container start", "container die"] {
        assert!(
            actions.contains(&expected),
            "{expected:?} missing from {actions:?}"
        );
    }
}

#[test]
fn events_stream_while_containers_run() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = janitor.container(&unique("evstream"));
    let filter = format!("container={name}");
    // --since makes the create visible even if the subscription lands after it.
    let since = (unix_now() - 1).to_string();
    let events = LineStream::spawn(docker(
        &gw,
        &[
            "events",
            "--since",
            &since,
            "--filter",
            &filter,
            "--format",
            "{{.Action}}",
        ],
    ));
    ok(&mut docker(
        &gw,
        &["run", "--rm", "--name", &name, test_image(), "true"],
    ));
    let mut actions = Vec::new();
    while !actions.iter().any(|a| a == "destroy") {
        let (_, action) = events
            .next(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("events ended early after {actions:?}"));
        actions.push(action);
    }
    let order: Vec<usize> = ["create", "start", "die", "destroy"]
        .iter()
        .map(|want| {
            actions
                .iter()
                .position(|a| a == want)
                .unwrap_or_else(|| panic!("{want} missing from {actions:?}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{actions:?}");
}

#[test]
fn stats_top_and_wait() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = start_sleeper(&gw, &mut janitor, "stats");

    let stats = ok(&mut docker(
        &gw,
        &[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}}|{{.MemUsage}}",
            &name,
        ],
    ));
    let (stat_name, mem) = stats
        .trim()
        .split_once('|')
        .unwrap_or_else(|| panic!("stats: {stats:?}"));
    assert_eq!(stat_name, name);
    assert!(mem.contains("B / "), "memory usage {mem:?}");

    let top = ok(&mut docker(&gw, &["top", &name]));
    assert!(top.lines().count() >= 2, "top: {top:?}");
    assert!(top.contains("sleep 300"), "top: {top:?}");

    let waited = janitor.container(&unique("wait"));
    ok(&mut docker(
        &gw,
        &[
            "run",
            "-d",
            "--name",
            &waited,
            test_image(),
            "sh",
            "-c",
            "sleep 1; exit 5",
        ],
    ));
    assert_eq!(ok(&mut docker(&gw, &["wait", &waited])), "5\n");
}

#[test]
fn classic_build_with_a_multi_megabyte_context() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let tag = janitor.image(&format!("{}:latest", unique("build")));
    let ctx = gw.scratch().join("build-ctx");
    std::fs::create_dir_all(&ctx).expect("create build context");
    let payload = random_bytes(8 << 20);
    std::fs::write(ctx.join("payload.bin"), &payload).expect("write payload");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {}\nCOPY payload.bin /payload.bin\nRUN echo built > /built\n\
             CMD [\"sha256sum\", \"/payload.bin\"]\n",
            test_image()
        ),
    )
    .expect("write Dockerfile");

    let mut build = docker(&gw, &["build", "-t", &tag, ctx.to_str().unwrap()]);
    build.env("DOCKER_BUILDKIT", "0");
    ok(&mut build);

    let out = ok(&mut docker(&gw, &["run", "--rm", &tag]));
    assert_eq!(first_sha256(&out), Some(sha256_hex(&payload).as_str()));
    let built = ok(&mut args(
        docker_direct(),
        ["run", "--rm", &tag, "cat", "/built"],
    ));
    assert_eq!(built, "built\n");
}

#[test]
fn save_then_load_round_trips_an_image() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let tag = janitor.image(&format!("{}:latest", unique("saved")));
    let ctx = gw.scratch().join("save-ctx");
    std::fs::create_dir_all(&ctx).expect("create build context");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {}\nRUN echo {tag} > /marker\n", test_image()),
    )
    .expect("write Dockerfile");
    ok(args(
        docker_direct(),
        ["build", "-t", &tag, ctx.to_str().unwrap()],
    )
    .env("DOCKER_BUILDKIT", "0"));
    let id_of = |tag: &str| {
        ok(&mut args(
            docker_direct(),
            ["image", "inspect", "--format", "{{.Id}}", tag],
        ))
        .trim()
        .to_owned()
    };
    let before = id_of(&tag);

    let archive = gw.scratch().join("image.tar");
    ok(&mut docker(
        &gw,
        &["save", "-o", archive.to_str().unwrap(), &tag],
    ));
    let size = std::fs::metadata(&archive).expect("saved archive").len();
    assert!(size > 1 << 20, "archive is only {size} bytes");

    ok(&mut docker(&gw, &["rmi", &tag]));
    assert!(
        !run(&mut args(docker_direct(), ["image", "inspect", &tag]))
            .status
            .success(),
        "image still present after rmi"
    );

    let loaded = ok(&mut docker(&gw, &["load", "-i", archive.to_str().unwrap()]));
    assert!(loaded.contains(&format!("Loaded image: {tag}")), "{loaded}");
    assert_eq!(id_of(&tag), before);
    let marker = ok(&mut args(
        docker_direct(),
        ["run", "--rm", &tag, "cat", "/marker"],
    ));
    assert_eq!(marker.trim(), tag);
}

#[test]
fn volume_lifecycle() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let vol = janitor.volume(&unique("vol"));
    assert_eq!(
        ok(&mut docker(&gw, &["volume", "create", &vol])).trim(),
        vol
    );

    let mount = format!("{vol}:/data");
    ok(&mut docker(
        &gw,
        &[
            "run",
            "--rm",
            "-v",
            &mount,
            test_image(),
            "sh",
            "-c",
            "echo persisted > /data/f",
        ],
    ));
    let read = ok(&mut docker(
        &gw,
        &["run", "--rm", "-v", &mount, test_image(), "cat", "/data/f"],
    ));
    assert_eq!(read, "persisted\n");

    let inspect = ok(&mut docker(
        &gw,
        &[
            "volume",
            "inspect",
            "--format",
            "{{.Name}} {{.Driver}}",
            &vol,
        ],
    ));
    assert_eq!(inspect.trim(), format!("{vol} local"));
    let filter = format!("name={vol}");
    let listed = ok(&mut docker(
        &gw,
        &["volume", "ls", "-q", "--filter", &filter],
    ));
    assert!(listed.lines().any(|l| l == vol), "{listed}");

    assert_eq!(ok(&mut docker(&gw, &["volume", "rm", &vol])).trim(), vol);
    assert!(
        !run(&mut args(docker_direct(), ["volume", "inspect", &vol]))
            .status
            .success(),
        "volume still present after rm"
    );
}

#[test]
fn network_lifecycle_with_an_attached_container() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let net = janitor.network(&unique("net"));
    let server = janitor.container(&unique("netsrv"));
    ok(&mut docker(&gw, &["network", "create", &net]));
    ok(&mut docker(
        &gw,
        &[
            "run",
            "-d",
            "--name",
            &server,
            "--network",
            &net,
            test_image(),
            "sleep",
            "300",
        ],
    ));

    let members = ok(&mut docker(
        &gw,
        &[
            "network",
            "inspect",
            "--format",
            "{{range .Containers}}{{.Name}} {{end}}",
            &net,
        ],
    ));
    assert!(
        members.split_whitespace().any(|m| m == server),
        "{members:?}"
    );
    // The embedded DNS resolves the attached container by name on the user network.
    ok(&mut docker(
        &gw,
        &[
            "run",
            "--rm",
            "--network",
            &net,
            test_image(),
            "ping",
            "-c",
            "1",
            "-W",
            "5",
            &server,
        ],
    ));

    ok(&mut docker(&gw, &["rm", "-f", &server]));
    ok(&mut docker(&gw, &["network", "rm", &net]));
    assert!(
        !run(&mut args(docker_direct(), ["network", "inspect", &net]))
            .status
            .success(),
        "network still present after rm"
    );
}
