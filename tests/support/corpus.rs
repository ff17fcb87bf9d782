//! The hostile request corpus, `tests/corpus/confinement.toml`: loading it, filling in its
//! placeholders, putting each case on the wire, and judging the gateway's reply. What the daemon
//! must hold afterwards is parsed here and judged by each run: against the real dockerd
//! (`policy`) or the fake one (`confinement`).

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::support::policy::{chunked, sized, tar};

const SOURCE: &str = include_str!("../corpus/confinement.toml");

/// Fresh-name placeholders, and the stem of their values.
const FRESH: [(&str, &str); 4] = [
    ("$NAME", "hostile"),
    ("$VOL", "hostile-vol"),
    ("$NET", "hostile-net"),
    ("$TAG", "hostile-img"),
];

#[derive(Debug, Deserialize)]
struct File {
    case: Vec<Case>,
}

/// One hostile request and what must come of it; the file's header documents each field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub label: String,
    #[serde(default = "post")]
    pub method: String,
    target: String,
    body: Option<String>,
    chunks: Option<Vec<String>>,
    chunk_size: Option<usize>,
    pad: Option<usize>,
    tar: Option<Vec<(String, String)>>,
    content_type: Option<String>,
    status: Status,
    rule: Option<String>,
    message: Option<String>,
    message_contains: Option<String>,
    message_starts: Option<String>,
    #[serde(default)]
    daemon: Vec<String>,
}

fn post() -> String {
    "POST".to_owned()
}

/// The status the gateway must answer.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Status {
    Is(u16),
    OneOf(Vec<u16>),
    /// `"4xx"`: any client error, the gateway's or the daemon's.
    Class(String),
}

/// The whole corpus, in file order (the controls that create the caller's containers first).
pub fn cases() -> Vec<Case> {
    let file: File = toml::from_str(SOURCE)
        .unwrap_or_else(|e| panic!("tests/corpus/confinement.toml does not parse: {e}"));
    let mut seen = HashSet::new();
    for case in &file.case {
        assert!(seen.insert(&case.label), "duplicate label {:?}", case.label);
        let status_ok = match &case.status {
            Status::Class(class) => class == "4xx",
            _ => true,
        };
        assert!(status_ok, "{}: status {:?}", case.label, case.status);
    }
    file.case
}

/// Placeholder values. A placeholder is `$` and the longest run of `A`–`Z` and `_` after it.
#[derive(Debug, Clone, Default)]
pub struct Vars(HashMap<String, String>);

impl Vars {
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        assert!(name.starts_with('$'), "placeholder {name} lacks its $");
        self.0.insert(name.to_owned(), value.into());
    }

    pub fn get(&self, name: &str) -> &str {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("placeholder {name} has no value"))
    }

    /// `template` with every placeholder replaced; panics on one without a value.
    pub fn fill(&self, template: &str) -> String {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let name_len = rest[at + 1..]
                .bytes()
                .take_while(|b| b.is_ascii_uppercase() || *b == b'_')
                .count();
            out.push_str(self.get(&rest[at..at + 1 + name_len]));
            rest = &rest[at + 1 + name_len..];
        }
        out.push_str(rest);
        out
    }

    /// Values for writing fuzz seeds: stable, so a seed's name (its content hash) is too.
    pub fn for_seeds() -> Vars {
        let mut vars = Vars::default();
        let id = "4f1c".repeat(16);
        for (name, value) in [
            ("$IMG", r#""dockgate-test/busybox:latest""#),
            ("$IMG_NAME", "dockgate-test/busybox:latest"),
            ("$HIDDEN_IMG_ID", &format!("sha256:{}", "1d6e".repeat(16))),
            ("$HIDDEN_IMG_SHORT", "1d6e1d6e1d6e"),
            ("$ADMIN", "dgt-admin-ctr"),
            ("$ADMIN_ID", &id),
            ("$ADMIN_SHORT_ID", &id[..12]),
            ("$ADMIN_STOPPED", "dgt-admin-stopped"),
            ("$ADMIN_VOL", "dgt-admin-vol"),
            ("$ADMIN_NET", "dgt-admin-net"),
            ("$ADMIN_EXEC", &"e8ec".repeat(16)),
            ("$ADMIN_EXEC_TARGET", "dgt-admin-exec-target"),
            ("$CREATED", "dgt-ci-created"),
            ("$RUNNING", "dgt-ci-running"),
        ] {
            vars.set(name, value);
        }
        for (name, value) in FRESH {
            vars.set(name, format!("dgt-{value}"));
        }
        vars
    }
}

