//! Reading PEM files: certificates, private keys and CRLs.
//!
//! The gateway ([`crate::tls`]), `dockgate renew` and `dockgate pki` read the same files,
//! so they read them with one loader: the same rules (a certificate file holds at least
//! one certificate, a file that is not PEM is refused, never skipped) and errors that
//! name the file.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// Why a PEM file could not be loaded.
#[derive(Debug)]
pub enum PemError {
    /// The file could not be read.
    Read(PathBuf, io::Error),
    /// The file is not PEM, or a block in it does not decode.
    Invalid(PathBuf, String),
    /// The file holds none of what was asked for.
    Empty(PathBuf, &'static str),
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            Self::Invalid(p, e) => write!(f, "{} is not valid PEM: {e}", p.display()),
            Self::Empty(p, what) => write!(f, "{} holds no {what}", p.display()),
        }
    }
}

impl std::error::Error for PemError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read(_, e) => Some(e),
            Self::Invalid(..) | Self::Empty(..) => None,
        }
    }
}

pub fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(path).map_err(|e| PemError::Read(path.to_owned(), e))
}

/// Every certificate in the file at `path`, in file order; at least one.
pub fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    certs_in(&read(path)?, path)
}

/// Every certificate in `pem`, read from `path`; at least one.
pub fn certs_in(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Invalid(path.to_owned(), e.to_string()))?;
    if certs.is_empty() {
        return Err(PemError::Empty(path.to_owned(), "certificate"));
    }
    Ok(certs)
}

/// The first private key in the file at `path` (PKCS#8, PKCS#1 or SEC1).
pub fn key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    key_in(&read(path)?, path)
}

/// The first private key in `pem`, read from `path`.
pub fn key_in(pem: &[u8], path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| PemError::Invalid(path.to_owned(), e.to_string()))
}

/// Every CRL in the file at `path`; none is not an error.
pub fn crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, PemError> {
    CertificateRevocationListDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Invalid(path.to_owned(), e.to_string()))
}

/// Like [`crls`], but a missing file holds no CRL (a hand-made directory, as in Docker's
/// TLS guide, revokes nothing); an unreadable one is still an error.
pub fn crls_if_present(
    path: &Path,
) -> Result<Vec<CertificateRevocationListDer<'static>>, PemError> {
    match crls(path) {
        Err(PemError::Read(_, e)) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        other => other,
    }
}

/// The PEM blocks labelled `label` in `text`, each from its BEGIN line to its END line.
pub(crate) fn blocks<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(&begin) {
        let Some(e) = rest[b..].find(&end) else { break };
        let stop = b + e + end.len();
        out.push(&rest[b..stop]);
        rest = &rest[stop..];
    }
    out
}

/// Joins PEM blocks with one newline after each.
pub(crate) fn join<'a>(blocks: impl IntoIterator<Item = &'a str>) -> String {
    blocks.into_iter().fold(String::new(), |mut s, b| {
        s.push_str(b.trim_end());
        s.push('\n');
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_blocks_split_and_join() {
        let text = "junk\n-----BEGIN X509 CRL-----\nAA\n-----END X509 CRL-----\n\
                    -----BEGIN CERTIFICATE-----\nBB\n-----END CERTIFICATE-----\n\
                    -----BEGIN X509 CRL-----\nCC\n-----END X509 CRL-----";
        let blocks = blocks(text, "X509 CRL");
        assert_eq!(blocks.len(), 2);
        assert!(blocks[1].contains("CC"));
        assert_eq!(
            join(blocks),
            "-----BEGIN X509 CRL-----\nAA\n-----END X509 CRL-----\n\
             -----BEGIN X509 CRL-----\nCC\n-----END X509 CRL-----\n"
        );
    }

    #[test]
    fn errors_name_the_file_and_what_is_missing() {
        let dir = super::super::tests::tempdir("pem");
        let missing = dir.join("ca.pem");
        let err = certs(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("cannot read {}: ", missing.display())),
            "{err}"
        );
        assert!(crls_if_present(&dir.join("crl.pem")).unwrap().is_empty());
        assert!(matches!(
            crls(&dir.join("crl.pem")),
            Err(PemError::Read(..))
        ));

        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not pem at all\n").unwrap();
        let err = certs(&empty).unwrap_err().to_string();
        assert_eq!(err, format!("{} holds no certificate", empty.display()));
        assert!(matches!(key(&empty), Err(PemError::Invalid(..))));
    }
}
