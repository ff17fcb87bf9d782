//! Maps a request to the Engine API operation dockerd will perform.
//!
//! dockerd (20.10 through current master) serves the API with Go's
//! `net/http` server and one gorilla/mux router, built without `SkipClean`,
//! `UseEncodedPath` or `StrictSlash`. Routes are registered twice, first
//! as `"/v{version:[0-9.]+}" + path`, then as `path`; mux serves the first
//! registered route whose method and anchored path regexp both match, and
//! answers 404 otherwise (dockerd sends 405 to the same handler).
//! [`normalize`] reproduces what that router sees, [`route`] what it picks.
//!
//! # Normalization rules
//!
//! - **Target form.** Origin-form and absolute-form (any scheme) are routed
//!   on their path, as Go routes on `URL.Path`. Asterisk-form (`*`) and
//!   authority-form have no such path (mux would redirect `*` to `/*`):
//!   refused. `http::Uri` reports the empty path of `http://host` as `/`,
//!   where mux would redirect; only `OPTIONS` routes `/`, and its handler
//!   does nothing, like the redirect.
//! - **Query and fragment.** The query is never matched. Go would keep a raw
//!   `#...` in the path, but `http` drops the fragment while parsing: the
//!   proxy must forward the target as parsed (without it), byte for byte,
//!   so that dockerd sees the path matched here.
//! - **Percent-decoding.** mux matches the decoded `URL.Path`: the whole
//!   path is decoded first, so `%2F` separates segments (`/containers/a%2Fb/json`
//!   inspects container `a/b`) and `%2e%2e` is a `..` segment. `+` stays `+`.
//!   A `%` without two hex digits makes Go's `url.ParseRequestURI` fail
//!   (400): refused.
//! - **Control characters, invalid UTF-8.** dockerd would route decoded
//!   `%00`–`%1F`/`%7F` into some variables and not others (`.` does not
//!   match `\n`, `[^/]` does); dockgate refuses them, and decoded bytes that
//!   are not UTF-8. No Docker object name contains either.
//! - **Clean paths only.** mux answers 301 when Go's `path.Clean` (trailing
//!   slash kept) changes the decoded path: an empty segment (`//`), a `.` or
//!   `..` segment. The daemon then does nothing, so dockgate refuses. A
//!   trailing slash is clean and significant: `GET /containers/json/` has no
//!   route, `DELETE /containers/foo/` removes container `foo/`.
//! - **Version prefix.** `/v` followed by one or more of `[0-9.]` and a `/`
//!   is the version; it is stripped once and the rest is matched against the
//!   versioned registrations. Otherwise the whole path is matched against the
//!   unversioned ones. This equals mux's interleaved order: the only
//!   unversioned template that can match a `/v1.41/...` path is
//!   `OPTIONS /{anyroute:.*}`, whose versioned twin is registered first.
//!   The version's value is checked later by dockerd's version middleware.
//! - **Methods** compare exactly and case-sensitively; `HEAD` is not `GET`.
//! - **Protocol.** Engines 29.x also accept HTTP/2 (h2c) and hand requests
//!   with a `Content-Type: application/grpc*` to BuildKit's gRPC server,
//!   whatever their path: this mapping only holds for HTTP/1.x forwarding.
//!
//! # Routing
//!
//! [`table`] lists dockerd's routes in registration order with their
//! swagger `operationId`s (plus dockgate-chosen names for the routes the
//! swagger omits, [`Origin::Dockerd`]). Variables follow mux: `{id}` is one
//! non-empty segment, `{name:.*}` any text including `/`, greedy, so
//! `/images/foo/tag/json` inspects image `foo/tag`. Routes only some engine
//! releases register are marked with [`Engines`]; where releases would serve
//! the same request with different routes, [`route`] reports
//! [`RouteMatch::Ambiguous`].

mod path;
mod routes;

pub use path::{normalize, NormalizedPath, PathError};
pub use routes::{route, table, Engines, Operation, Origin, Params, Route, RouteDef, RouteMatch};

#[cfg(test)]
mod tests;