/// A daemon state a case requires afterwards, placeholders filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    NoContainer(String),
    /// Exists, carries the caller's owner label, and is not privileged.
    OwnedByCaller(String),
    Running(String),
    /// Exists, never started, with no privileges or binds.
    Unstarted(String),
    NoExecs(String),
    NoVolume(String),
    VolumeOwnedByCaller(String),
    NoNetwork(String),
    /// Exactly one network has this name.
    OneNetworkNamed(String),
    /// The container is not attached to this network.
    NotOnNetwork(String, String),
    NoImage(String),
    /// The path does not exist in the (running) container.
    NoFile(String, String),
    SwarmInactive,
    NoPlugins,
}

impl State {
    fn parse(text: &str) -> State {
        let words: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        let arg = |i: usize| {
            words
                .get(i)
                .cloned()
                .unwrap_or_else(|| panic!("daemon state {text:?} lacks argument {i}"))
        };
        let state = match words.first().map(String::as_str) {
            Some("no-container") => State::NoContainer(arg(1)),
            Some("owned-by-caller") => State::OwnedByCaller(arg(1)),
            Some("running") => State::Running(arg(1)),
            Some("unstarted") => State::Unstarted(arg(1)),
            Some("no-execs") => State::NoExecs(arg(1)),
            Some("no-volume") => State::NoVolume(arg(1)),
            Some("volume-owned-by-caller") => State::VolumeOwnedByCaller(arg(1)),
            Some("no-network") => State::NoNetwork(arg(1)),
            Some("one-network-named") => State::OneNetworkNamed(arg(1)),
            Some("not-on-network") => State::NotOnNetwork(arg(1), arg(2)),
            Some("no-image") => State::NoImage(arg(1)),
            Some("no-file") => State::NoFile(arg(1), arg(2)),
            Some("swarm-inactive") => State::SwarmInactive,
            Some("no-plugins") => State::NoPlugins,
            _ => panic!("unknown daemon state {text:?}"),
        };
        let arity = match state {
            State::SwarmInactive | State::NoPlugins => 1,
            State::NotOnNetwork(..) | State::NoFile(..) => 3,
            _ => 2,
        };
        assert_eq!(words.len(), arity, "daemon state {text:?}");
        state
    }
}

impl Case {
    /// Every template of the case: target, body, chunks, messages and daemon states.
    fn templates(&self) -> impl Iterator<Item = &str> {
        [&self.body, &self.message, &self.message_contains]
            .into_iter()
            .flatten()
            .chain(self.chunks.iter().flatten())
            .chain(self.daemon.iter())
            .map(String::as_str)
            .chain([self.target.as_str()])
    }

    /// The fresh-name placeholders (`$NAME`, `$VOL`, `$NET`, `$TAG`) the case uses, each with
    /// the stem of its values; each run gives them a new unique value per case.
    pub fn fresh(&self) -> Vec<(&'static str, &'static str)> {
        FRESH
            .into_iter()
            .filter(|(name, _)| {
                self.templates().any(|t| {
                    t.match_indices(name).any(|(at, _)| {
                        !t[at + name.len()..]
                            .starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
                    })
                })
            })
            .collect()
    }

    pub fn target(&self, vars: &Vars) -> String {
        vars.fill(&self.target)
    }

