//! Confinement: the second half of a decision for a confined role.
//!
//! Every operation a confined role may call has a [`Scope`] that says what
//! dockgate must check before the daemon sees it. An operation with no scope
//! is denied, so granting a confined role a new operation never silently
//! grants it unchecked.

use std::future::Future;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};

use super::inspect::{self, Refs, Violation};
use super::ownership::{self, add_owner_filter, append_members, owned_by};
use super::{Confined, Denial};
use crate::audit::Decision;
use dockgate_wire::api::Operation;
use dockgate_wire::query::Query;

/// Read access to the daemon, for ownership checks.
pub trait Daemon: Sync {
    /// GETs `path` (origin-form); `Ok(None)` when the daemon answers 404.
    fn get_json(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, String>> + Send;
}

/// What confinement must do for an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Touches no one's objects (ping, version, info, BuildKit streams,
    /// reading shared images).
    Free,
    /// Acts on the container in the path.
    Container,
    /// Acts on the exec instance in the path (and so on its container).
    Exec,
    Volume,
    Network,
    Image,
    /// A list or event stream: filtered to the caller's objects.
    List,
    /// Creates an object from a JSON body: inspected, then labelled.
    Create,
    Build,
    Pull,
}

/// How the request body is treated before forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// Streamed through untouched (build contexts, archives, images).
    Stream,
    /// Read whole (up to the inspection limit) and inspected.
    Inspect,
    /// Must be empty: the daemon would read privileges from it.
    Empty,
}

pub fn scope(op: Operation) -> Option<Scope> {
    use Operation as O;
    Some(match op {
        O::SystemPing | O::SystemPingHead | O::SystemVersion | O::SystemInfo => Scope::Free,
        // Not Grpc: raw BuildKit calls can't be inspected (see the config).
        O::Session | O::ImageInspect | O::ImageHistory => Scope::Free,
        O::ContainerInspect
        | O::ContainerStart
        | O::ContainerStop
        | O::ContainerKill
        | O::ContainerRestart
        | O::ContainerDelete
        | O::ContainerLogs
        | O::ContainerAttach
        | O::ContainerAttachWebsocket
        | O::ContainerResize
        | O::ContainerWait
        | O::ContainerTop
        | O::ContainerStats
        | O::ContainerChanges
        | O::ContainerArchive
        | O::ContainerArchiveInfo
        | O::PutContainerArchive
        | O::ContainerExport
        | O::ContainerPause
        | O::ContainerUnpause
        | O::ContainerRename
        | O::ContainerUpdate
        | O::ContainerExec => Scope::Container,
        O::ExecStart | O::ExecResize | O::ExecInspect => Scope::Exec,
        O::VolumeInspect | O::VolumeDelete => Scope::Volume,
        O::NetworkInspect | O::NetworkDelete | O::NetworkConnect | O::NetworkDisconnect => {
            Scope::Network
        }
        O::ImageDelete | O::ImageTag | O::ImagePush => Scope::Image,
        O::ContainerList | O::VolumeList | O::NetworkList | O::ImageList | O::SystemEvents => {
            Scope::List
        }
        O::ContainerCreate | O::VolumeCreate | O::NetworkCreate => Scope::Create,
        O::ImageBuild => Scope::Build,
        O::ImageCreate => Scope::Pull,
        _ => return None,
    })
}

pub fn body_rule(op: Operation) -> BodyRule {
    use Operation as O;
    match op {
        O::ContainerCreate
        | O::ContainerUpdate
        | O::ContainerExec
        | O::VolumeCreate
        | O::NetworkCreate
        | O::NetworkConnect
        | O::NetworkDisconnect => BodyRule::Inspect,
        // API < 1.24 reads a HostConfig from the start body.
        O::ContainerStart => BodyRule::Empty,
        _ => BodyRule::Stream,
    }
}

/// The rewritten parts of a confined request.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// A new origin-form target (resolved IDs, added filters or labels).
    pub target: Option<String>,
    /// A new body (owner label appended).
    pub body: Option<Bytes>,
}

