//! What decoding yields: [`Go`], the value a Go program holds after `Unmarshal`, and [`View`], the
//! accessors inspectors read it through, which tell a nil pointer (nothing there) from a zero value.

use std::fmt;

#[cfg(doc)]
use super::shape::Field;
use super::shape::Shape;
#[cfg(doc)]
use super::unmarshal;
use super::MAX_VALUE_DEPTH;

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
