//! First pass, Go's scanner: checks the syntax of the whole first value before anything is decoded, so
//! that a syntax error anywhere wins over type errors, as in Go. Iterative, so depth costs no stack.

use super::error::Error;
use super::MAX_DEPTH;

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

pub(super) fn skip_ws(src: &[u8], mut i: usize) -> usize {
    while src.get(i).is_some_and(|&b| is_ws(b)) {
        i += 1;
    }
    i
}

pub(super) fn syntax(offset: usize, found: u8, context: &'static str) -> Error {
    Error::Syntax {
        offset,
        found,
        context,
    }
}

/// Checks the syntax of the first value and returns the offset just past it.
pub(super) fn validate(src: &[u8]) -> Result<usize, Error> {
    let mut i = skip_ws(src, 0);
    if i == src.len() {
        return Err(Error::Empty);
    }
    // One entry per open container: true for an object.
    let mut stack: Vec<bool> = Vec::new();
    'value: loop {
        i = skip_ws(src, i);
        let &c = src.get(i).ok_or(Error::UnexpectedEnd)?;
        match c {
            b'{' | b'[' => {
                if stack.len() >= MAX_DEPTH {
                    return Err(Error::TooDeep { offset: i });
                }
                let object = c == b'{';
                stack.push(object);
                i = skip_ws(src, i + 1);
                let &next = src.get(i).ok_or(Error::UnexpectedEnd)?;
                if next == if object { b'}' } else { b']' } {
                    stack.pop();
                    i += 1;
                } else if object {
                    i = scan_key(src, i)?;
                    continue 'value;
                } else {
                    continue 'value;
                }
            }
            b'"' => i = scan_string(src, i)?,
            b'-' | b'0'..=b'9' => i = scan_number(src, i)?,
            b't' => i = scan_literal(src, i, b"true", "in literal true")?,
            b'f' => i = scan_literal(src, i, b"false", "in literal false")?,
            b'n' => i = scan_literal(src, i, b"null", "in literal null")?,
            _ => return Err(syntax(i, c, "looking for beginning of value")),
        }
        // A value is complete: close containers until one expects another member.
        while let Some(&object) = stack.last() {
            i = skip_ws(src, i);
            let &c = src.get(i).ok_or(Error::UnexpectedEnd)?;
            match (object, c) {
                (true, b',') => {
                    i = scan_key(src, skip_ws(src, i + 1))?;
                    continue 'value;
                }
                (false, b',') => {
                    i += 1;
                    continue 'value;
                }
                (true, b'}') | (false, b']') => {
                    stack.pop();
                    i += 1;
                }
                (true, _) => return Err(syntax(i, c, "after object key:value pair")),
                (false, _) => return Err(syntax(i, c, "after array element")),
            }
        }
        return Ok(i);
    }
}

// An object key and its colon; returns the offset after the colon.
fn scan_key(src: &[u8], i: usize) -> Result<usize, Error> {
    match src.get(i) {
        None => return Err(Error::UnexpectedEnd),
        Some(b'"') => {}
        Some(&c) => return Err(syntax(i, c, "looking for beginning of object key string")),
    }
    let i = skip_ws(src, scan_string(src, i)?);
    match src.get(i) {
        None => Err(Error::UnexpectedEnd),
        Some(b':') => Ok(i + 1),
        Some(&c) => Err(syntax(i, c, "after object key")),
    }
}

fn scan_string(src: &[u8], start: usize) -> Result<usize, Error> {
    let mut i = start + 1;
    loop {
        let &c = src.get(i).ok_or(Error::UnexpectedEnd)?;
        match c {
            b'"' => return Ok(i + 1),
            b'\\' => {
                i += 1;
                match src.get(i) {
                    None => return Err(Error::UnexpectedEnd),
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 1,
                    Some(b'u') => {
                        i += 1;
                        for _ in 0..4 {
                            match src.get(i) {
                                None => return Err(Error::UnexpectedEnd),
                                Some(h) if h.is_ascii_hexdigit() => i += 1,
                                Some(&h) => {
                                    return Err(syntax(i, h, "in \\u hexadecimal character escape"))
                                }
                            }
                        }
                    }
                    Some(&e) => return Err(syntax(i, e, "in string escape code")),
                }
            }
            c if c < 0x20 => return Err(syntax(i, c, "in string literal")),
            _ => i += 1,
        }
    }
}

fn scan_digits(src: &[u8], mut i: usize) -> usize {
    while src.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

fn scan_number(src: &[u8], start: usize) -> Result<usize, Error> {
    let mut i = start;
    if src.get(i) == Some(&b'-') {
        i += 1;
    }
    match src.get(i) {
        None => return Err(Error::UnexpectedEnd),
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = scan_digits(src, i + 1),
        Some(&c) => return Err(syntax(i, c, "in numeric literal")),
    }
    if src.get(i) == Some(&b'.') {
        i += 1;
        match src.get(i) {
            None => return Err(Error::UnexpectedEnd),
            Some(c) if c.is_ascii_digit() => i = scan_digits(src, i + 1),
            Some(&c) => return Err(syntax(i, c, "after decimal point in numeric literal")),
        }
    }
    if matches!(src.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(src.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        match src.get(i) {
            None => return Err(Error::UnexpectedEnd),
            Some(c) if c.is_ascii_digit() => i = scan_digits(src, i + 1),
            Some(&c) => return Err(syntax(i, c, "in exponent of numeric literal")),
        }
    }
    Ok(i)
}

fn scan_literal(
    src: &[u8],
    start: usize,
    literal: &[u8],
    context: &'static str,
) -> Result<usize, Error> {
    for (k, &want) in literal.iter().enumerate().skip(1) {
        match src.get(start + k) {
            None => return Err(Error::UnexpectedEnd),
            Some(&c) if c == want => {}
            Some(&c) => return Err(syntax(start + k, c, context)),
        }
    }
    Ok(start + literal.len())
}
