//! Support for the certificate and policy lifecycle tests: what the served certificate is,
//! long-lived `docker run -i … cat` sessions, atomic file replacement, log counting and the
//! identity of the gateway process.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rcgen::{CertificateParams, IsCa, KeyIdMethod, KeyPair, SerialNumber};
use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use crate::support::gateway::{ClientCerts, Gateway};
use crate::support::raw::client_config;
use crate::support::{describe, random_bytes, run_with, Output};

/// How often the tests poll for a change to show.
pub const POLL: Duration = Duration::from_millis(50);
/// Ceiling for one docker CLI call that should be quick (`version`, `ps`).
pub const QUICK_CLI: Duration = Duration::from_secs(60);

/// The gateway process as the kernel knows it: pid plus start time, so a restart under the
/// same pid would still be noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: u32,
    pub start_ticks: u64,
}

impl ProcessIdentity {
    pub fn of(gw: &Gateway) -> ProcessIdentity {
        let pid = gw.pid();
        let stat = fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_else(|e| panic!("read /proc/{pid}/stat: {e}"));
        // Field 22 (starttime); fields after the parenthesised command name are plain.
        let after_comm = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_else(|| panic!("unexpected /proc/{pid}/stat: {stat}"));
        let start_ticks = after_comm
            .split_whitespace()
            .nth(19)
            .and_then(|f| f.parse().ok())
            .unwrap_or_else(|| panic!("no starttime in /proc/{pid}/stat: {stat}"));
        ProcessIdentity { pid, start_ticks }
    }
}

/// Requires the gateway to still be the very process it was at `before`.
pub fn assert_not_restarted(gw: &mut Gateway, before: &ProcessIdentity) {
    assert!(gw.is_running(), "the gateway process exited");
    assert_eq!(
        &ProcessIdentity::of(gw),
        before,
        "the gateway process was replaced"
    );
}

/// The `--config` file the gateway process was started with, read from its command line.
pub fn config_file(gw: &Gateway) -> PathBuf {
    let pid = gw.pid();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_else(|e| panic!("read /proc/{pid}/cmdline: {e}"));
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.windows(2)
        .find(|w| w[0] == b"--config")
        .map(|w| PathBuf::from(String::from_utf8_lossy(w[1]).into_owned()))
        .unwrap_or_else(|| panic!("the gateway (pid {pid}) was started without --config"))
}

/// Replaces `path` the way `pki` commands and editors do: a temporary file in the same
/// directory, renamed over it.
pub fn write_atomic(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("lifecycle-tmp");
    fs::write(&tmp, contents).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
    fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename onto {}: {e}", path.display()));
}

pub fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Copies a client's `DOCKER_CERT_PATH` directory, e.g. to keep an old identity around.
pub fn copy_client(client: &ClientCerts, to: &Path, name: &str) -> ClientCerts {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        fs::copy(client.dir.join(file), to.join(file))
            .unwrap_or_else(|e| panic!("copy {file} to {}: {e}", to.display()));
    }
    ClientCerts {
        name: name.to_owned(),
        role: client.role.clone(),
        dir: to.to_owned(),
    }
}

/// The parts of a certificate these tests compare.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub serial: String,
    pub common_name: Option<String>,
    pub org_unit: Option<String>,
    pub subject: Vec<u8>,
    pub issuer: Vec<u8>,
    pub not_before: i64,
    pub not_after: i64,
    pub public_key: Vec<u8>,
}

impl CertInfo {
    pub fn from_der(der: &[u8]) -> CertInfo {
        let (_, cert) = x509_parser::parse_x509_certificate(der).expect("parse certificate DER");
        let subject = cert.subject();
        let first = |attr: Option<&x509_parser::x509::AttributeTypeAndValue>| {
            attr.and_then(|a| a.as_str().ok()).map(str::to_owned)
        };
        let common_name = first(subject.iter_common_name().next());
        let org_unit = first(subject.iter_organizational_unit().next());
        CertInfo {
            serial: hex(cert.raw_serial()),
            common_name,
            org_unit,
            subject: subject.as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            public_key: cert.public_key().raw.to_vec(),
        }
    }

