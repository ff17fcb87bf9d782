//! The client's identity, taken only from the verified leaf certificate.
//!
//! Nothing a client sends in HTTP headers can change who it is: the identity
//! is fixed when the handshake completes and travels with the connection.

use rustls::pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::*;

/// The authority that granted a verified certificate its identity: the CA
/// whose key the leaf's signature verifies under. Names (subject and issuer
/// DNs) are never evidence, since any CA can copy them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Authority {
    /// One of dockgate's own CAs, those in `ca.pem`.
    #[default]
    Dockgate,
    /// Another CA the gateway accepts (`client_cas`), named by the first 16
    /// hex digits of the SHA-256 of its SubjectPublicKeyInfo.
    External(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// Subject common name.
    pub common_name: Option<String>,
    /// Subject organizational units; `dockgate pki client` records the role here.
    pub organizational_units: Vec<String>,
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
    pub emails: Vec<String>,
    /// Serial number, lowercase hex without leading zero bytes.
    pub serial: String,
    /// SHA-256 of the certificate's DER, lowercase hex.
    pub fingerprint: String,
    /// The issuer's distinguished name, as text.
    pub issuer: String,
    /// Who issued the certificate; set by [`super::TlsState::identify`].
    pub authority: Authority,
    /// The role the certificate records, only when one of dockgate's own
    /// CAs signed it (see [`super::TlsState::identify`]).
    pub recorded_role: Option<String>,
}

impl Identity {
    /// Extracts the names of a certificate rustls has already verified;
    /// its authority and recorded role are [`super::TlsState::identify`]'s.
    pub(super) fn from_verified_leaf(
        der: &CertificateDer<'_>,
        cert: &X509Certificate<'_>,
    ) -> Identity {
        let subject = cert.subject();
        let text = |attr: &AttributeTypeAndValue<'_>| attr.as_str().ok().map(str::to_owned);
        let mut identity = Identity {
            common_name: subject.iter_common_name().next().and_then(text),
            organizational_units: subject
                .iter_organizational_unit()
                .filter_map(text)
                .collect(),
            serial: crate::pki::serial_hex(cert.raw_serial()),
            fingerprint: crate::pki::fingerprint(der),
            issuer: cert.issuer().to_string(),
            ..Identity::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(n) => identity.dns_names.push((*n).to_owned()),
                    GeneralName::URI(u) => identity.uris.push((*u).to_owned()),
                    GeneralName::RFC822Name(e) => identity.emails.push((*e).to_owned()),
                    _ => {}
                }
            }
        }
        identity
    }

    /// A short name for logs: the common name, else the fingerprint.
    pub fn display_name(&self) -> &str {
        self.common_name.as_deref().unwrap_or(&self.fingerprint)
    }
}
