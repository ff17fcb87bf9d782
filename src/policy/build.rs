//! Builds: what a confined role's `POST /build` may make the daemon do
//! besides building its own image.
//!
//! Two things the Engine API does not confine (read in moby 20.10.24 and
//! master, and the BuildKit each vendors):
//!
//! - **Fetches by the daemon.** `ADD <url>` is fetched by dockerd itself
//!   (`builder/dockerfile/copy.go` → `remotecontext.GetWithStatusError`, a
//!   plain `http.Get`): in the host's network namespace, following
//!   redirects, whatever `networkmode` says. So it reaches the host's
//!   loopback, the metadata address and private ranges. The classic
//!   builder's Dockerfile is inside the context tar, which
//!   [`super::context`] reads as it streams, and [`dockerfile`] refuses
//!   every `ADD` source that is or could expand to a URL. BuildKit reads
//!   its Dockerfile through the client's `/session`, and `# syntax=` or the
//!   `BUILDKIT_SYNTAX` build argument hand the build to any frontend image:
//!   dockgate cannot see what it fetches, so a confined role builds with
//!   BuildKit only when the operator sets `builds.buildkit`.
//! - **The build cache is daemon-wide.** Both builders key a step by its
//!   instruction and parent, not by who built it, and leave the proxy build
//!   arguments out of the key (`buildargs.go:builtinAllowedBuildArgs`;
//!   BuildKit `execOp.CacheMap` clears `ProxyEnv`). Confined builds run with
//!   `nocache=1`, so they never read another owner's layers; proxy
//!   arguments, which would let a confined build plant a layer under
//!   someone else's key, and `cachefrom`, which imports others' cache, are
//!   refused. `nocache` does not stop a build from *writing* the cache; see
//!   the README's threat model and `builds.nocache`.

use dockgate_wire::query::Query;

use super::inspect::{Malformed, Rejection, Violation};

/// The build arguments both builders treat as proxy settings, lowercased:
/// dockerd's `builtinAllowedBuildArgs` (case-sensitive, both spellings)
/// and BuildKit's `proxyEnvFromBuildArgs` (case-insensitive); `all_proxy`
/// since moby 23 and BuildKit 0.10.
const PROXY_ARGS: [&str; 5] = [
    "http_proxy",
    "https_proxy",
    "ftp_proxy",
    "no_proxy",
    "all_proxy",
];

fn refuse<T>(rule: &'static str, what: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::Violation(Violation {
        rule,
        what: what.into(),
    }))
}

/// Which builder the daemon runs for a `/build` request: dockerd reads the
/// first `version` value; empty or `1` is the classic builder, `2`
/// BuildKit, anything else an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    Classic,
    BuildKit,
}

pub fn builder(query: &Query) -> Builder {
    match query.get("version") {
        None | Some("" | "1") => Builder::Classic,
        Some(_) => Builder::BuildKit,
    }
}

/// Refuses a BuildKit build unless the role opted in.
pub fn buildkit_allowed(query: &Query, opted_in: bool) -> Result<(), Rejection> {
    if builder(query) == Builder::BuildKit && !opted_in {
        return refuse(
            "build.buildkit",
            "build with BuildKit (version=2): dockgate cannot see the Dockerfile it runs, \
             which may fetch from the host's network (see builds.buildkit)",
        );
    }
    Ok(())
}

/// Build parameters that share the cache across owners or replace the
/// frontend. Checked in every value, not only the first the daemon reads.
pub fn parameters(query: &Query) -> Result<(), Rejection> {
    for args in query.all("buildargs") {
        for key in json_keys(args, "buildargs")? {
            let lower = fold(&key);
            if PROXY_ARGS.contains(&lower.as_str()) {
                return refuse(
                    "build.proxy-args",
                    format!(
                        "set the build argument {key}: proxy arguments are left out of the \
                         build cache key, so the layer would be reused by other owners' builds"
                    ),
                );
            }
            if lower.starts_with("buildkit_") {
                return refuse(
                    "build.buildkit-args",
                    format!("set the build argument {key} (it changes the frontend or the cache)"),
                );
            }
        }
    }
    for from in query.all("cachefrom") {
        if !json_list_is_empty(from)? {
            return refuse(
                "build.cachefrom",
                "use cachefrom (it reads cache from other owners' images)",
            );
        }
    }
    Ok(())
}

/// A build argument's name, case-folded at least as widely as Go's
/// `strings.EqualFold` (BuildKit's comparison), under which `ſ` is `s` and
/// the Kelvin sign `k`.
fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{17F}' => 's',
            c => c.to_lowercase().next().unwrap_or(c),
        })
        .collect()
}

