//! Request-target normalization, mirroring how dockerd's Go `net/http` server
//! and gorilla/mux router see the path (see the module docs of `api` for the
//! rules and their justification).

use std::fmt;

use http::Uri;

/// The path of a request as dockerd's router matches it: percent-decoded,
/// known to be clean (mux would not redirect it), split into the optional
/// `/v{version}` prefix and the route path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NormalizedPath {
    /// The whole decoded path, e.g. `/v1.41/images/registry:5000/app/json`.
    decoded: String,
    /// Byte offset where the route path starts: 0, or just after the version.
    route_start: usize,
}

impl NormalizedPath {
    /// The API version from a `/v{version:[0-9.]+}` prefix, e.g. `Some("1.41")`.
    /// Only its syntax is checked here, as dockerd's route does; dockerd's
    /// version middleware rejects out-of-range versions later.
    pub fn version(&self) -> Option<&str> {
        if self.route_start == 0 {
            return None;
        }
        self.decoded.get(2..self.route_start)
    }

    /// The path the route table is matched against: without the version
    /// prefix, always starting with `/`, e.g. `/images/registry:5000/app/json`.
    pub fn route_path(&self) -> &str {
        self.decoded.get(self.route_start..).unwrap_or_default()
    }

    /// The whole decoded path, version prefix included.
    pub fn as_str(&self) -> &str {
        &self.decoded
    }

    /// The `/`-separated segments of [`route_path`](Self::route_path), after
    /// percent-decoding (so `%2F` separates segments too). A trailing slash
    /// yields a final empty segment.
    pub fn segments(&self) -> std::str::Split<'_, char> {
        let route_path = self.route_path();
        route_path
            .strip_prefix('/')
            .unwrap_or(route_path)
            .split('/')
    }
}

impl fmt::Display for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.decoded)
    }
}

/// Why a request target is refused. The caller answers 400 with the
/// `Display` text as the Docker-style `{"message": ...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The target has no path starting with `/`: asterisk-form (`*`) or
    /// authority-form. dockerd answers 301 (mux cleans `*` to `/*`).
    NotOriginPath,
    /// A `%` not followed by two hex digits. Go's `url.ParseRequestURI`
    /// fails, so net/http answers 400.
    InvalidPercentEncoding,
    /// After decoding, the path contains a control character (U+0000–U+001F,
    /// U+007F). dockerd's outcome depends on each route's regexp (`.` does not
    /// match `\n`, `[^/]` does), so dockgate refuses.
    ControlCharacter,
    /// After decoding, the path is not UTF-8. Docker object names are ASCII,
    /// so dockgate refuses rather than reason about Go's byte-wise matching.
    InvalidUtf8,
    /// After decoding, the path has an empty (`//`), `.` or `..` segment.
    /// mux answers 301 to the cleaned path instead of serving it.
    NotClean,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathError::NotOriginPath => "request target must be an absolute path",
            PathError::InvalidPercentEncoding => "invalid percent-encoding in request path",
            PathError::ControlCharacter => "control character in request path",
            PathError::InvalidUtf8 => "request path is not valid UTF-8 after percent-decoding",
            PathError::NotClean => {
                "request path contains empty, \".\" or \"..\" segments (dockerd would redirect)"
            }
        })
    }
}

impl std::error::Error for PathError {}

/// Normalizes a request target the way dockerd sees it. The query is never
/// part of the match; `http` has already dropped any fragment.
pub fn normalize(target: &Uri) -> Result<NormalizedPath, PathError> {
    let raw = target.path();
    if !raw.starts_with('/') {
        return Err(PathError::NotOriginPath);
    }
    let decoded = percent_decode(raw)?;
    if decoded.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(PathError::ControlCharacter);
    }
    let decoded = String::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)?;
    if !is_clean(&decoded) {
        return Err(PathError::NotClean);
    }
    let route_start = version_prefix_len(&decoded);
    Ok(NormalizedPath {
        decoded,
        route_start,
    })
}

