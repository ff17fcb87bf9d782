//! Hop-by-hop header handling (RFC 9110 §7.6.1).
//!
//! Headers that describe one connection are removed before a message is
//! forwarded, including any the `Connection` header names. Upgrade requests
//! are the one exception the proxy re-creates on purpose: the upgrade is
//! negotiated end to end with the daemon, so `Connection: Upgrade` and the
//! client's `Upgrade` value are carried across.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// The protocol the client asked to switch to, if it asked to upgrade:
/// `Connection` must list the `upgrade` token and `Upgrade` must be present.
pub fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let upgrade = headers.get(header::UPGRADE)?;
    connection_tokens(headers)
        .any(|t| t.eq_ignore_ascii_case("upgrade"))
        .then(|| upgrade.clone())
}

/// Removes hop-by-hop headers in place. When `upgrade` is given, the
/// headers that carry the upgrade are set again afterwards.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
    if let Some(protocol) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn upgrade_needs_both_headers() {
        assert!(requested_upgrade(&map(&[("upgrade", "tcp")])).is_none());
        assert!(requested_upgrade(&map(&[("connection", "Upgrade")])).is_none());
        let h = map(&[("connection", "keep-alive, Upgrade"), ("upgrade", "h2c")]);
        assert_eq!(requested_upgrade(&h).unwrap(), "h2c");
    }

    #[test]
    fn strips_listed_and_standard_hop_headers() {
        let mut h = map(&[
            ("connection", "close, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "tcp"),
            ("content-length", "10"),
            ("x-registry-auth", "abc"),
            ("api-version", "1.41"),
        ]);
        strip_hop_by_hop(&mut h, None);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["api-version", "content-length", "x-registry-auth"]);
    }

    #[test]
    fn upgrade_is_carried_across() {
        let mut h = map(&[
            ("connection", "Upgrade, x-hop"),
            ("x-hop", "1"),
            ("upgrade", "tcp"),
        ]);
        let up = requested_upgrade(&h);
        strip_hop_by_hop(&mut h, up);
        assert_eq!(h[header::CONNECTION], "Upgrade");
        assert_eq!(h[header::UPGRADE], "tcp");
        assert!(h.get("x-hop").is_none());
    }
}
