//! dockgate: a mutual-TLS gateway in front of the Docker Engine API.
//!
//! A request flows top to bottom through these modules:
//! [`server`] accepts TCP and terminates TLS ([`tls`]), which yields the
//! client's [`tls::Identity`]; [`proxy`] forwards the HTTP exchange to the
//! daemon's Unix socket, including hijacked (upgraded) streams; [`audit`]
//! records what happened and [`metrics`] counts it. [`config`] holds the
//! operator's settings and [`reload`] swaps live state atomically.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod board;
pub mod cli;
pub mod config;
pub mod connection;
pub mod drain;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub mod pki;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod renewal;
pub mod server;
pub mod sessions;
pub mod tls;
