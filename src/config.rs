//! Operator settings, read from a TOML file.
//!
//! The shipped `config/dockgate.toml` is compiled in and is what `dockgate
//! serve` runs with when no file is given; a section left out of an
//! operator's file takes its shipped value. Command-line flags override the
//! file. Unknown keys are rejected so that a misspelt setting fails loudly
//! instead of silently doing nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The default listen address: Docker's conventional TLS port on all interfaces.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:2376";
/// The default Docker daemon socket.
pub const DEFAULT_DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// The default certificates directory, relative to the working directory.
pub const DEFAULT_CERTS: &str = "certs";

/// The shipped configuration, documented line by line.
pub const SHIPPED: &str = include_str!("../config/dockgate.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to listen on for mutual-TLS clients (`:2376` and
    /// `localhost:2376` are accepted, see [`parse_listen`]).
    #[serde(default = "default_listen", deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// Directory holding `ca.pem`, `server-cert.pem`, `server-key.pem` and optionally `crl.pem`.
    #[serde(default = "default_certs")]
    pub certs: PathBuf,
    /// The Docker daemon's Unix socket.
    #[serde(default = "default_docker_socket")]
    pub docker_socket: PathBuf,
    /// Extra CA bundles for client certificates from other CAs. Their
    /// certificates get a role only through `[[identity.map]]`.
    #[serde(default)]
    pub client_cas: Vec<PathBuf>,
    /// On SIGTERM or SIGINT, how long requests and sessions under way may
    /// take to finish before the process exits.
    #[serde(default = "default_shutdown_grace", with = "seconds")]
    pub shutdown_grace: Duration,
    /// The service log's format: `text` or `json`, one line per event.
    #[serde(default)]
    pub log_format: crate::logging::LogFormat,
    /// Threads that serve connections; 0 is one per CPU the process may
    /// use. Read at start.
    #[serde(default)]
    pub workers: usize,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub audit: Audit,
    #[serde(default)]
    pub records: RecordsConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub identity: IdentityConfig,
    /// Roles by name. Left out entirely, the shipped roles apply.
    #[serde(default = "shipped_roles")]
    pub roles: BTreeMap<String, RoleConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Honour the role `dockgate pki client --role` records in a certificate
    /// issued by one of the CAs in `ca.pem`.
    pub roles_from_certificates: bool,
    /// Explicit certificate → role mappings; they win over recorded roles.
    pub map: Vec<IdentityMapping>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            roles_from_certificates: true,
            map: Vec::new(),
        }
    }
}

/// Selects certificates by exactly one attribute of the verified leaf.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityMapping {
    pub role: String,
    pub common_name: Option<String>,
    pub dns: Option<String>,
    pub uri: Option<String>,
    pub email: Option<String>,
    /// SHA-256 of the certificate's DER, hex (colons and case ignored).
    pub fingerprint: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Operation globs this role may call.
    pub operations: Vec<String>,
    /// Inspect host-reaching settings and confine the role to its own objects.
    #[serde(default)]
    pub confined: bool,
    /// Forward requests that map to no known operation.
    #[serde(default)]
    pub unrouted: bool,
    /// Defaults injected into, and ceilings enforced on, every container
    /// the role creates (confined roles only).
    #[serde(default)]
    pub containers: Option<ContainerSettings>,
    /// Replace the values of `Config.Env` in container inspect answers.
    #[serde(default)]
    pub redact_env: bool,
    /// What this role's image builds may use: `[roles.NAME.builds]`.
    #[serde(default)]
    pub builds: Builds,
    /// Registries the role's pulls, pushes, logins and tags may name;
    /// any when left out.
    #[serde(default)]
    pub registries: Option<Vec<String>>,
}

/// `[roles.NAME.containers]`: see `config/dockgate.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContainerSettings {
    /// Always set `no-new-privileges`.
    pub no_new_privileges: bool,
    /// Capabilities always dropped, in addition to the client's.
    pub cap_drop: Vec<String>,
    /// `PidsLimit`: injected when unset, and the most that may be asked for.
    pub pids_limit: Option<i64>,
    /// `Memory` in bytes: injected when unset, and the most.
    pub memory: Option<i64>,
    /// `NanoCpus`: injected when unset, and the most.
    pub nano_cpus: Option<i64>,
    /// Ulimit name → the most its soft and hard limits may be; injected
    /// when unset.
    pub ulimits: BTreeMap<String, i64>,
    /// The least `OomScoreAdj` may be; injected when unset.
    pub oom_score_adj: Option<i64>,
    /// Where ports may be published; unrestricted when left out.
    pub ports: Option<PortSettings>,
    /// Always make the root filesystem read-only.
    pub readonly_rootfs: bool,
}

/// `[roles.NAME.containers.ports]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSettings {
    /// Host addresses ports may be published on; `"*"` allows any.
    pub addresses: Vec<String>,
    /// Host port ranges (`"1025-65535"`, `"8080"`) ports may be published on.
    pub ranges: Vec<String>,
}

