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

mod identity;
mod verifier;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring as provider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::pki::{self, pem, pem::PemError};

pub use identity::Identity;

/// The only application protocol offered: hijacked Docker streams (attach,
/// exec, BuildKit sessions) are HTTP/1.1 upgrades and cannot ride HTTP/2.
const ALPN_HTTP11: &[u8] = b"http/1.1";

#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read, or holds no usable PEM.
    Load(PemError),
    Invalid(PathBuf, String),
    Rustls(rustls::Error),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Load(e) => e.fmt(f),
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

/// Everything a handshake needs, swapped as one unit on reload.
#[derive(Debug)]
pub struct TlsState {
    pub config: Arc<ServerConfig>,
    /// The same verifier the config uses, to re-check live connections.
    verifier: Arc<dyn ClientCertVerifier>,
    /// Raw subject DNs of the CAs in `ca.pem`: dockgate's own CAs, whose
    /// certificates may carry their role.
    own_issuers: Vec<Vec<u8>>,
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

    /// The role recorded in a leaf (its first subject OU), honoured only
    /// when one of dockgate's own CAs issued it.
    pub fn recorded_role(&self, leaf: &CertificateDer<'_>) -> Option<String> {
        let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
        if !self
            .own_issuers
            .iter()
            .any(|dn| dn.as_slice() == cert.issuer().as_raw())
        {
            return None;
        }
        let ou = cert.subject().iter_organizational_unit().next()?;
        ou.as_str().ok().map(str::to_owned)
    }
}

/// Loads the certificates directory into a server configuration that
/// requires a client certificate chaining to `ca.pem` (or to one of the
/// operator's `client_cas` bundles), not revoked by `crl.pem`, and carrying
/// the clientAuth extended key usage.
pub fn load(dir: &Path, client_cas: &[PathBuf]) -> Result<TlsState, TlsError> {
    let layout = pki::Layout::new(dir);
    let ca_path = layout.bundle();
    let cas = pem::certs(&ca_path)?;
    let mut own_issuers = Vec::with_capacity(cas.len());
    let mut ca_not_after = i64::MAX;
    for ca in &cas {
        let (_, cert) = x509_parser::parse_x509_certificate(ca)
            .map_err(|e| TlsError::Invalid(ca_path.clone(), e.to_string()))?;
        own_issuers.push(cert.subject().as_raw().to_vec());
        ca_not_after = ca_not_after.min(cert.validity().not_after.timestamp());
    }
    let mut roots = RootCertStore::empty();
    for path in client_cas {
        for ca in pem::certs(path)? {
            roots
                .add(ca)
                .map_err(|e| TlsError::Invalid(path.clone(), e.to_string()))?;
        }
    }
    for ca in cas {
        roots
            .add(ca)
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
    let chain = pem::certs(&cert_path)?;
    let server_not_after = x509_parser::parse_x509_certificate(&chain[0])
        .map_err(|e| TlsError::Invalid(cert_path.clone(), e.to_string()))?
        .1
        .validity()
        .not_after
        .timestamp();
    let key = pem::key(&layout.server_key())?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(TlsError::Rustls)?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Invalid(cert_path, e.to_string()))?;
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    Ok(TlsState {
        config: Arc::new(config),
        verifier,
        own_issuers,
        server_not_after,
        ca_not_after,
    })
}
