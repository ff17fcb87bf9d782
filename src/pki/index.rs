//! `index.toml`: the record of every CA and certificate issued from a certs directory.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::error::PkiError;
use super::layout::Layout;

const VERSION: u32 = 1;

const HEADER: &str = "\
# dockgate certificate index, rewritten by `dockgate pki`. Times are UTC (RFC 3339),
# serials and SHA-256 fingerprints lower-case hex. Entries keep the order they were issued in.
# Edit with care: `status` and `state` drive ca.pem and crl.pem the next time they are rewritten.

";

/// The whole index: CAs first, then issued certificates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub version: u32,
    #[serde(default, rename = "ca")]
    pub cas: Vec<CaRecord>,
    #[serde(default, rename = "cert", skip_serializing_if = "Vec::is_empty")]
    pub certs: Vec<CertRecord>,
}

/// Where a CA stands in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaState {
    /// Signs new certificates; in the trust bundle. Exactly one CA is signing.
    Signing,
    /// Replaced by `rotate-ca` but still in the trust bundle.
    Trusted,
    /// Removed from the trust bundle by `retire-ca`.
    Retired,
}

/// One CA certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaRecord {
    pub serial: String,
    pub subject: String,
    pub key_type: String,
    #[serde(with = "datetime")]
    pub not_before: OffsetDateTime,
    #[serde(with = "datetime")]
    pub not_after: OffsetDateTime,
    pub state: CaState,
    /// Number of the last CRL this CA signed (RFC 5280 cRLNumber, increases by one per CRL).
    pub crl_number: u64,
    pub fingerprint: String,
}

/// What an issued certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertKind {
    /// The gateway's TLS server certificate (EKU serverAuth).
    Server,
    /// A Docker client identity (EKU clientAuth, OU = role).
    Client,
}

/// Revocation status as recorded; expiry is computed from `not_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertStatus {
    Valid,
    Revoked,
}

/// One issued server or client certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertRecord {
    /// Client: the CN given with `--name`. Server: the first SAN.
    pub name: String,
    /// Client only: the role (subject OU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub kind: CertKind,
    pub serial: String,
    /// Serial of the CA that signed it.
    pub issuer_serial: String,
    #[serde(with = "datetime")]
    pub not_before: OffsetDateTime,
    #[serde(with = "datetime")]
    pub not_after: OffsetDateTime,
    pub status: CertStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_datetime"
    )]
    pub revoked_at: Option<OffsetDateTime>,
    pub fingerprint: String,
    /// Client, self-renewed: the serial of the certificate it replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewed_from: Option<String>,
}

impl CertRecord {
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now >= self.not_after
    }
}

impl Index {
    pub(crate) fn new(ca: CaRecord) -> Self {
        Self {
            version: VERSION,
            cas: vec![ca],
            certs: Vec::new(),
        }
    }

