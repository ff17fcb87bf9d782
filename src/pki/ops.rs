//! The operations behind `dockgate pki …`, usable from the gateway as a library.
//!
//! Each one is a [`CertsDir`] transaction: open (or create) and lock, decide and change
//! the in-memory view, commit. None of them writes a file in the certs directory itself.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use time::{Duration, OffsetDateTime};

use super::ca::{self, Signer};
use super::certs_dir::CertsDir;
use super::error::{PkiError, RenewalRefusal};
use super::index::{CaRecord, CaState, CertKind, CertRecord, CertStatus, Index};
use super::issue::{self, Profile};
use super::keys::{self, KeyType};
use super::layout::{DockerCertPath, Layout};
use super::pem;
use super::store;

/// Default CA lifetime.
pub const DEFAULT_CA_DAYS: u32 = 3650;
/// Default server certificate lifetime (the most Apple/Chrome accept for TLS servers).
pub const DEFAULT_SERVER_DAYS: u32 = 825;
/// Default client certificate lifetime.
pub const DEFAULT_CLIENT_DAYS: u32 = 90;
/// Longest validity any command accepts.
pub const MAX_DAYS: u32 = 36500;

/// How to make a CA (`init`, `rotate-ca`).
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub key_type: KeyType,
    pub days: u32,
    /// Subject CN; default `dockgate CA <date> <serial prefix>`.
    pub cn: Option<String>,
    /// Use this PKCS#8 key instead of generating one (the way to get an RSA CA).
    pub import_key: Option<PathBuf>,
    /// `init` only: replace an existing CA.
    pub force: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        Self {
            key_type: KeyType::default(),
            days: DEFAULT_CA_DAYS,
            cn: None,
            import_key: None,
            force: false,
        }
    }
}

/// A server certificate to issue.
#[derive(Debug, Clone)]
pub struct ServerRequest {
    /// Host names and IP addresses clients dial.
    pub sans: Vec<String>,
    pub days: u32,
    pub key_type: KeyType,
    /// Keys to sign with when the CA key is not in the directory.
    pub ca_keys: Vec<PathBuf>,
}

impl ServerRequest {
    pub fn new(sans: Vec<String>) -> Self {
        Self {
            sans,
            days: DEFAULT_SERVER_DAYS,
            key_type: KeyType::default(),
            ca_keys: Vec::new(),
        }
    }
}

/// A written server certificate.
#[derive(Debug, Clone)]
pub struct IssuedServer {
    pub record: CertRecord,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    /// The requested lifetime was cut to the CA's expiry.
    pub capped: bool,
}

/// A client certificate to issue.
#[derive(Debug, Clone)]
pub struct ClientRequest {
    /// Subject CN; the identity the gateway logs.
    pub name: String,
    /// Subject OU; the role the gateway's policy applies.
    pub role: String,
    pub days: u32,
    pub key_type: KeyType,
    /// Sign this PEM CSR's public key instead of generating a key.
    pub csr_pem: Option<String>,
    pub ca_keys: Vec<PathBuf>,
}

impl ClientRequest {
    pub fn new(name: impl Into<String>, role: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            role: role.into(),
            days: DEFAULT_CLIENT_DAYS,
            key_type: KeyType::default(),
            csr_pem: None,
            ca_keys: Vec::new(),
        }
    }
}

/// An issued client certificate, not yet written anywhere.
#[derive(Debug, Clone)]
pub struct IssuedClient {
    pub record: CertRecord,
    pub cert_pem: String,
    /// The generated private key (PKCS#8 PEM); `None` when a CSR was signed.
    pub key_pem: Option<String>,
    /// The trust bundle (`ca.pem`) the client verifies the gateway with.
    pub ca_pem: String,
    pub capped: bool,
}

