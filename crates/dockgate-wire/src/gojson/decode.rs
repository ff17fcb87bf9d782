//! Second pass over validated input, Go's `decodeState`: builds the value Go would store, field lookup
//! by folded name, duplicates merged or replaced as Go does, slices reusing their backing array. Every
//! value built is charged against [`MAX_VALUES`] and the value tree's depth is bounded.

use std::collections::BTreeMap;
use std::fmt;

use super::error::Error;
use super::literal::{fold_eq, parse_f64, parse_i64, parse_u64, unquote};
use super::scan::{skip_ws, syntax};
use super::shape::{Field, Shape};
use super::value::Go;
use super::{MAX_VALUES, MAX_VALUE_DEPTH};

// The value being built. Like Go's, slices keep their backing array: elements past the length survive a
// truncation and come back when a later array is longer (Go grows the length within the capacity without
// zeroing). Reallocation only happens once every such element is back in use, so the growth policy of the
// Go version does not matter.
enum Val {
    Bool(bool),
    Str(String),
    Int(i64),
    Uint(u64),
    Float(f64),
    Struct(Vec<Val>),
    Map(Option<BTreeMap<String, Val>>),
    Slice(Option<SliceVal>),
    Ptr(Option<Box<Val>>),
    Opaque,
}

#[derive(Default)]
struct SliceVal {
    len: usize,
    backing: Vec<Val>,
}

impl Val {
    // Recursion is bounded by MAX_VALUE_DEPTH, which the decoder enforces while building.
    fn into_go(self) -> Go {
        match self {
            Val::Bool(b) => Go::Bool(b),
            Val::Str(s) => Go::String(s),
            Val::Int(n) => Go::Int(n),
            Val::Uint(n) => Go::Uint(n),
            Val::Float(f) => Go::Float(f),
            Val::Struct(fields) => Go::Struct(fields.into_iter().map(Val::into_go).collect()),
            Val::Map(map) => {
                Go::Map(map.map(|m| m.into_iter().map(|(k, v)| (k, v.into_go())).collect()))
            }
            Val::Slice(slice) => Go::Slice(slice.map(|mut s| {
                s.backing.truncate(s.len);
                s.backing.into_iter().map(Val::into_go).collect()
            })),
            Val::Ptr(p) => Go::Ptr(p.map(|b| Box::new(b.into_go()))),
            Val::Opaque => Go::Opaque,
        }
    }
}

enum Seg<'s> {
    Field(&'s str),
    Index(usize),
    Key(String),
}

/// Decodes validated `src` into a zero value of `shape`.
pub(super) fn decode(src: &[u8], shape: &Shape) -> Result<Go, Error> {
    let mut decoder = Decoder {
        src,
        pos: 0,
        path: Vec::new(),
        values: 0,
    };
    let mut root = decoder.zero(shape, 0)?;
    decoder.value(shape, &mut root, 0)?;
    Ok(root.into_go())
}

struct Decoder<'s, 'a> {
    src: &'a [u8],
    pos: usize,
    path: Vec<Seg<'s>>,
    values: usize,
}

impl<'s, 'a> Decoder<'s, 'a> {
    fn render_path(&self) -> String {
        use fmt::Write as _;
        let mut out = String::new();
        for seg in &self.path {
            // Writing to a String cannot fail.
            let _ = match seg {
                Seg::Field(name) if out.is_empty() => write!(out, "{name}"),
                Seg::Field(name) => write!(out, ".{name}"),
                Seg::Index(i) => write!(out, "[{i}]"),
                Seg::Key(key) => write!(out, "[{key:?}]"),
            };
        }
        out
    }

    fn unsupported(&self, reason: &'static str) -> Error {
        Error::UnsupportedShape {
            path: self.render_path(),
            reason,
        }
    }

    fn charge(&mut self, n: usize) -> Result<(), Error> {
        self.values = self.values.saturating_add(n);
        if self.values > MAX_VALUES {
            return Err(Error::TooLarge);
        }
        Ok(())
    }

    fn check_depth(&self, depth: usize) -> Result<(), Error> {
        if depth > MAX_VALUE_DEPTH {
            return Err(self.unsupported("shape nests too deeply"));
        }
        Ok(())
    }