/// Keys of a JSON object of strings or nulls (Go's `map[string]*string`);
/// empty text is no object.
fn json_keys(text: &str, name: &str) -> Result<Vec<String>, Rejection> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Null) => Ok(Vec::new()),
        Ok(serde_json::Value::Object(map))
            if map.values().all(|v| v.is_string() || v.is_null()) =>
        {
            Ok(map.keys().cloned().collect())
        }
        _ => Err(Rejection::Malformed(Malformed(format!(
            "invalid {name}: want a JSON object of strings"
        )))),
    }
}

fn json_list_is_empty(text: &str) -> Result<bool, Rejection> {
    if text.is_empty() {
        return Ok(true);
    }
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Null) => Ok(true),
        Ok(serde_json::Value::Array(list)) if list.iter().all(serde_json::Value::is_string) => {
            Ok(list.is_empty())
        }
        _ => Err(Rejection::Malformed(Malformed(
            "invalid cachefrom: want a JSON list of strings".into(),
        ))),
    }
}

/// The context paths the classic builder may read its Dockerfile from:
/// the `dockerfile` parameter (default `Dockerfile`, and then `dockerfile`
/// when that is missing), resolved inside the context as dockerd does
/// (`filepath.Join(root, path)`, which cleans `..` lexically).
pub fn dockerfile_paths(query: &Query) -> Vec<String> {
    let given = query.get("dockerfile").unwrap_or("");
    let given = if given.is_empty() {
        "Dockerfile"
    } else {
        given
    };
    let path = clean(&format!("/{given}"))
        .trim_start_matches('/')
        .to_owned();
    let mut paths = vec![path.clone()];
    if path == "Dockerfile" {
        paths.push("dockerfile".to_owned());
    }
    paths
}

/// Go's `path.Clean`.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Checks a classic-builder Dockerfile for daemon-side fetches.
///
/// Lines are joined as the 20.10 parser (BuildKit's
/// `frontend/dockerfile/parser`) joins them with the default escape
/// character `\`; a Dockerfile that changes it with the `escape` directive
/// is refused rather than parsed two ways. Every `ADD` (also as an
/// `ONBUILD` trigger, which runs in the builds of images made from this
/// one) must name its sources literally: no `://`, and none of `$ ' " \ ``
/// that variable expansion, quote removal or escapes could turn into a
/// URL. `COPY` never fetches (`copy.go`: "source can't be a URL"), and the
/// classic builder ignores `# syntax=`.
pub fn dockerfile(text: &[u8]) -> Result<(), Violation> {
    let unreadable = |what: &str| Violation {
        rule: "build.dockerfile",
        what: format!("build a Dockerfile {what}"),
    };
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    if lines.iter().any(|l| is_escape_directive(l)) {
        return Err(unreadable("that sets the escape parser directive"));
    }
    // Every physical line is also checked as if it began an instruction, so
    // that a joining this code gets wrong can hide no `ADD` (at the price of
    // refusing an `ADD` word that starts a continued line).
    for line in &lines {
        instruction(&continuation(line).0)?;
    }
    let mut i = 0;
    while i < lines.len() {
        let first = trim_start(lines[i]);
        i += 1;
        if first.starts_with(b"#") {
            continue;
        }
        let (mut line, mut done) = continuation(first);
        while !done && i < lines.len() {
            let next = lines[i];
            i += 1;
            let trimmed = trim_start(next);
            if trimmed.starts_with(b"#") || trimmed.is_empty() {
                continue;
            }
            let (part, end) = continuation(next);
            line.extend_from_slice(&part);
            done = end;
        }
        instruction(&line)?;
    }
    Ok(())
}

/// `# escape=…`, in any letter case, anywhere: conservative, since the
/// parser honours it only among the leading directives.
fn is_escape_directive(line: &[u8]) -> bool {
    let rest = trim_start(line);
    let Some(rest) = rest.strip_prefix(b"#") else {
        return false;
    };
    let rest = rest.trim_ascii_start();
    rest.len() >= 6 && rest[..6].eq_ignore_ascii_case(b"escape") && {
        let after = rest[6..].trim_ascii_start();
        after.starts_with(b"=")
    }
}

/// Strips leading Unicode white space, as Go's `unicode.IsSpace`.
fn trim_start(line: &[u8]) -> &[u8] {
    let valid = match std::str::from_utf8(line) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&line[..e.valid_up_to()]).unwrap_or(""),
    };
    let skipped = valid.len() - valid.trim_start().len();
    &line[skipped..]
}