/// Build settings of a role (see `config/dockgate.toml`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Builds {
    /// A confined role may build with BuildKit (`version=2`), whose
    /// Dockerfile dockgate cannot see. Off, such builds are refused.
    pub buildkit: bool,
    /// Force `nocache=1` on this role's builds. Confined roles' builds
    /// always run so.
    pub nocache: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// How long a client may take to complete the TLS handshake.
    #[serde(with = "seconds")]
    pub handshake_timeout: Duration,
    /// How long a client may take to send a request's headers.
    #[serde(with = "seconds")]
    pub header_read_timeout: Duration,
    /// Largest body, in bytes, read for inspection.
    pub inspect_body: usize,
    /// How long a body read for inspection may take to arrive.
    #[serde(with = "seconds")]
    pub body_read_timeout: Duration,
    /// Bytes all bodies held for inspection may use together.
    pub inspect_memory: usize,
    /// Open client connections in total.
    pub connections: usize,
    /// Open client connections (upgraded sessions included) of one owner.
    pub connections_per_identity: usize,
    /// Requests per second one owner may make on average; 0 is no limit.
    pub requests_per_second: f64,
    /// Requests one owner may make at once before the rate applies.
    pub request_burst: u32,
}

/// The admin listener: metrics, health and status over plain HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_ADMIN_PORT)),
        }
    }
}

/// The admin listener's default port, on loopback.
pub const DEFAULT_ADMIN_PORT: u16 = 9376;

/// Where dockgate records who created each container and image tag.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordsConfig {
    /// The record file; a relative path is in the certs directory.
    pub path: PathBuf,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            path: PathBuf::from("owners.jsonl"),
        }
    }
}

impl Config {
    /// The ownership record file.
    pub fn records_path(&self) -> PathBuf {
        self.certs.join(&self.records.path)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// File to append audit lines to; standard output when unset.
    pub path: Option<PathBuf>,
    /// Lines waiting to be written, at most.
    pub queue: usize,
    /// What new requests get while lines cannot be written.
    pub on_failure: OnAuditFailure,
}

impl Default for Audit {
    fn default() -> Self {
        Audit {
            path: None,
            queue: 10_000,
            on_failure: OnAuditFailure::Deny,
        }
    }
}

/// `audit.on_failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnAuditFailure {
    /// Refuse with 503 until the audit log is written again.
    Deny,
    /// Serve anyway; lost lines are logged and counted.
    Allow,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse(SHIPPED).expect("the shipped config parses")
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default address")
}

fn default_certs() -> PathBuf {
    PathBuf::from(DEFAULT_CERTS)
}

fn default_shutdown_grace() -> Duration {
    Duration::from_secs(30)
}

fn default_docker_socket() -> PathBuf {
    PathBuf::from(DEFAULT_DOCKER_SOCKET)
}

fn shipped_roles() -> BTreeMap<String, RoleConfig> {
    #[derive(Deserialize)]
    struct Roles {
        roles: BTreeMap<String, RoleConfig>,
    }
    toml::from_str::<Roles>(SHIPPED)
        .expect("the shipped config parses")
        .roles
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            inspect_body: 1 << 20,
            body_read_timeout: Duration::from_secs(30),
            inspect_memory: 64 << 20,
            connections: 4096,
            connections_per_identity: 256,
            requests_per_second: 0.0,
            request_burst: 100,
        }
    }
}

#[derive(Debug)]
pub enum ConfigError {
    Read(PathBuf, std::io::Error),
    Parse(PathBuf, toml::de::Error),
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigError::Read(p, e) => write!(f, "cannot read config {}: {e}", p.display()),
            ConfigError::Parse(p, e) => write!(f, "invalid config {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads and parses a config file. Its relative paths are relative to
    /// the file's directory, so the file means the same from any working
    /// directory (the built-in default's are relative to the working directory).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        let mut config =
            Config::parse(&text).map_err(|e| ConfigError::Parse(path.to_owned(), e))?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.resolve_against(base);
        Ok(config)
    }

    fn resolve_against(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.certs);
        resolve(&mut self.docker_socket);
        self.client_cas.iter_mut().for_each(resolve);
        self.audit.path.iter_mut().for_each(resolve);
    }

    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}

/// A listen address as operators write it: `ADDR:PORT`, `:PORT` (every
/// IPv4 interface, as dockerd's `-H tcp://:2376`) or `HOST:PORT` with a name
/// such as `localhost`, resolved once (its first IPv4 address, else its first).
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix(':') {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port in listen address {s:?}"))?;
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("invalid listen address {s:?} (want HOST:PORT or :PORT): {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("listen address {s:?} resolves to no address"))
}

fn listen_address<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse_listen(&text).map_err(serde::de::Error::custom)
}