    /// The body as sent (chunks joined), if any.
    pub fn body(&self, vars: &Vars) -> Option<Vec<u8>> {
        if let Some(files) = &self.tar {
            let files: Vec<(&str, &[u8])> = files
                .iter()
                .map(|(name, data)| (name.as_str(), data.as_bytes()))
                .collect();
            return Some(tar(&files));
        }
        if let Some(chunks) = &self.chunks {
            return Some(
                chunks
                    .iter()
                    .map(|c| vars.fill(c))
                    .collect::<String>()
                    .into(),
            );
        }
        let body = self.body.as_deref()?;
        Some(
            match self.pad {
                Some(n) => {
                    let mut vars = vars.clone();
                    vars.set("$PAD", "a".repeat(n));
                    vars.fill(body)
                }
                None => vars.fill(body),
            }
            .into_bytes(),
        )
    }

    fn content_type(&self) -> Option<&str> {
        match self.content_type.as_deref() {
            Some("") => None,
            Some(ct) => Some(ct),
            None if self.tar.is_some() => Some("application/x-tar"),
            None if self.body.is_some() || self.chunks.is_some() => Some("application/json"),
            None => None,
        }
    }

    /// The complete request as bytes on the wire.
    pub fn wire(&self, vars: &Vars) -> Vec<u8> {
        let target = self.target(vars);
        let content_type = self.content_type();
        if let Some(chunks) = &self.chunks {
            let filled: Vec<String> = chunks.iter().map(|c| vars.fill(c)).collect();
            let parts: Vec<&[u8]> = filled.iter().map(|c| c.as_bytes()).collect();
            return chunked(
                &self.method,
                &target,
                content_type.unwrap_or_default(),
                &parts,
            );
        }
        let body = self.body(vars).unwrap_or_default();
        match self.chunk_size {
            Some(size) => {
                let parts: Vec<&[u8]> = body.chunks(size).collect();
                chunked(
                    &self.method,
                    &target,
                    content_type.unwrap_or_default(),
                    &parts,
                )
            }
            None => sized(&self.method, &target, content_type, &body),
        }
    }

    /// The body as a fuzz seed for the JSON decoder: every body but archives, form bodies and
    /// padding past the inspection limit.
    pub fn seed(&self) -> Option<Vec<u8>> {
        let form = self.content_type().is_some_and(|ct| ct.contains("form"));
        if self.tar.is_some() || self.pad.is_some() || form {
            return None;
        }
        self.body(&Vars::for_seeds())
    }

    /// True when dockgate itself must refuse: then nothing but ownership lookups may reach the
    /// daemon.
    pub fn refused_by_dockgate(&self) -> bool {
        match &self.status {
            Status::Is(s) => *s >= 400,
            Status::OneOf(list) => list.iter().all(|s| *s >= 400),
            Status::Class(_) => false,
        }
    }

    /// True when the request must go through.
    pub fn allowed(&self) -> bool {
        matches!(self.status, Status::Is(s) if s < 400)
    }

    pub fn states(&self, vars: &Vars) -> Vec<State> {
        self.daemon
            .iter()
            .map(|s| State::parse(&vars.fill(s)))
            .collect()
    }

    /// Judges the gateway's answer.
    pub fn check_reply(&self, vars: &Vars, status: u16, message: &str) -> Result<(), String> {
        let mut wrong = Vec::new();
        let status_ok = match &self.status {
            Status::Is(s) => status == *s,
            Status::OneOf(list) => list.contains(&status),
            Status::Class(_) => (400..500).contains(&status),
        };
        if !status_ok {
            wrong.push(format!("status {:?}", self.status));
        }
        if let Some(rule) = &self.rule {
            if !(message.starts_with("dockgate: role ci may not ")
                && message.ends_with(&format!("(rule {rule})")))
            {
                wrong.push(format!("rule {rule}"));
            }
        }
        if let Some(m) = &self.message {
            let m = vars.fill(m);
            if message != m {
                wrong.push(format!("message {m:?}"));
            }
        }
        if let Some(m) = &self.message_contains {
            let m = vars.fill(m);
            if !message.contains(&m) {
                wrong.push(format!("a message containing {m:?}"));
            }
        }
        if let Some(m) = &self.message_starts {
            if !message.starts_with(m.as_str()) {
                wrong.push(format!("a message starting {m:?}"));
            }
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "expected {}; the gateway answered {status} {message:?}",
                wrong.join(", ")
            ))
        }
    }
}