/// Finishes the decision for a confined request. `body` is the whole body
/// when [`body_rule`] is `Inspect`, and `None` otherwise.
pub async fn confine<D: Daemon>(
    c: &Confined,
    decision: &Decision,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<Bytes>,
    daemon: &D,
) -> Result<Rewrite, Denial> {
    let deny = |status, message, rule: &str| Denial::of(decision, status, message, rule);
    let role = decision.role.as_deref().unwrap_or("?");
    let violation = |v: Violation| {
        deny(
            StatusCode::FORBIDDEN,
            format!("dockgate: role {role} may not {} (rule {})", v.what, v.rule),
            v.rule,
        )
    };
    let Some(scope) = scope(c.operation) else {
        return Err(deny(
            StatusCode::FORBIDDEN,
            format!(
                "dockgate: role {role} may not call {}: dockgate cannot confine it",
                c.operation
            ),
            "confined.unsupported",
        ));
    };
    if is_form(headers) {
        // Go's ParseForm reads such bodies, and their values override the
        // query string dockgate inspected.
        return Err(deny(
            StatusCode::BAD_REQUEST,
            "dockgate: form-encoded request bodies are not accepted".into(),
            "confined.form-body",
        ));
    }
    let query = Query::parse(uri.query()).map_err(|e| {
        deny(
            StatusCode::BAD_REQUEST,
            format!("dockgate: {e}"),
            "unparsable query",
        )
    })?;
    if body_rule(c.operation) == BodyRule::Empty && !body_is_empty(headers) {
        return Err(violation(Violation {
            rule: "confined.start-body",
            what: "send a HostConfig when starting a container".into(),
        }));
    }
    let json = || -> Result<&[u8], Denial> {
        let body = body.as_deref().unwrap_or_default();
        inspect::require_json(headers, body).map_err(|e| {
            deny(
                StatusCode::BAD_REQUEST,
                format!("dockgate: {e}"),
                "unparsable body",
            )
        })?;
        Ok(body)
    };
    let bad_body = |e: inspect::Malformed| {
        deny(
            StatusCode::BAD_REQUEST,
            format!("dockgate: {e}"),
            "unparsable body",
        )
    };
    let id_like_name = || {
        violation(Violation {
            rule: "confined.name",
            what: "use a name made only of hex digits (it would shadow IDs)".into(),
        })
    };
    let lookup = Lookup {
        c,
        daemon,
        deny: &deny,
    };

    let mut rewrite = Rewrite::default();
    match scope {
        Scope::Free => {}
        Scope::Container => {
            let name = c.param("name").unwrap_or_default();
            let id = lookup.container(name).await?;
            match c.operation {
                Operation::ContainerUpdate => {
                    inspect::container_update(json()?)
                        .map_err(|e| e.either(bad_body, violation))?;
                }
                Operation::ContainerExec => {
                    inspect::exec_create(json()?).map_err(|e| e.either(bad_body, violation))?;
                }
                Operation::ContainerRename if query.get("name").is_some_and(looks_like_id) => {
                    return Err(id_like_name());
                }
                _ => {}
            }
            rewrite.target = Some(c.target_with("name", &id, uri.query()));
        }
        Scope::Exec => {
            let id = c.param("name").or(c.param("id")).unwrap_or_default();
            let exec = lookup
                .get(
                    &format!("/exec/{}/json", escape_segment(id)),
                    "exec instance",
                    id,
                )
                .await?;
            let container = exec
                .get("ContainerID")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            lookup
                .container(container)
                .await
                .map_err(|_| lookup.not_found("exec instance", id))?;
        }
        Scope::Volume => {
            let name = c.param("name").unwrap_or_default();
            let volume = lookup
                .get(
                    &format!("/volumes/{}", escape_segment(name)),
                    "volume",
                    name,
                )
                .await?;
            if !owned_by(volume.get("Labels"), &c.owner) {
                return Err(lookup.not_found("volume", name));
            }
        }
        Scope::Network => {
            let name = c.param("id").or(c.param("name")).unwrap_or_default();
            let network = lookup
                .get(
                    &format!("/networks/{}", escape_segment(name)),
                    "network",
                    name,
                )
                .await?;
            if !owned_by(network.get("Labels"), &c.owner) {
                return Err(lookup.not_found("network", name));
            }
            if matches!(
                c.operation,
                Operation::NetworkConnect | Operation::NetworkDisconnect
            ) {
                let container =
                    inspect::network_connect(json()?).map_err(|e| e.either(bad_body, violation))?;
                lookup.container(&container).await?;
            }
            let id = network
                .get("Id")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(name);
            rewrite.target = Some(c.target_with(
                if c.param("id").is_some() {
                    "id"
                } else {
                    "name"
                },
                id,
                uri.query(),
            ));
        }
        Scope::Image => {
            let name = c.param("name").unwrap_or_default();
            let image = lookup
                .get(
                    &format!("/images/{}/json", escape_segment(name)),
                    "image",
                    name,
                )
                .await?;
            let labels = image.get("Config").and_then(|c| c.get("Labels"));
            if !owned_by(labels, &c.owner) {
                return Err(lookup.not_found("image", name));
            }
            if c.operation == Operation::ImageTag {
                let repo = query.get("repo").unwrap_or_default();
                lookup
                    .image_name_free(&reference(repo, query.get("tag")))
                    .await?;
            }
        }
        Scope::List => {
            let mut query = query;
            let filters = add_owner_filter(query.get("filters"), &c.owner).map_err(|e| {
                deny(
                    StatusCode::BAD_REQUEST,
                    format!("dockgate: {e}"),
                    "unparsable filters",
                )
            })?;
            query.set("filters", filters);
            rewrite.target = Some(format!("{}?{}", uri.path(), query.encode()));
        }
        Scope::Create => {
            let body = json()?;
            let refs = match c.operation {
                Operation::ContainerCreate => inspect::container_create(body, c.version.as_deref()),
                Operation::VolumeCreate => inspect::volume_create(body),
                _ => inspect::network_create(body),
            }
            .map_err(|e| e.either(bad_body, violation))?;
            lookup.all_owned(&refs).await?;
            let name = match c.operation {
                Operation::ContainerCreate => query.get("name").map(str::to_owned),
                _ => inspect::object_name(body).map_err(|e| e.either(bad_body, violation))?,
            };
            if name.as_deref().is_some_and(looks_like_id) {
                return Err(id_like_name());
            }
            let mut members = vec![("Labels", ownership::owner_labels_json(&c.owner))];
            if c.operation == Operation::NetworkCreate {
                // A second network of the same name makes the owner's
                // ambiguous; have the daemon refuse duplicates.
                members.push(("CheckDuplicate", "true".to_owned()));
            }
            let labelled = append_members(body, &members).ok_or_else(|| {
                deny(
                    StatusCode::BAD_REQUEST,
                    "dockgate: request body is not a JSON object".into(),
                    "unparsable body",
                )
            })?;
            rewrite.body = Some(Bytes::from(labelled));
        }
        Scope::Build => {
            inspect::build_query(&query).map_err(|e| e.either(bad_body, violation))?;
            for tag in query.all("t") {
                lookup.image_name_free(tag).await?;
            }
            let mut query = query;
            let labels =
                inspect::merge_build_labels(query.get("labels"), &c.owner).map_err(bad_body)?;
            query.set("labels", labels);
            rewrite.target = Some(format!("{}?{}", uri.path(), query.encode()));
        }
        Scope::Pull => {
            inspect::image_create_query(&query).map_err(|e| e.either(bad_body, violation))?;
            let image = query.get("fromImage").unwrap_or_default();
            lookup
                .image_name_free(&reference(image, query.get("tag")))
                .await?;
        }
    }
    Ok(rewrite)
}