impl IssuedClient {
    /// Writes the `DOCKER_CERT_PATH` layout: `ca.pem`, `cert.pem` and, when a key was
    /// generated, `key.pem` (0600), replaced as one set (see [`DockerCertPath::replace`]).
    /// With a CSR, an existing `key.pem` must match the CSR.
    pub fn write_to(&self, out: &Path) -> Result<Vec<PathBuf>, PkiError> {
        store::ensure_private_dir(out)?;
        let files = DockerCertPath::new(out);
        let (key_path, cert_path, ca_path) = (files.key(), files.cert(), files.ca());
        let mut written = Vec::new();
        match &self.key_pem {
            Some(_) => written.push(key_path.clone()),
            None if key_path.exists() => {
                let key = keys::load_key(&key_path)?;
                let der =
                    CertificateDer::from_pem_slice(self.cert_pem.as_bytes()).map_err(|e| {
                        PkiError::InvalidPem {
                            path: cert_path.clone(),
                            reason: e.to_string(),
                        }
                    })?;
                let spki = x509_spki(&der, &cert_path)?;
                if !keys::key_matches_spki(&key, &spki) {
                    return Err(PkiError::OutputConflict {
                        path: key_path,
                        reason: "exists and is not the key of the CSR; move it away first",
                    });
                }
            }
            None => {}
        }
        files.replace(self.key_pem.as_deref(), &self.cert_pem, &self.ca_pem)?;
        written.push(cert_path);
        written.push(ca_path);
        Ok(written)
    }
}

/// Refuses, before anything is issued, a CSR whose key differs from a
/// `key.pem` already in `out`: issuing first would leave a certificate in
/// the index that nobody holds.
pub(crate) fn check_csr_output(out: &Path, csr_pem: &str) -> Result<(), PkiError> {
    use x509_parser::prelude::FromDer;
    let key_path = DockerCertPath::new(out).key();
    if !key_path.exists() {
        return Ok(());
    }
    let key = keys::load_key(&key_path)?;
    let der = rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes())
        .map_err(|e| PkiError::InvalidCsr {
            reason: e.to_string(),
        })?;
    let (_, csr) =
        x509_parser::certification_request::X509CertificationRequest::from_der(der.as_ref())
            .map_err(|e| PkiError::InvalidCsr {
                reason: e.to_string(),
            })?;
    if keys::key_matches_spki(&key, csr.certification_request_info.subject_pki.raw) {
        Ok(())
    } else {
        Err(PkiError::OutputConflict {
            path: key_path,
            reason: "exists and is not the key of the CSR; move it away first",
        })
    }
}

fn x509_spki(der: &[u8], path: &Path) -> Result<Vec<u8>, PkiError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| PkiError::InvalidCertificate {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(cert.public_key().raw.to_vec())
}

/// Creates a CA in `dir`: `ca.pem`, `ca-cert.pem`, `ca-key.pem` (0600), an empty
/// `crl.pem` and `index.toml`. Refuses to replace an existing CA unless `force`.
pub fn init(dir: &Path, opts: &InitOptions) -> Result<CaRecord, PkiError> {
    let vacant = CertsDir::create(dir, opts.force)?;
    let (key, cert_pem, record) = new_ca(opts)?;
    let signer = Signer::from_parts(record.clone(), &cert_der(&cert_pem)?, key)?;
    let mut d = vacant.begin(Index::new(record));
    let crl = signer.sign_crl(&mut d.index, ca::now())?;
    d.put_secret(d.layout().ca_key(), signer.key.serialize_pem());
    d.put_public(d.layout().ca_cert(), cert_pem);
    d.rewrite_crls(vec![(signer.record.serial.clone(), crl)]);
    d.rewrite_bundle();
    Ok(d.commit()?.signing_ca().clone())
}

fn new_ca(opts: &InitOptions) -> Result<(rcgen::KeyPair, String, CaRecord), PkiError> {
    if let Some(cn) = &opts.cn {
        issue::check_name(cn).map_err(|e| match e {
            PkiError::InvalidName { value, reason, .. } => PkiError::InvalidName {
                field: "--cn",
                value,
                reason,
            },
            other => other,
        })?;
    }
    let lifetime = ca::days(opts.days)?;
    let key = match &opts.import_key {
        Some(path) => keys::load_key(path)?,
        None => opts.key_type.generate()?,
    };
    let (pem, record) = ca::create(&key, opts.cn.as_deref(), lifetime)?;
    Ok((key, pem, record))
}

