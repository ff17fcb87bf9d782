//! Shared end-to-end test support: a real dockerd, a registry-free test image, the real
//! `docker` CLI and the real `dockgate` binary behind mutual TLS.
//!
pub mod corpus;
pub mod dockerd;
pub mod fake_daemon;
pub mod gateway;
pub mod image;
pub mod lifecycle;
pub mod load;
pub mod policy;
pub mod raw;
pub mod registry;

use dockerd::docker_host;

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use std::{env, fs, thread};

/// Default ceiling for one CLI invocation; a hang is a failure, never a stuck test run.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(180);

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = env::temp_dir().join(format!(
            "dockgate-{tag}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.0.join(rel)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A Docker object name unique to this process and call, e.g. `dgt-logs-4242-7`.
pub fn unique(prefix: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!(
        "dgt-{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `docker` CLI binary: `DOCKGATE_TEST_DOCKER_CLI` or `docker` from `PATH`.
pub fn docker_cli() -> &'static str {
    static CLI: OnceLock<String> = OnceLock::new();
    CLI.get_or_init(|| {
        env::var("DOCKGATE_TEST_DOCKER_CLI")
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "docker".to_owned())
    })
}

/// A `docker` CLI command with every inherited Docker client setting removed and `DOCKER_CONFIG`
/// pointed at `config_dir`, so no user context, config or credential leaks into a test.
pub fn docker_command(config_dir: &Path) -> Command {
    let mut cmd = Command::new(docker_cli());
    for var in [
        "DOCKER_HOST",
        "DOCKER_CONTEXT",
        "DOCKER_TLS_VERIFY",
        "DOCKER_CERT_PATH",
        "DOCKER_TLS",
        "DOCKER_API_VERSION",
        "DOCKER_BUILDKIT",
        "DOCKER_DEFAULT_PLATFORM",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("DOCKER_CONFIG", config_dir)
        .env("DOCKER_CLI_HINTS", "false");
    cmd
}

/// The `docker` CLI talking straight to the test daemon (no gateway): for setup, cleanup and
/// checking outcomes independently of dockgate.
pub fn docker_direct() -> Command {
    // Shared by every test process and never written to by the commands the tests run.
    static CONFIG: OnceLock<PathBuf> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let dir = env::temp_dir().join("dockgate-test-cli-config");
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        dir
    });
    let mut cmd = docker_command(config);
    cmd.env("DOCKER_HOST", docker_host());
    cmd
}

/// Outcome of a finished command.
#[derive(Debug)]
pub struct Output {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics with the full output unless the command exited 0.
    pub fn assert_success(&self) -> &Output {
        assert!(
            self.status.success(),
            "`{}` failed with {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.what,
            self.status,
            tail(&self.stdout_str(), 4000),
            tail(&self.stderr_str(), 4000)
        );
        self
    }
}

/// Human-readable form of a command line, for failure messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        s.push(' ');
        s.push_str(&arg.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, feeding `stdin` (then EOF) if given; stdin is /dev/null otherwise.
/// Kills it and panics if it outlives `timeout`.
pub fn run_with(cmd: &mut Command, stdin: Option<Vec<u8>>, timeout: Duration) -> Output {
    let what = describe(cmd);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
    let writer = match (stdin, child.stdin.take()) {
        (Some(data), Some(mut pipe)) => Some(thread::spawn(move || {
            // A broken pipe is reported through the command's own outcome.
            let _ = pipe.write_all(&data);
        })),
        _ => None,
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let err = stderr.join().unwrap_or_default();
                panic!(
                    "`{what}` did not finish within {timeout:?}\n--- stderr ---\n{}",
                    tail(&String::from_utf8_lossy(&err), 4000)
                );
            }
            Err(e) => panic!("waiting for `{what}`: {e}"),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Output {
        what,
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        buf
    })
}

/// Runs `cmd` with no stdin and the default timeout.
pub fn run(cmd: &mut Command) -> Output {
    run_with(cmd, None, CLI_TIMEOUT)
}

/// Runs `cmd`, requires exit 0 and returns stdout as text.
pub fn ok(cmd: &mut Command) -> String {
    run(cmd).assert_success().stdout_str()
}

/// Builds an argument list onto a command: `args(docker_direct(), ["rm", "-f", name])`.
pub fn args<I, S>(mut cmd: Command, list: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    cmd.args(list);
    cmd
}

/// The last `max` bytes of `s` (on a char boundary), for readable failure messages.
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Hex SHA-256 of `data`, as `sha256sum` prints it.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `len` bytes from /dev/urandom.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf
}

/// Removes, through the daemon directly, every Docker object registered with it when dropped,
/// so a failing test leaves nothing behind.
#[derive(Default)]
pub struct Janitor {
    containers: Vec<String>,
    images: Vec<String>,
    volumes: Vec<String>,
    networks: Vec<String>,
}

impl Janitor {
    pub fn new() -> Janitor {
        Janitor::default()
    }

    pub fn container(&mut self, name: &str) -> String {
        self.containers.push(name.to_owned());
        name.to_owned()
    }

    pub fn image(&mut self, name: &str) -> String {
        self.images.push(name.to_owned());
        name.to_owned()
    }

    pub fn volume(&mut self, name: &str) -> String {
        self.volumes.push(name.to_owned());
        name.to_owned()
    }

    pub fn network(&mut self, name: &str) -> String {
        self.networks.push(name.to_owned());
        name.to_owned()
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        // Containers first: they pin images, volumes and networks.
        let groups: [(&[&str], &Vec<String>); 4] = [
            (&["rm", "-f", "-v"], &self.containers),
            (&["rmi", "-f"], &self.images),
            (&["volume", "rm", "-f"], &self.volumes),
            (&["network", "rm"], &self.networks),
        ];
        for (verb, names) in groups {
            if names.is_empty() {
                continue;
            }
            // Best effort and never panicking: this may run while a test is already unwinding.
            let _ = docker_direct()
                .args(verb)
                .args(names)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}
