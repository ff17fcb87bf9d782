//! CA certificates: creation, loading a CA to sign with, the trust bundle and the CRL set.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::error::PkiError;
use super::index::{CaRecord, CaState, CertStatus, Index};
use super::keys;
use super::store::{self, Layout};

/// How long a CRL is fresh; every revoke and `refresh-crl` signs a new one.
pub(crate) const CRL_LIFETIME: Duration = Duration::days(7);
/// Certificates start this long before "now" to absorb clock skew between hosts.
pub(crate) const BACKDATE: Duration = Duration::minutes(5);
const ORGANIZATION: &str = "dockgate";

/// Current time truncated to whole seconds, as X.509 stores it.
pub(crate) fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// `(not_before, not_after, capped)`; `not_after` never passes `cap` (the issuer's expiry).
pub(crate) fn validity(
    now: OffsetDateTime,
    lifetime: Duration,
    cap: Option<OffsetDateTime>,
) -> (OffsetDateTime, OffsetDateTime, bool) {
    let not_after = now + lifetime;
    match cap {
        Some(cap) if not_after > cap => (now - BACKDATE, cap, true),
        _ => (now - BACKDATE, not_after, false),
    }
}

pub(crate) fn days(days: u32) -> Result<Duration, PkiError> {
    if days == 0 || days > super::MAX_DAYS {
        return Err(PkiError::InvalidDays { days });
    }
    Ok(Duration::days(i64::from(days)))
}

/// Subject `CN=<cn>, O=dockgate[, OU=<ou>]`.
pub(crate) fn subject(cn: &str, ou: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn.push(DnType::OrganizationName, ORGANIZATION);
    if let Some(ou) = ou {
        dn.push(DnType::OrganizationalUnitName, ou);
    }
    dn
}

/// Facts read back from an issued certificate, so the index says what the DER says.
pub(crate) struct CertFacts {
    pub serial: String,
    pub subject_cn: String,
    pub key_type: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub fingerprint: String,
}

pub(crate) fn facts(der: &[u8], path: &Path) -> Result<CertFacts, PkiError> {
    let bad = |reason: String| PkiError::InvalidCertificate {
        path: path.to_owned(),
        reason,
    };
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
    let subject_cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok(CertFacts {
        serial: keys::serial_hex(cert.raw_serial()),
        subject_cn,
        key_type: keys::describe_spki(cert.public_key()),
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        fingerprint: keys::fingerprint(der),
    })
}

/// A new self-signed CA: CA:true pathlen 0, keyCertSign + cRLSign.
/// Without `cn` the subject is `dockgate CA <date> <first serial digits>`.
pub(crate) fn create(
    key: &KeyPair,
    cn: Option<&str>,
    lifetime: Duration,
) -> Result<(String, CaRecord), PkiError> {
    let now = now();
    let (not_before, not_after, _) = validity(now, lifetime, None);
    let serial = keys::new_serial()?;
    let cn = match cn {
        Some(cn) => cn.to_owned(),
        None => default_cn(now, &serial.to_bytes()),
    };
    let mut params = CertificateParams::default();
    params.serial_number = Some(serial);
    params.distinguished_name = subject(&cn, None);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params
        .self_signed(key)
        .map_err(PkiError::sign("self-sign the CA certificate"))?;
    let f = facts(cert.der(), Path::new("(new CA)"))?;
    let record = CaRecord {
        serial: f.serial,
        subject: f.subject_cn,
        key_type: f.key_type,
        not_before: f.not_before,
        not_after: f.not_after,
        state: CaState::Signing,
        crl_number: 0,
        fingerprint: f.fingerprint,
    };
    Ok((cert.pem(), record))
}

/// The date plus the first serial digits, so two CAs made on one day differ
/// (CRLs are matched to CAs by name).
fn default_cn(now: OffsetDateTime, serial_hint: &[u8]) -> String {
    format!(
        "dockgate CA {:04}-{:02}-{:02} {}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        keys::hex(&serial_hint[..4.min(serial_hint.len())])
    )
}