fn cert_der(pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::InvalidPem {
        path: PathBuf::from("(new certificate)"),
        reason: e.to_string(),
    })
}

/// Issues (or re-issues, rotating) `server-cert.pem` + `server-key.pem` from the signing CA.
/// The key is replaced before the certificate; a reloading gateway must treat a
/// mismatched pair as "not ready yet".
pub fn issue_server(dir: &Path, req: &ServerRequest) -> Result<IssuedServer, PkiError> {
    let mut d = CertsDir::open(dir)?;
    let sans = req
        .sans
        .iter()
        .map(|s| issue::parse_san(s))
        .collect::<Result<Vec<_>, _>>()?;
    let first = sans.first().ok_or_else(|| PkiError::InvalidSan {
        value: String::new(),
        reason: "give at least one --san (the name or IP address clients dial)",
    })?;
    let cn = issue::san_text(first);
    let lifetime = ca::days(req.days)?;
    let signer = Signer::load(&d, d.index.signing_ca(), &req.ca_keys)?;
    let key = req.key_type.generate()?;
    let leaf = issue::issue(
        &signer,
        Profile::Server {
            sans: &sans,
            cn: &cn,
        },
        &key,
        lifetime,
        ca::now(),
    )?;
    let layout = d.layout().clone();
    d.put_secret(layout.server_key(), key.serialize_pem());
    d.put_public(layout.server_cert(), leaf.cert_pem);
    d.index.certs.push(leaf.record.clone());
    d.commit()?;
    Ok(IssuedServer {
        record: leaf.record,
        cert_path: layout.server_cert(),
        key_path: layout.server_key(),
        capped: leaf.capped,
    })
}

/// Issues a client certificate from the signing CA and records it in the index.
/// Nothing is written outside `dir`; see [`IssuedClient::write_to`].
pub fn issue_client(dir: &Path, req: &ClientRequest) -> Result<IssuedClient, PkiError> {
    let mut d = CertsDir::open(dir)?;
    let signer = Signer::load(&d, d.index.signing_ca(), &req.ca_keys)?;
    let issued = issue_client_with(&mut d, &signer, req, ca::days(req.days)?)?;
    d.commit()?;
    Ok(issued)
}

/// Issues `req` with `signer` into `d`'s index (not committed). `lifetime` decides
/// validity; `req.days` and `req.ca_keys` were already used by the caller.
fn issue_client_with(
    d: &mut CertsDir,
    signer: &Signer,
    req: &ClientRequest,
    lifetime: Duration,
) -> Result<IssuedClient, PkiError> {
    issue::check_name(&req.name)?;
    issue::check_role(&req.role)?;
    let profile = Profile::Client {
        name: &req.name,
        role: &req.role,
    };
    let now = ca::now();
    let (leaf, key_pem) = match &req.csr_pem {
        Some(csr) => {
            let public_key = issue::csr_public_key(csr)?;
            (
                issue::issue(signer, profile, &public_key, lifetime, now)?,
                None,
            )
        }
        None => {
            let key = req.key_type.generate()?;
            let leaf = issue::issue(signer, profile, &key, lifetime, now)?;
            (leaf, Some(key.serialize_pem()))
        }
    };
    d.index.certs.push(leaf.record.clone());
    Ok(IssuedClient {
        record: leaf.record,
        cert_pem: leaf.cert_pem,
        key_pem,
        ca_pem: d.read_string(&d.layout().bundle())?,
        capped: leaf.capped,
    })
}

/// Which certificates `revoke` applies to.
#[derive(Debug, Clone)]
pub enum RevokeTarget {
    /// Every unrevoked certificate with this name.
    Name(String),
    /// The one certificate whose serial starts with these hex digits.
    Serial(String),
}

