//! dockgate-wire: the parsers that must read a request exactly as dockerd does.
//!
//! A gateway that decides on a different reading of the bytes than the daemon
//! acts on can be bypassed. These modules mirror, byte for byte, the parsers
//! a request meets on its way: hyper's HTTP/1.1 framing in the gateway, then
//! dockerd's Go stack. Their docs say where they are stricter (they refuse
//! what they cannot mirror):
//!
//! - [`api`]: the request target as dockerd's `net/http` and gorilla/mux see
//!   it, and the route → `operationId` table;
//! - [`gojson`]: request bodies as Go's `encoding/json` decodes them;
//! - [`query`]: query strings as Go's `net/url` parses them;
//! - [`framing`]: where each HTTP/1.1 request of a connection starts and ends,
//!   as hyper's server frames them.
//!
//! They live apart from the gateway so that they carry no async runtime, TLS
//! or HTTP stack (they take bytes and give verdicts) and can be fuzzed on
//! their own (`tests/fuzz`). Peer input never panics them: no `unsafe`, no
//! `unwrap`, `expect`, indexing or string slicing outside tests.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::string_slice
    )
)]

pub mod api;
pub mod framing;
pub mod gojson;
pub mod query;
