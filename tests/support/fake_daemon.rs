//! A fake Docker Engine API on a Unix socket inside the test process, for running the hostile
//! corpus fast and for seeing exactly what dockgate lets through. It holds a small table of
//! containers, exec instances, volumes, networks and images, each with its labels, answers
//! dockgate's ownership lookups from it, carries out the few requests a confined client is
//! allowed (container create, start and exec, volume and network create), answers 501 to
//! anything else, and records every request it receives.
//!
//! Request bodies are read the way dockerd's Go decoder reads them where it matters for the
//! checks: object keys match case-insensitively (with Go's folds of `ſ` and the Kelvin sign), and
//! a repeated key merges objects into what an earlier one set.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{json, Map, Value};
use tokio::net::UnixListener;
use tokio::task::JoinHandle;

use crate::support::corpus::State;
use crate::support::{sha256_hex, TempDir};

/// One request as the fake daemon received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    /// Origin-form target: path and query.
    pub target: String,
    pub body: Vec<u8>,
}

impl Received {
    /// The path without its query and API version prefix, segments percent-decoded.
    fn segments(&self) -> Vec<String> {
        let path = self.target.split('?').next().unwrap_or_default();
        let mut segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let versioned = segments.first().is_some_and(|s| {
            s.strip_prefix('v')
                .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '.'))
        });
        if versioned {
            segments.remove(0);
        }
        segments
    }

    fn query(&self, key: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == key).then(|| percent_decode(v))
        })
    }

    /// True for the reads dockgate makes on its own: ownership checks, and the lists it
    /// reconciles its ownership records with at start. They change nothing.
    pub fn is_lookup(&self) -> bool {
        let s = self.segments();
        let s: Vec<&str> = s.iter().map(String::as_str).collect();
        self.method == "GET"
            && matches!(
                s.as_slice(),
                ["containers" | "images" | "exec", _, "json"]
                    | ["volumes" | "networks", _]
                    | ["containers" | "images", "json"]
            )
    }
}

impl fmt::Display for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.target)
    }
}

#[derive(Debug)]
struct Container {
    id: String,
    name: String,
    labels: Value,
    privileged: bool,
    binds: bool,
    running: bool,
    execs: Vec<String>,
}

#[derive(Debug)]
struct Object {
    id: String,
    name: String,
    labels: Value,
}

#[derive(Debug, Default)]
struct Table {
    containers: Vec<Container>,
    /// Exec ID to container ID.
    execs: HashMap<String, String>,
    volumes: Vec<Object>,
    networks: Vec<Object>,
    images: Vec<Object>,
    received: Vec<Received>,
}

pub struct FakeDaemon {
    _dir: TempDir,
    socket: PathBuf,
    table: Arc<Mutex<Table>>,
    server: JoinHandle<()>,
}

