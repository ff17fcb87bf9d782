//! Go `encoding/json`-faithful decoding of Docker Engine API request bodies.
//!
//! dockerd decodes request bodies with `json.NewDecoder(r).Decode(&v)`. Authorization plugins have been
//! bypassed by inspectors that read JSON differently from the daemon (key case, duplicate keys, escapes,
//! invalid UTF-8, numbers). [`unmarshal`] computes what Go stores into a value of a given [`Shape`], or
//! refuses the input. It mirrors Go (1.16 through current, default build without `GOEXPERIMENT=jsonv2`):
//!
//! - syntax exactly as Go's scanner (RFC 8259: no comments, trailing commas, NaN, `+`, leading zeros);
//! - struct keys: exact name first, then the first field (in [`Shape`] order) whose name matches under
//!   Go's simple case folding (ASCII case, plus U+212A KELVIN SIGN ~ `k` and U+017F LONG S ~ `s`);
//! - duplicate keys decode into the same field in order: scalars last-wins, structs and non-nil pointers
//!   merge, maps keep their entries (each map value is decoded afresh), slices reuse their elements and
//!   keep the truncated tail of the backing array, which a later, longer array brings back;
//! - `null` sets pointers, maps and slices to nil and leaves every other kind unchanged;
//! - strings: invalid UTF-8 and unpaired surrogates become U+FFFD exactly where Go puts them;
//! - numbers: integers parse the literal as written (`1.0`, `1e3` are refused), overflow is refused.
//!
//! Where this decoder is stricter than Go (it refuses, dockerd would accept):
//! - non-whitespace after the first JSON value (Go's Decoder leaves it unread);
//! - nesting deeper than [`MAX_DEPTH`] (Go allows 10000) and bodies that would build more than
//!   [`MAX_VALUES`] values;
//! - [`Shape`] tables it cannot mirror faithfully ([`Error::UnsupportedShape`]).
//!
//! Every Go decode error (syntax, type mismatch, overflow) is an [`Error`]: dockerd rejects such a body.

use std::collections::BTreeMap;
use std::fmt;

/// Deepest nesting of arrays and objects accepted (Go's own limit is 10000).
pub const MAX_DEPTH: usize = 128;

/// Most values (struct fields, elements, entries, pointees) one body may build.
pub const MAX_VALUES: usize = 1 << 20;

/// Deepest value tree (JSON nesting plus pointer and embedded-struct levels of the shape).
const MAX_VALUE_DEPTH: usize = 512;

/// The parts of a Go type that matter to decoding.
#[derive(Debug)]
pub enum Shape {
    /// `bool`.
    Bool,
    /// `string` (and Docker's string types such as `container.NetworkMode`).
    String,
    /// `int`, `int64` (narrower Go integers overflow earlier; dockerd then rejects the body).
    Int,
    /// `uint`, `uint64`.
    Uint,
    /// `float64`.
    Float,
    /// A Go struct. Keys match fields like encoding/json: exact name first, else the first field whose name
    /// matches under Go's case folding. Unknown keys are skipped (but must still be valid JSON).
    ///
    /// Field names are the JSON names (tag name, else Go name) and must be ASCII. List the fields in Go's
    /// field order (declaration order, embedded structs flattened in place) and include every Go field whose
    /// name folds equal to a listed one: fold collisions resolve to the first such field.
    Struct(&'static [Field]),
    /// `map[string]T`: keys taken verbatim (no folding), escapes decoded.
    Map(&'static Shape),
    /// `[]T` (not `[]byte`, which Go decodes from base64: use [`Shape::Opaque`]).
    Slice(&'static Shape),
    /// Docker's `strslice.StrSlice` (Cmd, Entrypoint, CapAdd, CapDrop, …): its `UnmarshalJSON` accepts an
    /// array of strings or a single string, replaces the whole slice each time (`null` makes it nil) and
    /// turns `null` elements into `""`. The value is a [`Go::Slice`] of [`Go::String`].
    StrSlice,
    /// A Go pointer (`*T`). JSON null sets it to nil.
    Ptr(&'static Shape),
    /// A value the inspector doesn't look into (any Go type, `interface{}`, `json.RawMessage`…): any valid
    /// JSON accepted.
    Opaque,
}

/// One field of a [`Shape::Struct`].
#[derive(Debug)]
pub struct Field {
    /// The JSON name: the tag name, else the Go field name.
    pub name: &'static str,
    /// The field's type.
    pub shape: Shape,
}

impl Shape {
    /// Index of the field with exactly this JSON name, if this is a struct shape that has one.
    pub fn field_index(&self, name: &str) -> Option<usize> {
        match self {
            Shape::Struct(fields) => fields.iter().position(|f| f.name == name),
            _ => None,
        }
    }

    fn describe(&self) -> &'static str {
        match self {
            Shape::Bool => "bool",
            Shape::String => "string",
            Shape::Int => "int64",
            Shape::Uint => "uint64",
            Shape::Float => "float64",
            Shape::Struct(_) | Shape::Map(_) => "object",
            Shape::Slice(_) => "array",
            Shape::StrSlice => "string or array of strings",
            Shape::Ptr(inner) => inner.describe_pointee(),
            Shape::Opaque => "any value",
        }
    }

    // Pointers describe as their pointee; bounded so that a cyclic pointer shape cannot loop.
    fn describe_pointee(&self) -> &'static str {
        let mut shape = self;
        for _ in 0..MAX_VALUE_DEPTH {
            match shape {
                Shape::Ptr(inner) => shape = inner,
                other => return other.describe(),
            }
        }
        "pointer"
    }
}

/// The Go value after Unmarshal (zero values where absent).
#[derive(Debug, Clone, PartialEq)]
pub enum Go {
    /// From [`Shape::Bool`].
    Bool(bool),
    /// From [`Shape::String`], always valid UTF-8 (Go's U+FFFD replacements applied).
    String(String),
    /// From [`Shape::Int`].
    Int(i64),
    /// From [`Shape::Uint`].
    Uint(u64),
    /// From [`Shape::Float`].
    Float(f64),
    /// One entry per [`Field`], in [`Shape`] order.
    Struct(Vec<Go>),
    /// `None` is a nil map. Entries are unique by key and, from [`unmarshal`], sorted by key (Go maps have
    /// no order).
    Map(Option<Vec<(String, Go)>>),
    /// `None` is a nil slice.
    Slice(Option<Vec<Go>>),
    /// `None` is a nil pointer.
    Ptr(Option<Box<Go>>),
    /// From [`Shape::Opaque`]: not decoded.
    Opaque,
}

impl Go {
    /// A shape-aware view for reading fields by name.
    pub fn view<'a>(&'a self, shape: &'a Shape) -> View<'a> {
        View::new(shape, self)
    }

    /// Follows pointers; `None` at a nil pointer.
    pub fn deref(&self) -> Option<&Go> {
        let mut go = self;
        while let Go::Ptr(p) = go {
            go = p.as_deref()?;
        }
        Some(go)
    }

    /// The bool, through pointers.
    pub fn as_bool(&self) -> Option<bool> {
        match self.deref()? {
            Go::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The string, through pointers.
    pub fn as_str(&self) -> Option<&str> {
        match self.deref()? {
            Go::String(s) => Some(s),
            _ => None,
        }
    }

    /// The signed integer, through pointers.
    pub fn as_i64(&self) -> Option<i64> {
        match self.deref()? {
            Go::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The unsigned integer, through pointers.
    pub fn as_u64(&self) -> Option<u64> {
        match self.deref()? {
            Go::Uint(n) => Some(*n),
            _ => None,
        }
    }

    /// The float, through pointers.
    pub fn as_f64(&self) -> Option<f64> {
        match self.deref()? {
            Go::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// The elements of a non-nil slice, through pointers.
    pub fn as_slice(&self) -> Option<&[Go]> {
        match self.deref()? {
            Go::Slice(Some(items)) => Some(items),
            _ => None,
        }
    }

    /// The entries of a non-nil map, through pointers.
    pub fn as_map(&self) -> Option<&[(String, Go)]> {
        match self.deref()? {
            Go::Map(Some(entries)) => Some(entries),
            _ => None,
        }
    }

    /// The value stored under `key` in a map, through pointers.
    pub fn get(&self, key: &str) -> Option<&Go> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// Why a [`View`] accessor could not answer: the inspector asked for something its shape does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessError {
    /// The struct shape has no field with this exact JSON name.
    NoSuchField {
        /// The name asked for.
        name: String,
    },
    /// The accessor needs another kind of shape.
    WrongShape {
        /// The kind the accessor reads.
        wanted: &'static str,
        /// The kind of the shape at hand.
        found: &'static str,
    },
    /// The value was not built from this shape, or the shape's pointers form a cycle.
    ShapeMismatch,
}

impl fmt::Display for AccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccessError::NoSuchField { name } => write!(f, "shape has no field {name:?}"),
            AccessError::WrongShape { wanted, found } => {
                write!(f, "shape is {found}, not {wanted}")
            }
            AccessError::ShapeMismatch => f.write_str("value does not match its shape"),
        }
    }
}

impl std::error::Error for AccessError {}

/// A decoded value together with its shape. Accessors look through pointers; once a nil pointer is met
/// the view is *absent* and scalar accessors answer `Ok(None)` (Go would see no value there, not a zero).
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    shape: &'a Shape,
    value: Option<&'a Go>,
}

impl<'a> View<'a> {
    /// A view of `value`, which [`unmarshal`] decoded with `shape`.
    pub fn new(shape: &'a Shape, value: &'a Go) -> Self {
        View {
            shape,
            value: Some(value),
        }
    }

    /// The shape at this point of the value.
    pub fn shape(self) -> &'a Shape {
        self.shape
    }

    /// The value, or `None` when it lies behind a nil pointer.
    pub fn go(self) -> Option<&'a Go> {
        self.value
    }

    /// Follows pointers; a nil pointer makes the view absent.
    pub fn deref(self) -> Result<View<'a>, AccessError> {
        let mut view = self;
        for _ in 0..MAX_VALUE_DEPTH {
            let Shape::Ptr(inner) = view.shape else {
                return Ok(view);
            };
            let value = match view.value {
                None => None,
                Some(Go::Ptr(p)) => p.as_deref(),
                Some(_) => return Err(AccessError::ShapeMismatch),
            };
            view = View {
                shape: inner,
                value,
            };
        }
        Err(AccessError::ShapeMismatch)
    }

    /// Absent (behind a nil pointer), or a nil pointer, map or slice.
    pub fn is_nil(self) -> Result<bool, AccessError> {
        Ok(matches!(
            self.deref()?.value,
            None | Some(Go::Map(None)) | Some(Go::Slice(None))
        ))
    }

    /// The struct field with this exact JSON name.
    pub fn field(self, name: &str) -> Result<View<'a>, AccessError> {
        let view = self.deref()?;
        let Shape::Struct(fields) = view.shape else {
            return Err(AccessError::WrongShape {
                wanted: "struct",
                found: view.shape.describe(),
            });
        };
        let Some((index, field)) = fields.iter().enumerate().find(|(_, f)| f.name == name) else {
            return Err(AccessError::NoSuchField {
                name: name.to_owned(),
            });
        };
        let value = match view.value {
            None => None,
            Some(Go::Struct(values)) => Some(values.get(index).ok_or(AccessError::ShapeMismatch)?),
            Some(_) => return Err(AccessError::ShapeMismatch),
        };
        Ok(View {
            shape: &field.shape,
            value,
        })
    }

