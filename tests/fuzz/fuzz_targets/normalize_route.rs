//! Request targets → `api::normalize` → `api::route`.
//!
//! Never panics, and checks what the policy relies on: a normalized path is
//! exactly what an independent Go-style decode of the target gives (or the
//! refusal names the first rule the target breaks), and a matched route's
//! template, filled with its params, spells the route path back.
#![no_main]

use dockgate_wire::api::{normalize, route, table, NormalizedPath, PathError, Route, RouteMatch};
use http::{Method, Uri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // What hyper hands the gateway: a target `http` could parse.
    let Ok(target) = Uri::try_from(data) else {
        return;
    };
    let raw = target.path();
    let normalized = normalize(&target);
    assert_eq!(
        normalized.as_ref().map(NormalizedPath::as_str),
        expected(raw).as_deref(),
        "target {raw:?}"
    );
    let Ok(path) = normalized else {
        return;
    };
    check_path(&path);
    for method in methods() {
        match route(&method, &path) {
            RouteMatch::Found(r) => check_route(&method, &path, &r),
            RouteMatch::Ambiguous(a, b) => {
                check_route(&method, &path, &a);
                check_route(&method, &path, &b);
                assert!(
                    a.operation != b.operation || a.params != b.params,
                    "ambiguity between identical routes for {method} {path}"
                );
            }
            RouteMatch::NoRoute => {}
        }
    }
});

fn methods() -> [Method; 7] {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        // Methods compare case-sensitively: only method-less routes take it.
        Method::from_bytes(b"get").expect("a valid extension method"),
    ]
}

/// The decoded path dockerd's mux would serve, written from the rules in
/// dockgate-wire's `api/mod.rs` independently of `api/path.rs`.
fn expected(raw: &str) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotOriginPath);
    }
    let mut bytes = Vec::new();
    let mut rest = raw.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b != b'%' {
            bytes.push(b);
            rest = tail;
            continue;
        }
        let hex = tail
            .get(..2)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
            .ok_or(PathError::InvalidPercentEncoding)?;
        bytes.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
        rest = &tail[2..];
    }
    if bytes.iter().any(|b| b.is_ascii_control()) {
        return Err(PathError::ControlCharacter);
    }
    let decoded = String::from_utf8(bytes).map_err(|_| PathError::InvalidUtf8)?;
    let segments: Vec<&str> = decoded[1..].split('/').collect();
    let last = segments.len() - 1;
    let clean = segments
        .iter()
        .enumerate()
        .all(|(i, s)| *s != "." && *s != ".." && (!s.is_empty() || i == last));
    if !clean {
        return Err(PathError::NotClean);
    }
    Ok(decoded)
}

fn check_path(path: &NormalizedPath) {
    let whole = path.as_str();
    let route_path = path.route_path();
    assert!(route_path.starts_with('/'), "route path {route_path:?}");
    match path.version() {
        Some(v) => {
            assert!(is_version(v), "version {v:?}");
            assert_eq!(whole, format!("/v{v}{route_path}"));
        }
        None => {
            assert_eq!(whole, route_path);
            let missed = whole
                .strip_prefix("/v")
                .and_then(|rest| rest.split_once('/'))
                .is_some_and(|(v, _)| is_version(v));
            assert!(!missed, "{whole:?} has a version prefix");
        }
    }
    let joined = path.segments().collect::<Vec<_>>().join("/");
    assert_eq!(format!("/{joined}"), route_path);
}

/// dockerd's `{version:[0-9.]+}`.
fn is_version(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn check_route(method: &Method, path: &NormalizedPath, r: &Route<'_>) {
    let registered = table().iter().any(|def| {
        def.template == r.template
            && def.operation == r.operation
            && def.method.as_ref().is_none_or(|m| m == method)
            && (def.versioned || path.version().is_none())
    });
    assert!(
        registered,
        "{method} {path} routed to {:?} {}, which is not registered so",
        r.operation, r.template
    );
    assert_eq!(
        fill(r),
        path.route_path(),
        "{method} {path}: {} with {:?}",
        r.template,
        r.params
    );
}

/// The route's template with each variable replaced by its param, checking
/// that each param fits its variable's pattern.
fn fill(r: &Route<'_>) -> String {
    let mut out = String::new();
    let mut params = r.params.iter();
    let mut template = r.template;
    while let Some(open) = template.find('{') {
        out.push_str(&template[..open]);
        let close = open + template[open..].find('}').expect("closed variable");
        let (name, pattern) = template[open + 1..close]
            .split_once(':')
            .unwrap_or((&template[open + 1..close], "[^/]+"));
        let (key, value) = params.next().expect("a param per variable");
        assert_eq!(key, name, "{}", r.template);
        match pattern {
            "[^/]+" => assert!(
                !value.is_empty() && !value.contains('/'),
                "{name}={value:?}"
            ),
            ".+" => assert!(!value.is_empty(), "{name}={value:?}"),
            ".*" => {}
            other => panic!("unexpected pattern {other:?} in {}", r.template),
        }
        out.push_str(value);
        template = &template[close + 1..];
    }
    assert!(params.next().is_none(), "more params than variables");
    out.push_str(template);
    out
}
