//! A running `dockgate serve` with its own throw-away PKI, in front of the test daemon.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::dockerd::docker_socket;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use super::raw::{self, RawConn};
use super::{docker_command, ok, tail, TempDir};

const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The `dockgate` binary under test, without the `DOCKGATE_*` settings of the
/// environment the tests run in.
pub fn dockgate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_dockgate"));
    for var in ["DOCKGATE_CONFIG", "DOCKGATE_CERTS", "DOCKGATE_LISTEN"] {
        cmd.env_remove(var);
    }
    cmd
}

/// A client identity in the `DOCKER_CERT_PATH` layout: `ca.pem`, `cert.pem`, `key.pem`.
#[derive(Debug, Clone)]
pub struct ClientCerts {
    pub name: String,
    pub role: String,
    pub dir: PathBuf,
}

impl ClientCerts {
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
}

pub struct Gateway {
    dir: TempDir,
    child: Child,
    addr: SocketAddr,
    /// The admin listener (plain HTTP: /metrics, /healthz, /status).
    admin_addr: SocketAddr,
    admin: ClientCerts,
}

impl Gateway {
    /// Starts a gateway with a fresh CA, server certificate and an `admin` client.
    pub fn start() -> Gateway {
        Gateway::launch(None, docker_socket(), &[])
    }

    /// Like [`Gateway::start`], passing `config` (TOML) through `--config`.
    pub fn start_with_config(config: &str) -> Gateway {
        Gateway::launch(Some(config), docker_socket(), &[])
    }

    /// Like [`Gateway::start_with_config`], with extra environment variables
    /// (e.g. `NOTIFY_SOCKET`). The config file is `scratch()/dockgate.toml`.
    pub fn start_with_config_and_env(config: &str, env: &[(&str, &OsStr)]) -> Gateway {
        Gateway::launch(Some(config), docker_socket(), env)
    }

    /// Like [`Gateway::start`], forwarding to `socket` instead of the test daemon.
    pub fn start_with_socket(socket: &Path) -> Gateway {
        Gateway::launch(None, socket, &[])
    }

    fn launch(config: Option<&str>, socket: &Path, env: &[(&str, &OsStr)]) -> Gateway {
        let dir = TempDir::new("gw");
        let certs = dir.join("certs");
        fs::create_dir_all(dir.join("docker-config")).expect("create docker-config dir");
        ok(dockgate().args(["pki", "init", "--dir"]).arg(&certs));
        ok(dockgate()
            .args(["pki", "server", "--dir"])
            .arg(&certs)
            .args(["--san", "127.0.0.1", "--san", "localhost"]));
        let config_path = config.map(|text| {
            let path = dir.join("dockgate.toml");
            fs::write(&path, text).expect("write gateway config");
            path
        });
        let admin = issue_client(&certs, &dir.join("clients"), "admin", "admin");

        // A port picked by the kernel can be taken again before the gateway binds it: retry.
        let log_path = dir.join("gateway.log");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let addr = free_port();
            let admin_addr = free_port();
            let log = File::create(&log_path).expect("create gateway log");
            let mut cmd = dockgate();
            cmd.arg("serve")
                .arg("--certs")
                .arg(&certs)
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--admin-listen")
                .arg(admin_addr.to_string())
                .arg("--docker-socket")
                .arg(socket);
            if let Some(path) = &config_path {
                cmd.arg("--config").arg(path);
            }
            cmd.envs(env.iter().copied());
            let mut child = cmd
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .expect("start dockgate serve");
            match wait_ready(&mut child, addr, &admin) {
                Ok(()) => {
                    return Gateway {
                        dir,
                        child,
                        addr,
                        admin_addr,
                        admin,
                    }
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = strip_ansi(&fs::read_to_string(&log_path).unwrap_or_default());
                    if attempt < 3 && log.to_lowercase().contains("address already in use") {
                        continue;
                    }
                    panic!(
                        "dockgate serve did not become ready: {why}\n--- gateway log ---\n{log}"
                    );
                }
            }
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// GET `path` on the admin listener: (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut tcp = TcpStream::connect(self.admin_addr)
            .unwrap_or_else(|e| panic!("connect to the admin listener: {e}"));
        tcp.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set a read timeout");
        write!(tcp, "GET {path} HTTP/1.0\r\nHost: admin\r\n\r\n").expect("send");
        let mut answer = Vec::new();
        tcp.read_to_end(&mut answer).expect("read the admin answer");
        let text = String::from_utf8_lossy(&answer).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        (status, body.to_owned())
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The gateway's CA and server material: ca.pem, ca-key.pem, server-cert.pem, server-key.pem.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.join("certs")
    }

