//! Key generation and loading, serial numbers, fingerprints.

use std::fmt;
use std::path::Path;

use rcgen::{KeyPair, SerialNumber, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::PrivateKeyDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::error::PkiError;
use super::pem::{self, PemError};

/// The kind of key to generate for a CA, server or client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    /// ECDSA on NIST P-256 with SHA-256: small, fast, accepted everywhere.
    #[default]
    #[value(name = "ecdsa-p256")]
    EcdsaP256,
    /// RSA 2048: cannot be generated here; bring the key (--import-key for a CA, --csr for a client).
    #[value(name = "rsa-2048")]
    Rsa2048,
    /// RSA 4096: cannot be generated here; bring the key (--import-key for a CA, --csr for a client).
    #[value(name = "rsa-4096")]
    Rsa4096,
    /// Ed25519.
    #[value(name = "ed25519")]
    Ed25519,
}

impl KeyType {
    pub(crate) fn rsa_bits(self) -> Option<u32> {
        match self {
            Self::Rsa2048 => Some(2048),
            Self::Rsa4096 => Some(4096),
            Self::EcdsaP256 | Self::Ed25519 => None,
        }
    }

    /// A fresh key pair; RSA is refused because ring cannot generate RSA keys.
    pub(crate) fn generate(self) -> Result<KeyPair, PkiError> {
        let alg = match self {
            Self::EcdsaP256 => &PKCS_ECDSA_P256_SHA256,
            Self::Ed25519 => &PKCS_ED25519,
            Self::Rsa2048 | Self::Rsa4096 => {
                return Err(PkiError::KeyGenerationUnsupported { key_type: self })
            }
        };
        KeyPair::generate_for(alg).map_err(PkiError::sign("generate a key pair"))
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa4096 => "rsa-4096",
            Self::Ed25519 => "ed25519",
        })
    }
}

/// Reads a PKCS#8 private key (PEM) that rcgen/ring can sign with.
pub(crate) fn load_key(path: &Path) -> Result<KeyPair, PkiError> {
    parse_key(&pem::read(path)?, path)
}

/// [`load_key`] for the text `pem` of the file at `path`.
pub(crate) fn parse_key(pem: &[u8], path: &Path) -> Result<KeyPair, PkiError> {
    let der = pem::key_in(pem, path).map_err(|e| match e {
        PemError::Invalid(path, reason) => PkiError::InvalidKey {
            path,
            reason: format!("no PEM private key found ({reason})"),
        },
        other => other.into(),
    })?;
    let hint = match &der {
        PrivateKeyDer::Pkcs8(_) => None,
        PrivateKeyDer::Pkcs1(_) => Some("it is a PKCS#1 \"RSA PRIVATE KEY\""),
        PrivateKeyDer::Sec1(_) => Some("it is a SEC1 \"EC PRIVATE KEY\""),
        _ => Some("it is not PKCS#8"),
    };
    if let Some(hint) = hint {
        return Err(PkiError::InvalidKey {
            path: path.to_owned(),
            reason: format!(
                "{hint}; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt -in {p} -out {p}.p8`",
                p = path.display()
            ),
        });
    }
    KeyPair::try_from(&der).map_err(|e| PkiError::InvalidKey {
        path: path.to_owned(),
        reason: format!(
            "unsupported key (ECDSA P-256/P-384, Ed25519 or RSA 2048-8192 expected): {e}"
        ),
    })
}

/// True when `key` is the private half of the SubjectPublicKeyInfo `spki_der`.
pub(crate) fn key_matches_spki(key: &KeyPair, spki_der: &[u8]) -> bool {
    use x509_parser::prelude::FromDer;
    match SubjectPublicKeyInfo::from_der(spki_der) {
        Ok((_, spki)) => spki.subject_public_key.data.as_ref() == key.public_key_raw(),
        Err(_) => false,
    }
}

/// Human description of a public key, e.g. `ecdsa-p256` or `rsa-4096`.
pub(crate) fn describe_spki(spki: &SubjectPublicKeyInfo<'_>) -> String {
    use x509_parser::oid_registry::{OID_EC_P256, OID_NIST_EC_P384};
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("rsa-{}", rsa.key_size()),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            match curve {
                Some(c) if c == OID_EC_P256 => "ecdsa-p256".to_owned(),
                Some(c) if c == OID_NIST_EC_P384 => "ecdsa-p384".to_owned(),
                _ => "ecdsa".to_owned(),
            }
        }
        _ if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 => {
            "ed25519".to_owned()
        }
        _ => spki.algorithm.algorithm.to_id_string(),
    }
}

/// A random, positive 16-byte serial: the top byte is in 0x40..=0x7f so the
/// DER INTEGER is exactly 16 bytes (no sign padding, no stripped zeros).
pub(crate) fn new_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::sign("draw a random serial")(rcgen::Error::RingUnspecified))?;
    bytes[0] = (bytes[0] & 0x3f) | 0x40;
    Ok(SerialNumber::from_slice(&bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Lower-case hex of an x509 serial with leading zero bytes removed: the
/// form the index, `pki list` and the gateway's audit lines all use.
pub fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex(&raw[start..])
}

pub(crate) fn parse_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// SHA-256 of a certificate's DER, lower-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, der).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_positive_sixteen_bytes() {
        for _ in 0..64 {
            let s = new_serial().unwrap();
            let b = s.to_bytes();
            assert_eq!(b.len(), 16);
            assert!((0x40..=0x7f).contains(&b[0]), "{:x}", b[0]);
        }
    }

    #[test]
    fn hex_round_trips_and_strips_leading_zeros() {
        assert_eq!(hex(&[0x00, 0xab, 0x01]), "00ab01");
        assert_eq!(serial_hex(&[0x00, 0xab, 0x01]), "ab01");
        assert_eq!(serial_hex(&[0x00]), "00");
        assert_eq!(parse_hex("00ab01"), Some(vec![0, 0xab, 1]));
        assert_eq!(parse_hex("abc"), None);
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn rsa_generation_is_refused_with_a_way_out() {
        let err = KeyType::Rsa4096.generate().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("rsa_keygen_bits:4096"), "{msg}");
        assert!(msg.contains("--import-key"), "{msg}");
        assert!(KeyType::EcdsaP256.generate().is_ok());
        assert!(KeyType::Ed25519.generate().is_ok());
    }

    #[test]
    fn generated_key_matches_its_own_spki_only() {
        let a = KeyType::EcdsaP256.generate().unwrap();
        let b = KeyType::EcdsaP256.generate().unwrap();
        assert!(key_matches_spki(&a, &a.public_key_der()));
        assert!(!key_matches_spki(&a, &b.public_key_der()));
    }
}
