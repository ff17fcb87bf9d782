//! Where things live: the file names of a certs directory and of a client's
//! `DOCKER_CERT_PATH`.
//!
//! Operators, Docker clients and the gateway's reloader all rely on these names, so they
//! are spelled once, here. The gateway ([`crate::tls`], [`crate::reload`]) reads the
//! served files through [`Layout`]; `dockgate pki` writes them through its `CertsDir`
//! transaction (`certs_dir.rs`); `dockgate renew` and `pki client --out` use
//! [`DockerCertPath`].

use std::path::{Path, PathBuf};

use super::index::{CaRecord, CaState};

/// The names inside a certs directory (the module docs of [`super`] say what each holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ca.pem`: every CA trusted for client certificates, signing CA first.
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `ca-cert.pem`: the signing CA's certificate alone.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca-cert.pem")
    }

    /// `ca-key.pem`: the signing CA's key, when it is kept in the directory.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca-key.pem")
    }

    /// `crl.pem`: one CRL per CA in `ca.pem`.
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }

    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server-cert.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }

    /// `index.toml`: the record, and the source of truth for `ca.pem` and `crl.pem`.
    pub fn index(&self) -> PathBuf {
        self.dir.join("index.toml")
    }

    /// `.lock`: held by whoever writes the directory.
    pub fn lock(&self) -> PathBuf {
        self.dir.join(".lock")
    }

    /// `cas/`: CAs replaced by `rotate-ca` and still trusted.
    pub fn cas(&self) -> PathBuf {
        self.dir.join("cas")
    }

    pub fn old_ca_cert(&self, serial: &str) -> PathBuf {
        self.cas().join(format!("{serial}-cert.pem"))
    }

    pub fn old_ca_key(&self, serial: &str) -> PathBuf {
        self.cas().join(format!("{serial}-key.pem"))
    }

    /// `cas/retired/`: CAs removed from trust, kept for the record.
    pub fn retired(&self) -> PathBuf {
        self.cas().join("retired")
    }

    pub fn retired_ca_cert(&self, serial: &str) -> PathBuf {
        self.retired().join(format!("{serial}-cert.pem"))
    }

    /// Where the certificate of a CA in the index lives.
    pub fn ca_cert_of(&self, ca: &CaRecord) -> PathBuf {
        match ca.state {
            CaState::Signing => self.ca_cert(),
            CaState::Trusted => self.old_ca_cert(&ca.serial),
            CaState::Retired => self.retired_ca_cert(&ca.serial),
        }
    }

    /// Where the private key of a CA is kept when it is kept in the directory.
    pub fn ca_key_of(&self, ca: &CaRecord) -> PathBuf {
        match ca.state {
            CaState::Signing => self.ca_key(),
            CaState::Trusted | CaState::Retired => self.old_ca_key(&ca.serial),
        }
    }

    /// `clients/NAME`: where `quickstart` puts a client's `DOCKER_CERT_PATH`.
    pub fn client(&self, name: &str) -> DockerCertPath {
        DockerCertPath::new(&self.dir.join("clients").join(name))
    }

    /// The files the gateway serves from: a change to any of them is a reason to reload.
    pub fn served(&self) -> [PathBuf; 4] {
        [
            self.bundle(),
            self.server_cert(),
            self.server_key(),
            self.crl(),
        ]
    }
}

/// A client's certificate directory, as the Docker CLI reads it from `DOCKER_CERT_PATH`.
/// dockgate replaces its files as one set, so they are symlinks into a generation
/// directory (see [`DockerCertPath::replace`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerCertPath {
    dir: PathBuf,
}

impl DockerCertPath {
    pub const CA: &'static str = "ca.pem";
    pub const CERT: &'static str = "cert.pem";
    pub const KEY: &'static str = "key.pem";

    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `ca.pem`: the trust bundle the client verifies the gateway with.
    pub fn ca(&self) -> PathBuf {
        self.dir.join(Self::CA)
    }

    /// `cert.pem`: the client certificate.
    pub fn cert(&self) -> PathBuf {
        self.dir.join(Self::CERT)
    }

    /// `key.pem`: the client's private key (0600).
    pub fn key(&self) -> PathBuf {
        self.dir.join(Self::KEY)
    }
}
