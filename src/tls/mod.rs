//! TLS and identity.
//!
//! Builds the rustls server configuration from a certificates directory laid
//! out as Docker's TLS documentation (and `dockgate pki`) lay it out:
//! `ca.pem` (one or more trusted client CAs), `server-cert.pem`,
//! `server-key.pem`, and optionally `crl.pem`. The names and the PEM loader
//! are `dockgate pki`'s ([`pki::Layout`], [`pki::pem`]), so the gateway reads
//! exactly what the CA writes. The configuration is built as a
//! whole and handed out behind an `Arc`, so that a reload can swap it
//! atomically: handshakes in progress keep the set they started with.
//!
//! Who issued a client certificate is decided by signatures, never by
//! names ([`TlsState::identify`]): a certificate carries its role (subject
//! OU) and owns `cn=<CN>` objects only when its signature verifies under the
//! key of a CA in `ca.pem`, dockgate's own. With `client_cas` set, an
//! external intermediate may copy dockgate's CA name byte for byte; a check
//! on the issuer DN gave its leaves the role they asked for (issue 8).
//!
//! Sessions resume (TLS 1.3 tickets, TLS 1.2 tickets and session IDs), so
//! a client that reconnects skips the certificate exchange and its
//! signatures. A resumed handshake does not run the client verifier; what
//! it verified still holds, for two reasons. Each loaded configuration has
//! its own ticket keys and session cache, so a session only resumes under
//! the configuration (CA set, CRL) that verified it: a revocation or a
//! retired CA reloads, and ends every earlier session. What can change
//! without a reload is the time, so [`TlsState::session_chain`] checks that
//! every certificate of a resumed chain is still within its validity. (A
//! full re-verification would cost a resumption most of what it saves: the
//! chain's signatures.)

mod identity;
mod verifier;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::crypto::ring as provider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerConnection, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{CertificateError, HandshakeKind, RootCertStore, ServerConfig};
use x509_parser::certificate::X509Certificate;

use crate::pki::{self, pem, pem::PemError};

pub use identity::{Authority, Identity};

/// The only application protocol offered: hijacked Docker streams (attach,
/// exec, BuildKit sessions) are HTTP/1.1 upgrades and cannot ride HTTP/2.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// TLS 1.2 sessions kept for resumption by session ID, per configuration.
/// Tickets (TLS 1.3, and TLS 1.2 clients that ask) hold their state on the
/// client and cost the gateway nothing.
const SESSION_CACHE: usize = 1024;
/// Leaves remembered as signed by dockgate's own CAs; the set is emptied
/// when full.
const OWN_SIGNED_MAX: usize = 4096;

#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read, or holds no usable PEM.
    Load(PemError),
    /// A file of the certs directory does not exist; `make` is the command that makes it.
    Missing {
        path: PathBuf,
        make: String,
    },
    Invalid(PathBuf, String),
    Rustls(rustls::Error),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Load(e) => e.fmt(f),
            TlsError::Missing { path, make } => {
                write!(f, "{} does not exist: run `{make}`", path.display())
            }
            TlsError::Invalid(p, e) => write!(f, "{}: {e}", p.display()),
            TlsError::Rustls(e) => write!(f, "TLS configuration rejected: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<PemError> for TlsError {
    fn from(e: PemError) -> Self {
        TlsError::Load(e)
    }
}

/// A file that is not there is named with the command that makes it.
fn missing(e: PemError, make: impl FnOnce() -> String) -> TlsError {
    match e {
        PemError::Read(path, io) if io.kind() == std::io::ErrorKind::NotFound => {
            TlsError::Missing { path, make: make() }
        }
        other => TlsError::Load(other),
    }
}