/// Durations are written as seconds (`30`, `2.5`) or with a unit:
/// `"500ms"`, `"10s"`, `"5m"`, `"1h"`.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Seconds(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = match Written::deserialize(d)? {
            Written::Seconds(secs) => secs,
            Written::Text(text) => parse(&text).map_err(serde::de::Error::custom)?,
        };
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }

    /// The duration `text` names, in seconds.
    pub(super) fn parse(text: &str) -> Result<f64, String> {
        let bad = || format!("invalid duration {text:?} (want e.g. 30, \"10s\", \"5m\", \"1h\")");
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: f64 = number.parse().map_err(|_| bad())?;
        let scale = match unit {
            "" | "s" => 1.0,
            "ms" => 0.001,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        Ok(number * scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.docker_socket, PathBuf::from(DEFAULT_DOCKER_SOCKET));
        assert_eq!(c.limits.handshake_timeout, Duration::from_secs(10));
    }

    #[test]
    fn shipped_config_is_the_default() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(c.limits.inspect_body, 1 << 20);
        let names: Vec<_> = c.roles.keys().map(String::as_str).collect();
        assert_eq!(names, ["admin", "ci", "readonly"]);
        assert!(c.roles["ci"].confined);
        assert!(c.roles["admin"].unrouted);
        assert_eq!(Config::parse("").unwrap().roles.len(), 3);
        let ci = c.roles["ci"].containers.as_ref().unwrap();
        assert!(ci.no_new_privileges);
        assert_eq!((ci.pids_limit, ci.oom_score_adj), (Some(4096), Some(0)));
        assert!(c.roles["readonly"].redact_env);
    }

    #[test]
    fn build_settings_are_off_unless_set() {
        let c = Config::default();
        assert_eq!(c.roles["ci"].builds, Builds::default());
        assert_eq!(c.roles["admin"].builds, Builds::default());
        let roles = "[roles.x]\noperations = []\n[roles.x.builds]\n";
        let c = Config::parse(&format!("{roles}buildkit = true")).unwrap();
        assert!(c.roles["x"].builds.buildkit && !c.roles["x"].builds.nocache);
        assert!(Config::parse(&format!("{roles}nocach = true")).is_err());
    }

    #[test]
    fn service_settings_default_to_text_logs_a_failing_closed_audit_and_no_request_rate() {
        for c in [Config::default(), Config::parse("").unwrap()] {
            assert_eq!(c.log_format, crate::logging::LogFormat::Text);
            assert_eq!(c.audit.queue, 10_000);
            assert_eq!(c.audit.on_failure, OnAuditFailure::Deny);
            assert_eq!(c.limits.requests_per_second, 0.0);
        }
        let c = Config::parse("log_format = \"json\"\n[audit]\non_failure = \"allow\"").unwrap();
        assert_eq!(c.log_format, crate::logging::LogFormat::Json);
        assert_eq!(c.audit.on_failure, OnAuditFailure::Allow);
        assert!(Config::parse("[audit]\non_failure = \"ignore\"").is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(Config::parse("listn = \"127.0.0.1:1\"").is_err());
    }

    #[test]
    fn durations_with_units() {
        let c = Config::parse(
            "shutdown_grace = \"5m\"\n[limits]\nhandshake_timeout = \"10s\"\nheader_read_timeout = \"1h\"\nbody_read_timeout = \"250ms\"",
        )
        .unwrap();
        assert_eq!(c.shutdown_grace, Duration::from_secs(300));
        assert_eq!(c.limits.handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.limits.header_read_timeout, Duration::from_secs(3600));
        assert_eq!(c.limits.body_read_timeout, Duration::from_millis(250));
        assert_eq!(
            Config::parse("shutdown_grace = \"7\"")
                .unwrap()
                .shutdown_grace,
            Duration::from_secs(7)
        );
        for bad in ["\"10 s\"", "\"5d\"", "\"m\"", "\"-1s\"", "\"\""] {
            assert!(
                Config::parse(&format!("shutdown_grace = {bad}")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn listen_shorthands() {
        assert_eq!(parse_listen(":2376").unwrap().to_string(), "0.0.0.0:2376");
        assert_eq!(
            parse_listen("localhost:2376").unwrap().to_string(),
            "127.0.0.1:2376"
        );
        assert_eq!(parse_listen("[::1]:9").unwrap().to_string(), "[::1]:9");
        let c = Config::parse("listen = \":2377\"").unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:2377");
        assert!(parse_listen(":http").is_err());
        assert!(parse_listen("2376").is_err());
    }

    #[test]
    fn relative_paths_are_relative_to_the_file() {
        let dir = std::env::temp_dir().join(format!("dockgate-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dockgate.toml");
        std::fs::write(
            &file,
            "certs = \"pki\"\nclient_cas = [\"other.pem\", \"/abs.pem\"]\n[audit]\npath = \"audit.log\"\n",
        )
        .unwrap();
        let c = Config::load(&file).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(c.certs, dir.join("pki"));
        assert_eq!(
            c.client_cas,
            [dir.join("other.pem"), PathBuf::from("/abs.pem")]
        );
        assert_eq!(c.audit.path, Some(dir.join("audit.log")));
        assert_eq!(c.docker_socket, PathBuf::from(DEFAULT_DOCKER_SOCKET));
        assert_eq!(Config::default().certs, PathBuf::from(DEFAULT_CERTS));
    }

    #[test]
    fn fractional_timeouts() {
        let c = Config::parse("[limits]\nhandshake_timeout = 2.5").unwrap();
        assert_eq!(c.limits.handshake_timeout, Duration::from_millis(2500));
    }
}
