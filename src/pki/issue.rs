//! Leaf certificate profiles (server, client), input validation and CSR handling.

use std::net::IpAddr;

use rcgen::{
    CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateSigningRequestDer;
use time::{Duration, OffsetDateTime};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

use super::ca::{self, Signer};
use super::error::PkiError;
use super::index::{CertKind, CertRecord, CertStatus};
use super::keys;

/// X.520 upper bound for CN and OU.
const MAX_NAME: usize = 64;
/// rustls/webpki refuse RSA keys below this size.
const MIN_RSA_BITS: usize = 2048;

/// What a leaf certificate is issued for.
pub(crate) enum Profile<'a> {
    /// EKU serverAuth, the SANs, CN = first SAN.
    Server { sans: &'a [SanType], cn: &'a str },
    /// EKU clientAuth, CN = name, OU = role.
    Client { name: &'a str, role: &'a str },
}

/// A freshly signed leaf and its index entry.
pub(crate) struct Leaf {
    pub cert_pem: String,
    pub record: CertRecord,
    /// `not_after` was cut back to the issuing CA's expiry.
    pub capped: bool,
}

pub(crate) fn issue(
    signer: &Signer,
    profile: Profile<'_>,
    public_key: &impl PublicKeyData,
    lifetime: Duration,
    now: OffsetDateTime,
) -> Result<Leaf, PkiError> {
    let (not_before, not_after, capped) =
        ca::validity(now, lifetime, Some(signer.record.not_after));
    let mut params = CertificateParams::default();
    params.serial_number = Some(keys::new_serial()?);
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let (name, role, kind) = match profile {
        Profile::Server { sans, cn } => {
            params.distinguished_name = ca::subject(cn, None);
            params.subject_alt_names = sans.to_vec();
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            (cn, None, CertKind::Server)
        }
        Profile::Client { name, role } => {
            params.distinguished_name = ca::subject(name, Some(role));
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            (name, Some(role.to_owned()), CertKind::Client)
        }
    };
    let cert = params
        .signed_by(public_key, &signer.issuer, &signer.key)
        .map_err(PkiError::sign("sign the certificate"))?;
    let f = ca::facts(cert.der(), std::path::Path::new("(new certificate)"))?;
    Ok(Leaf {
        cert_pem: cert.pem(),
        record: CertRecord {
            name: name.to_owned(),
            role,
            kind,
            serial: f.serial,
            issuer_serial: signer.record.serial.clone(),
            not_before: f.not_before,
            not_after: f.not_after,
            status: CertStatus::Valid,
            revoked_at: None,
            fingerprint: f.fingerprint,
            renewed_from: None,
        },
        capped,
    })
}

/// The public key of a PEM CSR whose self-signature verifies (proof the requester holds
/// the private key). Subject and requested extensions are ignored on purpose.
pub(crate) fn csr_public_key(csr_pem: &str) -> Result<rcgen::SubjectPublicKeyInfo, PkiError> {
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).map_err(|e| {
        PkiError::InvalidCsr {
            reason: format!("no PEM \"CERTIFICATE REQUEST\" block found ({e})"),
        }
    })?;
    let (_, csr) =
        X509CertificationRequest::from_der(der.as_ref()).map_err(|e| PkiError::InvalidCsr {
            reason: format!("not a PKCS#10 request: {e}"),
        })?;
    let spki = &csr.certification_request_info.subject_pki;
    if let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = spki.parsed() {
        if rsa.key_size() < MIN_RSA_BITS {
            return Err(PkiError::InvalidCsr {
                reason: format!(
                    "its RSA key has {} bits; TLS peers refuse fewer than {MIN_RSA_BITS}",
                    rsa.key_size()
                ),
            });
        }
    }
    csr.verify_signature().map_err(|e| PkiError::InvalidCsr {
        reason: format!("its signature does not verify ({e})"),
    })?;
    rcgen::SubjectPublicKeyInfo::from_der(spki.raw).map_err(|e| PkiError::InvalidCsr {
        reason: format!("unsupported public key ({e})"),
    })
}