/// Everything a handshake needs, swapped as one unit on reload.
#[derive(Debug)]
pub struct TlsState {
    pub config: Arc<ServerConfig>,
    /// The same verifier the config uses, to re-check live connections.
    verifier: Arc<dyn ClientCertVerifier>,
    /// The CAs in `ca.pem`: dockgate's own, whose certificates may carry
    /// their role and own objects by common name alone.
    own_cas: Vec<CertificateDer<'static>>,
    /// The operator's `client_cas`: their certificates get a role only by
    /// mapping, and an owner label that names the CA.
    external_cas: Vec<CertificateDer<'static>>,
    /// Leaves (by SHA-256) already found signed by one of `own_cas`, so a
    /// client that reconnects or resumes is not checked again. It lives as
    /// long as this configuration: a reload starts it afresh.
    own_signed: Mutex<HashSet<[u8; 32]>>,
    /// When the server certificate expires (Unix seconds).
    pub server_not_after: i64,
    /// When the first CA in `ca.pem` to expire does (Unix seconds).
    pub ca_not_after: i64,
}

impl TlsState {
    /// Whether a client chain that passed an earlier handshake would pass
    /// one now: revoked certificates and retired CAs fail.
    pub fn still_accepts(
        &self,
        leaf: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
    }

    /// The client's chain (leaf first) after a handshake under this
    /// state's configuration. A full handshake's chain was verified during
    /// the handshake. A resumed session's was verified under this same
    /// configuration when the session was made (see the module docs); every
    /// certificate of it must still be valid at `now`.
    pub fn session_chain(
        &self,
        session: &ServerConnection,
        now: UnixTime,
    ) -> Result<Vec<CertificateDer<'static>>, rustls::Error> {
        let chain: Vec<CertificateDer<'static>> = session
            .peer_certificates()
            .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
            .unwrap_or_default();
        if chain.is_empty() {
            return Err(rustls::Error::NoCertificatesPresented);
        }
        // Anything but a full handshake (a resumption, or a kind rustls
        // does not report) is checked here.
        let verified = matches!(
            session.handshake_kind(),
            Some(HandshakeKind::Full | HandshakeKind::FullWithHelloRetryRequest)
        );
        if !verified {
            for cert in &chain {
                still_valid(cert, now)?;
            }
        }
        Ok(chain)
    }

    /// The identity of a verified chain (leaf first): its names, the
    /// authority whose key signed the leaf, and — only when that is one of
    /// dockgate's own CAs — the role the leaf records (its first subject
    /// OU). `None` when the leaf cannot be parsed or no CA the gateway
    /// knows, nor a presented intermediate, signed it: verification would
    /// have refused such a chain, so nothing is guessed.
    pub fn identify(&self, chain: &[CertificateDer<'_>]) -> Option<Identity> {
        let (leaf_der, intermediates) = chain.split_first()?;
        let (_, leaf) = x509_parser::parse_x509_certificate(leaf_der).ok()?;
        let mut identity = Identity::from_verified_leaf(leaf_der, &leaf);
        identity.authority = if self.signed_by_own_ca(leaf_der, &leaf) {
            Authority::Dockgate
        } else {
            let issuer = self
                .external_cas
                .iter()
                .chain(intermediates)
                .find(|ca| signed_by(&leaf, ca))?;
            let (_, issuer) = x509_parser::parse_x509_certificate(issuer).ok()?;
            let mut key = pki::fingerprint(issuer.public_key().raw);
            key.truncate(16);
            Authority::External(key)
        };
        if identity.authority == Authority::Dockgate {
            identity.recorded_role = identity.organizational_units.first().cloned();
        }
        Some(identity)
    }
}

impl TlsState {
    fn signed_by_own_ca(&self, leaf_der: &[u8], leaf: &X509Certificate<'_>) -> bool {
        let digest = ring::digest::digest(&ring::digest::SHA256, leaf_der);
        let mut key = [0; 32];
        key.copy_from_slice(digest.as_ref());
        if self.own_signed.lock().is_ok_and(|seen| seen.contains(&key)) {
            return true;
        }
        if !self.own_cas.iter().any(|ca| signed_by(leaf, ca)) {
            return false;
        }
        if let Ok(mut seen) = self.own_signed.lock() {
            if seen.len() >= OWN_SIGNED_MAX {
                seen.clear();
            }
            seen.insert(key);
        }
        true
    }
}

