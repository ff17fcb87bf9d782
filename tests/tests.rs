//! The end-to-end suites, as one test binary: `tests/support` compiles once, and the suites
//! share one process, one test daemon and one test image. Run one suite with its module
//! path, e.g. `cargo test --test e2e policy::`.

mod support;

mod buildkit;
mod builds;
mod cli;
mod confinement;
mod containers;
mod drain;
mod harness;
mod lifecycle;
mod limits;
mod ownership;
mod pki_cli;
mod policy;
mod raw_protocol;
mod runners;
mod sdk;
mod tls_refusals;