impl FakeDaemon {
    /// Starts serving on a socket in a fresh directory; the caller's runtime drives it.
    pub fn start() -> FakeDaemon {
        let dir = TempDir::new("fake-daemon");
        let socket = dir.join("docker.sock");
        let listener = UnixListener::bind(&socket)
            .unwrap_or_else(|e| panic!("bind {}: {e}", socket.display()));
        let table = Arc::new(Mutex::new(Table::default()));
        let shared = table.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let table = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| answer(table.clone(), request));
                    // A connection dockgate drops mid-request is its own business.
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeDaemon {
            _dir: dir,
            socket,
            table,
            server,
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a container owned by `owner` (a `dockgate.owner` label value); returns its ID.
    pub fn add_container(&self, name: &str, owner: &str, running: bool) -> String {
        let id = sha256_hex(name.as_bytes());
        self.table().containers.push(Container {
            id: id.clone(),
            name: name.to_owned(),
            labels: owner_label(owner),
            privileged: false,
            binds: false,
            running,
            execs: Vec::new(),
        });
        id
    }

    /// Adds an exec instance in container `name`; returns its ID.
    pub fn add_exec(&self, name: &str) -> String {
        let mut table = self.table();
        let id = sha256_hex(format!("exec {name} {}", table.execs.len()).as_bytes());
        let container = table
            .containers
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no fake container {name}"));
        container.execs.push(id.clone());
        let container_id = container.id.clone();
        table.execs.insert(id.clone(), container_id);
        id
    }

    pub fn add_volume(&self, name: &str, owner: &str) {
        self.table().volumes.push(object(name, owner_label(owner)));
    }

    pub fn add_network(&self, name: &str, owner: Option<&str>) {
        let labels = owner.map_or_else(|| json!({}), owner_label);
        self.table().networks.push(object(name, labels));
    }

    pub fn add_image(&self, reference: &str) {
        self.table().images.push(object(reference, json!({})));
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.table().received.clone()
    }

    /// Whether the table, and what was received, satisfy `state` for a caller whose owner label
    /// is `me`.
    pub fn holds(&self, state: &State, me: &str) -> Result<(), String> {
        let table = self.table();
        let container = |name: &str| {
            table
                .containers
                .iter()
                .find(|c| c.name == name)
                .ok_or_else(|| format!("the fake daemon has no container {name}"))
        };
        let received = |what: &str, pred: &dyn Fn(&[String]) -> bool| match table
            .received
            .iter()
            .find(|r| !r.is_lookup() && pred(&r.segments()))
        {
            None => Ok(()),
            Some(r) => Err(format!("{what}: the daemon received {r}")),
        };
        let owner = |labels: &Value| labels.get(OWNER).and_then(Value::as_str).map(str::to_owned);
        match state {
            State::NoContainer(name) => match container(name) {
                Err(_) => Ok(()),
                Ok(c) => Err(format!("the daemon created {c:?}")),
            },
            State::OwnedByCaller(name) => {
                let c = container(name)?;
                if owner(&c.labels).as_deref() == Some(me) && !c.privileged {
                    Ok(())
                } else {
                    Err(format!(
                        "want owner {me}, unprivileged; the daemon holds {c:?}"
                    ))
                }
            }
            State::Running(name) => {
                let c = container(name)?;
                c.running
                    .then_some(())
                    .ok_or_else(|| format!("not running: {c:?}"))
            }
            State::Unstarted(name) => {
                let c = container(name)?;
                (!c.running && !c.privileged && !c.binds)
                    .then_some(())
                    .ok_or_else(|| format!("the daemon holds {c:?}"))
            }
            State::NoExecs(name) => {
                let c = container(name)?;
                c.execs
                    .is_empty()
                    .then_some(())
                    .ok_or_else(|| format!("container {name} has exec instances {:?}", c.execs))
            }
            State::NoVolume(name) => match table.volumes.iter().find(|v| v.name == *name) {
                None => Ok(()),
                Some(v) => Err(format!("the daemon created volume {v:?}")),
            },
            State::VolumeOwnedByCaller(name) => {
                match table.volumes.iter().find(|v| v.name == *name) {
                    Some(v) if owner(&v.labels).as_deref() == Some(me) => Ok(()),
                    other => Err(format!("want a volume {name} owned by {me}, got {other:?}")),
                }
            }
            State::NoNetwork(name) => match table.networks.iter().find(|n| n.name == *name) {
                None => Ok(()),
                Some(n) => Err(format!("the daemon created network {n:?}")),
            },
            State::OneNetworkNamed(name) => {
                match table.networks.iter().filter(|n| n.name == *name).count() {
                    1 => Ok(()),
                    n => Err(format!("the daemon holds {n} networks named {name}")),
                }
            }
            State::NotOnNetwork(container, network) => {
                received(&format!("{container} must stay off {network}"), &|s| {
                    s.first().is_some_and(|s| s == "networks")
                        && s.last().is_some_and(|s| s == "connect")
                })
            }
            State::NoImage(name) => {
                if let Some(i) = table.images.iter().find(|i| i.name == *name) {
                    return Err(format!("the daemon holds image {i:?}"));
                }
                received(&format!("no image {name} may be made"), &|s| {
                    let s: Vec<&str> = s.iter().map(String::as_str).collect();
                    matches!(
                        s.as_slice(),
                        ["build"] | ["commit"] | ["images", "create" | "load"]
                    )
                })
            }
            State::NoFile(container, path) => {
                received(&format!("nothing may run in {container} ({path})"), &|s| {
                    s.first().is_some_and(|s| s == "exec") && s.last().is_some_and(|s| s == "start")
                })
            }
            State::SwarmInactive => received("the swarm must stay inactive", &|s| {
                s.first().is_some_and(|s| s == "swarm")
            }),
            State::NoPlugins => received("no plugin may be installed", &|s| {
                s.first().is_some_and(|s| s == "plugins")
            }),
        }
    }
}

impl Drop for FakeDaemon {
    fn drop(&mut self) {
        self.server.abort();
    }
}

const OWNER: &str = "dockgate.owner";

fn owner_label(owner: &str) -> Value {
    json!({ OWNER: owner })
}

fn object(name: &str, labels: Value) -> Object {
    Object {
        id: sha256_hex(name.as_bytes()),
        name: name.to_owned(),
        labels,
    }
}

async fn answer(
    table: Arc<Mutex<Table>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    // A body cut short is recorded as far as it came.
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let received = Received {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        body,
    };
    let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
    table.received.push(received.clone());
    let (status, body) = table.serve(&received);
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

fn error(status: StatusCode, message: impl Into<String>) -> (StatusCode, Value) {
    (status, json!({ "message": message.into() }))
}

impl Table {
    fn container(&mut self, reference: &str) -> Option<&mut Container> {
        let name = reference.trim_start_matches('/');
        if let Some(i) = self
            .containers
            .iter()
            .position(|c| c.id == reference || c.name == name)
        {
            return self.containers.get_mut(i);
        }
        let mut prefixed = self
            .containers
            .iter_mut()
            .filter(|c| !reference.is_empty() && c.id.starts_with(reference));
        match (prefixed.next(), prefixed.next()) {
            (Some(c), None) => Some(c),
            _ => None,
        }
    }

    fn serve(&mut self, r: &Received) -> (StatusCode, Value) {
        let segments = r.segments();
        let s: Vec<&str> = segments.iter().map(String::as_str).collect();
        match (r.method.as_str(), s.as_slice()) {
            ("GET", ["containers", reference, "json"]) => match self.container(reference) {
                Some(c) => (
                    StatusCode::OK,
                    json!({
                        "Id": c.id,
                        "Name": format!("/{}", c.name),
                        "Config": { "Labels": c.labels },
                        "State": { "Running": c.running },
                        "HostConfig": { "Privileged": c.privileged },
                        "ExecIDs": c.execs,
                    }),
                ),
                None => error(
                    StatusCode::NOT_FOUND,
                    format!("No such container: {reference}"),
                ),
            },
            ("GET", ["exec", id, "json"]) => match self.execs.get(*id) {
                Some(container) => (
                    StatusCode::OK,
                    json!({ "ID": id, "ContainerID": container, "Running": false }),
                ),
                None => error(
                    StatusCode::NOT_FOUND,
                    format!("No such exec instance: {id}"),
                ),
            },
            ("GET", ["volumes", name]) => match self.volumes.iter().find(|v| v.name == *name) {
                Some(v) => (
                    StatusCode::OK,
                    json!({ "Name": v.name, "Labels": v.labels }),
                ),
                None => error(StatusCode::NOT_FOUND, format!("get {name}: no such volume")),
            },
            ("GET", ["networks", reference]) => match self
                .networks
                .iter()
                .find(|n| n.name == *reference || n.id == *reference)
            {
                Some(n) => (
                    StatusCode::OK,
                    json!({ "Id": n.id, "Name": n.name, "Labels": n.labels }),
                ),
                None => error(
                    StatusCode::NOT_FOUND,
                    format!("network {reference} not found"),
                ),
            },
            ("GET", ["images", reference, "json"]) => {
                let tagged = if reference
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .contains(':')
                {
                    (*reference).to_owned()
                } else {
                    format!("{reference}:latest")
                };
                match self.images.iter().find(|i| i.name == tagged) {
                    Some(i) => (
                        StatusCode::OK,
                        json!({ "Id": format!("sha256:{}", i.id), "RepoTags": [i.name], "Config": { "Labels": i.labels } }),
                    ),
                    None => error(StatusCode::NOT_FOUND, format!("No such image: {reference}")),
                }
            }
            ("POST", ["containers", "create"]) => self.create_container(r),
            ("POST", ["containers", reference, "start"]) => match self.container(reference) {
                Some(c) => {
                    c.running = true;
                    (StatusCode::NO_CONTENT, Value::Null)
                }
                None => error(
                    StatusCode::NOT_FOUND,
                    format!("No such container: {reference}"),
                ),
            },
            ("POST", ["containers", reference, "exec"]) => {
                let Some(c) = self.container(reference) else {
                    return error(
                        StatusCode::NOT_FOUND,
                        format!("No such container: {reference}"),
                    );
                };
                let id = sha256_hex(format!("exec {} {}", c.id, c.execs.len()).as_bytes());
                c.execs.push(id.clone());
                let container_id = c.id.clone();
                self.execs.insert(id.clone(), container_id);
                (StatusCode::CREATED, json!({ "Id": id }))
            }
            ("POST", ["volumes", "create"]) => {
                let Some(body) = go_decode(&r.body) else {
                    return error(StatusCode::BAD_REQUEST, "fake daemon: invalid JSON");
                };
                let name = text(&body, "name");
                let volume = object(&name, body.get("labels").cloned().unwrap_or(json!({})));
                let answer = json!({ "Name": volume.name, "Labels": volume.labels });
                self.volumes.push(volume);
                (StatusCode::CREATED, answer)
            }
            ("POST", ["networks", "create"]) => {
                let Some(body) = go_decode(&r.body) else {
                    return error(StatusCode::BAD_REQUEST, "fake daemon: invalid JSON");
                };
                let name = text(&body, "name");
                if self.networks.iter().any(|n| n.name == name) {
                    return error(
                        StatusCode::CONFLICT,
                        format!("network with name {name} already exists"),
                    );
                }
                let network = object(&name, body.get("labels").cloned().unwrap_or(json!({})));
                let answer = json!({ "Id": network.id });
                self.networks.push(network);
                (StatusCode::CREATED, answer)
            }
            _ => error(
                StatusCode::NOT_IMPLEMENTED,
                format!("fake daemon: {r} is not implemented"),
            ),
        }
    }

    fn create_container(&mut self, r: &Received) -> (StatusCode, Value) {
        let Some(body) = go_decode(&r.body) else {
            return error(StatusCode::BAD_REQUEST, "fake daemon: invalid JSON");
        };
        let name = r.query("name").unwrap_or_default();
        if self.container(&name).is_some() {
            return error(
                StatusCode::CONFLICT,
                format!("Conflict. The container name \"/{name}\" is already in use"),
            );
        }
        // Old clients send the HostConfig's fields at the top level.
        let host = match body.get("hostconfig") {
            Some(h) if !h.is_null() => h,
            _ => &body,
        };
        let id = sha256_hex(name.as_bytes());
        self.containers.push(Container {
            id: id.clone(),
            name,
            labels: body.get("labels").cloned().unwrap_or(json!({})),
            privileged: host.get("privileged") == Some(&Value::Bool(true)),
            binds: host
                .get("binds")
                .and_then(Value::as_array)
                .is_some_and(|b| !b.is_empty()),
            running: false,
            execs: Vec::new(),
        });
        (StatusCode::CREATED, json!({ "Id": id, "Warnings": [] }))
    }
}

fn text(body: &Value, key: &str) -> String {
    body.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes a JSON body into a value whose object keys are folded as Go matches struct fields,
/// with repeated keys merged as Go decodes a second object into the same struct or map.
/// `None` when the body is not exactly one JSON value.
pub fn go_decode(body: &[u8]) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = GoValue::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value.0)
}

/// Go's case folding for the keys that matter: ASCII case, `ſ` as `s`, the Kelvin sign as `k`.
fn fold(key: &str) -> String {
    key.chars()
        .map(|c| match c {
            '\u{17f}' => 's',
            '\u{212a}' => 'k',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn merge(into: &mut Map<String, Value>, key: String, value: Value) {
    match (into.get_mut(&key), value) {
        (Some(Value::Object(old)), Value::Object(new)) => {
            for (k, v) in new {
                merge(old, k, v);
            }
        }
        (_, value) => {
            into.insert(key, value);
        }
    }
}

struct GoValue(Value);

impl<'de> Deserialize<'de> for GoValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<GoValue, D::Error> {
        deserializer.deserialize_any(GoVisitor)
    }
}

struct GoVisitor;

impl<'de> Visitor<'de> for GoVisitor {
    type Value = GoValue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<GoValue, E> {
        Ok(GoValue(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<GoValue, E> {
        Ok(GoValue(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<GoValue, E> {
        Ok(GoValue(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<GoValue, E> {
        Ok(GoValue(v.into()))
    }

    fn visit_str<E>(self, v: &str) -> Result<GoValue, E> {
        Ok(GoValue(v.into()))
    }

    fn visit_unit<E>(self) -> Result<GoValue, E> {
        Ok(GoValue(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<GoValue, A::Error> {
        let mut items = Vec::new();
        while let Some(GoValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(GoValue(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GoValue, A::Error> {
        let mut object = Map::new();
        while let Some((key, GoValue(value))) = map.next_entry::<String, GoValue>()? {
            merge(&mut object, fold(&key), value);
        }
        Ok(GoValue(Value::Object(object)))
    }
}
