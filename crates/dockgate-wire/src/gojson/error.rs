//! Why a body is refused: each Go decode error (dockerd rejects the body too), and the limits and
//! unsupported shapes where this decoder is stricter than Go.

use std::fmt;

use super::{MAX_DEPTH, MAX_VALUES};

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
