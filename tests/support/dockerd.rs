//! The Docker daemon the tests talk to: `DOCKGATE_TEST_DOCKER_HOST`, or a private dockerd under
//! a fixed directory that every test process shares and that outlives them.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use super::tail;

/// Fixed so that every test process (one per suite under nextest) reuses one daemon.
pub(crate) const DAEMON_DIR: &str = "/tmp/dockgate-test-dockerd";
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Used only when dockerd cannot set up its iptables rules with the defaults.
const NO_IPTABLES: &[&str] = &["--iptables=false", "--ip-masq=false"];

/// The `DOCKER_HOST` value for the test daemon, starting the private one if needed.
pub fn docker_host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| match std::env::var("DOCKGATE_TEST_DOCKER_HOST") {
        Ok(host) if !host.is_empty() => host,
        _ => private_daemon(),
    })
}

/// The daemon's unix socket path, which the gateway forwards to.
pub fn docker_socket() -> &'static Path {
    let host = docker_host();
    match host.strip_prefix("unix://") {
        Some(path) => Path::new(path),
        None => panic!(
            "DOCKGATE_TEST_DOCKER_HOST={host} is not a unix:// socket; dockgate forwards to a \
             unix socket, so the end-to-end tests need one"
        ),
    }
}

/// Takes an exclusive lock on `DAEMON_DIR/name`, held until the returned file is dropped.
// `File::lock` is newer than the crate's declared MSRV; the test suite runs on the pinned
// toolchain (1.95), and the library itself does not use it.
pub(crate) fn lock(name: &str) -> File {
    let dir = Path::new(DAEMON_DIR);
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {DAEMON_DIR}: {e}"));
    let path = dir.join(name);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
    file
}

fn private_daemon() -> String {
    let dir = Path::new(DAEMON_DIR);
    let sock = dir.join("docker.sock");
    let host = format!("unix://{}", sock.display());
    if ping(&sock) {
        return host;
    }
    let _guard = lock("start.lock");
    // Another process may have started it while this one waited for the lock.
    if ping(&sock) {
        return host;
    }
    let dockerd = dockerd_binary();
    let log = dir.join("dockerd.log");
    let pidfile = dir.join("docker.pid");
    if let Some(pid) = live_dockerd(&pidfile) {
        // Still starting or shutting down: give it the same chance a fresh start gets.
        if wait_for_ping(&sock, None).is_ok() {
            return host;
        }
        panic!(
            "dockerd (pid {pid}) from {} does not answer on {}; stop it and retry\n--- {} ---\n{}",
            pidfile.display(),
            sock.display(),
            log.display(),
            log_tail(&log)
        );
    }
    let _ = fs::remove_file(&pidfile);

    let mut outcome = start(&dockerd, dir, &sock, &[]);
    if outcome.is_err() && log_tail(&log).contains("reservePools") {
        // dockerd 20.10 panics at start on a network a crash left half deleted (libnetwork
        // `reservePools`). The data root is this suite's own: forget its networks.
        let _ = fs::remove_file(dir.join("data/network/files/local-kv.db"));
        outcome = start(&dockerd, dir, &sock, &[]);
    }
    if outcome.is_err() && log_tail(&log).contains("iptables") {
        outcome = start(&dockerd, dir, &sock, NO_IPTABLES);
    }
    if let Err(why) = outcome {
        panic!(
            "the private dockerd did not come up on {}: {why}\n--- tail of {} ---\n{}",
            sock.display(),
            log.display(),
            log_tail(&log)
        );
    }
    host
}

/// Starts dockerd detached in its own process group, logging to `dir/dockerd.log`, and waits
/// until it answers `/_ping`.
fn start(dockerd: &Path, dir: &Path, sock: &Path, extra: &[&str]) -> Result<(), String> {
    let log_path = dir.join("dockerd.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let mut log_err = log
        .try_clone()
        .map_err(|e| format!("cannot clone log handle: {e}"))?;
    let _ = writeln!(
        log_err,
        "=== dockgate tests: starting dockerd {extra:?} ==="
    );
    let mut child = Command::new(dockerd)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(extra)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", dockerd.display()))?;
    // The child handle is dropped without waiting: the daemon must outlive this test process.
    wait_for_ping(sock, Some(&mut child))
}

fn wait_for_ping(sock: &Path, mut child: Option<&mut std::process::Child>) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    while Instant::now() < deadline {
        if ping(sock) {
            return Ok(());
        }
        if let Some(c) = child.as_deref_mut() {
            if let Ok(Some(status)) = c.try_wait() {
                return Err(format!("dockerd exited with {status}"));
            }
        }
        thread::sleep(Duration::from_millis(250));
    }
    Err(format!("no answer to /_ping within {START_TIMEOUT:?}"))
}

/// `GET /_ping` over the unix socket; true on `200 OK`.
fn ping(sock: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(sock) else {
        return false;
    };
    let timeout = Some(Duration::from_secs(5));
    if stream.set_read_timeout(timeout).is_err() || stream.set_write_timeout(timeout).is_err() {
        return false;
    }
    if stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = Vec::new();
    if stream.read_to_end(&mut response).is_err() {
        return false;
    }
    let text = String::from_utf8_lossy(&response);
    text.starts_with("HTTP/1.0 200") || text.starts_with("HTTP/1.1 200")
}

/// The pid in `pidfile` if that process is a running dockerd.
fn live_dockerd(pidfile: &Path) -> Option<u32> {
    let pid: u32 = fs::read_to_string(pidfile).ok()?.trim().parse().ok()?;
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    (comm.trim() == "dockerd").then_some(pid)
}

fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    tail(&text, 6000).to_owned()
}

/// Finds dockerd, installing Debian's docker.io when running as root.
fn dockerd_binary() -> PathBuf {
    if let Some(found) = find_program("dockerd") {
        return found;
    }
    if !is_root() {
        panic!(
            "dockerd is not installed: install docker.io or run as root, or set \
             DOCKGATE_TEST_DOCKER_HOST to a running daemon's unix:// socket"
        );
    }
    apt_install("docker.io");
    find_program("dockerd")
        .unwrap_or_else(|| panic!("docker.io was installed but no dockerd found"))
}

/// Looks `name` up in `PATH` and the sbin directories a non-login root shell may lack.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

pub(crate) fn is_root() -> bool {
    // Effective uid is the second field of the Uid line.
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// `apt-get update` then a non-interactive install of `package`; serialized across processes.
pub(crate) fn apt_install(package: &str) {
    let _guard = lock("apt.lock");
    for args in [&["update"][..], &["install", "-y", package][..]] {
        let out = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run apt-get: {e}"));
        assert!(
            out.status.success(),
            "apt-get {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
