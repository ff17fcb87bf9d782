//! Request bodies → `gojson::unmarshal`.
//!
//! Never panics, and checks:
//! - syntax: `unmarshal` into `Shape::Opaque` accepts exactly what
//!   serde_json's syntax-only pass (`IgnoredAny`, which neither limits depth
//!   nor validates UTF-8, like Go) accepts, apart from the depth and size
//!   limits; syntax errors do not depend on the shape;
//! - decoded values have their shape (map keys sorted and unique, floats
//!   finite), and the decoder never reports its own bugs
//!   (`Internal`, `UnsupportedShape` for these well-formed shapes).
#![no_main]

use dockgate_wire::gojson::{unmarshal, Error, Field, Go, Shape};
use libfuzzer_sys::fuzz_target;

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
        name: "ReadOnly",
        shape: Shape::Bool,
    },
]);

/// Every kind of shape, with fold-equal field names (`Key`, `KEY`) whose
/// collision resolves to the first.
static CONFIG: Shape = Shape::Struct(&[
    Field {
        name: "Image",
        shape: Shape::String,
    },
    Field {
        name: "Cmd",
        shape: Shape::StrSlice,
    },
    Field {
        name: "Privileged",
        shape: Shape::Bool,
    },
    Field {
        name: "Memory",
        shape: Shape::Int,
    },
    Field {
        name: "NanoCpus",
        shape: Shape::Uint,
    },
    Field {
        name: "Ratio",
        shape: Shape::Float,
    },
    Field {
        name: "Labels",
        shape: Shape::Map(&Shape::String),
    },
    Field {
        name: "Mounts",
        shape: Shape::Slice(&MOUNT),
    },
    Field {
        name: "HostConfig",
        shape: Shape::Ptr(&MOUNT),
    },
    Field {
        name: "Key",
        shape: Shape::Ptr(&Shape::Int),
    },
    Field {
        name: "KEY",
        shape: Shape::String,
    },
    Field {
        name: "Sysctls",
        shape: Shape::Map(&Shape::Ptr(&Shape::Uint)),
    },
    Field {
        name: "Healthcheck",
        shape: Shape::Opaque,
    },
]);

/// A recursive shape: nesting is bounded by the JSON, not the shape.
static TREE: Shape = Shape::Struct(&[
    Field {
        name: "Name",
        shape: Shape::String,
    },
    Field {
        name: "Children",
        shape: Shape::Slice(&TREE),
    },
    Field {
        name: "Next",
        shape: Shape::Ptr(&TREE),
    },
    Field {
        name: "Attrs",
        shape: Shape::Map(&TREE),
    },
]);

static TYPED: [&Shape; 6] = [
    &CONFIG,
    &TREE,
    &Shape::StrSlice,
    &Shape::Slice(&Shape::Int),
    &Shape::Map(&Shape::Float),
    &Shape::Ptr(&Shape::Bool),
];

fuzz_target!(|body: &[u8]| {
    let opaque = unmarshal(body, &Shape::Opaque);
    let serde_accepts = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
    match &opaque {
        Ok(go) => {
            assert_eq!(go, &Go::Opaque);
            assert!(serde_accepts, "accepted invalid JSON");
        }
        Err(Error::TooDeep { .. }) => {}
        Err(e) => {
            assert!(is_syntax(e), "{e:?} for an opaque value");
            assert!(!serde_accepts, "refused valid JSON: {e}");
        }
    }
    for shape in TYPED {
        let typed = unmarshal(body, shape);
        match (&opaque, &typed) {
            (Err(e), typed) => assert_eq!(typed.as_ref().err(), Some(e)),
            (Ok(_), Ok(go)) => conforms(go, shape),
            (Ok(_), Err(e)) => assert!(
                matches!(
                    e,
                    Error::TypeMismatch { .. } | Error::NumberRange { .. } | Error::TooLarge
                ),
                "{e:?} for valid JSON"
            ),
        }
    }
});

/// Errors of the syntax pass, which runs before any shape is consulted.
fn is_syntax(e: &Error) -> bool {
    matches!(
        e,
        Error::Empty | Error::UnexpectedEnd | Error::Syntax { .. } | Error::TrailingData { .. }
    )
}

fn conforms(go: &Go, shape: &Shape) {
    match (shape, go) {
        (Shape::Bool, Go::Bool(_))
        | (Shape::String, Go::String(_))
        | (Shape::Int, Go::Int(_))
        | (Shape::Uint, Go::Uint(_))
        | (Shape::Opaque, Go::Opaque) => {}
        (Shape::Float, Go::Float(f)) => assert!(f.is_finite(), "{f}"),
        (Shape::Struct(fields), Go::Struct(values)) => {
            assert_eq!(fields.len(), values.len());
            for (field, value) in fields.iter().zip(values) {
                conforms(value, &field.shape);
            }
        }
        (Shape::Map(inner), Go::Map(entries)) => {
            let entries = entries.as_deref().unwrap_or_default();
            assert!(
                entries.windows(2).all(|w| w[0].0 < w[1].0),
                "map keys not sorted and unique"
            );
            for (_, value) in entries {
                conforms(value, inner);
            }
        }
        (Shape::Slice(inner), Go::Slice(items)) => {
            for item in items.as_deref().unwrap_or_default() {
                conforms(item, inner);
            }
        }
        (Shape::StrSlice, Go::Slice(items)) => {
            for item in items.as_deref().unwrap_or_default() {
                assert!(matches!(item, Go::String(_)), "{item:?} in a StrSlice");
            }
        }
        (Shape::Ptr(inner), Go::Ptr(target)) => {
            if let Some(target) = target {
                conforms(target, inner);
            }
        }
        (shape, go) => panic!("{go:?} decoded for {shape:?}"),
    }
}