/// Where the certificate of a CA in the index lives.
pub(crate) fn cert_path(layout: &Layout, ca: &CaRecord) -> PathBuf {
    match ca.state {
        CaState::Signing => layout.ca_cert(),
        CaState::Trusted => layout.old_ca_cert(&ca.serial),
        CaState::Retired => layout.retired_ca_cert(&ca.serial),
    }
}

/// Where the private key of a CA is kept when it is kept in the directory.
pub(crate) fn key_path(layout: &Layout, ca: &CaRecord) -> PathBuf {
    match ca.state {
        CaState::Signing => layout.ca_key(),
        CaState::Trusted | CaState::Retired => layout.old_ca_key(&ca.serial),
    }
}

/// The PEM text and DER of a CA's certificate, checked against the index fingerprint.
pub(crate) fn load_cert(
    layout: &Layout,
    ca: &CaRecord,
) -> Result<(String, CertificateDer<'static>), PkiError> {
    let path = cert_path(layout, ca);
    let pem = store::read_string(&path)?;
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::InvalidPem {
        path: path.clone(),
        reason: format!("no certificate found ({e})"),
    })?;
    if keys::fingerprint(&der) != ca.fingerprint {
        return Err(PkiError::IndexInconsistent {
            path: layout.index(),
            reason: format!(
                "{} is not the certificate of CA {} recorded in the index",
                path.display(),
                ca.serial
            ),
        });
    }
    let block = store::pem_blocks(&pem, "CERTIFICATE")
        .first()
        .map(|b| store::join_pem([*b]))
        .unwrap_or(pem);
    Ok((block, der))
}

/// A CA ready to sign: its certificate (as rcgen's issuer) and private key.
pub(crate) struct Signer {
    pub record: CaRecord,
    pub issuer: rcgen::Certificate,
    pub key: KeyPair,
}

impl Signer {
    /// Loads CA `ca`'s key from the `--ca-key` files in `offered` (matched by public key)
    /// or from its place in the directory.
    pub(crate) fn load(
        layout: &Layout,
        ca: &CaRecord,
        offered: &[PathBuf],
    ) -> Result<Self, PkiError> {
        let (_, der) = load_cert(layout, ca)?;
        let (_, x509) =
            X509Certificate::from_der(&der).map_err(|e| PkiError::InvalidCertificate {
                path: cert_path(layout, ca),
                reason: e.to_string(),
            })?;
        let spki = x509.public_key().raw;
        let mut key = None;
        for path in offered {
            let candidate = keys::load_key(path)?;
            if keys::key_matches_spki(&candidate, spki) {
                key = Some(candidate);
                break;
            }
        }
        let key = match key {
            Some(k) => k,
            None => {
                let path = key_path(layout, ca);
                if path.exists() {
                    let k = keys::load_key(&path)?;
                    if !keys::key_matches_spki(&k, spki) {
                        return Err(PkiError::KeyMismatch {
                            path,
                            what: format!("CA {} (\"{}\")", ca.serial, ca.subject),
                        });
                    }
                    k
                } else if let Some(first) = offered.first() {
                    return Err(PkiError::CaKeyMismatch {
                        path: first.clone(),
                        wanted: format!("CA {} (\"{}\")", ca.serial, ca.subject),
                    });
                } else {
                    return Err(PkiError::CaKeyMissing {
                        ca_serial: ca.serial.clone(),
                        subject: ca.subject.clone(),
                        expected: path,
                    });
                }
            }
        };
        Self::from_parts(ca.clone(), &der, key)
    }

    /// A signer from a CA certificate and its (already matched) key.
    pub(crate) fn from_parts(
        record: CaRecord,
        der: &CertificateDer<'_>,
        key: KeyPair,
    ) -> Result<Self, PkiError> {
        let issuer = CertificateParams::from_ca_cert_der(der)
            .and_then(|p| p.self_signed(&key))
            .map_err(PkiError::sign("load the CA certificate for signing"))?;
        Ok(Self {
            record,
            issuer,
            key,
        })
    }

