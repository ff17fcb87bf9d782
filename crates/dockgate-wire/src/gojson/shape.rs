//! The Go types a body is decoded into, written as tables. Only what decoding depends on is kept: the
//! kind, and for a struct its fields in declaration order (embedded structs flattened in place), since
//! that order decides which field a case-folded key lands in.

#[cfg(doc)]
use super::value::Go;
use super::MAX_VALUE_DEPTH;

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

    pub(super) fn describe(&self) -> &'static str {
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
    pub(super) fn describe_pointee(&self) -> &'static str {
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