    /// A scratch directory owned by this fixture, removed with it.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// The `admin` client issued at start.
    pub fn admin(&self) -> &ClientCerts {
        &self.admin
    }

    /// Issues another client certificate from this gateway's CA.
    pub fn client(&self, name: &str, role: &str) -> ClientCerts {
        issue_client(&self.certs_dir(), &self.dir.join("clients"), name, role)
    }

    /// The `docker` CLI pointed at this gateway over mutual TLS as `client`.
    pub fn docker(&self, client: &ClientCerts) -> Command {
        let mut cmd = docker_command(&self.dir.join("docker-config"));
        cmd.env("DOCKER_HOST", format!("tcp://{}", self.addr))
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &client.dir);
        cmd
    }

    /// A raw TLS connection to the gateway presenting `client`'s certificate.
    pub async fn raw(&self, client: &ClientCerts) -> RawConn {
        let config = raw::client_config(&client.ca(), Some((&client.cert(), &client.key())));
        RawConn::connect(self.addr, config)
            .await
            .unwrap_or_else(|e| panic!("TLS connection to the gateway as {}: {e}", client.name))
    }

    /// Everything the gateway wrote to stdout and stderr so far, ANSI escapes removed.
    pub fn log(&self) -> String {
        let bytes = fs::read(self.dir.join("gateway.log")).unwrap_or_default();
        strip_ansi(&String::from_utf8_lossy(&bytes))
    }

    /// Waits up to `timeout` for a log line satisfying `pred`, returning it.
    pub fn wait_for_log_line(
        &self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| pred(l)) {
                return Some(line.to_owned());
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// True while the gateway process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends the gateway process `signal` (e.g. "TERM").
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("kill -{signal}: {e}"));
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// The gateway's exit status, once it exits within `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Ready once a TLS handshake as `client` completes: a bare TCP probe would show up in the
/// gateway's log as a refused handshake.
fn wait_ready(child: &mut Child, addr: SocketAddr, client: &ClientCerts) -> Result<(), String> {
    let config = raw::client_config(&client.ca(), Some((&client.cert(), &client.key())));
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::from("no attempt");
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited with {status}"));
        }
        match handshake(addr, config.clone()) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "no TLS handshake on {addr} within {READY_TIMEOUT:?}: {last}"
    ))
}

fn handshake(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<(), String> {
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_millis(200))
        .map_err(|e| format!("TCP connect: {e}"))?;
    let timeout = Some(Duration::from_secs(5));
    tcp.set_read_timeout(timeout)
        .and_then(|()| tcp.set_write_timeout(timeout))
        .map_err(|e| format!("socket timeouts: {e}"))?;
    let mut tls = ClientConnection::new(config, ServerName::IpAddress(addr.ip().into()))
        .map_err(|e| format!("TLS client: {e}"))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    tls.send_close_notify();
    // Best effort: the connection is done either way.
    let _ = tls.complete_io(&mut tcp);
    Ok(())
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- dockgate log ({}) ---\n{}",
                self.addr,
                tail(&self.log(), 20_000)
            );
        }
    }
}

fn issue_client(certs: &Path, clients: &Path, name: &str, role: &str) -> ClientCerts {
    let out = clients.join(name);
    ok(dockgate()
        .args(["pki", "client", "--dir"])
        .arg(certs)
        .args(["--name", name, "--role", role, "--out"])
        .arg(&out));
    ClientCerts {
        name: name.to_owned(),
        role: role.to_owned(),
        dir: out,
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
}

/// Removes CSI escape sequences (`ESC [ … final-byte`) such as colour codes.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