    /// Signs this CA's CRL listing every certificate it issued that the index marks revoked.
    /// Bumps the CA's `crl_number` in `index`.
    pub(crate) fn sign_crl(
        &self,
        index: &mut Index,
        now: OffsetDateTime,
    ) -> Result<String, PkiError> {
        let mut revoked = Vec::new();
        for c in index
            .certs
            .iter()
            .filter(|c| c.issuer_serial == self.record.serial && c.status == CertStatus::Revoked)
        {
            let serial = keys::parse_hex(&c.serial).unwrap_or_default();
            revoked.push(RevokedCertParams {
                serial_number: SerialNumber::from_slice(&serial),
                revocation_time: c.revoked_at.unwrap_or(now),
                reason_code: None,
                invalidity_date: None,
            });
        }
        let record = index
            .ca_mut(&self.record.serial)
            .ok_or_else(|| PkiError::UnknownCa {
                serial: self.record.serial.clone(),
            })?;
        record.crl_number += 1;
        let params = CertificateRevocationListParams {
            this_update: now,
            next_update: now + CRL_LIFETIME,
            crl_number: SerialNumber::from(record.crl_number),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        params
            .signed_by(&self.issuer, &self.key)
            .and_then(|crl| crl.pem())
            .map_err(PkiError::sign("sign the CRL"))
    }
}

/// Rewrites `ca.pem` from the index: every trusted CA, signing CA first, then older ones.
pub(crate) fn write_bundle(layout: &Layout, index: &Index) -> Result<String, PkiError> {
    let mut blocks = Vec::new();
    for ca in index.trusted_cas() {
        blocks.push(load_cert(layout, ca)?.0);
    }
    let bundle = store::join_pem(blocks.iter().map(String::as_str));
    store::write_atomic(&layout.bundle(), bundle.as_bytes(), store::PUBLIC)?;
    Ok(bundle)
}

/// Rewrites `crl.pem` with one CRL per trusted CA, in bundle order: the freshly signed
/// ones in `fresh` (CA serial, PEM), the rest kept from the current file.
pub(crate) fn write_crls(
    layout: &Layout,
    index: &Index,
    fresh: &[(String, String)],
) -> Result<(), PkiError> {
    let path = layout.crl();
    let current = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(PkiError::io("read", path, e)),
    };
    let existing = store::pem_blocks(&current, "X509 CRL");
    let mut out = Vec::new();
    for ca in index.trusted_cas() {
        if let Some((_, pem)) = fresh.iter().find(|(serial, _)| *serial == ca.serial) {
            out.push(pem.clone());
            continue;
        }
        let (_, der) = load_cert(layout, ca)?;
        let kept = existing
            .iter()
            .find(|block| crl_is_from(block, &der))
            .ok_or_else(|| PkiError::CrlMissing {
                ca_serial: ca.serial.clone(),
                subject: ca.subject.clone(),
            })?;
        out.push(kept.to_string());
    }
    let text = store::join_pem(out.iter().map(String::as_str));
    store::write_atomic(&path, text.as_bytes(), store::PUBLIC)
}

/// True when the PEM CRL `block` was issued and signed by the CA certificate `ca_der`.
fn crl_is_from(block: &str, ca_der: &[u8]) -> bool {
    let Ok(crl_der) = CertificateRevocationListDer::from_pem_slice(block.as_bytes()) else {
        return false;
    };
    let (Ok((_, crl)), Ok((_, ca))) = (
        CertificateRevocationList::from_der(&crl_der),
        X509Certificate::from_der(ca_der),
    ) else {
        return false;
    };
    crl.issuer().as_raw() == ca.subject().as_raw() && crl.verify_signature(ca.public_key()).is_ok()
}

/// Makes sure no trusted CA already carries `cn` (CRLs are matched by issuer name).
pub(crate) fn check_unique_subject(index: &Index, cn: &str) -> Result<(), PkiError> {
    if index
        .cas
        .iter()
        .any(|c| c.state != CaState::Retired && c.subject == cn)
    {
        return Err(PkiError::DuplicateCaSubject {
            subject: cn.to_owned(),
        });
    }
    Ok(())
}
