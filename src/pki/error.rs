//! Errors of the certificate authority tooling.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::keys::KeyType;
use super::pem::PemError;

/// Everything that can go wrong while managing a certs directory.
#[derive(Debug)]
pub enum PkiError {
    /// A file system operation failed.
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// No certs directory was named, or the config naming it is unusable.
    NoCertsDir { reason: String },
    /// The directory holds no CA yet (`pki init` was not run).
    NotInitialized { dir: PathBuf },
    /// `init` found an existing CA and `--force` was not given.
    CaExists { dir: PathBuf },
    /// The crypto backend cannot generate keys of this type.
    KeyGenerationUnsupported { key_type: KeyType },
    /// A private key file could not be used.
    InvalidKey { path: PathBuf, reason: String },
    /// The key needed to sign for a CA is neither in the directory nor given with `--ca-key`.
    CaKeyMissing {
        ca_serial: String,
        subject: String,
        expected: PathBuf,
    },
    /// A `--ca-key` file belongs to none of the CAs that need a key for this command.
    CaKeyMismatch { path: PathBuf, wanted: String },
    /// A key file does not hold the private key of the public key it must match.
    KeyMismatch { path: PathBuf, what: String },
    /// A PEM file holds no usable certificate, CRL or CSR.
    InvalidPem { path: PathBuf, reason: String },
    /// A certificate could not be parsed or does not have the expected shape.
    InvalidCertificate { path: PathBuf, reason: String },
    /// A certificate signing request was unreadable or its signature did not verify.
    InvalidCsr { reason: String },
    /// `index.toml` is not valid TOML for the index schema.
    IndexParse { path: PathBuf, reason: String },
    /// `index.toml` and the files beside it disagree.
    IndexInconsistent { path: PathBuf, reason: String },
    /// A name, role or CN given on the command line cannot go into a certificate.
    InvalidName {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A `--san` value is neither an IP address nor a DNS name.
    InvalidSan { value: String, reason: &'static str },
    /// A validity period of zero days, or one too long to represent.
    InvalidDays { days: u32 },
    /// A docker context name Docker would refuse.
    InvalidContextName { name: String },
    /// A `--host` value that is not `tcp://HOST:PORT`.
    InvalidHost { host: String },
    /// `pki client --config`: the file does not load.
    Config { path: PathBuf, reason: String },
    /// `pki client --role` names a role the config does not define.
    UndefinedRole {
        role: String,
        config: PathBuf,
        defined: Vec<String>,
    },
    /// No certificate in the index matches a name or serial.
    NoSuchCertificate { query: String },
    /// A serial prefix matches more than one certificate.
    AmbiguousSerial {
        prefix: String,
        matches: Vec<String>,
    },
    /// Every certificate matching the request is already revoked.
    AlreadyRevoked { query: String },
    /// The command only applies to client certificates.
    NotAClient { serial: String },
    /// No CA in the index has this serial (or prefix).
    UnknownCa { serial: String },
    /// A new CA would have the same subject as a CA that is still trusted.
    DuplicateCaSubject { subject: String },
    /// `retire-ca` was asked to retire the CA that signs new certificates.
    SigningCaNotRetirable { serial: String },
    /// `retire-ca` found no older CA that is still trusted.
    NothingToRetire,
    /// Retiring would strand certificates that are still valid; needs `--force`.
    RetireWouldStrand {
        ca_serial: String,
        certs: Vec<String>,
    },
    /// A self-renewal request was refused.
    RenewalRefused(RenewalRefusal),
    /// `crl.pem` lacks the CRL of a trusted CA and this command cannot re-sign it.
    CrlMissing { ca_serial: String, subject: String },
    /// A file in the client output directory conflicts with the issued certificate.
    OutputConflict { path: PathBuf, reason: &'static str },
    /// rcgen failed to build or sign something.
    Sign {
        what: &'static str,
        source: rcgen::Error,
    },
}

/// Why `sign_renewal` refused to issue a fresh certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalRefusal {
    /// The presented certificate is not in the index.
    UnknownCertificate,
    /// It is a server certificate.
    NotAClient,
    /// It has been revoked.
    Revoked,
    /// It is outside its validity period.
    Expired,
    /// Its issuing CA has been retired.
    IssuerRetired,
    /// The certificate to retire is not the one the presented certificate
    /// was renewed from.
    NotReplaced,
}

impl fmt::Display for RenewalRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownCertificate => {
                "the presented certificate was not issued from this certs directory"
            }
            Self::NotAClient => "the presented certificate is not a client certificate",
            Self::Revoked => "the presented certificate is revoked",
            Self::Expired => "the presented certificate has expired",
            Self::IssuerRetired => "the CA that issued the presented certificate has been retired",
            Self::NotReplaced => {
                "the certificate to retire is not the one the presented certificate was renewed from"
            }
        })
    }
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {source}", path.display()),
            Self::NoCertsDir { reason } => write!(f, "which certs directory? {reason}"),
            Self::NotInitialized { dir } => write!(
                f,
                "{} holds no dockgate CA (no index.toml); create one with `dockgate pki init --dir {}`",
                dir.display(),
                dir.display()
            ),
            Self::CaExists { dir } => write!(
                f,
                "{} already holds a CA; pass --force to replace it (every certificate it issued stops being trusted), \
                 or use `dockgate pki rotate-ca` to replace it without an outage",
                dir.display()
            ),
            Self::KeyGenerationUnsupported { key_type } => write!(
                f,
                "cannot generate a {key_type} key: ring, dockgate's crypto library, has no RSA key generation. \
                 Use --key-type ecdsa-p256 (the default) or ed25519, or make the key with OpenSSL \
                 (`openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:{bits} -out key.pem`) and pass it \
                 with --import-key (CA) or send a CSR made with it via --csr (client)",
                bits = key_type.rsa_bits().unwrap_or(2048)
            ),
            Self::InvalidKey { path, reason } => {
                write!(f, "cannot use the private key in {}: {reason}", path.display())
            }
            Self::CaKeyMissing {
                ca_serial,
                subject,
                expected,
            } => write!(
                f,
                "the key of CA {ca_serial} (\"{subject}\") is needed but {} does not exist; \
                 pass --ca-key PATH with that CA's private key",
                expected.display()
            ),
            Self::CaKeyMismatch { path, wanted } => write!(
                f,
                "{} is not the private key of {wanted}",
                path.display()
            ),
            Self::KeyMismatch { path, what } => {
                write!(f, "{} is not the private key of {what}", path.display())
            }
            Self::InvalidPem { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::InvalidCertificate { path, reason } => {
                write!(f, "bad certificate in {}: {reason}", path.display())
            }
            Self::InvalidCsr { reason } => write!(f, "cannot use the CSR: {reason}"),
            Self::IndexParse { path, reason } => {
                write!(f, "cannot read the index {}: {reason}", path.display())
            }
            Self::IndexInconsistent { path, reason } => {
                write!(f, "the index {} is inconsistent: {reason}", path.display())
            }
            Self::InvalidName {
                field,
                value,
                reason,
            } => write!(f, "invalid {field} {value:?}: {reason}"),
            Self::InvalidSan { value, reason } => {
                write!(f, "invalid --san {value:?}: {reason}")
            }
            Self::InvalidDays { days } => write!(
                f,
                "invalid validity of {days} days: give between 1 and {} days",
                super::MAX_DAYS
            ),
            Self::InvalidContextName { name } => write!(
                f,
                "invalid docker context name {name:?}: Docker wants at least two characters matching \
                 ^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$, and \"default\" is reserved"
            ),
            Self::Config { path, reason } => write!(f, "cannot load {}: {reason}", path.display()),
            Self::UndefinedRole {
                role,
                config,
                defined,
            } => write!(
                f,
                "role {role:?} is not defined in {}; its roles are: {}",
                config.display(),
                defined.join(", ")
            ),
            Self::InvalidHost { host } => write!(
                f,
                "invalid --host {host:?}: give the gateway's address as tcp://HOST:PORT, e.g. tcp://gateway.example:2376"
            ),
            Self::NoSuchCertificate { query } => {
                write!(f, "no certificate in the index matches {query}")
            }
            Self::AmbiguousSerial { prefix, matches } => write!(
                f,
                "serial prefix {prefix} matches several certificates ({}); give more digits",
                matches.join(", ")
            ),
            Self::AlreadyRevoked { query } => {
                write!(f, "every certificate matching {query} is already revoked")
            }
            Self::NotAClient { serial } => {
                write!(f, "certificate {serial} is not a client certificate")
            }
            Self::UnknownCa { serial } => write!(f, "no CA in the index has serial {serial}"),
            Self::DuplicateCaSubject { subject } => write!(
                f,
                "a trusted CA is already named \"{subject}\"; CRLs are matched to CAs by name, so pick another --cn"
            ),
            Self::SigningCaNotRetirable { serial } => write!(
                f,
                "CA {serial} signs new certificates and cannot be retired; run `dockgate pki rotate-ca` first"
            ),
            Self::NothingToRetire => {
                f.write_str("no older CA is trusted; nothing to retire (only the signing CA is in ca.pem)")
            }
            Self::RetireWouldStrand { ca_serial, certs } => write!(
                f,
                "CA {ca_serial} still has {} unexpired, unrevoked certificate(s) that would stop working: {}; \
                 renew them first (`dockgate pki renew`) or pass --force",
                certs.len(),
                certs.join(", ")
            ),
            Self::RenewalRefused(reason) => write!(f, "renewal refused: {reason}"),
            Self::CrlMissing { ca_serial, subject } => write!(
                f,
                "crl.pem has no CRL for CA {ca_serial} (\"{subject}\"); run `dockgate pki refresh-crl` \
                 (with --ca-key if that CA's key is not in the directory)"
            ),
            Self::OutputConflict { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::Sign { what, source } => write!(f, "cannot {what}: {source}"),
        }
    }
}

impl std::error::Error for PkiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Sign { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A read failure stays an I/O error; a bad or empty file is invalid PEM.
impl From<PemError> for PkiError {
    fn from(e: PemError) -> Self {
        match e {
            PemError::Read(path, source) => Self::io("read", path, source),
            PemError::Invalid(path, reason) => Self::InvalidPem {
                path,
                reason: format!("not valid PEM: {reason}"),
            },
            PemError::Empty(path, what) => Self::InvalidPem {
                path,
                reason: format!("holds no {what}"),
            },
        }
    }
}

impl PkiError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sign(what: &'static str) -> impl FnOnce(rcgen::Error) -> Self {
        move |source| Self::Sign { what, source }
    }
}
