//! Query strings, read the way dockerd's Go `net/url` reads them.
//!
//! dockerd takes the FIRST value of a repeated parameter (`Form.Get`), so
//! inspection does too. Inputs Go rejects — `;` separators, bad percent
//! escapes — are refused here rather than guessed at. Stricter than Go:
//! decoded text that is not UTF-8 is refused (Go keeps the bytes).

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum QueryError {
    Semicolon,
    BadEscape,
    NotUtf8,
}

impl std::fmt::Display for QueryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            QueryError::Semicolon => "invalid semicolon separator in query",
            QueryError::BadEscape => "invalid percent escape in query",
            QueryError::NotUtf8 => "query is not valid UTF-8 once decoded",
        })
    }
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, QueryError> {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&') {
            if part.contains(';') {
                return Err(QueryError::Semicolon);
            }
            if part.is_empty() {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((unescape(k)?, unescape(v)?));
        }
        Ok(Query { pairs })
    }

    /// The first value of `key`, as dockerd's `r.Form.Get(key)`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in order, as dockerd's `r.Form[key]`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every parameter name, in order, repeats included.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(k, _)| k.as_str())
    }

    /// Replaces every value of `key` with one value.
    pub fn set(&mut self, key: &str, value: String) {
        self.pairs.retain(|(k, _)| k != key);
        self.pairs.push((key.to_owned(), value));
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            escape_into(k, &mut out);
            out.push('=');
            escape_into(v, &mut out);
        }
        out
    }
}

fn unescape(s: &str) -> Result<String, QueryError> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let mut digit = || {
                    bytes
                        .next()
                        .and_then(|b| char::from(b).to_digit(16))
                        .ok_or(QueryError::BadEscape)
                };
                let (hi, lo) = (digit()?, digit()?);
                out.push((hi * 16 + lo) as u8);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).map_err(|_| QueryError::NotUtf8)
}

fn escape_into(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_like_form_get() {
        let q = Query::parse(Some("networkmode=default&networkmode=host")).unwrap();
        assert_eq!(q.get("networkmode"), Some("default"));
    }

    #[test]
    fn decodes_plus_and_percent() {
        let q = Query::parse(Some("a=b+c%2Fd&e&=x")).unwrap();
        assert_eq!(q.get("a"), Some("b c/d"));
        assert_eq!(q.get("e"), Some(""));
        assert_eq!(q.get(""), Some("x"));
    }

    #[test]
    fn refuses_what_go_refuses() {
        assert_eq!(Query::parse(Some("a=1;b=2")), Err(QueryError::Semicolon));
        assert_eq!(Query::parse(Some("a=%zz")), Err(QueryError::BadEscape));
        assert_eq!(Query::parse(Some("a=%4")), Err(QueryError::BadEscape));
        // Found by the query_parse fuzzer: from_str_radix takes a sign.
        assert_eq!(Query::parse(Some("a=%+F")), Err(QueryError::BadEscape));
        assert_eq!(Query::parse(Some("a=%ff")), Err(QueryError::NotUtf8));
    }

    #[test]
    fn set_replaces_all_and_round_trips() {
        let mut q = Query::parse(Some("filters=1&all=1&filters=2")).unwrap();
        q.set("filters", "{\"label\":{\"x=y\":true}}".into());
        let again = Query::parse(Some(&q.encode())).unwrap();
        assert_eq!(again.get("filters"), Some("{\"label\":{\"x=y\":true}}"));
        assert_eq!(again.get("all"), Some("1"));
    }
}
