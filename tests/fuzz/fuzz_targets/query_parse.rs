//! Query strings → `policy::query::Query::parse` and the query inspectors.
//!
//! Never panics, and checks the parse against an independent reading of Go's
//! `url.ParseQuery` rules (parts split on `&`, `;` refused, `+` is a space,
//! every `%` starts two hex digits, first error wins; dockgate also refuses
//! decoded text that is not UTF-8), that `encode` round-trips, and that
//! merged build labels are a JSON object of strings carrying the owner.
#![no_main]

use dockgate::policy::inspect;
use dockgate::policy::ownership::OWNER_LABEL;
use dockgate::policy::query::{Query, QueryError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Query::parse(Some(raw));
    let expected = expected(raw);
    match (&parsed, &expected) {
        (Ok(query), Ok(pairs)) => assert_eq!(query.encode(), encode(pairs), "{raw:?}"),
        (Err(e), Err(want)) => assert_eq!(e, want, "{raw:?}"),
        _ => panic!("{raw:?}: parsed {parsed:?}, expected {expected:?}"),
    }
    let Ok(mut query) = parsed else {
        return;
    };
    assert_eq!(Query::parse(Some(&query.encode())).as_ref(), Ok(&query));

    let _ = inspect::build_query(&query);
    let _ = inspect::image_create_query(&query);
    if let Ok(labels) = inspect::merge_build_labels(query.get("labels"), "fuzz-owner") {
        let value: serde_json::Value = serde_json::from_str(&labels).expect("labels are JSON");
        let map = value.as_object().expect("labels are an object");
        assert!(map.values().all(serde_json::Value::is_string));
        assert_eq!(
            map.get(OWNER_LABEL).and_then(|v| v.as_str()),
            Some("fuzz-owner")
        );
        query.set("labels", labels.clone());
        assert_eq!(query.get("labels"), Some(labels.as_str()));
    }
});

fn expected(raw: &str) -> Result<Vec<(String, String)>, QueryError> {
    let mut pairs = Vec::new();
    for part in raw.split('&') {
        if part.contains(';') {
            return Err(QueryError::Semicolon);
        }
        if part.is_empty() {
            continue;
        }
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        pairs.push((unescape(key)?, unescape(value)?));
    }
    Ok(pairs)
}

/// Go's `unescape` in query mode.
fn unescape(s: &str) -> Result<String, QueryError> {
    let mut out = Vec::new();
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => out.push(b' '),
            b'%' => match tail {
                [hi, lo, ..] if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                    out.push(hex(*hi) << 4 | hex(*lo));
                    rest = &tail[2..];
                }
                _ => return Err(QueryError::BadEscape),
            },
            b => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::NotUtf8)
}

fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(pairs: &[(String, String)]) -> String {
    let escape = |s: &str| {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}
