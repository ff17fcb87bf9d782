//! Helpers for the policy suite: raw requests as a given client over a fresh mutual-TLS
//! connection, and independent checks of what the daemon holds afterwards.

use std::process::Command;

use serde_json::Value;

use crate::support::gateway::{ClientCerts, Gateway};
use crate::support::raw::Head;
use crate::support::{args, docker_direct, ok, run, tail};

/// The API version prefix of the requests, as the negotiated docker CLI would send it.
pub const API: &str = "/v1.41";

/// A response as the client saw it.
#[derive(Debug)]
pub struct Reply {
    pub head: Head,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The `message` of a Docker-style JSON error, else the body as text.
    pub fn message(&self) -> String {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).into_owned())
    }
}

/// Sends `wire` (one complete request) over a new connection as `client` and reads the whole
/// response. `method` tells whether a body follows the response head.
pub async fn send(gw: &Gateway, client: &ClientCerts, method: &str, wire: &[u8]) -> Reply {
    let mut conn = gw.raw(client).await;
    // A gateway that answers before reading a large body may close while this is still
    // writing; its answer is what counts.
    let _ = conn.try_send(wire).await;
    let head = conn.read_head().await;
    let body = conn.read_body(&head, method).await;
    Reply { head, body }
}

/// A request with a Content-Length body (none when `body` is empty and `content_type` is None).
pub fn sized(method: &str, target: &str, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut wire = format!("{method} {target} HTTP/1.1\r\nHost: docker\r\n");
    if let Some(ct) = content_type {
        wire.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    wire.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut wire = wire.into_bytes();
    wire.extend_from_slice(body);
    wire
}

/// A request whose body is sent with `Transfer-Encoding: chunked`, one chunk per element.
pub fn chunked(method: &str, target: &str, content_type: &str, chunks: &[&[u8]]) -> Vec<u8> {
    let mut wire = format!(
        "{method} {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: {content_type}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in chunks.iter().filter(|c| !c.is_empty()) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

/// `POST target` with a JSON body.
pub fn post_json(target: &str, body: &str) -> Vec<u8> {
    sized("POST", target, Some("application/json"), body.as_bytes())
}

/// A ustar archive holding regular files, for build contexts and imports.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        assert!(name.len() < 100, "tar member name too long: {name}");
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        let mut field = |at: usize, text: String| {
            header[at..at + text.len()].copy_from_slice(text.as_bytes());
        };
        field(100, "0000644\0".into());
        field(108, "0000000\0".into());
        field(116, "0000000\0".into());
        field(124, format!("{:011o}\0", data.len()));
        field(136, "00000000000\0".into());
        field(257, "ustar\0".into());
        field(263, "00".into());
        header[156] = b'0';
        // The checksum is computed with its own field as spaces.
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

// ---- What the daemon holds, asked directly (never through the gateway) ----

/// `docker inspect` of one object of `kind` (container, volume, network, image), if it exists.
pub fn inspect(kind: &str, name: &str) -> Option<Value> {
    let out = run(&mut args(docker_direct(), [kind, "inspect", name]));
    if !out.status.success() {
        let err = out.stderr_str().to_lowercase();
        assert!(
            err.contains("no such") || err.contains("not found"),
            "`{}` failed for another reason than absence: {}",
            out.what,
            out.stderr_str()
        );
        return None;
    }
    let list: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("`{}` printed no JSON: {e}", out.what));
    list.get(0).cloned()
}

/// The owner label of a container or image (from its inspect JSON).
pub fn owner_of(inspected: &Value) -> Option<String> {
    inspected
        .pointer("/Config/Labels/dockgate.owner")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// The host access a container was given, for failure messages: every HostConfig field the
/// policy guards that is set to something other than its zero value.
pub fn host_access(container: &Value) -> String {
    let hc = container.get("HostConfig").cloned().unwrap_or(Value::Null);
    let guarded = [
        "Privileged",
        "CapAdd",
        "Binds",
        "Mounts",
        "Devices",
        "DeviceRequests",
        "DeviceCgroupRules",
        "NetworkMode",
        "PidMode",
        "IpcMode",
        "UTSMode",
        "UsernsMode",
        "CgroupnsMode",
        "SecurityOpt",
        "Sysctls",
        "CgroupParent",
        "Runtime",
        "MaskedPaths",
        "ReadonlyPaths",
        "VolumesFrom",
        "Links",
        "LogConfig",
        "VolumeDriver",
    ];
    let set: Vec<String> = guarded
        .iter()
        .filter_map(|k| {
            let v = hc.get(*k)?;
            let zero = matches!(v, Value::Null | Value::Bool(false))
                || v.as_str().is_some_and(str::is_empty)
                || v.as_array().is_some_and(Vec::is_empty)
                || v.as_object().is_some_and(serde_json::Map::is_empty);
            (!zero).then(|| format!("{k}={v}"))
        })
        .collect();
    format!(
        "container {} (owner {:?}, state {}) with {}",
        container.get("Name").and_then(Value::as_str).unwrap_or("?"),
        owner_of(container),
        container
            .pointer("/State/Status")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        set.join(", ")
    )
}

/// Names of all containers (running or not) carrying label `key=value`, straight from the daemon.
pub fn containers_labelled(key: &str, value: &str) -> Vec<String> {
    ok(&mut args(
        docker_direct(),
        [
            "ps",
            "-a",
            "--filter",
            &format!("label={key}={value}"),
            "--format",
            "{{.Names}}",
        ],
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Outcome of a whole table of checks: every case runs and every failure is reported together,
/// so one broken rule does not hide the others.
#[derive(Default)]
pub struct Findings {
    passed: usize,
    failed: Vec<String>,
}

impl Findings {
    pub fn new() -> Findings {
        Findings::default()
    }

    pub fn check(&mut self, case: &str, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                eprintln!("ok    {case}");
            }
            Err(why) => {
                eprintln!("FAIL  {case}: {why}");
                self.failed.push(format!("{case}: {why}"));
            }
        }
    }

    /// Panics listing every failed case.
    pub fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "{} of {} cases failed:\n- {}",
            self.failed.len(),
            self.failed.len() + self.passed,
            self.failed.join("\n- ")
        );
    }
}

/// Runs a CLI command that must succeed; its stdout, or why it failed.
pub fn succeeds(cmd: &mut Command) -> Result<String, String> {
    let out = run(cmd);
    if out.status.success() {
        Ok(out.stdout_str())
    } else {
        Err(format!(
            "`{}` failed ({}): {}",
            out.what,
            out.status,
            tail(out.stderr_str().trim(), 2000)
        ))
    }
}

/// Runs a CLI command that must fail with `needle` in its stderr.
pub fn refused(cmd: &mut Command, needle: &str) -> Result<(), String> {
    refused_stderr(cmd, needle).map(drop)
}

/// Like [`refused`], returning the command's stderr.
pub fn refused_stderr(cmd: &mut Command, needle: &str) -> Result<String, String> {
    let out = run(cmd);
    let err = out.stderr_str();
    if out.status.success() {
        Err(format!(
            "`{}` succeeded; stdout {:?}",
            out.what,
            tail(&out.stdout_str(), 500)
        ))
    } else if !err.contains(needle) {
        Err(format!(
            "`{}` failed without {needle:?} in: {}",
            out.what,
            tail(err.trim(), 2000)
        ))
    } else {
        Ok(err)
    }
}