    pub(crate) fn load(layout: &Layout) -> Result<Self, PkiError> {
        let path = layout.index();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PkiError::NotInitialized {
                    dir: layout.dir().to_owned(),
                })
            }
            Err(e) => return Err(PkiError::io("read", path, e)),
        };
        let index: Index = toml::from_str(&text).map_err(|e| PkiError::IndexParse {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        index
            .check()
            .map_err(|reason| PkiError::IndexInconsistent { path, reason })?;
        Ok(index)
    }

    /// The file's text: a comment header, then the TOML. Serialising is stable, so an
    /// unchanged index is rewritten byte for byte.
    pub(crate) fn to_toml(&self, layout: &Layout) -> Result<String, PkiError> {
        let body = toml::to_string(self).map_err(|e| PkiError::IndexParse {
            path: layout.index(),
            reason: e.to_string(),
        })?;
        Ok(format!("{HEADER}{body}"))
    }

    fn check(&self) -> Result<(), String> {
        if self.version != VERSION {
            return Err(format!(
                "version {} is not supported (this dockgate writes version {VERSION})",
                self.version
            ));
        }
        let signing = self
            .cas
            .iter()
            .filter(|c| c.state == CaState::Signing)
            .count();
        if signing != 1 {
            return Err(format!(
                "exactly one [[ca]] must have state = \"signing\", found {signing}"
            ));
        }
        for serial in self
            .cas
            .iter()
            .map(|c| &c.serial)
            .chain(self.certs.iter().map(|c| &c.serial))
        {
            if super::keys::parse_hex(serial).is_none() {
                return Err(format!("serial {serial:?} is not lower-case hex"));
            }
        }
        for cert in &self.certs {
            if self.ca(&cert.issuer_serial).is_none() {
                return Err(format!(
                    "certificate {} names issuer_serial {} but no [[ca]] has that serial",
                    cert.serial, cert.issuer_serial
                ));
            }
            if cert.kind == CertKind::Client && cert.role.is_none() {
                return Err(format!("client certificate {} has no role", cert.serial));
            }
        }
        Ok(())
    }

    pub(crate) fn signing_ca(&self) -> &CaRecord {
        // `check` guarantees exactly one.
        self.cas
            .iter()
            .find(|c| c.state == CaState::Signing)
            .unwrap_or(&self.cas[0])
    }

    /// CAs in the trust bundle, newest first: the signing CA, then trusted ones by age.
    pub(crate) fn trusted_cas(&self) -> Vec<&CaRecord> {
        let mut older: Vec<&CaRecord> = self
            .cas
            .iter()
            .filter(|c| c.state == CaState::Trusted)
            .collect();
        older.sort_by_key(|c| std::cmp::Reverse(c.not_before));
        std::iter::once(self.signing_ca()).chain(older).collect()
    }

    /// A server certificate other than the newest: `server-cert.pem` no longer holds it.
    pub fn is_superseded(&self, cert: &CertRecord) -> bool {
        cert.kind == CertKind::Server
            && self
                .certs
                .iter()
                .filter(|c| c.kind == CertKind::Server)
                .max_by_key(|c| c.not_before)
                .is_some_and(|newest| newest.serial != cert.serial)
    }

    pub(crate) fn ca(&self, serial: &str) -> Option<&CaRecord> {
        self.cas.iter().find(|c| c.serial == serial)
    }

    pub(crate) fn ca_mut(&mut self, serial: &str) -> Option<&mut CaRecord> {
        self.cas.iter_mut().find(|c| c.serial == serial)
    }

    /// Index of the one certificate whose serial starts with `prefix` (case-insensitive).
    pub(crate) fn find_serial(&self, prefix: &str) -> Result<usize, PkiError> {
        let prefix = prefix.trim().trim_start_matches("0x").to_ascii_lowercase();
        let matches: Vec<usize> = self
            .certs
            .iter()
            .enumerate()
            .filter(|(_, c)| !prefix.is_empty() && c.serial.starts_with(&prefix))
            .map(|(i, _)| i)
            .collect();
        match matches.as_slice() {
            [] => Err(PkiError::NoSuchCertificate {
                query: format!("serial {prefix}"),
            }),
            [one] => Ok(*one),
            many => Err(PkiError::AmbiguousSerial {
                prefix,
                matches: many.iter().map(|&i| self.certs[i].serial.clone()).collect(),
            }),
        }
    }

    /// The CA whose serial starts with `prefix`.
    pub(crate) fn find_ca(&self, prefix: &str) -> Result<&CaRecord, PkiError> {
        let prefix = prefix.trim().trim_start_matches("0x").to_ascii_lowercase();
        let matches: Vec<&CaRecord> = self
            .cas
            .iter()
            .filter(|c| !prefix.is_empty() && c.serial.starts_with(&prefix))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(PkiError::UnknownCa { serial: prefix }),
            many => Err(PkiError::AmbiguousSerial {
                prefix,
                matches: many.iter().map(|c| c.serial.clone()).collect(),
            }),
        }
    }
}

/// TOML offset date-times; values without an offset are refused.
mod datetime {
    use serde::{de, ser, Deserialize, Deserializer, Serialize, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = t.format(&Rfc3339).map_err(ser::Error::custom)?;
        let dt: toml::value::Datetime = text.parse().map_err(ser::Error::custom)?;
        dt.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let dt = toml::value::Datetime::deserialize(d)?;
        OffsetDateTime::parse(&dt.to_string(), &Rfc3339).map_err(|_| {
            de::Error::custom(format!(
                "{dt} is not an RFC 3339 date-time with offset, e.g. 2030-01-31T12:00:00Z"
            ))
        })
    }
}