    /// Nested struct fields, e.g. `"HostConfig.Privileged"`.
    pub fn path(self, dotted: &str) -> Result<View<'a>, AccessError> {
        dotted
            .split('.')
            .try_fold(self, |view, name| view.field(name))
    }

    /// The bool, `None` when absent. Errors when the shape is not a bool.
    pub fn as_bool(self) -> Result<Option<bool>, AccessError> {
        match self.scalar(&Shape::Bool)? {
            None => Ok(None),
            Some(Go::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(AccessError::ShapeMismatch),
        }
    }

    /// The string, `None` when absent. Errors when the shape is not a string.
    pub fn as_str(self) -> Result<Option<&'a str>, AccessError> {
        match self.scalar(&Shape::String)? {
            None => Ok(None),
            Some(Go::String(s)) => Ok(Some(s)),
            Some(_) => Err(AccessError::ShapeMismatch),
        }
    }

    /// The signed integer, `None` when absent. Errors when the shape is not a signed integer.
    pub fn as_i64(self) -> Result<Option<i64>, AccessError> {
        match self.scalar(&Shape::Int)? {
            None => Ok(None),
            Some(Go::Int(n)) => Ok(Some(*n)),
            Some(_) => Err(AccessError::ShapeMismatch),
        }
    }

    /// The unsigned integer, `None` when absent. Errors when the shape is not an unsigned integer.
    pub fn as_u64(self) -> Result<Option<u64>, AccessError> {
        match self.scalar(&Shape::Uint)? {
            None => Ok(None),
            Some(Go::Uint(n)) => Ok(Some(*n)),
            Some(_) => Err(AccessError::ShapeMismatch),
        }
    }

    /// The float, `None` when absent. Errors when the shape is not a float.
    pub fn as_f64(self) -> Result<Option<f64>, AccessError> {
        match self.scalar(&Shape::Float)? {
            None => Ok(None),
            Some(Go::Float(f)) => Ok(Some(*f)),
            Some(_) => Err(AccessError::ShapeMismatch),
        }
    }

    // The value of a scalar shape of the same kind as `wanted`, `None` when absent.
    fn scalar(self, wanted: &Shape) -> Result<Option<&'a Go>, AccessError> {
        let view = self.deref()?;
        if std::mem::discriminant(view.shape) != std::mem::discriminant(wanted) {
            return Err(AccessError::WrongShape {
                wanted: wanted.describe(),
                found: view.shape.describe(),
            });
        }
        Ok(view.value)
    }

    /// The elements of a slice (none when nil or absent).
    pub fn elements(self) -> Result<Elements<'a>, AccessError> {
        let view = self.deref()?;
        let shape: &'a Shape = match view.shape {
            Shape::Slice(elem) => elem,
            Shape::StrSlice => &Shape::String,
            other => {
                return Err(AccessError::WrongShape {
                    wanted: "slice",
                    found: other.describe(),
                })
            }
        };
        let items: &'a [Go] = match view.value {
            None | Some(Go::Slice(None)) => &[],
            Some(Go::Slice(Some(items))) => items,
            Some(_) => return Err(AccessError::ShapeMismatch),
        };
        Ok(Elements {
            shape,
            items: items.iter(),
        })
    }

    /// The strings of a `[]string` or StrSlice (none when nil or absent).
    pub fn strings(self) -> Result<Vec<&'a str>, AccessError> {
        self.elements()?
            .map(|e| e.as_str()?.ok_or(AccessError::ShapeMismatch))
            .collect()
    }

    /// The entries of a map (none when nil or absent).
    pub fn entries(self) -> Result<Entries<'a>, AccessError> {
        let view = self.deref()?;
        let Shape::Map(shape) = view.shape else {
            return Err(AccessError::WrongShape {
                wanted: "map",
                found: view.shape.describe(),
            });
        };
        let entries: &'a [(String, Go)] = match view.value {
            None | Some(Go::Map(None)) => &[],
            Some(Go::Map(Some(entries))) => entries,
            Some(_) => return Err(AccessError::ShapeMismatch),
        };
        Ok(Entries {
            shape,
            entries: entries.iter(),
        })
    }
}

