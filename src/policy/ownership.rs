//! Ownership for confined roles.
//!
//! Objects a confined client creates carry the label `dockgate.owner` with
//! its identity; lists are filtered on that label; and an object owned by
//! someone else answers 404 exactly as if it did not exist, so a confined
//! client cannot even learn other owners' names.
//!
//! Labels are added by appending one more `"Labels"` member to the JSON
//! object the client sent. Go's decoder merges a repeated map-valued key
//! into the map it already holds, so the client's own labels survive and a
//! forged owner label is overwritten — with no re-encoding of anything else
//! the client wrote.
//!
//! The owner label names the authority that granted the identity, so that
//! a common name is only ever owned under the CA that vouches for it:
//! - `cn=<CN>` for certificates signed by dockgate's own CAs (`ca.pem`).
//!   This form is a contract: existing objects carry it.
//! - `ca=<K>,cn=<CN>` for any other issuer (`client_cas`, whether the role
//!   comes from `[[identity.map]]` or not), where `<K>` is the first 16 hex
//!   digits of the SHA-256 of the issuing CA's SubjectPublicKeyInfo (see
//!   [`Authority`]). Without it, an external CA's certificate for
//!   `CN=runner-7` owned runner-7's objects. The fixed-length `ca=` prefix
//!   keeps the two forms apart whatever a common name contains.
//! - `sha256=<fingerprint>` for a certificate with no common name, which no
//!   other certificate shares.

use crate::tls::{Authority, Identity};

pub const OWNER_LABEL: &str = "dockgate.owner";

/// The owner label's value for an identity: its common name, which stays
/// the same across renewals, qualified by its CA unless that is dockgate's
/// own; else its fingerprint.
pub fn owner_of(identity: &Identity) -> String {
    match (&identity.common_name, &identity.authority) {
        (Some(cn), Authority::Dockgate) => format!("cn={cn}"),
        (Some(cn), Authority::External(ca)) => format!("ca={ca},cn={cn}"),
        (None, _) => format!("sha256={}", identity.fingerprint),
    }
}

/// `{"dockgate.owner":"…"}` as JSON.
pub fn owner_labels_json(owner: &str) -> String {
    serde_json::json!({ OWNER_LABEL: owner }).to_string()
}

/// Appends `"Labels": {owner}` as the last member of a JSON object body.
/// The caller has already decoded `body` as one JSON object (and nothing
/// after it but whitespace).
pub fn append_owner_label(body: &[u8], owner: &str) -> Option<Vec<u8>> {
    append_members(body, &[("Labels", owner_labels_json(owner))])
}

/// Appends `"name": value` members (values already JSON) at the end of a
/// JSON object body, where Go's decoder applies them last.
pub fn append_members(body: &[u8], members: &[(&str, String)]) -> Option<Vec<u8>> {
    let end = body.iter().rposition(|b| !b.is_ascii_whitespace())?;
    if body[end] != b'}' {
        return None;
    }
    let inner = &body[..end];
    let mut empty = inner
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| inner[i] == b'{');
    let extra: usize = members.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut out = Vec::with_capacity(body.len() + extra);
    out.extend_from_slice(inner);
    for (name, value) in members {
        if !empty {
            out.push(b',');
        }
        empty = false;
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'}');
    Some(out)
}

/// Adds `label=dockgate.owner=OWNER` to a `filters` query value. dockerd
/// ANDs label filters, so the result only ever narrows what the client
/// asked for. Both of dockerd's encodings are accepted: the current
/// `{"label":{"k=v":true}}` and the legacy `{"label":["k=v"]}`; the result
/// is always the current one. Anything else is refused.
pub fn add_owner_filter(filters: Option<&str>, owner: &str) -> Result<String, String> {
    use serde_json::{Map, Value};
    let mut args: Map<String, Value> = match filters {
        None | Some("") => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => return Err("invalid filters: not a JSON object".into()),
        },
    };
    for (key, values) in args.iter_mut() {
        match values {
            Value::Object(set) if set.values().all(Value::is_boolean) => {}
            Value::Array(list) => {
                let mut set = Map::new();
                for v in list.iter() {
                    let Value::String(s) = v else {
                        return Err(format!("invalid filter {key:?}"));
                    };
                    set.insert(s.clone(), Value::Bool(true));
                }
                *values = Value::Object(set);
            }
            _ => return Err(format!("invalid filter {key:?}")),
        }
    }
    let labels = args
        .entry("label")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(set) = labels {
        set.insert(format!("{OWNER_LABEL}={owner}"), Value::Bool(true));
    }
    Ok(Value::Object(args).to_string())
}

