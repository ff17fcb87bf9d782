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
//!
//! Like Go's, decoding takes two passes: `scan` checks the syntax of the whole value, then `decode`
//! builds the value a [`Shape`] (`shape`) receives as a [`Go`] value (`value`), reading keys, strings and
//! numbers as Go does (`literal`). Refusals are [`Error`]s (`error`).

mod decode;
mod error;
mod literal;
mod scan;
mod shape;
mod value;

pub use error::Error;
pub use shape::{Field, Shape};
pub use value::{AccessError, Elements, Entries, Go, View};

/// Deepest nesting of arrays and objects accepted (Go's own limit is 10000).
pub const MAX_DEPTH: usize = 128;

/// Most values (struct fields, elements, entries, pointees) one body may build.
pub const MAX_VALUES: usize = 1 << 20;

/// Deepest value tree (JSON nesting plus pointer and embedded-struct levels of the shape).
const MAX_VALUE_DEPTH: usize = 512;

/// Decodes the first JSON value of `input` into a zero value of `shape` the way Go's
/// `json.NewDecoder(r).Decode(&v)` does, refusing what dockerd would reject and what this decoder cannot
/// mirror (see the module documentation).
pub fn unmarshal(input: &[u8], shape: &Shape) -> Result<Go, Error> {
    let end = scan::validate(input)?;
    let rest = scan::skip_ws(input, end);
    if rest < input.len() {
        return Err(Error::TrailingData { offset: rest });
    }
    decode::decode(input, shape)
}

#[cfg(test)]
mod tests;
