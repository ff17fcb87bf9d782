//! Checks the route table against the Engine API swagger files (through
//! `swagger/operations.tsv`, derived from them by `swagger/derive.py`) and
//! against dockerd's own router (recorded by `oracle/main.go` in
//! `oracle/expected.txt`).

use std::collections::{BTreeMap, BTreeSet};

use http::{Method, Uri};

use super::routes::match_def;
use super::*;

const SWAGGER_FILES: [&str; 2] = ["swagger-v1.41.yaml", "swagger-latest.yaml"];

struct SwaggerOperation {
    method: Method,
    path: String,
    id: String,
}

/// The (method, path, operationId) rows of one swagger file, from the
/// committed table `swagger/derive.py` extracts from the swagger files.
fn swagger_operations(file: &str) -> Vec<SwaggerOperation> {
    let mut operations = Vec::new();
    for line in include_str!("swagger/operations.tsv").lines() {
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let [source, method, path, id] = fields[..] else {
            panic!("operations.tsv: malformed row {line:?}");
        };
        assert!(SWAGGER_FILES.contains(&source), "operations.tsv: {line:?}");
        assert!(path.starts_with('/'), "operations.tsv: {line:?}");
        if source != file {
            continue;
        }
        operations.push(SwaggerOperation {
            method: Method::from_bytes(method.as_bytes()).unwrap(),
            path: path.to_owned(),
            id: id.to_owned(),
        });
    }
    assert!(
        operations.len() > 100,
        "{file}: only {} operations found",
        operations.len()
    );
    operations
}

/// Fills each `{param}` of a swagger path with `value`.
fn fill(path: &str, value: &str) -> (String, usize) {
    let mut out = String::new();
    let mut count = 0;
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let close = open + rest[open..].find('}').expect("closed parameter");
        out.push_str(&rest[..open]);
        out.push_str(value);
        count += 1;
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    (out, count)
}

/// The operation and parameter values a target routes to, if any.
fn route_target(method: &Method, target: &str) -> Option<(Operation, Vec<String>)> {
    let uri: Uri = target.parse().unwrap_or_else(|e| panic!("{target}: {e}"));
    let path = normalize(&uri).unwrap_or_else(|e| panic!("{target}: {e}"));
    match route(method, &path) {
        RouteMatch::Found(found) => Some((
            found.operation,
            found.params.iter().map(|(_, v)| v.to_owned()).collect(),
        )),
        RouteMatch::NoRoute => None,
        other => panic!("{method} {target}: {other:?}"),
    }
}

/// Whether an absolute-form target has an empty path (`http://host?x`).
fn absolute_form_without_path(target: &str) -> bool {
    target
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.split('?').next().unwrap_or(rest).contains('/'))
}

#[test]
fn every_swagger_operation_routes_to_its_operation_id() {
    let mut ids: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for file in SWAGGER_FILES {
        for op in swagger_operations(file) {
            ids.entry(file).or_default().insert(op.id.clone());
            let expected = Operation::from_name(&op.id)
                .unwrap_or_else(|| panic!("{file}: unknown operationId {}", op.id));
            assert_eq!(expected.origin(), Origin::Swagger, "{}", op.id);
            // Segment-safe values first; slashed names where dockerd's
            // variable spans segments.
            for value in [
                "abc123",
                "json",
                "registry:5000/org/app:v1",
                "foo/tag",
                "foo/json",
            ] {
                let (path, count) = fill(&op.path, value);
                for prefix in ["", "/v1.41", "/v1.56"] {
                    let target = format!("{prefix}{path}");
                    match route_target(&op.method, &target) {
                        Some(found) => {
                            assert_eq!(found, (expected, vec![value.to_owned(); count]), "{target}")
                        }
                        // One-segment variables ({id} of services, ...).
                        None if value.contains('/') => {}
                        None => panic!("{} {target}: no route", op.method),
                    }
                }
            }
        }
    }
    // Swagger names and dockgate's names do not overlap.
    let all: BTreeSet<&String> = ids.values().flatten().collect();
    for op in Operation::all() {
        let documented = all.iter().any(|id| id.as_str() == op.as_str());
        assert_eq!(documented, op.origin() == Origin::Swagger, "{op}");
    }
    // Operations in only one of the two files.
    let only = |a: &str, b: &str| -> Vec<String> { ids[a].difference(&ids[b]).cloned().collect() };
    assert_eq!(
        only("swagger-v1.41.yaml", "swagger-latest.yaml"),
        Vec::<String>::new()
    );
    assert_eq!(
        only("swagger-latest.yaml", "swagger-v1.41.yaml"),
        ["ImageAttestations", "VolumeUpdate"]
    );
}

/// Engine releases the oracle's route lists come from.
const FLAVORS: [(&str, (u16, u16)); 2] = [("legacy", (20, 10)), ("current", (29, 7))];