fn is_form(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::CONTENT_TYPE).iter().any(|v| {
        let media = v
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        media == "application/x-www-form-urlencoded" || media == "multipart/form-data"
    })
}

fn body_is_empty(headers: &HeaderMap) -> bool {
    let chunked = headers.contains_key(http::header::TRANSFER_ENCODING);
    let length = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    !chunked && length.unwrap_or(0) == 0
}

/// Escapes a path segment for a lookup request (names may hold `/`).
fn escape_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Confined {
    /// The request target with the path variable `var` replaced (e.g. a
    /// container name by its full ID, so the daemon acts on exactly the
    /// object that was checked).
    fn target_with(&self, var: &str, value: &str, query: Option<&str>) -> String {
        let mut path = String::new();
        if let Some(v) = &self.version {
            path.push_str("/v");
            path.push_str(v);
        }
        let mut rest = self.template;
        while let Some(open) = rest.find('{') {
            path.push_str(&rest[..open]);
            let close = rest[open..].find('}').map_or(rest.len(), |i| open + i);
            let name = rest[open + 1..close].split(':').next().unwrap_or_default();
            let v = if name == var {
                value
            } else {
                self.param(name).unwrap_or_default()
            };
            path.push_str(&escape_segment(v));
            rest = rest.get(close + 1..).unwrap_or_default();
        }
        path.push_str(rest);
        if let Some(q) = query {
            path.push('?');
            path.push_str(q);
        }
        path
    }
}

struct Lookup<'a, D, F> {
    c: &'a Confined,
    daemon: &'a D,
    deny: &'a F,
}