/// Iterator over the elements of a slice [`View`].
#[derive(Debug, Clone)]
pub struct Elements<'a> {
    shape: &'a Shape,
    items: std::slice::Iter<'a, Go>,
}

impl<'a> Iterator for Elements<'a> {
    type Item = View<'a>;

    fn next(&mut self) -> Option<View<'a>> {
        let shape = self.shape;
        self.items.next().map(|go| View::new(shape, go))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

impl ExactSizeIterator for Elements<'_> {}

/// Iterator over the entries of a map [`View`].
#[derive(Debug, Clone)]
pub struct Entries<'a> {
    shape: &'a Shape,
    entries: std::slice::Iter<'a, (String, Go)>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (&'a str, View<'a>);

    fn next(&mut self) -> Option<(&'a str, View<'a>)> {
        let shape = self.shape;
        self.entries
            .next()
            .map(|(k, go)| (k.as_str(), View::new(shape, go)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for Entries<'_> {}

/// Why a body was refused. Offsets are 0-based byte offsets into the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Only whitespace (Go's Decoder returns io.EOF).
    Empty,
    /// The body ends inside the value.
    UnexpectedEnd,
    /// A byte Go's scanner rejects; `context` is what the scanner was reading.
    Syntax {
        /// Where the byte is.
        offset: usize,
        /// The byte.
        found: u8,
        /// What the scanner was reading, in Go's words.
        context: &'static str,
    },
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    TooDeep {
        /// Where the container that is one too deep opens.
        offset: usize,
    },
    /// Non-whitespace after the first JSON value.
    TrailingData {
        /// Where the trailing data starts.
        offset: usize,
    },
    /// A JSON value of a kind Go cannot store in the field (Go's UnmarshalTypeError).
    TypeMismatch {
        /// Where in the Go value, e.g. `HostConfig.Mounts[0].Source`; empty for the whole body.
        path: String,
        /// The Go kind of the field.
        expected: &'static str,
        /// The JSON kind found.
        found: &'static str,
        /// Where the JSON value starts.
        offset: usize,
    },
    /// A number Go cannot store in the field: a fraction or exponent for an integer, a sign for an
    /// unsigned integer, or out of range.
    NumberRange {
        /// Where in the Go value; empty for the whole body.
        path: String,
        /// The number as written (shortened when long).
        literal: String,
        /// The Go type of the field.
        expected: &'static str,
        /// Where the number starts.
        offset: usize,
    },
    /// The body would build more than [`MAX_VALUES`] values.
    TooLarge,
    /// The shape cannot be decoded faithfully (a bug in a shape table, never the client's fault).
    UnsupportedShape {
        /// Where in the Go value.
        path: String,
        /// What the shape does that cannot be mirrored.
        reason: &'static str,
    },
    /// The decoder lost track of the input (a bug).
    Internal,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Empty => f.write_str("invalid JSON: empty body"),
            Error::UnexpectedEnd => f.write_str("invalid JSON: unexpected end of input"),
            Error::Syntax {
                offset,
                found,
                context,
            } => write!(
                f,
                "invalid JSON at byte {offset}: invalid character {} {context}",
                QuotedByte(*found)
            ),
            Error::TooDeep { offset } => write!(
                f,
                "invalid JSON at byte {offset}: JSON nested too deeply (limit {MAX_DEPTH})"
            ),
            Error::TrailingData { offset } => {
                write!(
                    f,
                    "invalid JSON at byte {offset}: trailing data after JSON value"
                )
            }
            Error::TypeMismatch {
                path,
                expected,
                found,
                ..
            } => write!(
                f,
                "type mismatch for {}: expected {expected}, got {found}",
                Target(path)
            ),
            Error::NumberRange {
                path,
                literal,
                expected,
                ..
            } => write!(
                f,
                "type mismatch for {}: number {literal} does not fit {expected}",
                Target(path)
            ),
            Error::TooLarge => write!(
                f,
                "JSON body too large to inspect (more than {MAX_VALUES} values)"
            ),
            Error::UnsupportedShape { path, reason } => {
                write!(f, "cannot inspect {}: {reason}", Target(path))
            }
            Error::Internal => f.write_str("internal error while inspecting JSON"),
        }
    }
}

impl std::error::Error for Error {}

struct QuotedByte(u8);

impl fmt::Display for QuotedByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b'\'' => f.write_str("'\\''"),
            b if b.is_ascii_graphic() || b == b' ' => write!(f, "'{}'", char::from(b)),
            b => write!(f, "'\\x{b:02x}'"),
        }
    }
}

struct Target<'p>(&'p str);

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("JSON value")
        } else {
            write!(f, "field {}", self.0)
        }
    }
}

