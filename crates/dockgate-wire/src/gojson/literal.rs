//! Keys, strings and numbers as Go reads them: `foldName` equality, `unquoteBytes` (escapes,
//! surrogates, invalid UTF-8), `utf8.DecodeRune` and `strconv.Parse{Int,Uint,Float}`.

// Go's foldName equality for an ASCII field name: ASCII letters match either case, other ASCII bytes match
// exactly, U+212A KELVIN SIGN matches k and U+017F LONG S matches s. No other rune folds to ASCII (Go keeps
// U+0130 and U+0131 in orbits of their own).
pub(super) fn fold_eq(key: &str, name: &str) -> bool {
    let mut key_chars = key.chars();
    for n in name.bytes() {
        let Some(k) = key_chars.next() else {
            return false;
        };
        let matches = match k {
            '\u{212A}' => n.eq_ignore_ascii_case(&b'k'),
            '\u{017F}' => n.eq_ignore_ascii_case(&b's'),
            k if k.is_ascii() => {
                let k = k as u8;
                k == n || (n.is_ascii_alphabetic() && k.eq_ignore_ascii_case(&n))
            }
            _ => false,
        };
        if !matches {
            return false;
        }
    }
    key_chars.next().is_none()
}

// Go's unquoteBytes for the bytes between the quotes of a validated string: escapes decoded, a
// surrogate pair joined, any other surrogate escape replaced by U+FFFD (the next escape is then read
// on its own), and invalid UTF-8 replaced by U+FFFD per byte as Go's utf8.DecodeRune does.
pub(super) fn unquote(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if b == b'\\' {
            let escape = raw.get(i + 1).copied().unwrap_or(b'\\');
            i += 2;
            match escape {
                b'b' => out.push('\u{8}'),
                b'f' => out.push('\u{c}'),
                b'n' => out.push('\n'),
                b'r' => out.push('\r'),
                b't' => out.push('\t'),
                b'u' => {
                    let unit = hex4(raw, i).unwrap_or(0xFFFD);
                    i += 4;
                    if (0xD800..0xE000).contains(&unit) {
                        let low = if raw.get(i) == Some(&b'\\') && raw.get(i + 1) == Some(&b'u') {
                            hex4(raw, i + 2)
                        } else {
                            None
                        };
                        match (unit, low) {
                            (0xD800..=0xDBFF, Some(low @ 0xDC00..=0xDFFF)) => {
                                let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                                out.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                                i += 6;
                            }
                            _ => out.push('\u{FFFD}'),
                        }
                    } else {
                        out.push(char::from_u32(unit).unwrap_or('\u{FFFD}'));
                    }
                }
                other => out.push(char::from(other)),
            }
        } else if b < 0x80 {
            out.push(char::from(b));
            i += 1;
        } else {
            let (c, size) = decode_rune(raw.get(i..).unwrap_or_default());
            out.push(c);
            i += size;
        }
    }
    out
}

fn hex4(raw: &[u8], at: usize) -> Option<u32> {
    let digits = raw.get(at..at + 4)?;
    digits
        .iter()
        .try_fold(0u32, |acc, &d| Some(acc * 16 + char::from(d).to_digit(16)?))
}

// Go's utf8.DecodeRune on a non-ASCII lead byte: one valid sequence, else (U+FFFD, 1).
fn decode_rune(s: &[u8]) -> (char, usize) {
    const INVALID: (char, usize) = ('\u{FFFD}', 1);
    let Some(&lead) = s.first() else {
        return INVALID;
    };
    let (size, second) = match lead {
        0xC2..=0xDF => (2, 0x80..=0xBF),
        0xE0 => (3, 0xA0..=0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (3, 0x80..=0xBF),
        0xED => (3, 0x80..=0x9F),
        0xF0 => (4, 0x90..=0xBF),
        0xF1..=0xF3 => (4, 0x80..=0xBF),
        0xF4 => (4, 0x80..=0x8F),
        _ => return INVALID,
    };
    let Some(seq) = s.get(..size) else {
        return INVALID;
    };
    let valid = seq.get(1).is_some_and(|b| second.contains(b))
        && seq.iter().skip(2).all(|b| (0x80..=0xBF).contains(b));
    if !valid {
        return INVALID;
    }
    match std::str::from_utf8(seq).ok().and_then(|t| t.chars().next()) {
        Some(c) => (c, size),
        None => INVALID,
    }
}

// strconv.ParseInt(literal, 10, 64): optional '-', digits only.
pub(super) fn parse_i64(literal: &[u8]) -> Option<i64> {
    let (negative, digits) = match literal.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, literal),
    };
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0i64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        let acc = acc.checked_mul(10)?;
        if negative {
            acc.checked_sub(d)
        } else {
            acc.checked_add(d)
        }
    })
}

// strconv.ParseUint(literal, 10, 64): digits only, no sign.
pub(super) fn parse_u64(literal: &[u8]) -> Option<u64> {
    if literal.is_empty() {
        return None;
    }
    literal.iter().try_fold(0u64, |acc, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

// strconv.ParseFloat(literal, 64): correctly rounded; out of range (±Inf) is an error, underflow is 0.
pub(super) fn parse_f64(literal: &[u8]) -> Option<f64> {
    let f: f64 = std::str::from_utf8(literal).ok()?.parse().ok()?;
    f.is_finite().then_some(f)
}
