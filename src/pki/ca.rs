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

use super::certs_dir::CertsDir;
use super::error::PkiError;
use super::index::{CaRecord, CaState, CertStatus, Index};
use super::keys;
use super::pem;

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

/// The PEM text and DER of a CA's certificate, as `dir` would leave it, checked against
/// the index fingerprint.
pub(crate) fn load_cert(
    dir: &CertsDir,
    ca: &CaRecord,
) -> Result<(String, CertificateDer<'static>), PkiError> {
    let path = dir.layout().ca_cert_of(ca);
    let text = dir.read_string(&path)?;
    let der = pem::certs_in(text.as_bytes(), &path)?.swap_remove(0);
    if keys::fingerprint(&der) != ca.fingerprint {
        return Err(PkiError::IndexInconsistent {
            path: dir.layout().index(),
            reason: format!(
                "{} is not the certificate of CA {} recorded in the index",
                path.display(),
                ca.serial
            ),
        });
    }
    let block = pem::blocks(&text, "CERTIFICATE")
        .first()
        .map(|b| pem::join([*b]))
        .unwrap_or(text);
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
        dir: &CertsDir,
        ca: &CaRecord,
        offered: &[PathBuf],
    ) -> Result<Self, PkiError> {
        let (_, der) = load_cert(dir, ca)?;
        let (_, x509) =
            X509Certificate::from_der(&der).map_err(|e| PkiError::InvalidCertificate {
                path: dir.layout().ca_cert_of(ca),
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
                let path = dir.layout().ca_key_of(ca);
                if dir.exists(&path) {
                    let k = keys::parse_key(&dir.read(&path)?, &path)?;
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

/// `ca.pem` as the index says: every trusted CA, signing CA first, then older ones.
pub(crate) fn render_bundle(dir: &CertsDir) -> Result<String, PkiError> {
    let mut blocks = Vec::new();
    for ca in dir.index.trusted_cas() {
        blocks.push(load_cert(dir, ca)?.0);
    }
    Ok(pem::join(blocks.iter().map(String::as_str)))
}

/// `crl.pem` as the index says: one CRL per trusted CA, in bundle order; the freshly
/// signed ones in `fresh` (CA serial, PEM), the rest kept from the current file.
pub(crate) fn render_crls(dir: &CertsDir, fresh: &[(String, String)]) -> Result<String, PkiError> {
    let mut current = None;
    let mut out = Vec::new();
    for ca in dir.index.trusted_cas() {
        if let Some((_, pem)) = fresh.iter().find(|(serial, _)| *serial == ca.serial) {
            out.push(pem.clone());
            continue;
        }
        if current.is_none() {
            current = Some(current_crls(dir)?);
        }
        let existing = current.as_deref().unwrap_or_default();
        let (_, der) = load_cert(dir, ca)?;
        let kept = pem::blocks(existing, "X509 CRL")
            .into_iter()
            .find(|block| crl_is_from(block, &der))
            .ok_or_else(|| PkiError::CrlMissing {
                ca_serial: ca.serial.clone(),
                subject: ca.subject.clone(),
            })?;
        out.push(kept.to_owned());
    }
    Ok(pem::join(out.iter().map(String::as_str)))
}

/// The current `crl.pem`; none yet is no CRL.
fn current_crls(dir: &CertsDir) -> Result<String, PkiError> {
    let path = dir.layout().crl();
    if dir.exists(&path) {
        dir.read_string(&path)
    } else {
        Ok(String::new())
    }
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