/// A client name (CN): printable, trimmed, at most 64 characters.
pub(crate) fn check_name(value: &str) -> Result<(), PkiError> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.chars().count() > MAX_NAME {
        Some("it is longer than 64 characters")
    } else if value.chars().any(char::is_control) {
        Some("it contains control characters")
    } else if value.trim() != value {
        Some("it starts or ends with white space")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PkiError::InvalidName {
            field: "--name",
            value: value.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// A role (OU): what the gateway's policy keys on, so kept to `[A-Za-z0-9][A-Za-z0-9_.-]*`.
pub(crate) fn check_role(value: &str) -> Result<(), PkiError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.len() > MAX_NAME {
        Some("it is longer than 64 characters")
    } else if !value.starts_with(|c: char| c.is_ascii_alphanumeric()) || !value.chars().all(ok_char)
    {
        Some("use letters, digits, '_', '.' and '-', starting with a letter or digit")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PkiError::InvalidName {
            field: "--role",
            value: value.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// An IP address (IPv6 may be bracketed) or a DNS name, optionally `*.`-wildcarded.
pub(crate) fn parse_san(value: &str) -> Result<SanType, PkiError> {
    let invalid = |reason| PkiError::InvalidSan {
        value: value.to_owned(),
        reason,
    };
    let v = value.trim();
    let unbracketed = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(v);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    if v.contains("://") || v.contains('/') {
        return Err(invalid("give a host name or IP address, not a URL"));
    }
    if v.contains(':') {
        return Err(invalid("give the host without a port"));
    }
    let name = v.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err(invalid("a DNS name has 1 to 253 characters"));
    }
    let labels = name.strip_prefix("*.").unwrap_or(&name);
    for label in labels.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(invalid(
                "not an IP address, and not a DNS name (labels of letters, digits, '-', at most 63 long)",
            ));
        }
    }
    let ia5 = name.as_str().try_into().map_err(|_| invalid("not ASCII"))?;
    Ok(SanType::DnsName(ia5))
}

/// The text form of a SAN, for CNs and messages.
pub(crate) fn san_text(san: &SanType) -> String {
    match san {
        SanType::IpAddress(ip) => ip.to_string(),
        SanType::DnsName(name) => name.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sans_detect_ip_and_dns() {
        assert!(matches!(parse_san("10.0.0.1"), Ok(SanType::IpAddress(_))));
        assert!(matches!(parse_san("[::1]"), Ok(SanType::IpAddress(_))));
        assert!(matches!(parse_san("::1"), Ok(SanType::IpAddress(_))));
        let Ok(SanType::DnsName(n)) = parse_san("Gateway.Example.") else {
            panic!("dns expected")
        };
        assert_eq!(n.as_str(), "gateway.example");
        assert!(matches!(
            parse_san("*.docker.internal"),
            Ok(SanType::DnsName(_))
        ));
        for bad in [
            "",
            "tcp://host:2376",
            "host:2376",
            "a..b",
            "-a.b",
            "*",
            "a b",
            "ünï.de",
        ] {
            assert!(parse_san(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn names_and_roles_are_checked() {
        assert!(check_name("ci runner #1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name(" x").is_err());
        assert!(check_name("a\nb").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_role("ci-deploy.v2").is_ok());
        assert!(check_role("-ci").is_err());
        assert!(check_role("ci deploy").is_err());
        assert!(check_role("").is_err());
    }

    #[test]
    fn csr_must_verify() {
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = CertificateParams::new(vec!["ignored.example".to_owned()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let spki = csr_public_key(&csr).unwrap();
        assert_eq!(spki.der_bytes(), key.public_key_raw());

        // Flip a bit inside the base64 body: the signature (or parsing) must fail.
        let mut tampered = csr.clone().into_bytes();
        let pos = tampered.len() / 2;
        tampered[pos] = if tampered[pos] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(csr_public_key(&tampered).is_err());
        assert!(csr_public_key("not a csr").is_err());
        let weak = csr_public_key(include_str!("testdata/rsa-1024.csr")).unwrap_err();
        assert!(weak.to_string().contains("1024 bits"), "{weak}");
        assert!(csr_public_key(include_str!("testdata/rsa-2048.csr")).is_ok());
    }
}
