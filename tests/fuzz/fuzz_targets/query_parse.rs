//! Query strings → `query::Query::parse`.
//!
//! Never panics, and checks the parse against an independent reading of Go's
//! `url.ParseQuery` rules (parts split on `&`, `;` refused, `+` is a space,
//! every `%` starts two hex digits, first error wins; dockgate also refuses
//! decoded text that is not UTF-8), that `encode` round-trips, and that
//! `set` replaces every value of a key.
#![no_main]

use dockgate_wire::query::{Query, QueryError};
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

    // `set` replaces every value of a key, with any text, and round-trips.
    query.set("labels", raw.to_owned());
    assert_eq!(query.all("labels").collect::<Vec<_>>(), [raw]);
    assert_eq!(Query::parse(Some(&query.encode())).as_ref(), Ok(&query));
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