/// True when a daemon object's labels (from an inspect response) name
/// `owner`.
pub fn owned_by(labels: Option<&serde_json::Value>, owner: &str) -> bool {
    labels
        .and_then(|l| l.get(OWNER_LABEL))
        .and_then(serde_json::Value::as_str)
        == Some(owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_the_authority_unless_it_is_dockgate() {
        let own = Identity {
            common_name: Some("runner-7".into()),
            fingerprint: "ff".into(),
            ..Identity::default()
        };
        assert_eq!(owner_of(&own), "cn=runner-7");
        let external = Identity {
            authority: Authority::External("0123456789abcdef".into()),
            ..own.clone()
        };
        assert_eq!(owner_of(&external), "ca=0123456789abcdef,cn=runner-7");
        // A dockgate common name cannot spell an external owner.
        let forged = Identity {
            common_name: Some("runner-7,ca=0123456789abcdef".into()),
            ..own.clone()
        };
        assert_ne!(owner_of(&forged), owner_of(&external));
        let nameless = Identity {
            common_name: None,
            ..external
        };
        assert_eq!(owner_of(&nameless), "sha256=ff");
    }

    #[test]
    fn appends_after_existing_members() {
        let out = append_owner_label(br#"{"Image":"x","Labels":{"a":"b"}}  "#, "cn=ci").unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"Image":"x","Labels":{"a":"b"},"Labels":{"dockgate.owner":"cn=ci"}}"#
        );
    }

    #[test]
    fn appends_into_empty_object() {
        let out = append_owner_label(b"{ }", "cn=ci").unwrap();
        assert_eq!(out, br#"{ "Labels":{"dockgate.owner":"cn=ci"}}"#);
    }

    #[test]
    fn refuses_non_objects() {
        assert!(append_owner_label(b"[1]", "x").is_none());
        assert!(append_owner_label(b"   ", "x").is_none());
    }

    #[test]
    fn owner_filter_narrows_both_encodings() {
        let f: serde_json::Value =
            serde_json::from_str(&add_owner_filter(None, "cn=ci").unwrap()).unwrap();
        assert_eq!(
            f,
            serde_json::json!({"label": {"dockgate.owner=cn=ci": true}})
        );

        let f: serde_json::Value = serde_json::from_str(
            &add_owner_filter(
                Some(r#"{"label":{"a=b":true},"status":{"running":true}}"#),
                "cn=ci",
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            f,
            serde_json::json!({"label": {"a=b": true, "dockgate.owner=cn=ci": true}, "status": {"running": true}})
        );

        let f: serde_json::Value =
            serde_json::from_str(&add_owner_filter(Some(r#"{"name":["web"]}"#), "cn=ci").unwrap())
                .unwrap();
        assert_eq!(
            f,
            serde_json::json!({"name": {"web": true}, "label": {"dockgate.owner=cn=ci": true}})
        );
    }

    #[test]
    fn owner_filter_cannot_be_forged_or_confused() {
        // A client-supplied owner filter for someone else stays ANDed with ours.
        let f = add_owner_filter(
            Some(r#"{"label":{"dockgate.owner=cn=admin":true}}"#),
            "cn=ci",
        )
        .unwrap();
        assert!(f.contains("dockgate.owner=cn=ci"));
        assert!(add_owner_filter(Some("[1]"), "cn=ci").is_err());
        assert!(add_owner_filter(Some(r#"{"label":"x"}"#), "cn=ci").is_err());
        assert!(add_owner_filter(Some("{"), "cn=ci").is_err());
    }

    #[test]
    fn owner_value_is_json_escaped() {
        let out = append_owner_label(b"{}", "cn=a\"b").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["Labels"][OWNER_LABEL], "cn=a\"b");
    }
}