impl<D: Daemon, F: Fn(StatusCode, String, &str) -> Denial> Lookup<'_, D, F> {
    fn not_found(&self, kind: &str, name: &str) -> Denial {
        (self.deny)(
            StatusCode::NOT_FOUND,
            format!("No such {kind}: {name}"),
            "confined.ownership",
        )
    }

    async fn get(&self, path: &str, kind: &str, name: &str) -> Result<serde_json::Value, Denial> {
        match self.daemon.get_json(path).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(self.not_found(kind, name)),
            Err(e) => Err((self.deny)(
                StatusCode::BAD_GATEWAY,
                format!("dockgate: cannot check ownership of {kind} {name}: {e}"),
                "confined.lookup-failed",
            )),
        }
    }

    /// The full ID of a container the caller owns, or 404.
    async fn container(&self, name: &str) -> Result<String, Denial> {
        if name.is_empty() {
            return Err(self.not_found("container", name));
        }
        let c = self
            .get(
                &format!("/containers/{}/json", escape_segment(name)),
                "container",
                name,
            )
            .await?;
        let labels = c.get("Config").and_then(|c| c.get("Labels"));
        if !owned_by(labels, &self.c.owner) {
            return Err(self.not_found("container", name));
        }
        c.get("Id")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| self.not_found("container", name))
    }

    /// Checks objects a create body refers to. dockerd answers 400 for a
    /// missing reference (its only 404 on create means "no such image",
    /// which makes the docker CLI try a pull), so these do too.
    async fn all_owned(&self, refs: &Refs) -> Result<(), Denial> {
        self.refs_owned(refs).await.map_err(|mut denial| {
            if denial.status == StatusCode::NOT_FOUND {
                denial.status = StatusCode::BAD_REQUEST;
            }
            denial
        })
    }

    async fn refs_owned(&self, refs: &Refs) -> Result<(), Denial> {
        for name in &refs.containers {
            self.container(name).await?;
        }
        for name in &refs.volumes {
            let volume = self
                .get(
                    &format!("/volumes/{}", escape_segment(name)),
                    "volume",
                    name,
                )
                .await?;
            if !owned_by(volume.get("Labels"), &self.c.owner) {
                return Err(self.not_found("volume", name));
            }
        }
        for name in &refs.networks {
            let network = self
                .get(
                    &format!("/networks/{}", escape_segment(name)),
                    "network",
                    name,
                )
                .await?;
            if !owned_by(network.get("Labels"), &self.c.owner) {
                return Err(self.not_found("network", name));
            }
        }
        Ok(())
    }
}

impl<D: Daemon, F: Fn(StatusCode, String, &str) -> Denial> Lookup<'_, D, F> {
    /// A name the caller may point at an image: unused, or naming one of
    /// its own images. Replacing someone else's tag would make them run
    /// the caller's code.
    async fn image_name_free(&self, reference: &str) -> Result<(), Denial> {
        let path = format!("/images/{}/json", escape_segment(reference));
        match self.daemon.get_json(&path).await {
            Ok(None) => Ok(()),
            Ok(Some(image)) => {
                let labels = image.get("Config").and_then(|c| c.get("Labels"));
                if owned_by(labels, &self.c.owner) {
                    Ok(())
                } else {
                    Err((self.deny)(
                        StatusCode::FORBIDDEN,
                        format!(
                            "dockgate: image name {reference} is in use by an image you do not own"
                        ),
                        "confined.image-name",
                    ))
                }
            }
            Err(e) => Err((self.deny)(
                StatusCode::BAD_GATEWAY,
                format!("dockgate: cannot check image name {reference}: {e}"),
                "confined.lookup-failed",
            )),
        }
    }
}

/// Names dockerd would also resolve as an ID prefix: a confined client may
/// not create objects named like that, or others' short IDs would find
/// its object first.
fn looks_like_id(name: &str) -> bool {
    let name = name.trim_start_matches('/');
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `repo[:tag]` as the image tag and build APIs combine them.
fn reference(repo: &str, tag: Option<&str>) -> String {
    match tag {
        Some(tag) if !tag.is_empty() => format!("{repo}:{tag}"),
        _ => repo.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confined(
        template: &'static str,
        params: &[(&'static str, &str)],
        version: Option<&str>,
    ) -> Confined {
        Confined {
            owner: super::super::ownership::owner_of(&crate::tls::Identity::default()),
            operation: Operation::ContainerStart,
            template,
            version: version.map(str::to_owned),
            params: params.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        }
    }

    #[test]
    fn target_rewrite_substitutes_resolved_ids() {
        let c = confined(
            "/containers/{name:.*}/start",
            &[("name", "web")],
            Some("1.41"),
        );
        assert_eq!(
            c.target_with("name", "abc123", Some("t=1")),
            "/v1.41/containers/abc123/start?t=1"
        );
        let c = confined("/networks/{id:.*}", &[("id", "n1")], None);
        assert_eq!(c.target_with("id", "ffee", None), "/networks/ffee");
    }

    #[test]
    fn id_like_names() {
        for name in ["abc123", "/deadbeef", "0", "f00d"] {
            assert!(looks_like_id(name), "{name}");
        }
        for name in ["", "web", "abc-123", "ABC123", "cafe_", "g1"] {
            assert!(!looks_like_id(name), "{name}");
        }
    }

    #[test]
    fn empty_body_detection() {
        let mut h = HeaderMap::new();
        assert!(body_is_empty(&h));
        h.insert(http::header::CONTENT_LENGTH, "0".parse().unwrap());
        assert!(body_is_empty(&h));
        h.insert(http::header::CONTENT_LENGTH, "2".parse().unwrap());
        assert!(!body_is_empty(&h));
        let mut h = HeaderMap::new();
        h.insert(http::header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        assert!(!body_is_empty(&h));
    }
}