/// Marks the target certificates revoked and re-signs the CRL of each issuing CA.
/// Returns the newly revoked entries.
pub fn revoke(
    dir: &Path,
    target: &RevokeTarget,
    ca_keys: &[PathBuf],
) -> Result<Vec<CertRecord>, PkiError> {
    let mut d = CertsDir::open(dir)?;
    let index = &d.index;
    let (query, matched) = match target {
        RevokeTarget::Serial(prefix) => {
            (format!("serial {prefix}"), vec![index.find_serial(prefix)?])
        }
        RevokeTarget::Name(name) => {
            let all: Vec<usize> = (0..index.certs.len())
                .filter(|&i| index.certs[i].name == *name)
                .collect();
            (format!("name {name:?}"), all)
        }
    };
    if matched.is_empty() {
        return Err(PkiError::NoSuchCertificate { query });
    }
    let pending: Vec<usize> = matched
        .into_iter()
        .filter(|&i| index.certs[i].status == CertStatus::Valid)
        .collect();
    if pending.is_empty() {
        return Err(PkiError::AlreadyRevoked { query });
    }
    let revoked = mark_revoked(&mut d, &pending, ca_keys)?;
    d.commit()?;
    Ok(revoked)
}

/// Revokes `which` (indexes into the index's certs) and re-signs the affected CRLs in
/// `d` (not committed). All CA keys are loaded before anything changes.
fn mark_revoked(
    d: &mut CertsDir,
    which: &[usize],
    ca_keys: &[PathBuf],
) -> Result<Vec<CertRecord>, PkiError> {
    let index = &d.index;
    let mut issuers: Vec<String> = Vec::new();
    for &i in which {
        let issuer = &index.certs[i].issuer_serial;
        let trusted = index
            .ca(issuer)
            .is_some_and(|ca| ca.state != CaState::Retired);
        if trusted && !issuers.contains(issuer) {
            issuers.push(issuer.clone());
        }
    }
    let signers = issuers
        .iter()
        .map(|serial| {
            let ca = index
                .ca(serial)
                .cloned()
                .ok_or_else(|| PkiError::UnknownCa {
                    serial: serial.clone(),
                })?;
            Signer::load(d, &ca, ca_keys)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let now = ca::now();
    for &i in which {
        d.index.certs[i].status = CertStatus::Revoked;
        d.index.certs[i].revoked_at = Some(now);
    }
    let mut fresh = Vec::new();
    for signer in &signers {
        fresh.push((
            signer.record.serial.clone(),
            signer.sign_crl(&mut d.index, now)?,
        ));
    }
    d.rewrite_crls(fresh);
    Ok(which.iter().map(|&i| d.index.certs[i].clone()).collect())
}

/// A client certificate renewal by name.
#[derive(Debug, Clone)]
pub struct RenewRequest {
    pub name: String,
    pub days: u32,
    pub key_type: KeyType,
    pub csr_pem: Option<String>,
    pub ca_keys: Vec<PathBuf>,
    /// Revoke the certificates the new one replaces instead of letting them expire.
    pub revoke_old: bool,
}

/// The result of [`renew`].
#[derive(Debug, Clone)]
pub struct Renewed {
    pub issued: IssuedClient,
    /// Entries revoked because of `revoke_old`.
    pub revoked: Vec<CertRecord>,
}

/// Re-issues the newest unrevoked client certificate named `req.name`: same name and role,
/// new serial, new key (unless a CSR is given), signed by the current signing CA.
pub fn renew(dir: &Path, req: &RenewRequest) -> Result<Renewed, PkiError> {
    let mut d = CertsDir::open(dir)?;
    let index = &d.index;
    let current = index
        .certs
        .iter()
        .filter(|c| c.name == req.name && c.status == CertStatus::Valid)
        .filter(|c| c.kind == CertKind::Client)
        .max_by_key(|c| c.not_before)
        .cloned();
    let Some(current) = current else {
        if let Some(server) = index
            .certs
            .iter()
            .find(|c| c.name == req.name && c.kind == CertKind::Server)
        {
            return Err(PkiError::NotAClient {
                serial: server.serial.clone(),
            });
        }
        return Err(PkiError::NoSuchCertificate {
            query: format!("name {:?} (an unrevoked client certificate)", req.name),
        });
    };
    let role = current.role.clone().unwrap_or_default();
    let client = ClientRequest {
        name: req.name.clone(),
        role,
        days: req.days,
        key_type: req.key_type,
        csr_pem: req.csr_pem.clone(),
        ca_keys: req.ca_keys.clone(),
    };
    let old: Vec<usize> = (0..index.certs.len())
        .filter(|&i| {
            let c = &index.certs[i];
            req.revoke_old
                && c.name == req.name
                && c.kind == CertKind::Client
                && c.status == CertStatus::Valid
        })
        .collect();
    let signer = Signer::load(&d, d.index.signing_ca(), &req.ca_keys)?;
    let issued = issue_client_with(&mut d, &signer, &client, ca::days(req.days)?)?;
    let revoked = if old.is_empty() {
        Vec::new()
    } else {
        mark_revoked(&mut d, &old, &req.ca_keys)?
    };
    d.commit()?;
    Ok(Renewed { issued, revoked })
}

/// Creates a new signing CA and keeps the previous one trusted: `ca.pem` = new + old.
/// The previous CA's certificate (and key, if it was in the directory) move to `cas/`.
pub fn rotate_ca(dir: &Path, opts: &InitOptions) -> Result<CaRecord, PkiError> {
    let mut d = CertsDir::open(dir)?;
    let old = d.index.signing_ca().clone();
    let (old_pem, _) = ca::load_cert(&d, &old)?;
    let (key, cert_pem, record) = new_ca(opts)?;
    ca::check_unique_subject(&d.index, &record.subject)?;

    let layout = d.layout().clone();
    d.put_public(layout.old_ca_cert(&old.serial), old_pem);
    if d.exists(&layout.ca_key()) {
        let old_key = d.read(&layout.ca_key())?.into_owned();
        d.put_secret(layout.old_ca_key(&old.serial), old_key);
    }
    if let Some(o) = d.index.ca_mut(&old.serial) {
        o.state = CaState::Trusted;
    }
    d.index.cas.push(record.clone());
    let signer = Signer::from_parts(record, &cert_der(&cert_pem)?, key)?;
    let crl = signer.sign_crl(&mut d.index, ca::now())?;
    d.put_secret(layout.ca_key(), signer.key.serialize_pem());
    d.put_public(layout.ca_cert(), cert_pem);
    d.rewrite_crls(vec![(signer.record.serial.clone(), crl)]);
    d.rewrite_bundle();
    Ok(d.commit()?.signing_ca().clone())
}

/// Removes older CAs from `ca.pem` and `crl.pem`: all of them, or the one `serial`
/// (prefix) names. Their certificates move to `cas/retired/`, their keys are deleted.
/// Refuses while they still have unexpired, unrevoked certificates (not counting
/// server certificates replaced by a newer one) unless `force`.
pub fn retire_ca(dir: &Path, serial: Option<&str>, force: bool) -> Result<Vec<CaRecord>, PkiError> {
    let mut d = CertsDir::open(dir)?;
    let index = &d.index;
    let targets: Vec<CaRecord> = match serial {
        Some(prefix) => {
            let ca = index.find_ca(prefix)?;
            match ca.state {
                CaState::Signing => {
                    return Err(PkiError::SigningCaNotRetirable {
                        serial: ca.serial.clone(),
                    })
                }
                CaState::Retired => Vec::new(),
                CaState::Trusted => vec![ca.clone()],
            }
        }
        None => {
            let older: Vec<CaRecord> = index
                .cas
                .iter()
                .filter(|c| c.state == CaState::Trusted)
                .cloned()
                .collect();
            if older.is_empty() {
                return Err(PkiError::NothingToRetire);
            }
            older
        }
    };
    let now = ca::now();
    if !force {
        for ca in &targets {
            let live: Vec<String> = index
                .certs
                .iter()
                .filter(|c| {
                    c.issuer_serial == ca.serial
                        && c.status == CertStatus::Valid
                        && !c.is_expired(now)
                        && !index.is_superseded(c)
                })
                .map(|c| format!("{} ({})", c.name, c.serial))
                .collect();
            if !live.is_empty() {
                return Err(PkiError::RetireWouldStrand {
                    ca_serial: ca.serial.clone(),
                    certs: live,
                });
            }
        }
    }
    if targets.is_empty() {
        return Ok(targets);
    }
    for ca in &targets {
        if let Some(c) = d.index.ca_mut(&ca.serial) {
            c.state = CaState::Retired;
        }
        d.archive_ca(&ca.serial);
    }
    d.rewrite_crls(Vec::new());
    d.rewrite_bundle();
    let index = d.commit()?;
    Ok(targets
        .iter()
        .filter_map(|t| index.ca(&t.serial).cloned())
        .collect())
}

/// What `refresh_crls` did for one trusted CA.
#[derive(Debug, Clone)]
pub struct CrlRefresh {
    pub ca: CaRecord,
    /// False when the CA's key was not available and its current CRL was kept.
    pub resigned: bool,
}

/// Re-signs the CRL of every trusted CA whose key is available (in the directory or in
/// `ca_keys`), keeps the others, and rewrites `ca.pem` and `crl.pem` from the index.
pub fn refresh_crls(dir: &Path, ca_keys: &[PathBuf]) -> Result<Vec<CrlRefresh>, PkiError> {
    let mut d = CertsDir::open(dir)?;
    let trusted: Vec<CaRecord> = d.index.trusted_cas().into_iter().cloned().collect();
    for path in ca_keys {
        let key = keys::load_key(path)?;
        let mut belongs = false;
        for ca in &trusted {
            let (_, der) = ca::load_cert(&d, ca)?;
            belongs |= keys::key_matches_spki(&key, &x509_spki(&der, &d.layout().ca_cert_of(ca))?);
        }
        if !belongs {
            return Err(PkiError::CaKeyMismatch {
                path: path.clone(),
                wanted: "any CA in ca.pem".to_owned(),
            });
        }
    }
    let now = ca::now();
    let mut fresh = Vec::new();
    let mut report = Vec::new();
    for ca in &trusted {
        match Signer::load(&d, ca, ca_keys) {
            Ok(signer) => {
                fresh.push((ca.serial.clone(), signer.sign_crl(&mut d.index, now)?));
                report.push(CrlRefresh {
                    ca: ca.clone(),
                    resigned: true,
                });
            }
            Err(PkiError::CaKeyMissing { .. } | PkiError::CaKeyMismatch { .. }) => {
                report.push(CrlRefresh {
                    ca: ca.clone(),
                    resigned: false,
                })
            }
            Err(e) => return Err(e),
        }
    }
    d.rewrite_crls(fresh);
    d.rewrite_bundle();
    d.commit()?;
    Ok(report)
}

/// Self-renewal: a client that holds a valid certificate (`current_leaf_der`, already
/// verified by the TLS layer) sends a CSR and gets a fresh certificate for the same name
/// and role from the current signing CA. The lifetime is never longer than the current
/// certificate's. `dockgate renew` then retires the old one ([`retire_replaced`]).
pub fn sign_renewal(
    dir: &Path,
    ca_key: Option<&Path>,
    current_leaf_der: &[u8],
    csr_pem: &str,
) -> Result<IssuedClient, PkiError> {
    let mut d = CertsDir::open(dir)?;
    let index = &d.index;
    let fingerprint = keys::fingerprint(current_leaf_der);
    let refuse = |r| Err(PkiError::RenewalRefused(r));
    let Some(current) = index
        .certs
        .iter()
        .find(|c| c.fingerprint == fingerprint)
        .cloned()
    else {
        return refuse(RenewalRefusal::UnknownCertificate);
    };
    let now = ca::now();
    if current.kind != CertKind::Client {
        return refuse(RenewalRefusal::NotAClient);
    }
    if current.status == CertStatus::Revoked {
        return refuse(RenewalRefusal::Revoked);
    }
    if current.is_expired(now) || now < current.not_before {
        return refuse(RenewalRefusal::Expired);
    }
    if index
        .ca(&current.issuer_serial)
        .is_none_or(|ca| ca.state == CaState::Retired)
    {
        return refuse(RenewalRefusal::IssuerRetired);
    }
    // Issued certificates are backdated by the same amount, so this keeps the span equal.
    let lifetime = (current.not_after - current.not_before) - ca::BACKDATE;
    if lifetime <= Duration::ZERO {
        return refuse(RenewalRefusal::Expired);
    }
    let offered: Vec<PathBuf> = ca_key.map(Path::to_owned).into_iter().collect();
    let signer = Signer::load(&d, d.index.signing_ca(), &offered)?;
    let req = ClientRequest {
        name: current.name.clone(),
        role: current.role.clone().unwrap_or_default(),
        days: u32::try_from(lifetime.whole_days()).unwrap_or(MAX_DAYS),
        key_type: KeyType::default(),
        csr_pem: Some(csr_pem.to_owned()),
        ca_keys: offered,
    };
    let mut issued = issue_client_with(&mut d, &signer, &req, lifetime)?;
    // The lineage: `pki list` shows it, and only this certificate may
    // retire the one it replaces.
    issued.record.renewed_from = Some(current.serial.clone());
    if let Some(record) = d
        .index
        .certs
        .iter_mut()
        .find(|c| c.serial == issued.record.serial)
    {
        record.renewed_from = Some(current.serial);
    }
    d.commit()?;
    Ok(issued)
}

/// After a self-renewal, the holder of the new certificate (`current_leaf_der`, verified by
/// TLS) retires the one it replaced, named by its SHA-256 fingerprint: the certificate its
/// record says it was renewed from. It is revoked as `pki revoke` does, so the
/// gateway stops accepting it. Retiring one already revoked changes nothing.
pub fn retire_replaced(
    dir: &Path,
    current_leaf_der: &[u8],
    replaced_fingerprint: &str,
) -> Result<CertRecord, PkiError> {
    let mut d = CertsDir::open(dir)?;
    let index = &d.index;
    let refuse = |r| Err(PkiError::RenewalRefused(r));
    let fingerprint = keys::fingerprint(current_leaf_der);
    let Some(current) = index.certs.iter().find(|c| c.fingerprint == fingerprint) else {
        return refuse(RenewalRefusal::UnknownCertificate);
    };
    if current.kind != CertKind::Client {
        return refuse(RenewalRefusal::NotAClient);
    }
    if current.status == CertStatus::Revoked {
        return refuse(RenewalRefusal::Revoked);
    }
    let wanted = replaced_fingerprint.trim().to_ascii_lowercase();
    let Some(i) = index.certs.iter().position(|c| {
        c.fingerprint == wanted
            && c.kind == CertKind::Client
            && c.name == current.name
            && c.role == current.role
            && current.renewed_from.as_deref() == Some(c.serial.as_str())
    }) else {
        return refuse(RenewalRefusal::NotReplaced);
    };
    if index.certs[i].status == CertStatus::Revoked {
        return Ok(index.certs[i].clone());
    }
    let revoked = mark_revoked(&mut d, &[i], &[])?;
    d.commit()?;
    revoked
        .into_iter()
        .next()
        .ok_or(PkiError::RenewalRefused(RenewalRefusal::NotReplaced))
}

/// The index, for listings.
pub fn load_index(dir: &Path) -> Result<Index, PkiError> {
    Index::load(&Layout::new(dir))
}

/// Every certificate in `ca.pem` (the CAs trusted for client certificates).
pub fn load_trust_bundle(dir: &Path) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    Ok(pem::certs(&Layout::new(dir).bundle())?)
}

/// Every CRL in `crl.pem` (one per trusted CA).
pub fn load_crls(dir: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, PkiError> {
    Ok(pem::crls(&Layout::new(dir).crl())?)
}

/// Seconds since the Unix epoch, for archive timestamps.
pub(crate) fn unix_now() -> u64 {
    u64::try_from((OffsetDateTime::now_utc() - OffsetDateTime::UNIX_EPOCH).whole_seconds())
        .unwrap_or(0)
}

/// The key-holder side check for a signed cert: its public key equals `key`'s.
#[cfg(test)]
pub(crate) fn cert_has_key(cert_pem: &str, key: &impl rcgen::PublicKeyData) -> bool {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = cert_der(cert_pem).unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    cert.public_key().subject_public_key.data.as_ref() == key.der_bytes()
}