    // Go's zero value for the shape.
    fn zero(&mut self, shape: &'s Shape, depth: usize) -> Result<Val, Error> {
        self.charge(1)?;
        Ok(match shape {
            Shape::Bool => Val::Bool(false),
            Shape::String => Val::Str(String::new()),
            Shape::Int => Val::Int(0),
            Shape::Uint => Val::Uint(0),
            Shape::Float => Val::Float(0.0),
            Shape::Struct(fields) => {
                self.check_depth(depth)?;
                let mut values = Vec::with_capacity(fields.len());
                for field in fields.iter() {
                    values.push(self.zero(&field.shape, depth + 1)?);
                }
                Val::Struct(values)
            }
            Shape::Map(_) => Val::Map(None),
            Shape::Slice(_) | Shape::StrSlice => Val::Slice(None),
            Shape::Ptr(_) => Val::Ptr(None),
            Shape::Opaque => Val::Opaque,
        })
    }

    // The next non-whitespace byte, not consumed.
    fn peek(&mut self) -> Result<u8, Error> {
        self.pos = skip_ws(self.src, self.pos);
        self.src.get(self.pos).copied().ok_or(Error::UnexpectedEnd)
    }

    fn expect(&mut self, want: u8, context: &'static str) -> Result<(), Error> {
        let c = self.peek()?;
        if c != want {
            return Err(syntax(self.pos, c, context));
        }
        self.pos += 1;
        Ok(())
    }

    // After an object member or array element: true at the closing bracket.
    fn member_end(&mut self, close: u8) -> Result<bool, Error> {
        let c = self.peek()?;
        self.pos += 1;
        match c {
            b',' => Ok(false),
            c if c == close => Ok(true),
            c => Err(syntax(self.pos - 1, c, "after element")),
        }
    }

    // Decodes the value at the cursor into `slot` (whose value-tree depth is `depth`).
    fn value(&mut self, shape: &'s Shape, slot: &mut Val, depth: usize) -> Result<(), Error> {
        self.check_depth(depth)?;
        let c = self.peek()?;
        let start = self.pos;
        if c == b'n' {
            self.pos += 4;
            return self.null(shape, slot);
        }
        let (shape, slot, depth) = self.indirect(shape, slot, depth)?;
        let fits = match shape {
            Shape::Opaque => true,
            Shape::Bool => matches!(c, b't' | b'f'),
            Shape::String => c == b'"',
            Shape::Int | Shape::Uint | Shape::Float => c == b'-' || c.is_ascii_digit(),
            Shape::Struct(_) | Shape::Map(_) => c == b'{',
            Shape::Slice(_) => c == b'[',
            Shape::StrSlice => matches!(c, b'[' | b'"'),
            Shape::Ptr(_) => false,
        };
        if !fits {
            return Err(self.mismatch(shape, c, start));
        }
        match (shape, slot) {
            (Shape::Opaque, _) => self.skip_value(),
            (Shape::Bool, Val::Bool(b)) => {
                *b = c == b't';
                self.pos += if *b { 4 } else { 5 };
                Ok(())
            }
            (Shape::String, Val::Str(s)) => {
                *s = self.string()?;
                Ok(())
            }
            (Shape::Int, Val::Int(n)) => {
                let literal = self.number();
                *n = parse_i64(literal).ok_or_else(|| self.range(literal, "int64", start))?;
                Ok(())
            }
            (Shape::Uint, Val::Uint(n)) => {
                let literal = self.number();
                *n = parse_u64(literal).ok_or_else(|| self.range(literal, "uint64", start))?;
                Ok(())
            }
            (Shape::Float, Val::Float(f)) => {
                let literal = self.number();
                *f = parse_f64(literal).ok_or_else(|| self.range(literal, "float64", start))?;
                Ok(())
            }
            (Shape::Struct(fields), Val::Struct(values)) => self.object(fields, values, depth),
            (Shape::Map(elem), Val::Map(map)) => self.map(elem, map, depth),
            (Shape::Slice(elem), Val::Slice(slice)) => self.array(elem, slice, depth),
            (Shape::StrSlice, Val::Slice(slice)) => self.str_slice(c, slice),
            _ => Err(Error::Internal),
        }
    }

    fn mismatch(&self, shape: &Shape, c: u8, offset: usize) -> Error {
        let found = match c {
            b'{' => "object",
            b'[' => "array",
            b'"' => "string",
            b't' | b'f' => "bool",
            _ => "number",
        };
        Error::TypeMismatch {
            path: self.render_path(),
            expected: shape.describe(),
            found,
            offset,
        }
    }