/// Decodes the first JSON value of `input` into a zero value of `shape` the way Go's
/// `json.NewDecoder(r).Decode(&v)` does, refusing what dockerd would reject and what this decoder cannot
/// mirror (see the module documentation).
pub fn unmarshal(input: &[u8], shape: &Shape) -> Result<Go, Error> {
    let end = validate(input)?;
    let rest = skip_ws(input, end);
    if rest < input.len() {
        return Err(Error::TrailingData { offset: rest });
    }
    let mut decoder = Decoder {
        src: input,
        pos: 0,
        path: Vec::new(),
        values: 0,
    };
    let mut root = decoder.zero(shape, 0)?;
    decoder.value(shape, &mut root, 0)?;
    Ok(root.into_go())
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn skip_ws(src: &[u8], mut i: usize) -> usize {
    while src.get(i).is_some_and(|&b| is_ws(b)) {
        i += 1;
    }
    i
}

fn syntax(offset: usize, found: u8, context: &'static str) -> Error {
    Error::Syntax {
        offset,
        found,
        context,
    }
}

// First pass, Go's scanner: checks the syntax of the first value (so that a syntax error anywhere wins over
// type errors, as in Go) and returns the offset just past it. Iterative, so depth costs no stack.
fn validate(src: &[u8]) -> Result<usize, Error> {
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

// Second pass over validated input: decodes into the value the way Go's decodeState does.
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

// Go's foldName equality for an ASCII field name: ASCII letters match either case, other ASCII bytes match
// exactly, U+212A KELVIN SIGN matches k and U+017F LONG S matches s. No other rune folds to ASCII (Go keeps
// U+0130 and U+0131 in orbits of their own).
fn fold_eq(key: &str, name: &str) -> bool {
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
fn unquote(raw: &[u8]) -> String {
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
fn parse_i64(literal: &[u8]) -> Option<i64> {
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
fn parse_u64(literal: &[u8]) -> Option<u64> {
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
fn parse_f64(literal: &[u8]) -> Option<f64> {
    let f: f64 = std::str::from_utf8(literal).ok()?.parse().ok()?;
    f.is_finite().then_some(f)
}

#[cfg(test)]
mod tests {
    // Expected values were checked against Go's encoding/json (json.NewDecoder(r).Decode) on the same
    // inputs and equivalent Go types.
    use super::*;

    static MOUNT: Shape = Shape::Struct(&[
        Field {
            name: "Type",
            shape: Shape::String,
        },
        Field {
            name: "Source",
            shape: Shape::String,
        },
        Field {
            name: "Target",
            shape: Shape::String,
        },
        Field {
            name: "ReadOnly",
            shape: Shape::Bool,
        },
    ]);
    static MOUNT_PTR: Shape = Shape::Ptr(&MOUNT);
    static INT_PTR: Shape = Shape::Ptr(&Shape::Int);
    static STRINGS: Shape = Shape::Slice(&Shape::String);
    static HOST_CONFIG_FIELDS: &[Field] = &[
        Field {
            name: "Binds",
            shape: Shape::Slice(&Shape::String),
        },
        Field {
            name: "Privileged",
            shape: Shape::Bool,
        },
        Field {
            name: "CapAdd",
            shape: Shape::StrSlice,
        },
        Field {
            name: "Mounts",
            shape: Shape::Slice(&MOUNT),
        },
        Field {
            name: "Devices",
            shape: Shape::Slice(&MOUNT_PTR),
        },
        Field {
            name: "PidsLimit",
            shape: Shape::Ptr(&Shape::Int),
        },
        Field {
            name: "Memory",
            shape: Shape::Int,
        },
        Field {
            name: "BlkioWeight",
            shape: Shape::Uint,
        },
        Field {
            name: "Init",
            shape: Shape::Ptr(&Shape::Bool),
        },
        Field {
            name: "Sysctls",
            shape: Shape::Map(&Shape::String),
        },
        Field {
            name: "Tmpfs",
            shape: Shape::Map(&MOUNT),
        },
        Field {
            name: "Links",
            shape: Shape::Ptr(&STRINGS),
        },
        Field {
            name: "Cpu_Shares",
            shape: Shape::Int,
        },
    ];
    static HOST_CONFIG: Shape = Shape::Struct(HOST_CONFIG_FIELDS);
    static CREATE: Shape = Shape::Struct(&[
        Field {
            name: "Image",
            shape: Shape::String,
        },
        Field {
            name: "Cmd",
            shape: Shape::StrSlice,
        },
        Field {
            name: "Labels",
            shape: Shape::Map(&Shape::String),
        },
        Field {
            name: "Volumes",
            shape: Shape::Map(&Shape::Opaque),
        },
        Field {
            name: "HostConfig",
            shape: Shape::Ptr(&HOST_CONFIG),
        },
        Field {
            name: "Defaults",
            shape: Shape::Struct(HOST_CONFIG_FIELDS),
        },
        Field {
            name: "StopTimeout",
            shape: Shape::Ptr(&INT_PTR),
        },
        Field {
            name: "Kind",
            shape: Shape::String,
        },
        Field {
            name: "Size",
            shape: Shape::Int,
        },
        Field {
            name: "Mode",
            shape: Shape::String,
        },
        Field {
            name: "mode",
            shape: Shape::String,
        },
        Field {
            name: "Spec",
            shape: Shape::Opaque,
        },
    ]);

    fn decode(json: &str) -> Go {
        match unmarshal(json.as_bytes(), &CREATE) {
            Ok(go) => go,
            Err(e) => panic!("{json}: {e}"),
        }
    }

    fn refuse(json: &[u8]) -> Error {
        match unmarshal(json, &CREATE) {
            Ok(go) => panic!("{:?} accepted: {go:?}", String::from_utf8_lossy(json)),
            Err(e) => e,
        }
    }

    fn at<'a>(go: &'a Go, path: &str) -> View<'a> {
        go.view(&CREATE).path(path).expect(path)
    }

    fn bool_at(go: &Go, path: &str) -> Option<bool> {
        at(go, path).as_bool().expect(path)
    }

    fn str_at<'a>(go: &'a Go, path: &str) -> Option<&'a str> {
        at(go, path).as_str().expect(path)
    }

    fn strings_at<'a>(go: &'a Go, path: &str) -> Vec<&'a str> {
        at(go, path).strings().expect(path)
    }

    fn mounts(go: &Go, path: &str) -> Vec<(String, String)> {
        at(go, path)
            .elements()
            .expect(path)
            .map(|m| {
                let source = m.field("Source").and_then(View::as_str).expect("Source");
                let target = m.field("Target").and_then(View::as_str).expect("Target");
                (
                    source.unwrap_or("-").to_owned(),
                    target.unwrap_or("-").to_owned(),
                )
            })
            .collect()
    }

    fn pair(source: &str, target: &str) -> (String, String) {
        (source.to_owned(), target.to_owned())
    }

    #[test]
    fn keys_fold_ascii_case() {
        // decode.go object(): byExactName, else byFoldedName[foldName(key)].
        for key in ["Privileged", "privileged", "PRIVILEGED", "pRiViLeGeD"] {
            let go = decode(&format!(r#"{{"HostConfig":{{"{key}":true}}}}"#));
            assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true), "{key}");
        }
    }

    #[test]
    fn keys_fold_kelvin_and_long_s() {
        // fold.go: foldRune(U+212A) = 'K', foldRune(U+017F) = 'S'.
        let go = decode("{\"\u{212A}ind\":\"a\",\"\u{17F}ize\":5}");
        assert_eq!(str_at(&go, "Kind"), Some("a"));
        assert_eq!(at(&go, "Size").as_i64(), Ok(Some(5)));
        let go = decode(r#"{"\u212aIND":"b","\u017fIZE":6,"HostConfig":{"Privileged":true}}"#);
        assert_eq!(str_at(&go, "Kind"), Some("b"));
        assert_eq!(at(&go, "Size").as_i64(), Ok(Some(6)));
    }

    #[test]
    fn keys_do_not_fold_dotted_and_dotless_i() {
        // unicode.caseOrbit keeps U+0130 and U+0131 in orbits of their own.
        let go = decode("{\"HostConfig\":{\"Pr\u{131}vileged\":true,\"PR\u{130}VILEGED\":true}}");
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(false));
    }

    #[test]
    fn keys_prefer_exact_match_then_first_fold() {
        // An exact match wins; among folded matches the first field in Go's order wins.
        let go = decode(r#"{"mode":"exact"}"#);
        assert_eq!(str_at(&go, "Mode"), Some(""));
        assert_eq!(str_at(&go, "mode"), Some("exact"));
        let go = decode(r#"{"MODE":"folded"}"#);
        assert_eq!(str_at(&go, "Mode"), Some("folded"));
        assert_eq!(str_at(&go, "mode"), Some(""));
    }

    #[test]
    fn keys_fold_only_letters() {
        // Go v1 folding keeps '_' and '-': "CpuShares" does not reach "Cpu_Shares".
        let go = decode(r#"{"HostConfig":{"CPU_SHARES":1,"CpuShares":2,"cpu-shares":3}}"#);
        assert_eq!(at(&go, "HostConfig.Cpu_Shares").as_i64(), Ok(Some(1)));
    }

    #[test]
    fn keys_unescape_before_matching() {
        // unquoteBytes runs on the key before the field lookup.
        let go = decode(r#"{"HostConfig":{"Privil\u0065ged":true}}"#);
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true));
        let go = decode(r#"{"HostConfig":{"Privileged\u0000":true}}"#);
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(false));
    }

    #[test]
    fn duplicate_scalar_last_wins_and_null_keeps() {
        // Each occurrence decodes into the same field; null into a bool is a no-op.
        let go = decode(r#"{"HostConfig":{"Privileged":true,"Privileged":false}}"#);
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(false));
        let go = decode(r#"{"HostConfig":{"Privileged":false,"privileged":true}}"#);
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true));
        let go = decode(r#"{"HostConfig":{"Privileged":true,"Privileged":null}}"#);
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true));
        let go = decode(r#"{"Image":"a","Image":null,"Size":3,"Size":null}"#);
        assert_eq!(str_at(&go, "Image"), Some("a"));
        assert_eq!(at(&go, "Size").as_i64(), Ok(Some(3)));
    }

    #[test]
    fn duplicate_struct_merges() {
        // A struct field is decoded in place; null leaves it unchanged.
        let go =
            decode(r#"{"Defaults":{"Privileged":true},"Defaults":null,"Defaults":{"Memory":5}}"#);
        assert_eq!(bool_at(&go, "Defaults.Privileged"), Some(true));
        assert_eq!(at(&go, "Defaults.Memory").as_i64(), Ok(Some(5)));
    }

    #[test]
    fn duplicate_pointer_to_struct_merges_until_null() {
        // indirect() reuses a non-nil pointee; null sets the pointer to nil.
        let go = decode(r#"{"HostConfig":{"Privileged":true},"HostConfig":{"Memory":5}}"#);
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true));
        assert_eq!(at(&go, "HostConfig.Memory").as_i64(), Ok(Some(5)));
        let go = decode(r#"{"HostConfig":{"Privileged":true},"HostConfig":null}"#);
        assert_eq!(at(&go, "HostConfig").is_nil(), Ok(true));
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), None);
        let go = decode(r#"{"HostConfig":{"Privileged":true},"HostConfig":null,"HostConfig":{}}"#);
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(false));
    }

    #[test]
    fn duplicate_map_keeps_entries_and_replaces_values() {
        // object() keeps a non-nil map; each value is decoded into a fresh zero mapElem.
        let go = decode(r#"{"Labels":{"a":"1","b":"2"},"Labels":{"a":"3"},"Labels":{}}"#);
        let labels: Vec<_> = at(&go, "Labels")
            .entries()
            .expect("entries")
            .map(|(k, v)| (k, v.as_str().expect("str")))
            .collect();
        assert_eq!(labels, [("a", Some("3")), ("b", Some("2"))]);
        let go = decode(
            r#"{"HostConfig":{"Tmpfs":{"/t":{"Source":"s"}},"Tmpfs":{"/t":{"Target":"t"}}}}"#,
        );
        let (key, mount) = at(&go, "HostConfig.Tmpfs")
            .entries()
            .expect("map")
            .next()
            .expect("entry");
        assert_eq!(key, "/t");
        assert_eq!(mount.field("Source").and_then(View::as_str), Ok(Some("")));
        assert_eq!(mount.field("Target").and_then(View::as_str), Ok(Some("t")));
        let go = decode(r#"{"Labels":{"a":"1"},"Labels":null}"#);
        assert_eq!(at(&go, "Labels").is_nil(), Ok(true));
    }

    #[test]
    fn map_keys_are_verbatim_after_unescaping() {
        // Map keys are not folded; invalid UTF-8 and lone surrogates become U+FFFD and may collide.
        let go = decode(r#"{"Labels":{"A":"1","a":"2","\u0062":"3","\ud800":"4","\ufffd":"5"}}"#);
        let labels = go
            .view(&CREATE)
            .field("Labels")
            .expect("Labels")
            .go()
            .expect("present");
        assert_eq!(labels.get("A").and_then(Go::as_str), Some("1"));
        assert_eq!(labels.get("a").and_then(Go::as_str), Some("2"));
        assert_eq!(labels.get("b").and_then(Go::as_str), Some("3"));
        assert_eq!(labels.get("\u{FFFD}").and_then(Go::as_str), Some("5"));
        assert_eq!(labels.as_map().map(<[_]>::len), Some(4));
    }

    #[test]
    fn duplicate_slice_reuses_elements_and_truncates() {
        // array(): elements below the old length are decoded in place, then the length is cut.
        let go = decode(
            r#"{"HostConfig":{"Mounts":[{"Source":"/","Target":"/host"}],"Mounts":[{"Target":"/x"}]}}"#,
        );
        assert_eq!(mounts(&go, "HostConfig.Mounts"), [pair("/", "/x")]);
        let go = decode(r#"{"HostConfig":{"Binds":["/:/a","/b:/b"],"Binds":["/c:/c"]}}"#);
        assert_eq!(strings_at(&go, "HostConfig.Binds"), ["/c:/c"]);
    }

    #[test]
    fn slice_truncated_tail_comes_back() {
        // SetLen within the capacity exposes the old elements, which are then decoded into.
        let go = decode(
            r#"{"HostConfig":{"Mounts":[{"Source":"/data","Target":"/d"},{"Source":"/","Target":"/host"}],
                "Mounts":[{}],"Mounts":[{},{}]}}"#,
        );
        assert_eq!(
            mounts(&go, "HostConfig.Mounts"),
            [pair("/data", "/d"), pair("/", "/host")]
        );
        let go =
            decode(r#"{"HostConfig":{"Binds":["a","/:/host"],"Binds":["x"],"Binds":["y",null]}}"#);
        assert_eq!(strings_at(&go, "HostConfig.Binds"), ["y", "/:/host"]);
        let go = decode(r#"{"HostConfig":{"Links":["a","b"],"Links":["c"],"Links":[null,null]}}"#);
        assert_eq!(strings_at(&go, "HostConfig.Links"), ["c", "b"]);
    }

    #[test]
    fn slice_of_pointers_tail_comes_back_and_merges() {
        // A nil element stays in the backing array; a non-nil one is reused by indirect().
        let go = decode(
            r#"{"HostConfig":{"Devices":[{"Source":"/dev/a"},{"Source":"/dev/b"}],"Devices":[null],
                "Devices":[{"Target":"/x"},{"Target":"/y"}]}}"#,
        );
        assert_eq!(
            mounts(&go, "HostConfig.Devices"),
            [pair("", "/x"), pair("/dev/b", "/y")]
        );
    }

    #[test]
    fn empty_array_and_null_reset_the_backing_array() {
        // `[]` is a new empty slice, null a nil one: nothing comes back afterwards.
        for reset in ["[]", "null"] {
            let go = decode(&format!(
                r#"{{"HostConfig":{{"Binds":["a","/:/host"],"Binds":{reset},"Binds":["x",null]}}}}"#
            ));
            assert_eq!(strings_at(&go, "HostConfig.Binds"), ["x", ""], "{reset}");
        }
        let go = decode(r#"{"HostConfig":{"Binds":[]}}"#);
        assert_eq!(at(&go, "HostConfig.Binds").is_nil(), Ok(false));
        let go = decode(r#"{"HostConfig":{"Binds":["a"],"Binds":null}}"#);
        assert_eq!(at(&go, "HostConfig.Binds").is_nil(), Ok(true));
    }

    #[test]
    fn str_slice_replaces_and_accepts_a_string() {
        // strslice.StrSlice.UnmarshalJSON: fresh []string, else a single string; null gives nil.
        let go = decode(r#"{"HostConfig":{"CapAdd":"SYS_ADMIN"}}"#);
        assert_eq!(strings_at(&go, "HostConfig.CapAdd"), ["SYS_ADMIN"]);
        let go = decode(r#"{"Cmd":["a","b"],"Cmd":[null]}"#);
        assert_eq!(strings_at(&go, "Cmd"), [""]);
        let go = decode(r#"{"Cmd":["a"],"Cmd":null}"#);
        assert_eq!(at(&go, "Cmd").is_nil(), Ok(true));
        let go = decode(r#"{"Cmd":[]}"#);
        assert_eq!(at(&go, "Cmd").is_nil(), Ok(false));
        assert!(matches!(
            refuse(br#"{"Cmd":["a",1]}"#),
            Error::TypeMismatch { .. }
        ));
        assert!(matches!(
            refuse(br#"{"Cmd":{}}"#),
            Error::TypeMismatch { .. }
        ));
    }

    #[test]
    fn null_sets_pointers_maps_slices_to_nil_only() {
        // literalStore: null zeroes Interface, Pointer, Map, Slice; other kinds are left alone.
        let go = decode(
            r#"{"Image":"i","HostConfig":{"PidsLimit":5,"Init":true,"Sysctls":{"a":"b"},"Binds":["x"],
                "Memory":7,"BlkioWeight":3,"Privileged":true},
                "HostConfig":{"PidsLimit":null,"Init":null,"Sysctls":null,"Binds":null,
                "Memory":null,"BlkioWeight":null,"Privileged":null},"Image":null}"#,
        );
        assert_eq!(str_at(&go, "Image"), Some("i"));
        assert_eq!(at(&go, "HostConfig.PidsLimit").as_i64(), Ok(None));
        assert_eq!(bool_at(&go, "HostConfig.Init"), None);
        assert_eq!(at(&go, "HostConfig.Sysctls").is_nil(), Ok(true));
        assert_eq!(at(&go, "HostConfig.Binds").is_nil(), Ok(true));
        assert_eq!(at(&go, "HostConfig.Memory").as_i64(), Ok(Some(7)));
        assert_eq!(at(&go, "HostConfig.BlkioWeight").as_u64(), Ok(Some(3)));
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), Some(true));
    }

    #[test]
    fn null_into_pointer_to_pointer_clears_the_outer_pointer() {
        // indirect(v, decodingNull) stops at the first settable pointer.
        let go = decode(r#"{"StopTimeout":5,"StopTimeout":null}"#);
        assert_eq!(at(&go, "StopTimeout").go(), Some(&Go::Ptr(None)));
        let go = decode(r#"{"StopTimeout":5}"#);
        assert_eq!(at(&go, "StopTimeout").as_i64(), Ok(Some(5)));
    }

    #[test]
    fn top_level_null_is_the_zero_value() {
        // Decode(&v) with null into a struct leaves it unchanged.
        let go = decode("null");
        assert_eq!(str_at(&go, "Image"), Some(""));
        assert_eq!(at(&go, "HostConfig").is_nil(), Ok(true));
        assert_eq!(unmarshal(b" null ", &MOUNT_PTR), Ok(Go::Ptr(None)));
    }

    #[test]
    fn strings_replace_invalid_utf8_and_surrogates_like_go() {
        // unquoteBytes: utf8.DecodeRune per byte, utf16.DecodeRune for \u pairs, else U+FFFD.
        let cases: &[(&[u8], &str)] = &[
            (br#""\ud83d\ude00""#, "\u{1F600}"),
            (br#""\ud800""#, "\u{FFFD}"),
            (br#""\ud800\u0041""#, "\u{FFFD}A"),
            (br#""\udc00\ud800\udc00""#, "\u{FFFD}\u{10000}"),
            (br#""\ud800\ud800\udc00""#, "\u{FFFD}\u{10000}"),
            (br#""\ud800\n""#, "\u{FFFD}\n"),
            (b"\"a\xffb\"", "a\u{FFFD}b"),
            (b"\"\xe2\x82\"", "\u{FFFD}\u{FFFD}"),
            (b"\"\xed\xa0\x80\"", "\u{FFFD}\u{FFFD}\u{FFFD}"),
            (b"\"\xc0\x80\"", "\u{FFFD}\u{FFFD}"),
            (b"\"\xf4\x90\x80\x80\"", "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}"),
            (b"\"\xe2\x82\xac\x7f\"", "\u{20AC}\u{7F}"),
            (
                br#""\"\\\/\b\f\n\r\t\u00e9""#,
                "\"\\/\u{8}\u{c}\n\r\t\u{e9}",
            ),
        ];
        for (json, want) in cases {
            let got = unmarshal(json, &Shape::String);
            assert_eq!(got, Ok(Go::String((*want).to_owned())), "{json:?}");
        }
    }

    #[test]
    fn integers_parse_the_literal_as_written() {
        // literalStore: strconv.ParseInt / ParseUint on the literal text.
        assert_eq!(unmarshal(b"-0", &Shape::Int), Ok(Go::Int(0)));
        assert_eq!(
            unmarshal(b"-9223372036854775808", &Shape::Int),
            Ok(Go::Int(i64::MIN))
        );
        assert_eq!(
            unmarshal(b"9223372036854775807", &Shape::Int),
            Ok(Go::Int(i64::MAX))
        );
        assert_eq!(
            unmarshal(b"18446744073709551615", &Shape::Uint),
            Ok(Go::Uint(u64::MAX))
        );
        for (json, shape) in [
            (&b"9223372036854775808"[..], &Shape::Int),
            (b"-9223372036854775809", &Shape::Int),
            (b"1.0", &Shape::Int),
            (b"1e3", &Shape::Int),
            (b"18446744073709551616", &Shape::Uint),
            (b"-1", &Shape::Uint),
            (b"-0", &Shape::Uint),
        ] {
            let err = unmarshal(json, shape).expect_err("refused");
            assert!(
                matches!(err, Error::NumberRange { .. }),
                "{json:?}: {err:?}"
            );
        }
    }

    #[test]
    fn floats_round_like_parse_float() {
        // strconv.ParseFloat(s, 64): correctly rounded, ±Inf is a range error, underflow is 0.
        let bits = |json: &[u8]| match unmarshal(json, &Shape::Float) {
            Ok(Go::Float(f)) => Some(f.to_bits()),
            _ => None,
        };
        assert_eq!(bits(b"-0"), Some(0x8000_0000_0000_0000));
        assert_eq!(bits(b"-1e-400"), Some(0x8000_0000_0000_0000));
        assert_eq!(bits(b"1e3"), Some(1000f64.to_bits()));
        assert_eq!(bits(b"1.7976931348623158e308"), Some(f64::MAX.to_bits()));
        assert_eq!(bits(b"4.9e-324"), Some(1));
        assert_eq!(
            bits(b"9007199254740993"),
            Some(9_007_199_254_740_992f64.to_bits())
        );
        for json in [&b"1e400"[..], b"-1e400", b"1.797693134862315808e308"] {
            assert!(matches!(
                unmarshal(json, &Shape::Float),
                Err(Error::NumberRange { .. })
            ));
        }
    }

    #[test]
    fn type_mismatches_are_refused() {
        // Go records an UnmarshalTypeError and dockerd rejects the body.
        let cases: &[(&[u8], &str)] = &[
            (
                br#"{"HostConfig":{"Privileged":"true"}}"#,
                "HostConfig.Privileged",
            ),
            (
                br#"{"HostConfig":{"Privileged":1}}"#,
                "HostConfig.Privileged",
            ),
            (br#"{"Image":5}"#, "Image"),
            (br#"{"HostConfig":{"Binds":{}}}"#, "HostConfig.Binds"),
            (br#"{"HostConfig":{"Binds":"a"}}"#, "HostConfig.Binds"),
            (br#"{"HostConfig":[]}"#, "HostConfig"),
            (
                br#"{"HostConfig":{"Mounts":[{"Source":[]}]}}"#,
                "HostConfig.Mounts[0].Source",
            ),
            (br#"{"Labels":{"a":1}}"#, "Labels[\"a\"]"),
            (br#"{"Size":true}"#, "Size"),
            (b"[]", ""),
        ];
        for (json, want) in cases {
            match unmarshal(json, &CREATE) {
                Err(Error::TypeMismatch { path, .. }) => assert_eq!(path, *want),
                other => panic!("{json:?}: {other:?}"),
            }
        }
        assert_eq!(
            refuse(br#"{"HostConfig":{"Privileged":"yes"}}"#).to_string(),
            "type mismatch for field HostConfig.Privileged: expected bool, got string"
        );
        assert_eq!(
            refuse(br#"{"HostConfig":{"Memory":1.5}}"#).to_string(),
            "type mismatch for field HostConfig.Memory: number 1.5 does not fit int64"
        );
    }

    #[test]
    fn syntax_is_go_scanner_syntax() {
        // scanner.go: RFC 8259 only.
        let invalid: &[&[u8]] = &[
            br#"{"Image":"a",}"#,
            br#"{"Cmd":["a",]}"#,
            br#"{"Cmd":[,"a"]}"#,
            br#"{"Image":"a"/*c*/}"#,
            br#"{"Size":NaN}"#,
            br#"{"Size":Infinity}"#,
            br#"{"Size":+1}"#,
            br#"{"Size":01}"#,
            br#"{"Size":1.}"#,
            br#"{"Size":.5}"#,
            br#"{"Size":1e}"#,
            br#"{"Size":-}"#,
            br#"{'Image':'a'}"#,
            br#"{Image:"a"}"#,
            br#"{"Image" "a"}"#,
            br#"{"Image":"\x41"}"#,
            br#"{"Image":"\u12"}"#,
            b"{\"Image\":\"a\tb\"}",
            b"\xef\xbb\xbf{}",
            br#"{"Spec":tru}"#,
            br#"{"Spec":[1,2,{"a":}]}"#,
        ];
        for json in invalid {
            let err = refuse(json);
            assert!(
                matches!(err, Error::Syntax { .. } | Error::UnexpectedEnd),
                "{:?}: {err:?}",
                String::from_utf8_lossy(json)
            );
        }
        assert_eq!(refuse(b""), Error::Empty);
        assert_eq!(refuse(b" \n\t\r "), Error::Empty);
        assert_eq!(refuse(br#"{"Image":"#), Error::UnexpectedEnd);
        assert_eq!(refuse(br#"{"Image":"a"#), Error::UnexpectedEnd);
        assert_eq!(
            refuse(br#"{"Image":"a",}"#).to_string(),
            "invalid JSON at byte 13: invalid character '}' looking for beginning of object key string"
        );
    }

    #[test]
    fn trailing_whitespace_only() {
        // Go's Decoder would leave trailing data unread; we refuse anything but whitespace.
        assert!(unmarshal(b" {} \r\n\t", &CREATE).is_ok());
        assert_eq!(refuse(b"{} x"), Error::TrailingData { offset: 3 });
        assert_eq!(refuse(b"{}{}"), Error::TrailingData { offset: 2 });
        assert_eq!(refuse(b"{}}"), Error::TrailingData { offset: 2 });
        assert_eq!(
            unmarshal(b"12x", &Shape::Int),
            Err(Error::TrailingData { offset: 2 })
        );
    }

    #[test]
    fn unknown_and_opaque_values_are_skipped_but_checked() {
        let go = decode(
            r#"{"Unknown":{"a":[1,{"b":null}],"c":"\u00e9"},"Spec":[true,{"x":-1.5e3}],"Image":"i"}"#,
        );
        assert_eq!(str_at(&go, "Image"), Some("i"));
        assert_eq!(at(&go, "Spec").go(), Some(&Go::Opaque));
        let go = decode(r#"{"Volumes":{"/data":{},"/x":null}}"#);
        assert_eq!(at(&go, "Volumes").entries().map(|e| e.len()), Ok(2));
    }

    #[test]
    fn depth_limit() {
        static NESTED: Shape = Shape::Slice(&NESTED);
        let nest = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(unmarshal(nest(MAX_DEPTH).as_bytes(), &NESTED).is_ok());
        assert!(unmarshal(nest(MAX_DEPTH).as_bytes(), &Shape::Opaque).is_ok());
        assert_eq!(
            unmarshal(nest(MAX_DEPTH + 1).as_bytes(), &NESTED),
            Err(Error::TooDeep { offset: MAX_DEPTH })
        );
        let deep = "[".repeat(1_000_000);
        assert_eq!(
            unmarshal(deep.as_bytes(), &Shape::Opaque),
            Err(Error::TooDeep { offset: MAX_DEPTH })
        );
        assert_eq!(
            refuse(format!(r#"{{"Spec":{}}}"#, nest(MAX_DEPTH)).as_bytes()).to_string(),
            "invalid JSON at byte 135: JSON nested too deeply (limit 128)"
        );
    }

    #[test]
    fn value_budget() {
        static WIDE: Shape = Shape::Struct(&[
            Field {
                name: "A",
                shape: Shape::Struct(HOST_CONFIG_FIELDS),
            },
            Field {
                name: "B",
                shape: Shape::Struct(HOST_CONFIG_FIELDS),
            },
            Field {
                name: "C",
                shape: Shape::Struct(HOST_CONFIG_FIELDS),
            },
        ]);
        static MANY: Shape = Shape::Slice(&WIDE);
        let body = format!("[{}{{}}]", "{},".repeat(30_000));
        assert_eq!(unmarshal(body.as_bytes(), &MANY), Err(Error::TooLarge));
        assert!(unmarshal(b"[{},{}]", &MANY).is_ok());
    }

    #[test]
    fn unsupported_shapes_are_refused() {
        static DUP: Shape = Shape::Struct(&[
            Field {
                name: "A",
                shape: Shape::Bool,
            },
            Field {
                name: "A",
                shape: Shape::Bool,
            },
        ]);
        static NON_ASCII: Shape = Shape::Struct(&[Field {
            name: "Größe",
            shape: Shape::Int,
        }]);
        static CYCLE_FIELDS: [Field; 1] = [Field {
            name: "C",
            shape: Shape::Struct(&CYCLE_FIELDS),
        }];
        static CYCLE: Shape = Shape::Struct(&CYCLE_FIELDS);
        static POINTER_CYCLE: Shape = Shape::Ptr(&POINTER_CYCLE);
        let unsupported = |json: &[u8], shape: &Shape| {
            matches!(unmarshal(json, shape), Err(Error::UnsupportedShape { .. }))
        };
        assert!(unsupported(br#"{"A":true}"#, &DUP));
        assert!(unmarshal("{\"Größe\":1}".as_bytes(), &NON_ASCII).is_ok());
        assert!(unsupported("{\"GRÖSSE\":1}".as_bytes(), &NON_ASCII));
        assert!(unsupported(b"{}", &CYCLE));
        assert!(unsupported(b"1", &POINTER_CYCLE));
        let nil = unmarshal(b"null", &POINTER_CYCLE).expect("null");
        assert_eq!(
            nil.view(&POINTER_CYCLE).deref().map(View::go),
            Err(AccessError::ShapeMismatch)
        );
    }

    #[test]
    fn view_reports_inspector_mistakes() {
        let go = decode(r#"{"HostConfig":{"Privileged":true}}"#);
        let view = go.view(&CREATE);
        assert_eq!(
            view.path("HostConfig.Privilegd").map(View::go),
            Err(AccessError::NoSuchField {
                name: "Privilegd".to_owned()
            })
        );
        assert_eq!(
            view.path("HostConfig.Privileged").and_then(View::as_str),
            Err(AccessError::WrongShape {
                wanted: "string",
                found: "bool"
            })
        );
        assert!(view.path("Image.Name").is_err());
        assert_eq!(
            go.view(&MOUNT).field("Source").and_then(View::as_str),
            Err(AccessError::ShapeMismatch)
        );
        // Absent, not false: the pointer is nil.
        let go = decode("{}");
        assert_eq!(bool_at(&go, "HostConfig.Privileged"), None);
        assert_eq!(
            at(&go, "HostConfig.Binds").elements().map(|e| e.len()),
            Ok(0)
        );
    }

    #[test]
    fn go_accessors_follow_pointers() {
        let go = decode(r#"{"HostConfig":{"PidsLimit":9,"Binds":["a"]},"StopTimeout":3}"#);
        let Go::Struct(fields) = &go else {
            panic!("struct")
        };
        let host = fields.get(4).and_then(Go::deref).expect("HostConfig");
        let Go::Struct(host) = host else {
            panic!("struct")
        };
        assert_eq!(host.get(5).and_then(Go::as_i64), Some(9));
        assert_eq!(host.first().and_then(Go::as_slice).map(<[_]>::len), Some(1));
        assert_eq!(fields.get(6).and_then(Go::as_i64), Some(3));
        assert_eq!(Go::Ptr(None).deref(), None);
    }

    #[test]
    fn never_panics_on_mutated_input() {
        // xorshift64*: deterministic, no dependency.
        struct Rng(u64);
        impl Rng {
            fn next(&mut self) -> u64 {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
            }
            fn below(&mut self, n: usize) -> usize {
                usize::try_from(self.next() % n as u64).unwrap_or(0)
            }
        }
        const SEEDS: &[&[u8]] = &[
            br#"{"Image":"alpine","Cmd":["sh","-c","x"],"Labels":{"a":"b"},"HostConfig":{"Binds":["/:/h"],"Privileged":true,"CapAdd":"ALL","Mounts":[{"Type":"bind","Source":"/","Target":"/h"}],"Devices":[null,{"Source":"/dev/kmsg"}],"PidsLimit":-1,"Memory":1e3,"Init":null,"Tmpfs":{"/t":{}},"Links":["a"]},"StopTimeout":10,"Spec":[1,"\ud800",{"x":null}]}"#,
            b"{\"\xe2\x84\xaaind\":\"\\u212a\",\"\xc5\xbfize\":-0,\"mode\":\"\xff\",\"MODE\":\"\\\"\"}",
            br#"[[[[[[[[[[]]]]]]]]]]"#,
        ];
        const TOKENS: &[&[u8]] = &[
            b"{",
            b"}",
            b"[",
            b"]",
            b",",
            b":",
            b"\"",
            b"\\",
            b"\\u",
            b"d800",
            b"null",
            b"true",
            b"-",
            b"0",
            b"1e9",
            b".",
            b" ",
            b"\x00",
            b"\xff",
            b"\xe2\x84",
            b"\"HostConfig\":",
            b"\"Mounts\":[",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut accepted = 0;
        for round in 0..4000 {
            let mut input = SEEDS[round % SEEDS.len()].to_vec();
            for _ in 0..=rng.below(6) {
                let at = rng.below(input.len() + 1);
                match rng.below(4) {
                    0 if at < input.len() => {
                        input.remove(at);
                    }
                    1 if at < input.len() => input[at] = u8::try_from(rng.below(256)).unwrap_or(0),
                    2 => input.truncate(at),
                    _ => {
                        let token = TOKENS[rng.below(TOKENS.len())];
                        input.splice(at..at, token.iter().copied());
                    }
                }
            }
            for shape in [&CREATE, &HOST_CONFIG, &Shape::Opaque, &STRINGS] {
                if let Ok(go) = unmarshal(&input, shape) {
                    accepted += 1;
                    // What was accepted must decode the same way again.
                    assert_eq!(unmarshal(&input, shape), Ok(go));
                }
            }
        }
        assert!(accepted > 100, "only {accepted} mutated inputs decoded");
    }
}