    /// The first certificate in a PEM file.
    pub fn from_pem_file(path: &Path) -> CertInfo {
        let pem = read(path);
        let (_, parsed) = x509_parser::pem::parse_x509_pem(&pem)
            .unwrap_or_else(|e| panic!("{} is not PEM: {e}", path.display()));
        CertInfo::from_der(&parsed.contents)
    }

    pub fn lifetime(&self) -> i64 {
        self.not_after - self.not_before
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Completes a TLS handshake with the gateway as `client` and returns the serial of the
/// server certificate it presented. Errors are the handshake's.
pub fn served_serial(addr: SocketAddr, client: &ClientCerts) -> Result<String, String> {
    let config = client_config(&client.ca(), Some((&client.cert(), &client.key())));
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("TCP connect: {e}"))?;
    let timeout = Some(Duration::from_secs(10));
    tcp.set_read_timeout(timeout)
        .and_then(|()| tcp.set_write_timeout(timeout))
        .map_err(|e| format!("socket timeouts: {e}"))?;
    let mut tls = ClientConnection::new(config, ServerName::IpAddress(addr.ip().into()))
        .map_err(|e| format!("TLS client: {e}"))?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    let leaf = tls
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or("the gateway presented no certificate")?;
    let serial = CertInfo::from_der(leaf).serial;
    tls.send_close_notify();
    // Best effort: the answer is in hand.
    let _ = tls.complete_io(&mut tcp);
    Ok(serial)
}

/// Polls `probe` every [`POLL`] until it yields a value or `timeout` passes; returns the
/// value and the time from `since` to the end of the successful probe.
pub fn poll_until<T>(
    since: Instant,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<(T, Duration)> {
    loop {
        if let Some(value) = probe() {
            return Some((value, since.elapsed()));
        }
        if since.elapsed() >= timeout {
            return None;
        }
        thread::sleep(POLL);
    }
}

/// How many lines of the gateway log contain `needle`.
pub fn log_count(gw: &Gateway, needle: &str) -> usize {
    gw.log().lines().filter(|l| l.contains(needle)).count()
}

/// Waits until more than `before` log lines contain `needle`.
pub fn wait_log_count(gw: &Gateway, needle: &str, before: usize, timeout: Duration) -> bool {
    poll_until(Instant::now(), timeout, || {
        (log_count(gw, needle) > before).then_some(())
    })
    .is_some()
}

pub const RELOADED: &str = "reloaded certificates and policy";
pub const RELOAD_REJECTED: &str = "reload rejected";
pub const CUTTING: &str = "cutting connection";

/// `docker version` through the gateway as `client`.
pub fn docker_version(gw: &Gateway, client: &ClientCerts) -> Output {
    run_with(
        gw.docker(client)
            .args(["version", "--format", "{{.Server.APIVersion}}"]),
        None,
        QUICK_CLI,
    )
}

/// Words the docker CLI (Go's crypto/tls) uses when the gateway refuses its certificate
/// during the TLS handshake, as opposed to an HTTP-level refusal.
const HANDSHAKE_REFUSALS: &[&str] = &[
    "remote error: tls:",
    "tls: bad certificate",
    "tls: revoked certificate",
    "tls: expired certificate",
    "tls: unknown certificate authority",
    "tls: certificate required",
];

/// Whether a failed docker CLI call failed at the TLS handshake.
pub fn refused_at_handshake(out: &Output) -> bool {
    let err = out.stderr_str();
    !out.status.success() && HANDSHAKE_REFUSALS.iter().any(|w| err.contains(w))
}

/// A `docker run -i … cat` through the gateway with stdin held open by a pipe: whatever is
/// written comes back on stdout, until the session ends.
pub struct Session {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Mutex<SessionOutput>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    seq: u64,
}

#[derive(Default)]
struct SessionOutput {
    bytes: Vec<u8>,
    closed_at: Option<Instant>,
}

impl Session {
    /// Starts the session and waits until it echoes.
    pub fn start(gw: &Gateway, client: &ClientCerts, container: &str, image: &str) -> Session {
        let mut cmd: Command = gw.docker(client);
        cmd.args(["run", "-i", "--name", container, image, "cat"]);
        let what = describe(&cmd);
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
        let stdout = Arc::new(Mutex::new(SessionOutput::default()));
        let mut pipe = child.stdout.take().expect("piped stdout");
        let sink = stdout.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = pipe.read(&mut buf).unwrap_or(0);
                let mut out = sink.lock().expect("session stdout lock");
                if n == 0 {
                    out.closed_at = Some(Instant::now());
                    return;
                }
                out.bytes.extend_from_slice(&buf[..n]);
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stderr.take().expect("piped stderr");
        let sink = stderr.clone();
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            sink.lock().expect("session stderr lock").extend(buf);
        });
        let mut session = Session {
            what,
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            seq: 0,
        };
        // The first echo also waits out image setup and container start.
        if let Err(why) = session.echo(Duration::from_secs(60)) {
            panic!("session `{}` never echoed: {why}", session.what);
        }
        session
    }