/// The parser's `([^\\])\\[ \t]*$|^\\[ \t]*$`, replaced by `$1`: a line
/// ending in the escape character (and blanks) continues on the next one,
/// unless that character is itself escaped.
fn continuation(line: &[u8]) -> (Vec<u8>, bool) {
    let blanks = line
        .iter()
        .rev()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    match line[..line.len() - blanks].strip_suffix(b"\\") {
        Some(rest) if !rest.ends_with(b"\\") => (rest.to_vec(), false),
        _ => (line.to_vec(), true),
    }
}

fn split_word(line: &[u8]) -> (&[u8], &[u8]) {
    let is_blank = |b: &u8| matches!(b, b'\t' | 0x0b | 0x0c | b'\r' | b' ');
    let line = trim_start(line);
    match line.iter().position(is_blank) {
        Some(at) => (&line[..at], &line[at..]),
        None => (line, &[]),
    }
}

fn instruction(line: &[u8]) -> Result<(), Violation> {
    let (word, rest) = split_word(line);
    match keyword(word).as_deref() {
        Some("add") => add_sources(rest),
        Some("onbuild") => {
            // Flags of ONBUILD itself fail the build; skipped all the same.
            let mut rest = trim_start(rest);
            while rest.starts_with(b"--") {
                rest = split_word(rest).1;
            }
            let (trigger, rest) = split_word(rest);
            match keyword(trigger).as_deref() {
                Some("add") => add_sources(rest),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// An instruction word as the parser's Go `strings.ToLower` makes it, which
/// maps some non-ASCII letters to ASCII ones (`İ` to `i`).
fn keyword(word: &[u8]) -> Option<String> {
    let word = std::str::from_utf8(word).ok()?;
    Some(
        word.chars()
            .map(|c| c.to_lowercase().next().unwrap_or(c))
            .collect(),
    )
}

/// Characters that variable expansion, quote removal or escapes act on.
const UNLITERAL: &[u8] = b"$'\"\\`";

fn add_sources(args: &[u8]) -> Result<(), Violation> {
    let remote = || Violation {
        rule: "build.add-remote",
        what: "ADD from a URL (the daemon fetches it from the host's network), or ADD a source \
               written with $, quotes or escapes (use COPY, or a literal path)"
            .into(),
    };
    if contains(args, b"://") {
        return Err(remote());
    }
    // Leading `--flag` words, as the parser's extractBuilderFlags takes them.
    let mut rest = trim_start(args);
    while rest.starts_with(b"--") {
        let (_, after) = split_word(rest);
        rest = trim_start(after);
    }
    // The exec (JSON) form: each string goes through variable expansion as
    // a shell word would. Anything else is read as the shell form.
    if rest.starts_with(b"[") && !rest.iter().any(|b| b"$'`".contains(b)) {
        let mut values = serde_json::Deserializer::from_slice(rest).into_iter::<Vec<String>>();
        if let Some(Ok(words)) = values.next() {
            let trailing = rest[values.byte_offset()..].trim_ascii();
            let literal = words
                .iter()
                .all(|w| !w.contains("://") && !w.bytes().any(|b| UNLITERAL.contains(&b)));
            if trailing.is_empty() {
                return if literal { Ok(()) } else { Err(remote()) };
            }
        }
    }
    if rest.iter().any(|b| UNLITERAL.contains(b)) {
        return Err(remote());
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(Some(s)).unwrap()
    }

    fn rule<T: std::fmt::Debug>(r: Result<T, Rejection>) -> &'static str {
        match r {
            Err(Rejection::Violation(v)) => v.rule,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn builder_follows_the_first_version() {
        assert_eq!(builder(&q("t=a")), Builder::Classic);
        assert_eq!(builder(&q("version=1&version=2")), Builder::Classic);
        assert_eq!(builder(&q("version=2")), Builder::BuildKit);
        assert_eq!(builder(&q("version=3")), Builder::BuildKit);
        assert_eq!(
            rule(buildkit_allowed(&q("version=2"), false)),
            "build.buildkit"
        );
        assert!(buildkit_allowed(&q("version=2"), true).is_ok());
        assert!(buildkit_allowed(&q("version=1"), false).is_ok());
    }

    #[test]
    fn proxy_and_buildkit_arguments_and_cachefrom() {
        for args in [
            r#"{"HTTP_PROXY":"http://x"}"#,
            r#"{"a":"b","no_proxy":null}"#,
            r#"{"Https_Proxy":"x"}"#,
            r#"{"ALL_PROXY":"x"}"#,
            r#"{"\u0066tp_proxy":"x"}"#,
            "{\"http\u{17F}_proxy\":\"x\"}",
        ] {
            let query = format!("buildargs={}", urlencode(args));
            assert_eq!(rule(parameters(&q(&query))), "build.proxy-args", "{args}");
        }
        let syntax = format!("buildargs={}", urlencode(r#"{"BUILDKIT_SYNTAX":"x/y"}"#));
        assert_eq!(rule(parameters(&q(&syntax))), "build.buildkit-args");
        let second = format!(
            "buildargs=%7B%7D&buildargs={}",
            urlencode(r#"{"http_proxy":"x"}"#)
        );
        assert_eq!(rule(parameters(&q(&second))), "build.proxy-args");
        assert!(parameters(&q("buildargs=%7B%22A%22%3A%22b%22%7D&cachefrom=%5B%5D")).is_ok());
        assert!(parameters(&q("buildargs=&cachefrom=null")).is_ok());
        assert_eq!(
            rule(parameters(&q("cachefrom=%5B%22img%22%5D"))),
            "build.cachefrom"
        );
        assert!(matches!(
            parameters(&q("buildargs=%5B%5D")),
            Err(Rejection::Malformed(_))
        ));
    }

    fn urlencode(s: &str) -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    #[test]
    fn dockerfile_paths_resolve_like_dockerd() {
        assert_eq!(dockerfile_paths(&q("")), ["Dockerfile", "dockerfile"]);
        assert_eq!(
            dockerfile_paths(&q("dockerfile=./Dockerfile")),
            ["Dockerfile", "dockerfile"]
        );
        assert_eq!(dockerfile_paths(&q("dockerfile=a/../../b/Df")), ["b/Df"]);
        assert_eq!(dockerfile_paths(&q("dockerfile=/x//y/")), ["x/y"]);
        assert_eq!(clean("a/./b/../../.."), "..");
        assert_eq!(clean("/../a/"), "/a");
        assert_eq!(clean("./"), ".");
    }

    #[test]
    fn remote_add_sources_are_refused() {
        let refused = |df: &str| dockerfile(df.as_bytes()).map_err(|v| v.rule);
        for df in [
            "FROM a\nADD http://127.0.0.1:1/x /x\n",
            "FROM a\nadd\thttps://169.254.169.254/ /m\n",
            "FROM a\n  Add --chown=1:1 http://10.0.0.1/ /x\n",
            "FROM a\nADD \\\n  http://127.0.0.1/ /x\n",
            "FROM a\nADD \\\n# a comment\n\n  http://127.0.0.1/ /x\n",
            "FROM a\nADD $URL /x\n",
            "FROM a\nADD ${U}rl /x\n",
            "FROM a\nADD h\"ttp\"://x /x\n",
            "FROM a\nADD http:\"//\"x /x\n",
            "FROM a\nADD http:\\/\\/x /x\n",
            "FROM a\nADD [\"http:\\/\\/x\", \"/x\"]\n",
            "FROM a\nADD [\"$U\", \"/x\"]\n",
            "FROM a\nADD ['http://x', '/x']\n",
            "FROM a\nONBUILD ADD http://127.0.0.1/ /x\n",
            "FROM a\nonbuild   add ${X} /x\n",
            "\u{feff}FROM a\nADD http://x/ /x\n",
            "FROM a\r\nADD http://x/ /x\r\n",
            "FROM a\n\u{a0}ADD http://x/ /x\n",
            "FROM a\nONBU\u{130}LD ADD http://x/ /x\n",
            "FROM a\nONBUILD --x ADD http://x/ /x\n",
            "FROM a\nRUN echo \\\\\nADD http://x/ /x\n",
            "FROM a\nRUN echo \\\\ \t\nADD http://x/ /x\n",
            "FROM a\nRUN echo \\\n\\\nADD http://x/ /x\n",
        ] {
            assert_eq!(refused(df), Err("build.add-remote"), "{df:?}");
        }
        for df in ["# escape=`\nFROM a\nADD x /x\n", "FROM a\n#ESCAPE = \\\n"] {
            assert_eq!(refused(df), Err("build.dockerfile"), "{df:?}");
        }
        for df in [
            "# syntax=docker/dockerfile:1\nFROM a\nADD app.tar.gz /opt/\n",
            "FROM a\nADD --chown=1:1 a b /x/\nCOPY . /src\n",
            "FROM a\nADD [\"a b\", \"/x/\"]\n",
            "FROM a\nRUN wget https://example.com/x \\\n && echo ADD http://x\n",
            "FROM a\nCOPY --from=b /x /y\nLABEL u=http://x\n",
            "FROM a\nADD a \\\n /x\n",
        ] {
            assert_eq!(refused(df), Ok(()), "{df:?}");
        }
    }
}
