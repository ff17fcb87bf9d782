//! Operator settings, read from a TOML file.
//!
//! Every field has a default so that `dockgate serve` works without a file;
//! command-line flags override the file. Unknown keys are rejected so that a
//! misspelt setting fails loudly instead of silently doing nothing.

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on for mutual-TLS clients.
    pub listen: SocketAddr,
    /// Directory holding `ca.pem`, `server-cert.pem`, `server-key.pem` and optionally `crl.pem`.
    pub certs: PathBuf,
    /// The Docker daemon's Unix socket.
    pub docker_socket: PathBuf,
    pub limits: Limits,
    pub audit: Audit,
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
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Audit {
    /// File to append audit lines to; standard output when unset.
    pub path: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("valid default address"),
            certs: PathBuf::from(DEFAULT_CERTS),
            docker_socket: PathBuf::from(DEFAULT_DOCKER_SOCKET),
            limits: Limits::default(),
            audit: Audit::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
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
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.to_owned(), e))?;
        Config::parse(&text).map_err(|e| ConfigError::Parse(path.to_owned(), e))
    }

    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }
}

/// Durations are written as whole or fractional seconds in the file.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
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
    fn unknown_keys_are_rejected() {
        assert!(Config::parse("listn = \"127.0.0.1:1\"").is_err());
    }

    #[test]
    fn fractional_timeouts() {
        let c = Config::parse("[limits]\nhandshake_timeout = 2.5").unwrap();
        assert_eq!(c.limits.handshake_timeout, Duration::from_millis(2500));
    }
}