    /// Sends a fresh line and waits for it to come back.
    pub fn echo(&mut self, timeout: Duration) -> Result<(), String> {
        self.seq += 1;
        let line = format!("echo-{}-{}\n", self.seq, hex(&random_bytes(6)));
        let stdin = self.stdin.as_mut().ok_or("stdin already closed")?;
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("write to the session's stdin: {e}"))?;
        let found = poll_until(Instant::now(), timeout, || {
            let out = self.stdout.lock().expect("session stdout lock");
            let text = String::from_utf8_lossy(&out.bytes);
            if text.contains(line.trim_end()) {
                Some(Ok(()))
            } else if out.closed_at.is_some() {
                Some(Err("stdout closed before the line came back".to_owned()))
            } else {
                None
            }
        });
        match found {
            Some((result, _)) => result,
            None => Err(format!(
                "{:?} did not come back within {timeout:?}",
                line.trim_end()
            )),
        }
    }

    /// Waits until the session ends — stdout closed or the CLI exited — and returns the time
    /// from `since`, or `None` if it is still up after `timeout`.
    pub fn wait_closed(&mut self, since: Instant, timeout: Duration) -> Option<Duration> {
        loop {
            let closed_at = self.stdout.lock().expect("session stdout lock").closed_at;
            if let Some(at) = closed_at {
                return Some(at.saturating_duration_since(since));
            }
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(since.elapsed());
            }
            if since.elapsed() >= timeout {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// True while the docker CLI has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The CLI's stderr so far, for failure messages.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().expect("session stderr lock")).into_owned()
    }

    /// Closes stdin (so `cat` ends) and waits for the CLI.
    pub fn finish(mut self, timeout: Duration) {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("`{}` did not end after its stdin closed", self.what);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A copy of `template`'s certificate (same subject and extended key usage) with a fresh
/// key, signed by the gateway's signing CA, whose validity ended in 2021. Written in the
/// `DOCKER_CERT_PATH` layout to `out`.
pub fn expired_client(gw: &Gateway, template: &ClientCerts, out: &Path) -> ClientCerts {
    let certs = gw.certs_dir();
    let text = |path: PathBuf| {
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    let ca_key = KeyPair::from_pem(&text(certs.join("ca-key.pem"))).expect("parse CA key");
    let issuer = CertificateParams::from_ca_cert_pem(&text(certs.join("ca-cert.pem")))
        .expect("parse CA certificate")
        .self_signed(&ca_key)
        .expect("rebuild the issuer");
    let mut params = CertificateParams::from_ca_cert_pem(&text(template.cert()))
        .expect("parse the template certificate");
    params.is_ca = IsCa::NoCa;
    params.key_identifier_method = KeyIdMethod::Sha256;
    let mut serial = random_bytes(16);
    serial[0] &= 0x7f;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = KeyPair::generate().expect("generate a client key");
    let cert = params
        .signed_by(&key, &issuer, &ca_key)
        .expect("sign the expired certificate");
    fs::create_dir_all(out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
    fs::copy(template.ca(), out.join("ca.pem")).expect("copy ca.pem");
    fs::write(out.join("cert.pem"), cert.pem()).expect("write expired cert");
    fs::write(out.join("key.pem"), key.serialize_pem()).expect("write expired key");
    ClientCerts {
        name: format!("{}-expired", template.name),
        role: template.role.clone(),
        dir: out.to_owned(),
    }
}