/// Go's `url.unescape` in path mode: every `%` must start a two-hex-digit
/// escape; `+` stays `+`.
fn percent_decode(raw: &str) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = bytes.next().and_then(hex_value);
            let lo = bytes.next().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
                _ => return Err(PathError::InvalidPercentEncoding),
            }
        } else {
            out.push(b);
        }
    }
    Ok(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether mux's `cleanPath` (Go `path.Clean`, trailing slash kept) leaves
/// the path unchanged: no `.` or `..` segment, and no empty segment except a
/// final one (trailing slash). `path` starts with `/`.
fn is_clean(path: &str) -> bool {
    let mut segments = path.strip_prefix('/').unwrap_or(path).split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "." || segment == ".." || (segment.is_empty() && !last) {
            return false;
        }
    }
    true
}

/// Length of a `/v{version:[0-9.]+}` prefix that is followed by `/`, or 0.
/// dockerd registers every route twice, with and without this prefix; as
/// `[0-9.]` excludes `/`, the split is unique.
fn version_prefix_len(path: &str) -> usize {
    let Some(rest) = path.strip_prefix("/v") else {
        return 0;
    };
    match rest.split_once('/') {
        Some((version, _))
            if !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
        {
            2 + version.len()
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(target: &str) -> Result<NormalizedPath, PathError> {
        normalize(&target.parse::<Uri>().expect("test target parses"))
    }

    fn route_path(target: &str) -> String {
        norm(target).expect("normalizes").route_path().to_owned()
    }

    #[test]
    fn version_prefix_follows_the_route_regexp() {
        // dockerd: "/v{version:[0-9.]+}" + route path.
        let p = norm("/v1.41/containers/json").unwrap();
        assert_eq!(p.version(), Some("1.41"));
        assert_eq!(p.route_path(), "/containers/json");
        assert_eq!(p.as_str(), "/v1.41/containers/json");
        // Any [0-9.]+ is accepted by the route; the version middleware judges it.
        assert_eq!(norm("/v1..41/info").unwrap().version(), Some("1..41"));
        assert_eq!(norm("/v./info").unwrap().version(), Some("."));
        assert_eq!(norm("/v1/info").unwrap().version(), Some("1"));
        // Not a version: the whole path is the route path (and matches nothing).
        for target in [
            "/v/info",
            "/vx/info",
            "/V1.41/info",
            "/v1.41a/info",
            "/v-1/info",
        ] {
            let p = norm(target).unwrap();
            assert_eq!(p.version(), None, "{target}");
            assert_eq!(p.route_path(), target);
        }
        // Without a following slash the prefix does not match: "/v1.41" is a
        // plain path (OPTIONS /{anyroute:.*} gets anyroute="v1.41").
        assert_eq!(norm("/v1.41").unwrap().version(), None);
        let p = norm("/v1.41/").unwrap();
        assert_eq!((p.version(), p.route_path()), (Some("1.41"), "/"));
        // Only one prefix is stripped: /v1.41/v1.40/... routes nowhere.
        assert_eq!(route_path("/v1.41/v1.40/info"), "/v1.40/info");
    }

    #[test]
    fn percent_decoding_happens_before_matching() {
        // mux matches req.URL.Path, which Go has already decoded.
        assert_eq!(route_path("/containers/%6Aso%6E"), "/containers/json");
        assert_eq!(route_path("/%63ontainers/json"), "/containers/json");
        let p = norm("/%76%31%2E%34%31/containers/json").unwrap();
        assert_eq!(p.version(), Some("1.41"));
        // %2F becomes a separator: the name is "a/b".
        assert_eq!(route_path("/containers/a%2Fb/json"), "/containers/a/b/json");
        assert_eq!(route_path("/containers/a%2fb/json"), "/containers/a/b/json");
        // '+' is not a space in a path; %20 is.
        assert_eq!(
            route_path("/containers/a+b%20c/json"),
            "/containers/a+b c/json"
        );
        // %3F is a literal '?' in the path, not a query.
        assert_eq!(
            route_path("/containers/json%3Fall=1"),
            "/containers/json?all=1"
        );
        assert_eq!(route_path("/containers/%C3%A9/json"), "/containers/é/json");
        let segments: Vec<_> = norm("/v1.41/images/reg:5000/a%2Fb/json/")
            .unwrap()
            .segments()
            .map(str::to_owned)
            .collect();
        assert_eq!(segments, ["images", "reg:5000", "a", "b", "json", ""]);
    }

    #[test]
    fn malformed_escapes_are_refused() {
        // Go's url.ParseRequestURI fails; net/http answers 400.
        for target in [
            "/containers/%zz/json",
            "/containers/%4/json",
            "/containers/%",
            "/a%g0",
        ] {
            assert_eq!(
                norm(target),
                Err(PathError::InvalidPercentEncoding),
                "{target}"
            );
        }
    }

    #[test]
    fn decoded_control_characters_and_non_utf8_are_refused() {
        // dockerd would route %00 and %0D into names, and %0A only into
        // [^/]+ variables; dockgate refuses all of them.
        for target in [
            "/containers/%00/json",
            "/services/a%0Ab",
            "/containers/a%0Db",
            "/a%09",
            "/a%7F",
        ] {
            assert_eq!(norm(target), Err(PathError::ControlCharacter), "{target}");
        }
        assert_eq!(norm("/containers/%FF/json"), Err(PathError::InvalidUtf8));
        assert_eq!(norm("/containers/%C3/json"), Err(PathError::InvalidUtf8));
    }

    #[test]
    fn unclean_paths_are_refused_because_mux_redirects() {
        // mux.Router.ServeHTTP: if cleanPath(path) != path it answers 301.
        for target in [
            "/containers/./json",
            "/containers/../containers/json",
            "/containers/foo/../json",
            "/v1.41/../containers/json",
            "/../containers/json",
            "/./containers/json",
            "/containers/json/.",
            "/containers/json/..",
            "/containers/json/./",
            "//containers/json",
            "/containers//json",
            "/containers/json//",
            // Decoding comes first, so encoded dots and slashes count.
            "/containers/%2e%2e/json",
            "/containers/%2E/json",
            "/containers/.%2e/json",
            "/containers/a%2F/json",
            "/containers/%2Fjson",
            "/images/a%2F..%2Fb/json",
            "http://localhost//containers/json",
        ] {
            assert_eq!(norm(target), Err(PathError::NotClean), "{target}");
        }
        // Dots inside a segment are not dot segments; a trailing slash is kept
        // by cleanPath.
        assert_eq!(
            route_path("/containers/..foo/json"),
            "/containers/..foo/json"
        );
        assert_eq!(route_path("/containers/.../json"), "/containers/.../json");
        assert_eq!(route_path("/containers/json/"), "/containers/json/");
        assert_eq!(route_path("/"), "/");
    }

    #[test]
    fn request_target_forms() {
        // Absolute-form: Go routes on URL.Path, whatever the scheme.
        assert_eq!(
            route_path("http://localhost/containers/json"),
            "/containers/json"
        );
        assert_eq!(route_path("https://docker:2376/v1.41/info?x=1"), "/info");
        assert_eq!(route_path("foo://bar/containers/json"), "/containers/json");
        // The query is never matched.
        assert_eq!(route_path("/containers/json?all=1"), "/containers/json");
        assert_eq!(route_path("/containers/json?"), "/containers/json");
        // Asterisk-form: mux redirects "*" to "/*".
        assert_eq!(norm("*"), Err(PathError::NotOriginPath));
        // Authority-form (CONNECT) has no path.
        assert_eq!(norm("localhost:2376"), Err(PathError::NotOriginPath));
    }

    #[test]
    fn fragment_is_dropped_by_http() {
        // Go keeps '#' in a request path; the `http` crate drops the fragment
        // while parsing, so the forwarded target has none either.
        assert_eq!(route_path("/containers/json#frag"), "/containers/json");
        // An encoded '#' is an ordinary character for both.
        assert_eq!(route_path("/containers/a%23b"), "/containers/a#b");
    }
}
