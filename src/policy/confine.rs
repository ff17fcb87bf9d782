//! Confinement: the second half of a decision for a confined role.
//!
//! [`confine`] carries out the operation's [`Rule`] (see [`super::rules`]):
//! it checks the object the path names with one ownership lookup
//! ([`Lookup::owned`]), runs the rule's inspection on the body or query,
//! checks every object the body refers to, and rewrites the request
//! (resolved IDs, owner labels, list filters). Per-operation knowledge
//! lives in the rule table, not here.

use std::future::Future;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};

use super::inspect::{self, Refs, Violation};
use super::ownership::{self, add_owner_filter, append_members, owned_by};
use super::rules::{self, BodyRule, Check, Created, Kind};
use super::{build, reference};
use super::{Confined, Denial};
use crate::audit::Decision;
use dockgate_wire::query::Query;

/// Read access to the daemon, for ownership checks.
pub trait Daemon: Sync {
    /// GETs `path` (origin-form); `Ok(None)` when the daemon answers 404.
    fn get_json(
        &self,
        path: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, String>> + Send;
}

/// The rewritten parts of a confined request.
#[derive(Debug, Default)]
pub struct Rewrite {
    /// A new origin-form target (resolved IDs, added filters or labels).
    pub target: Option<String>,
    /// A new body (owner label appended).
    pub body: Option<Bytes>,
    /// A classic build: where in its context the daemon may read the
    /// Dockerfile. The context is checked as it streams
    /// ([`super::context`]).
    pub dockerfiles: Option<Vec<String>>,
}

/// Finishes the decision for a confined request. `body` is the whole body
/// when the rule's [`BodyRule`] is `Inspect`, and `None` otherwise.
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
    let Some(rule) = rules::rule(c.operation) else {
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
    if rule.body == BodyRule::Empty && !body_is_empty(headers) {
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
        owner: &c.owner,
        daemon,
        deny: &deny,
    };

    let mut rewrite = Rewrite::default();
    if let Some(object) = rule.object {
        let name = c.param(object.var).unwrap_or_default();
        let id = lookup.owned(object.kind, name).await?;
        if object.kind.pins_id() {
            rewrite.target = Some(c.target_with(object.var, &id, uri.query()));
        }
    }
    match rule.check {
        Check::None => {}
        Check::Update => {
            inspect::container_update(json()?).map_err(|e| e.either(bad_body, violation))?;
        }
        Check::Exec => {
            inspect::exec_create(json()?).map_err(|e| e.either(bad_body, violation))?;
        }
        Check::Rename => {
            if query.get("name").is_some_and(looks_like_id) {
                return Err(id_like_name());
            }
        }
        Check::Connect => {
            let refs =
                inspect::network_connect(json()?).map_err(|e| e.either(bad_body, violation))?;
            lookup.refs_owned(&refs).await?;
        }
        Check::Tag => {
            let repo = query.get("repo").unwrap_or_default();
            lookup
                .image_name_free(&reference::with_tag(repo, query.get("tag")))
                .await?;
        }
        Check::Filtered => {
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
        Check::Create(created) => {
            let body = json()?;
            let refs = match created {
                Created::Container => inspect::container_create(body, c.version.as_deref()),
                Created::Volume => inspect::volume_create(body),
                Created::Network => inspect::network_create(body),
            }
            .map_err(|e| e.either(bad_body, violation))?;
            lookup.all_owned(&refs).await?;
            let name = match created {
                Created::Container => query.get("name").map(str::to_owned),
                _ => inspect::object_name(body).map_err(|e| e.either(bad_body, violation))?,
            };
            if name.as_deref().is_some_and(looks_like_id) {
                return Err(id_like_name());
            }
            let mut members = vec![("Labels", ownership::owner_labels_json(&c.owner))];
            if created == Created::Network {
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
        Check::Build => {
            inspect::build_query(&query).map_err(|e| e.either(bad_body, violation))?;
            build::buildkit_allowed(&query, c.builds.buildkit)
                .map_err(|e| e.either(bad_body, violation))?;
            for tag in query.all("t") {
                lookup.image_name_free(tag).await?;
            }
            let mut query = query;
            let labels =
                inspect::merge_build_labels(query.get("labels"), &c.owner).map_err(bad_body)?;
            query.set("labels", labels);
            // Never read another owner's layers from the cache.
            query.set("nocache", "1".into());
            if build::builder(&query) == build::Builder::Classic {
                rewrite.dockerfiles = Some(build::dockerfile_paths(&query));
            }
            rewrite.target = Some(format!("{}?{}", uri.path(), query.encode()));
        }
        Check::Pull => {
            let pulled =
                inspect::image_create_query(&query).map_err(|e| e.either(bad_body, violation))?;
            lookup.image_name_free(&pulled).await?;
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
    owner: &'a str,
    daemon: &'a D,
    deny: &'a F,
}

impl<D: Daemon, F: Fn(StatusCode, String, &str) -> Denial> Lookup<'_, D, F> {
    fn not_found(&self, kind: Kind, name: &str) -> Denial {
        (self.deny)(
            StatusCode::NOT_FOUND,
            format!("No such {}: {name}", kind.noun()),
            "confined.ownership",
        )
    }

    async fn get(&self, path: &str, kind: Kind, name: &str) -> Result<serde_json::Value, Denial> {
        match self.daemon.get_json(path).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(self.not_found(kind, name)),
            Err(e) => Err((self.deny)(
                StatusCode::BAD_GATEWAY,
                format!(
                    "dockgate: cannot check ownership of {} {name}: {e}",
                    kind.noun()
                ),
                "confined.lookup-failed",
            )),
        }
    }

    /// The ID of an object of `kind` named `name` that the caller owns;
    /// 404, as for an absent object, when it is someone else's. An exec
    /// instance is owned through its container.
    async fn owned(&self, kind: Kind, name: &str) -> Result<String, Denial> {
        if kind != Kind::Exec {
            return self.owned_object(kind, name).await;
        }
        let exec = self.inspect(kind, name).await?;
        let container = exec
            .get("ContainerID")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        self.owned_object(Kind::Container, container)
            .await
            .map_err(|_| self.not_found(kind, name))?;
        Ok(name.to_owned())
    }

    async fn owned_object(&self, kind: Kind, name: &str) -> Result<String, Denial> {
        let object = self.inspect(kind, name).await?;
        let labels = match kind {
            Kind::Container | Kind::Image => object.get("Config").and_then(|c| c.get("Labels")),
            Kind::Volume | Kind::Network | Kind::Exec => object.get("Labels"),
        };
        if !owned_by(labels, self.owner) {
            return Err(self.not_found(kind, name));
        }
        let id = object.get("Id").and_then(serde_json::Value::as_str);
        match (kind, id) {
            (Kind::Volume, _) => Ok(name.to_owned()),
            (Kind::Network, None) => Ok(name.to_owned()),
            (_, Some(id)) => Ok(id.to_owned()),
            (_, None) => Err(self.not_found(kind, name)),
        }
    }

    /// The daemon's inspect answer for an object, or 404.
    async fn inspect(&self, kind: Kind, name: &str) -> Result<serde_json::Value, Denial> {
        if name.is_empty() {
            return Err(self.not_found(kind, name));
        }
        let segment = escape_segment(name);
        let path = match kind {
            Kind::Container => format!("/containers/{segment}/json"),
            Kind::Exec => format!("/exec/{segment}/json"),
            Kind::Volume => format!("/volumes/{segment}"),
            Kind::Network => format!("/networks/{segment}"),
            Kind::Image => format!("/images/{segment}/json"),
        };
        self.get(&path, kind, name).await
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

    /// Checks that the caller owns every object in `refs`. Networks must
    /// be named exactly (full name or full ID): dockerd resolves a body's
    /// network references again when the container starts, and an ID
    /// prefix that is unique now may find another owner's network then.
    async fn refs_owned(&self, refs: &Refs) -> Result<(), Denial> {
        for name in &refs.containers {
            self.owned(Kind::Container, name).await?;
        }
        for name in &refs.volumes {
            self.owned(Kind::Volume, name).await?;
        }
        for name in &refs.networks {
            let network = self.inspect(Kind::Network, name).await?;
            let text = |key| network.get(key).and_then(serde_json::Value::as_str);
            let exact = text("Name") == Some(name.as_str()) || text("Id") == Some(name.as_str());
            if !exact || !owned_by(network.get("Labels"), self.owner) {
                return Err(self.not_found(Kind::Network, name));
            }
        }
        Ok(())
    }

    /// A name the caller may point at an image: unused, or naming one of
    /// its own images. Replacing someone else's tag would make them run
    /// the caller's code.
    async fn image_name_free(&self, reference: &str) -> Result<(), Denial> {
        let path = format!("/images/{}/json", escape_segment(reference));
        match self.daemon.get_json(&path).await {
            Ok(None) => Ok(()),
            Ok(Some(image)) => {
                let labels = image.get("Config").and_then(|c| c.get("Labels"));
                if owned_by(labels, self.owner) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use dockgate_wire::api::Operation;

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
            builds: Default::default(),
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
