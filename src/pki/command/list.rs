//! `dockgate pki list`: the CAs and issued certificates as two tables, with expired and
//! soon-expiring certificates flagged.

use std::fmt::Write as _;

use time::{Duration, OffsetDateTime};

use super::{date, kind_word};
use crate::pki::index::{CaState, CertRecord, CertStatus, Index};

/// What `list` shows in the STATUS column.
fn status(c: &CertRecord, index: &Index, now: OffsetDateTime, warn: Duration) -> (String, Flag) {
    if c.status == CertStatus::Revoked {
        return ("revoked".into(), Flag::None);
    }
    if index.is_superseded(c) {
        return ("superseded".into(), Flag::None);
    }
    if c.is_expired(now) {
        return ("EXPIRED".into(), Flag::Expired);
    }
    if index
        .ca(&c.issuer_serial)
        .is_some_and(|ca| ca.state == CaState::Retired)
    {
        return ("untrusted (CA retired)".into(), Flag::None);
    }
    let left = c.not_after - now;
    if left <= warn {
        let text = if left < Duration::days(1) {
            format!("EXPIRES in {}h", left.whole_hours())
        } else {
            format!("EXPIRES in {}d", left.whole_days())
        };
        return (text, Flag::Expiring);
    }
    ("valid".into(), Flag::None)
}

#[derive(PartialEq)]
enum Flag {
    None,
    Expiring,
    Expired,
}

fn table(rows: &[Vec<String>]) -> String {
    let mut widths = vec![0; rows.first().map_or(0, Vec::len)];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The whole `pki list` output at `now`, flagging what expires within `warn_days`.
pub(super) fn render(index: &Index, now: OffsetDateTime, warn_days: u32) -> String {
    let warn = Duration::days(i64::from(warn_days));
    let mut out = String::new();
    let mut cas = vec![vec![
        "CA SERIAL".to_owned(),
        "SUBJECT".to_owned(),
        "KEY".to_owned(),
        "EXPIRES".to_owned(),
        "STATE".to_owned(),
    ]];
    for ca in &index.cas {
        let state = match ca.state {
            CaState::Signing => "signing",
            CaState::Trusted => "trusted (older)",
            CaState::Retired => "retired",
        };
        cas.push(vec![
            ca.serial.clone(),
            ca.subject.clone(),
            ca.key_type.clone(),
            date(ca.not_after),
            state.to_owned(),
        ]);
    }
    out.push_str(&table(&cas));
    if index.certs.is_empty() {
        out.push_str("\nNo certificates issued yet.\n");
        return out;
    }
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "ROLE".to_owned(),
        "KIND".to_owned(),
        "SERIAL".to_owned(),
        "CA".to_owned(),
        "EXPIRES".to_owned(),
        "RENEWED FROM".to_owned(),
        "STATUS".to_owned(),
    ]];
    let (mut expiring, mut expired) = (Vec::new(), Vec::new());
    for c in &index.certs {
        let (text, flag) = status(c, index, now, warn);
        match flag {
            Flag::Expiring => expiring.push(c.name.as_str()),
            Flag::Expired => expired.push(c.name.as_str()),
            Flag::None => {}
        }
        rows.push(vec![
            c.name.clone(),
            c.role.clone().unwrap_or_else(|| "-".into()),
            kind_word(c.kind).to_owned(),
            c.serial.clone(),
            c.issuer_serial.chars().take(8).collect(),
            date(c.not_after),
            c.renewed_from.clone().unwrap_or_else(|| "-".into()),
            text,
        ]);
    }
    out.push('\n');
    out.push_str(&table(&rows));
    if !expiring.is_empty() {
        let _ = writeln!(
            out,
            "\n{} certificate(s) expire within {warn_days} days: {}. Renew clients with `dockgate pki renew`, the server with `dockgate pki server`.",
            expiring.len(),
            expiring.join(", ")
        );
    }
    if !expired.is_empty() {
        let _ = writeln!(
            out,
            "\n{} certificate(s) have expired: {}.",
            expired.len(),
            expired.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::index::{CaRecord, CertKind};
    use time::macros::datetime;

    #[test]
    fn list_flags_expiring_and_expired() {
        let now = datetime!(2030-06-01 12:00 UTC);
        let mut index = Index::new(CaRecord {
            serial: "4a".into(),
            subject: "dockgate CA".into(),
            key_type: "ecdsa-p256".into(),
            not_before: datetime!(2030-01-01 0:00 UTC),
            not_after: datetime!(2040-01-01 0:00 UTC),
            state: CaState::Signing,
            crl_number: 1,
            fingerprint: "00".into(),
        });
        let cert = |name: &str, serial: &str, not_after, status| CertRecord {
            name: name.into(),
            role: Some("ci".into()),
            kind: CertKind::Client,
            serial: serial.into(),
            issuer_serial: "4a".into(),
            not_before: datetime!(2030-01-01 0:00 UTC),
            not_after,
            status,
            revoked_at: None,
            fingerprint: "00".into(),
            renewed_from: None,
        };
        index.certs.push(cert(
            "fresh",
            "41",
            datetime!(2030-08-01 0:00 UTC),
            CertStatus::Valid,
        ));
        let mut soon = cert(
            "soon",
            "42",
            datetime!(2030-06-05 12:00 UTC),
            CertStatus::Valid,
        );
        soon.renewed_from = Some("41".into());
        index.certs.push(soon);
        index.certs.push(cert(
            "old",
            "43",
            datetime!(2030-05-01 0:00 UTC),
            CertStatus::Valid,
        ));
        index.certs.push(cert(
            "gone",
            "44",
            datetime!(2030-08-01 0:00 UTC),
            CertStatus::Revoked,
        ));
        let mut server = cert(
            "gw-old",
            "45",
            datetime!(2030-05-01 0:00 UTC),
            CertStatus::Valid,
        );
        server.kind = CertKind::Server;
        server.role = None;
        index.certs.push(server.clone());
        server.name = "gw-new".into();
        server.serial = "46".into();
        server.not_before = datetime!(2030-02-01 0:00 UTC);
        server.not_after = datetime!(2032-02-01 0:00 UTC);
        index.certs.push(server);
        let text = render(&index, now, 14);
        let line = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
                .to_owned()
        };
        assert!(line("fresh").ends_with("valid"), "{text}");
        assert!(line("soon").ends_with("EXPIRES in 4d"), "{text}");
        assert!(line("old").ends_with("EXPIRED"), "{text}");
        assert!(line("gone").ends_with("revoked"), "{text}");
        assert!(line("gw-old").ends_with("superseded"), "{text}");
        assert!(line("gw-new").ends_with("valid"), "{text}");
        // The lineage: "soon" was renewed from "fresh".
        assert!(text.contains("RENEWED FROM"), "{text}");
        assert!(line("soon").contains(" 41 "), "{text}");
        assert!(line("fresh").contains(" - "), "{text}");
        assert!(
            line("gw-new").contains(" - "),
            "servers have no role: {text}"
        );
        assert!(
            text.contains("1 certificate(s) expire within 14 days: soon."),
            "{text}"
        );
        assert!(
            text.contains("1 certificate(s) have expired: old."),
            "{text}"
        );
        // A narrower window stops flagging "soon".
        assert!(!render(&index, now, 2).contains("expire within"));
    }
}