    fn range(&self, literal: &[u8], expected: &'static str, offset: usize) -> Error {
        const SHOWN: usize = 40;
        let mut text: String = literal.iter().take(SHOWN).map(|&b| char::from(b)).collect();
        if literal.len() > SHOWN {
            text.push('…');
        }
        Error::NumberRange {
            path: self.render_path(),
            literal: text,
            expected,
            offset,
        }
    }

    // Go's indirect: walks down pointers, allocating nil ones, to the value that receives a non-null JSON
    // value. A non-nil pointer keeps its pointee, so duplicate keys merge into it.
    fn indirect<'v>(
        &mut self,
        mut shape: &'s Shape,
        mut slot: &'v mut Val,
        mut depth: usize,
    ) -> Result<(&'s Shape, &'v mut Val, usize), Error> {
        while let Shape::Ptr(inner) = shape {
            depth += 1;
            self.check_depth(depth)?;
            let Val::Ptr(pointer) = slot else {
                return Err(Error::Internal);
            };
            let pointee = match pointer.take() {
                Some(existing) => existing,
                None => Box::new(self.zero(inner, depth)?),
            };
            slot = pointer.insert(pointee);
            shape = inner;
        }
        Ok((shape, slot, depth))
    }

    // Go's literalStore for null: pointers, maps and slices become nil (a pointer to a pointer is cleared at
    // the outermost level, Go's "first settable pointer"); every other kind keeps its value. StrSlice's
    // UnmarshalJSON unmarshals null into its fresh []string, which makes it nil too.
    fn null(&mut self, shape: &Shape, slot: &mut Val) -> Result<(), Error> {
        match (shape, slot) {
            (Shape::Ptr(_), Val::Ptr(p)) => *p = None,
            (Shape::Map(_), Val::Map(m)) => *m = None,
            (Shape::Slice(_) | Shape::StrSlice, Val::Slice(s)) => *s = None,
            (Shape::Ptr(_) | Shape::Map(_) | Shape::Slice(_) | Shape::StrSlice, _) => {
                return Err(Error::Internal)
            }
            _ => {}
        }
        Ok(())
    }

    fn object(
        &mut self,
        fields: &'s [Field],
        values: &mut [Val],
        depth: usize,
    ) -> Result<(), Error> {
        self.pos += 1;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.peek()?;
            let key = self.string()?;
            self.expect(b':', "after object key")?;
            match self.lookup(fields, &key)? {
                Some(index) => {
                    let (Some(field), Some(slot)) = (fields.get(index), values.get_mut(index))
                    else {
                        return Err(Error::Internal);
                    };
                    self.path.push(Seg::Field(field.name));
                    self.value(&field.shape, slot, depth + 1)?;
                    self.path.pop();
                }
                None => self.skip_value()?,
            }
            if self.member_end(b'}')? {
                return Ok(());
            }
        }
    }

    // Go's field lookup: the exact name, else the first field whose name folds equal.
    fn lookup(&self, fields: &[Field], key: &str) -> Result<Option<usize>, Error> {
        let mut exact = None;
        for (i, field) in fields.iter().enumerate() {
            if field.name == key {
                if exact.is_some() {
                    return Err(self.unsupported("two fields share a JSON name"));
                }
                exact = Some(i);
            }
        }
        if exact.is_some() {
            return Ok(exact);
        }
        for (i, field) in fields.iter().enumerate() {
            if !field.name.is_ascii() {
                return Err(self.unsupported("non-ASCII field name"));
            }
            if fold_eq(key, field.name) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    // Go's object() into a map: the map is kept (allocated when nil); each value is decoded into a fresh
    // zero value and then stored, replacing any entry with the same key.
    fn map(
        &mut self,
        elem: &'s Shape,
        map: &mut Option<BTreeMap<String, Val>>,
        depth: usize,
    ) -> Result<(), Error> {
        let map = match map.take() {
            Some(existing) => map.insert(existing),
            None => map.insert(BTreeMap::new()),
        };
        self.pos += 1;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.peek()?;
            let key = self.string()?;
            self.expect(b':', "after object key")?;
            let mut value = self.zero(elem, depth + 1)?;
            self.path.push(Seg::Key(key));
            self.value(elem, &mut value, depth + 1)?;
            let Some(Seg::Key(key)) = self.path.pop() else {
                return Err(Error::Internal);
            };
            map.insert(key, value);
            if self.member_end(b'}')? {
                return Ok(());
            }
        }
    }

    // Go's array() into a slice: element i is decoded into the existing element when i is below the old
    // length or within the old backing array, else into a new zero element; then the length is cut to the
    // JSON length. `[]` replaces the slice with a new empty one.
    fn array(
        &mut self,
        elem: &'s Shape,
        slice: &mut Option<SliceVal>,
        depth: usize,
    ) -> Result<(), Error> {
        self.pos += 1;
        if self.peek()? == b']' {
            self.pos += 1;
            *slice = Some(SliceVal::default());
            return Ok(());
        }
        let slice = match slice.take() {
            Some(existing) => slice.insert(existing),
            None => slice.insert(SliceVal::default()),
        };
        let mut i = 0;
        loop {
            if i >= slice.backing.len() {
                let zero = self.zero(elem, depth + 1)?;
                slice.backing.push(zero);
            }
            slice.len = slice.len.max(i + 1);
            let Some(slot) = slice.backing.get_mut(i) else {
                return Err(Error::Internal);
            };
            self.path.push(Seg::Index(i));
            self.value(elem, slot, depth + 1)?;
            self.path.pop();
            i += 1;
            if self.member_end(b']')? {
                break;
            }
        }
        slice.len = i;
        Ok(())
    }

    // strslice.StrSlice.UnmarshalJSON: a fresh []string from an array (null elements stay ""), else a
    // one-element slice from a string.
    fn str_slice(&mut self, c: u8, slice: &mut Option<SliceVal>) -> Result<(), Error> {
        let mut items = Vec::new();
        if c == b'"' {
            items.push(Val::Str(self.string()?));
        } else {
            self.pos += 1;
            if self.peek()? == b']' {
                self.pos += 1;
            } else {
                loop {
                    let e = self.peek()?;
                    let start = self.pos;
                    match e {
                        b'"' => items.push(Val::Str(self.string()?)),
                        b'n' => {
                            self.pos += 4;
                            items.push(Val::Str(String::new()));
                        }
                        _ => {
                            self.path.push(Seg::Index(items.len()));
                            return Err(self.mismatch(&Shape::String, e, start));
                        }
                    }
                    if self.member_end(b']')? {
                        break;
                    }
                }
            }
        }
        self.charge(items.len())?;
        *slice = Some(SliceVal {
            len: items.len(),
            backing: items,
        });
        Ok(())
    }

    // A string at the cursor, unquoted like Go's unquoteBytes.
    fn string(&mut self) -> Result<String, Error> {
        let start = self.pos + 1;
        let mut i = start;
        let mut plain = true;
        loop {
            match self.src.get(i) {
                None => return Err(Error::UnexpectedEnd),
                Some(b'"') => break,
                Some(b'\\') => {
                    plain = false;
                    i += 2;
                }
                Some(_) => i += 1,
            }
        }
        let raw = self.src.get(start..i).ok_or(Error::Internal)?;
        self.pos = i + 1;
        if plain {
            if let Ok(s) = std::str::from_utf8(raw) {
                return Ok(s.to_owned());
            }
        }
        Ok(unquote(raw))
    }

    // The number literal at the cursor (validated already).
    fn number(&mut self) -> &'a [u8] {
        let start = self.pos;
        while self
            .src
            .get(self.pos)
            .is_some_and(|&b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.pos += 1;
        }
        self.src.get(start..self.pos).unwrap_or_default()
    }

    // Skips one validated value without building anything.
    fn skip_value(&mut self) -> Result<(), Error> {
        let mut open = 0usize;
        loop {
            match self.peek()? {
                b'{' | b'[' => {
                    open += 1;
                    self.pos += 1;
                }
                b'}' | b']' => {
                    open = open.checked_sub(1).ok_or(Error::Internal)?;
                    self.pos += 1;
                }
                b',' | b':' => {
                    self.pos += 1;
                    continue;
                }
                b'"' => {
                    let mut i = self.pos + 1;
                    loop {
                        match self.src.get(i) {
                            None => return Err(Error::UnexpectedEnd),
                            Some(b'"') => break,
                            Some(b'\\') => i += 2,
                            Some(_) => i += 1,
                        }
                    }
                    self.pos = i + 1;
                }
                _ => {
                    while self.src.get(self.pos).is_some_and(|&b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')
                    }) {
                        self.pos += 1;
                    }
                }
            }
            if open == 0 {
                return Ok(());
            }
        }
    }
}