/// Whether `now` is within the validity of `cert`, as the verifier judges
/// it: from notBefore to notAfter, both included.
fn still_valid(cert: &CertificateDer<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = cert.validity();
    if now > validity.not_after.timestamp() {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    if now < validity.not_before.timestamp() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet,
        ));
    }
    Ok(())
}

/// Whether `ca` issued `leaf`: its subject is the leaf's issuer and the
/// leaf's signature verifies under its public key.
fn signed_by(leaf: &X509Certificate<'_>, ca: &CertificateDer<'_>) -> bool {
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca) else {
        return false;
    };
    ca.subject().as_raw() == leaf.issuer().as_raw()
        && leaf.verify_signature(Some(ca.public_key())).is_ok()
}

/// Loads the certificates directory into a server configuration that
/// requires a client certificate chaining to `ca.pem` (or to one of the
/// operator's `client_cas` bundles), not revoked by `crl.pem`, and carrying
/// the clientAuth extended key usage.
pub fn load(dir: &Path, client_cas: &[PathBuf]) -> Result<TlsState, TlsError> {
    let layout = pki::Layout::new(dir);
    let ca_path = layout.bundle();
    let init = || format!("dockgate pki init --dir {}", dir.display());
    let cas = pem::certs(&ca_path).map_err(|e| missing(e, init))?;
    let mut ca_not_after = i64::MAX;
    for ca in &cas {
        let (_, cert) = x509_parser::parse_x509_certificate(ca)
            .map_err(|e| TlsError::Invalid(ca_path.clone(), e.to_string()))?;
        ca_not_after = ca_not_after.min(cert.validity().not_after.timestamp());
    }
    let mut roots = RootCertStore::empty();
    let mut external_cas = Vec::new();
    for path in client_cas {
        for ca in pem::certs(path)? {
            roots
                .add(ca.clone())
                .map_err(|e| TlsError::Invalid(path.clone(), e.to_string()))?;
            external_cas.push(ca);
        }
    }
    for ca in &cas {
        roots
            .add(ca.clone())
            .map_err(|e| TlsError::Invalid(ca_path.clone(), e.to_string()))?;
    }

    let crls = pem::crls_if_present(&layout.crl())?;
    let provider = Arc::new(provider::default_provider());
    // dockgate's own CAs each publish a CRL, so when there are CRLs a
    // certificate with none to check against is refused. A directory with
    // no crl.pem (hand-made, as in Docker's TLS guide) revokes nothing, and
    // an operator-added CA may publish none.
    let unknown_is_fine = crls.is_empty() || !client_cas.is_empty();
    let mut builder =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .with_crls(crls)
            .only_check_end_entity_revocation();
    if unknown_is_fine {
        builder = builder.allow_unknown_revocation_status();
    }
    let webpki = builder
        .build()
        .map_err(|e| TlsError::Invalid(ca_path, e.to_string()))?;
    let verifier: Arc<dyn ClientCertVerifier> = Arc::new(verifier::ClientAuthVerifier::new(webpki));

    let cert_path = layout.server_cert();
    let server = || format!("dockgate pki server --dir {} --san HOST", dir.display());
    let chain = pem::certs(&cert_path).map_err(|e| missing(e, server))?;
    let server_not_after = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|e| TlsError::Invalid(cert_path.clone(), e.to_string()))?
        .1
        .validity()
        .not_after
        .timestamp();
    let key = pem::key(&layout.server_key()).map_err(|e| missing(e, server))?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Rustls)?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Invalid(cert_path, e.to_string()))?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    // Fresh per load: sessions never outlive the configuration that made them.
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = provider::Ticketer::new().map_err(TlsError::Rustls)?;
    Ok(TlsState {
        config: Arc::new(config),
        verifier,
        own_cas: cas,
        external_cas,
        own_signed: Mutex::default(),
        server_not_after,
        ca_not_after,
    })
}

#[cfg(test)]
mod tests;
