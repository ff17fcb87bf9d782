//! The end-to-end suites, as one test binary: `tests/support` compiles once, and the suites
//! share one process, one test daemon and one test image. Run one suite with its module
//! path, e.g. `cargo test --test e2e policy::`.

mod support;

mod admin;
mod audit;
mod buildkit;
mod builds;
mod cli;
mod cloud_init;
mod confinement;
mod containers;
mod deb;
mod drain;
mod harness;
mod install;
mod lifecycle;
mod limits;
mod load;
mod logs;
mod operator;
mod ownership;
mod pki_cli;
mod policy;
mod raw_protocol;
mod runners;
mod sdk;
mod systemd;
mod tls_refusals;