mod opt_datetime {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::datetime::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "super::datetime")] OffsetDateTime);
        Option::<Wrap>::deserialize(d).map(|w| w.map(|Wrap(t)| t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::store;
    use time::macros::datetime;

    fn save(index: &Index, layout: &Layout) {
        let text = index.to_toml(layout).unwrap();
        store::write_atomic(&layout.index(), text.as_bytes(), store::PUBLIC).unwrap();
    }

    fn sample() -> Index {
        let mut index = Index::new(CaRecord {
            serial: "4a01".into(),
            subject: "dockgate CA 2030-01-01 4a01".into(),
            key_type: "ecdsa-p256".into(),
            not_before: datetime!(2030-01-01 0:00 UTC),
            not_after: datetime!(2040-01-01 0:00 UTC),
            state: CaState::Signing,
            crl_number: 3,
            fingerprint: "ab".into(),
        });
        index.certs.push(CertRecord {
            name: "ci-runner".into(),
            role: Some("ci".into()),
            kind: CertKind::Client,
            serial: "4b02".into(),
            issuer_serial: "4a01".into(),
            not_before: datetime!(2030-01-02 0:00 UTC),
            not_after: datetime!(2030-04-02 0:00 UTC),
            status: CertStatus::Revoked,
            revoked_at: Some(datetime!(2030-01-03 10:11:12 UTC)),
            fingerprint: "cd".into(),
            renewed_from: None,
        });
        index.certs.push(CertRecord {
            name: "gateway.example".into(),
            role: None,
            kind: CertKind::Server,
            serial: "4c03".into(),
            issuer_serial: "4a01".into(),
            not_before: datetime!(2030-01-02 0:00 UTC),
            not_after: datetime!(2032-04-06 0:00 UTC),
            status: CertStatus::Valid,
            revoked_at: None,
            fingerprint: "ef".into(),
            renewed_from: None,
        });
        index
    }

    #[test]
    fn round_trips_through_disk_with_readable_toml() {
        let dir = super::super::tests::tempdir("index");
        let layout = Layout::new(&dir);
        let index = sample();
        save(&index, &layout);
        let text = std::fs::read_to_string(layout.index()).unwrap();
        assert!(text.starts_with("# dockgate certificate index"), "{text}");
        assert!(
            text.contains("[[cert]]\nname = \"ci-runner\"\nrole = \"ci\"\nkind = \"client\""),
            "{text}"
        );
        assert!(text.contains("revoked_at = 2030-01-03T10:11:12Z"), "{text}");
        assert!(text.contains("status = \"valid\""), "{text}");
        assert!(!text.contains("role = \"\""), "{text}");
        assert_eq!(Index::load(&layout).unwrap(), index);
        // Serialising again is byte-identical: stable ordering.
        save(&index, &layout);
        assert_eq!(std::fs::read_to_string(layout.index()).unwrap(), text);
    }

    #[test]
    fn refuses_inconsistent_indexes() {
        let dir = super::super::tests::tempdir("index-bad");
        let layout = Layout::new(&dir);
        let mut index = sample();
        index.cas[0].state = CaState::Trusted;
        save(&index, &layout);
        let err = Index::load(&layout).unwrap_err().to_string();
        assert!(err.contains("exactly one [[ca]]"), "{err}");

        let mut index = sample();
        index.certs[0].issuer_serial = "99".into();
        save(&index, &layout);
        let err = Index::load(&layout).unwrap_err().to_string();
        assert!(err.contains("no [[ca]] has that serial"), "{err}");

        std::fs::write(layout.index(), "version = 1\n[[ca]]\nserial = 1\n").unwrap();
        assert!(matches!(
            Index::load(&layout),
            Err(PkiError::IndexParse { .. })
        ));
    }

    #[test]
    fn serial_prefixes_resolve_uniquely() {
        let index = sample();
        assert_eq!(index.find_serial("4B").unwrap(), 0);
        assert_eq!(index.find_serial("0x4c03").unwrap(), 1);
        assert!(matches!(
            index.find_serial("4"),
            Err(PkiError::AmbiguousSerial { .. })
        ));
        assert!(matches!(
            index.find_serial("ff"),
            Err(PkiError::NoSuchCertificate { .. })
        ));
        assert!(matches!(
            index.find_serial(""),
            Err(PkiError::NoSuchCertificate { .. })
        ));
    }
}