/// Turns `\xHH` escapes in an oracle target into raw bytes.
fn raw_target(target: &str) -> Vec<u8> {
    let bytes = target.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 2..i + 4)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (
            bytes[i],
            bytes.get(i + 1),
            hex.and_then(|h| u8::from_str_radix(h, 16).ok()),
        ) {
            (b'\\', Some(b'x'), Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// Parses `k="v" ...` (Go `strconv.Quote`d values). `None` if a value uses an
/// escape other than `\\`, `\"` or `\u`.
fn parse_vars(mut s: &str) -> Option<BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    while let Some((key, rest)) = s.trim_start().split_once("=\"") {
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    c @ ('\\' | '"') => value.push(c),
                    'u' => {
                        let hex: String = (0..4)
                            .filter_map(|_| chars.next().map(|(_, c)| c))
                            .collect();
                        value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                    }
                    _ => return None,
                },
                (_, c) => value.push(c),
            }
        };
        vars.insert(key.to_owned(), value);
        s = &rest[end + 1..];
    }
    Some(vars)
}

/// The route engine release `release` serves: the first of its routes.
fn route_for_release<'p>(
    method: &Method,
    path: &'p NormalizedPath,
    release: (u16, u16),
) -> Option<Route<'p>> {
    table()
        .iter()
        .filter(|def| def.engines.includes(release.0, release.1))
        .find_map(|def| match_def(def, method, path))
}

#[test]
fn routing_agrees_with_dockerd() {
    let mut checked = 0;
    for line in include_str!("oracle/expected.txt").lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [flavor, method, target, outcome] = fields[..] else {
            panic!("bad oracle line {line:?}");
        };
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let raw = raw_target(target);
        // `http` drops a fragment that Go keeps in the path; the proxy
        // forwards the target without it (see fragment_is_dropped_by_http).
        if raw.contains(&b'#') {
            continue;
        }
        for (name, release) in FLAVORS {
            if flavor == name || flavor == "both" {
                check_oracle_case(
                    &method,
                    target,
                    &raw,
                    outcome,
                    release,
                    &format!("{name} {line}"),
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 5000, "only {checked} oracle cases checked");
}

/// Checks one oracle outcome against engine release `release`'s view.
fn check_oracle_case(
    method: &Method,
    target: &str,
    raw: &[u8],
    outcome: &str,
    release: (u16, u16),
    context: &str,
) {
    // hyper refuses what `http` cannot parse.
    let Ok(uri) = Uri::try_from(raw) else {
        assert!(
            outcome == "badrequest" || outcome.starts_with("route"),
            "{context}"
        );
        return;
    };
    let normalized = normalize(&uri);
    let stricter = matches!(
        normalized,
        Err(PathError::ControlCharacter | PathError::InvalidUtf8)
    );
    if outcome == "badrequest" {
        assert!(normalized.is_err(), "{context}");
    } else if outcome.starts_with("redirect ") {
        match &normalized {
            Err(PathError::NotClean | PathError::NotOriginPath) => {}
            // `http` reports the empty path of `http://host` as "/".
            Ok(path) if absolute_form_without_path(target) => {
                let ours = route_for_release(method, path, release).map(|r| r.operation);
                assert!(
                    matches!(ours, None | Some(Operation::SystemOptions)),
                    "{context}"
                );
            }
            other => panic!("{context}: {other:?}"),
        }
    } else if outcome == "notfound" {
        if !stricter {
            let path = normalized.unwrap_or_else(|e| panic!("{context}: {e}"));
            assert_eq!(route_for_release(method, &path, release), None, "{context}");
        }
    } else {
        let mut words = outcome.splitn(4, ' ');
        let (Some("route"), Some(_), Some(template)) = (words.next(), words.next(), words.next())
        else {
            panic!("bad oracle outcome {outcome:?}");
        };
        let Some(mut vars) = parse_vars(words.next().unwrap_or("")) else {
            assert!(stricter, "{context}");
            return;
        };
        if stricter {
            return;
        }
        let path = normalized.unwrap_or_else(|e| panic!("{context}: {e}"));
        assert_eq!(
            path.version(),
            vars.remove("version").as_deref(),
            "{context}"
        );
        let ours = route_for_release(method, &path, release)
            .unwrap_or_else(|| panic!("{context}: no route"));
        assert_eq!(ours.template, template, "{context}");
        let params: BTreeMap<String, String> = ours
            .params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(params, vars, "{context}");
        // The union table agrees with this release.
        match route(method, &path) {
            RouteMatch::Found(found) => {
                assert_eq!(
                    (found.operation, found.params),
                    (ours.operation, ours.params),
                    "{context}"
                );
            }
            other => panic!("{context}: {other:?}"),
        }
    }
}

#[test]
fn every_table_route_is_one_dockerd_registers() {
    let served: BTreeSet<&str> = include_str!("oracle/expected.txt")
        .lines()
        .filter_map(|line| line.split('\t').nth(3)?.strip_prefix("route "))
        .map(|outcome| {
            let end = outcome
                .match_indices(' ')
                .nth(1)
                .map_or(outcome.len(), |(i, _)| i);
            &outcome[..end]
        })
        .collect();
    for def in table() {
        let method = def.method.as_ref().map_or("*", Method::as_str);
        let key = format!("{method} {}", def.template);
        assert!(
            served.contains(key.as_str()),
            "{key} never served by dockerd"
        );
    }
    assert_eq!(served.len(), table().len());
}
