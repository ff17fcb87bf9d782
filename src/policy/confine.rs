//! Confinement: the second half of a decision for a confined role.
//!
//! [`confine`] carries out the operation's [`Rule`](super::rules::Rule)
//! (see [`super::rules`]): it checks the object the path names with one
//! ownership lookup (`Lookup::owned`), runs the rule's inspection on the
//! body or query, checks every object the body refers to, and rewrites the
//! request (resolved IDs, owner labels, list filters). Per-operation
//! knowledge lives in the rule table, not here.
//!
//! # Where dockerd resolves an object, and how each is checked
//!
//! A foreign object must answer exactly as an absent one, so every lookup
//! goes through `Lookup`, whose refusals are dockgate's own "No such …"
//! 404 for both (never the daemon's wording, which differs between an
//! absent and an ambiguous prefix).
//!
//! - **Path objects** (the rule's [`PathObject`](rules::PathObject)):
//!   containers (full ID, name, link name, ID prefix of any length),
//!   networks (ID, name, ID prefix) and volumes (exact name) are looked up
//!   with the daemon's own resolver (`GET …/json`) and must be owned;
//!   containers and networks are then pinned to their full ID. An exec
//!   instance (exact ID) is owned through its container. Images are owned
//!   for delete, tag and push. Image inspect and history are *shared*: a
//!   name or full ID is forwarded (run and `FROM` use any image by name), but
//!   a reference dockerd may read as an ID prefix (short hex, `sha256:` and
//!   short hex) must resolve as a tag or name the caller's image, and is
//!   pinned to the ID found.
//! - **Body fields** ([`inspect`]): a container create's `Image` (as image
//!   inspect, pinned by appending the ID), `VolumesFrom`, `Links`,
//!   `container:` modes (`NetworkMode`, `IpcMode`, `PidMode`), `NetworkMode`
//!   and `EndpointsConfig` keys and `NetworkID` (exact name or full ID), and
//!   `Binds` and `Mounts` volume sources; a connect's `Container` and
//!   `EndpointConfig.NetworkID`.
//! - **Query parameters**: only those the rule lists reach the daemon.
//!   Build `t`, tag `repo`/`tag` and pull `fromImage`/`tag` must be free
//!   names or the caller's; build `cachefrom` is checked as image inspect
//!   and pinned; container and volume names may not look like IDs.
//! - **List filters**: containers' and images' `before` and `since` are
//!   resolved (dockerd: a foreign one answers 200 with the list cut at its
//!   position, an absent one an error), must be owned and are rewritten to
//!   the ID. Every other filter is matched by dockerd without a lookup —
//!   containers' `ancestor` looks the image up but swallows the error, so
//!   absent and foreign both give an empty list — and the owner label is
//!   ANDed to all of them, events included.
//! - **Creates that find an existing object**: a volume create naming
//!   another owner's volume gets 409 (dockerd returns that volume); network
//!   creates carry `CheckDuplicate` (409 without an ID); container create
//!   and rename conflicts are masked (dockerd names the holder's full ID).
//! - **Responses that describe others**: `/info` is answered by dockgate
//!   from an allow-list, with the caller's own counts (`policy::scope`); a
//!   network's inspect lists only the caller's containers among its
//!   endpoints (anyone unconfined may join a container to it); an
//!   ambiguous ID prefix answers 404, not the daemon's 500 or 400.
//!
//! Limits, where the daemon offers no way to close them:
//! - Names are global: a create, rename or tag naming another owner's
//!   object is refused (409, or 403 `confined.image-name`), which tells that
//!   the name is taken.
//! - Images are shared by name and full ID: their config and history (with
//!   the build arguments of `RUN` steps) are readable by anyone who can
//!   name them, as they are to a build `FROM` them. `RepoTags` and history
//!   `Tags` list every tag on a visible image, other owners' included.
//! - The classic builder resolves a Dockerfile's `FROM` as `GetImage` does,
//!   ID prefixes included, inside a build context dockgate streams and does
//!   not read.
//! - An ID prefix shared by the caller's object and another owner's is
//!   ambiguous to dockerd and answers 404, where the caller's alone would
//!   be found.
//! - Inspecting its own containers shows the caller host paths under the
//!   daemon's root (`GraphDriver`, `LogPath`, volume `Mountpoint`).

use std::future::Future;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};

use super::inspect::{self, Refs, Violation};
use super::ownership::{self, add_owner_filter, append_members, owned_by};
use super::records::Owners;
use super::rules::{self, BodyRule, Check, Created, Kind};
use super::{build, reference, registries, scope};
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
    /// Image tags (normalized) the request gives the caller, to record
    /// before it is forwarded.
    pub tags: Vec<String>,
    /// dockgate's own answer (200, JSON): nothing is forwarded.
    pub reply: Option<serde_json::Value>,
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
    owners: &dyn Owners,
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
    let accepted = rule.params.unwrap_or_default();
    if let Some(param) = query.keys().find(|k| !accepted.contains(k)) {
        return Err(violation(Violation {
            rule: "confined.query",
            what: format!("pass query parameter {param:?} to {}", c.operation),
        }));
    }
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
        role,
        owner: &c.owner,
        daemon,
        owners,
        deny: &deny,
    };

    let mut rewrite = Rewrite::default();
    let mut resolved = None;
    if let Some(object) = rule.object {
        let name = c.param(object.var).unwrap_or_default();
        let pinned = if object.shared {
            lookup.shared(object.kind, name).await?
        } else {
            let id = lookup.owned(object.kind, name).await?;
            object.kind.pins_id().then_some(id)
        };
        if let Some(id) = pinned {
            rewrite.target = Some(c.target_with(object.var, &id, uri.query()));
            resolved = Some(id);
        }
    }
    match rule.check {
        Check::None => {}
        Check::Update => {
            inspect::container_update(json()?).map_err(|e| e.either(bad_body, violation))?;
            if let Some(containers) = &c.containers {
                containers
                    .update(json()?)
                    .map_err(|e| e.either(bad_body, violation))?;
            }
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
            let tag = lookup
                .image_name_free(&reference::with_tag(repo, query.get("tag")))
                .await?;
            rewrite.tags.push(tag);
        }
        Check::Filtered(naming) => {
            let mut query = query;
            let bad_filters = |e: String| {
                deny(
                    StatusCode::BAD_REQUEST,
                    format!("dockgate: {e}"),
                    "unparsable filters",
                )
            };
            let filters = add_owner_filter(query.get("filters"), &c.owner).map_err(bad_filters)?;
            let filters = lookup
                .resolve_filters(&filters, naming)
                .await?
                .unwrap_or(filters);
            query.set("filters", filters);
            rewrite.target = Some(format!("{}?{}", uri.path(), query.encode()));
        }
        Check::Info => {
            rewrite.reply = Some(lookup.scoped_info(c.version.as_deref()).await?);
        }
        Check::Members => {
            let target = rewrite.target.as_deref().unwrap_or_default();
            let id = resolved.as_deref().unwrap_or_default();
            rewrite.reply = Some(lookup.network_members(target, id).await?);
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
            if created == Created::Volume {
                lookup
                    .volume_name_free(name.as_deref().unwrap_or_default())
                    .await?;
            }
            let mut members = vec![("Labels", ownership::owner_labels_json(&c.owner))];
            // The image a prefix found now is the one created from: a tag
            // deleted meanwhile must not let the prefix find another.
            for image in &refs.images {
                if let Some(id) = lookup.shared(Kind::Image, image).await? {
                    members.push(("Image", serde_json::Value::from(id).to_string()));
                }
            }
            if let (Created::Container, Some(containers)) = (created, &c.containers) {
                members.extend(
                    containers
                        .create(body)
                        .map_err(|e| e.either(bad_body, violation))?,
                );
            }
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
                let tag = lookup.image_name_free(tag).await?;
                rewrite.tags.push(tag);
            }
            let mut query = query;
            // The classic builder resolves cache sources as `GetImage`
            // does, ID prefixes included; "Using cache" would confirm a
            // hidden image.
            let cache_from = inspect::build_cache_from(&query).map_err(bad_body)?;
            if !cache_from.is_empty() {
                let mut pinned = Vec::with_capacity(cache_from.len());
                for image in cache_from {
                    let id = lookup.shared(Kind::Image, &image).await?;
                    pinned.push(id.unwrap_or(image));
                }
                query.set("cachefrom", serde_json::Value::from(pinned).to_string());
            }
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
        Check::Push => {
            let name = c.param("name").unwrap_or_default();
            let pushed = reference::with_tag(name, query.get("tag"));
            if !reference::names_one_image(&pushed) {
                return Err(violation(Violation {
                    rule: "confined.push-all-tags",
                    what: format!(
                        "push every tag of {pushed:?} (name a tag: other owners' tags would be pushed)"
                    ),
                }));
            }
            lookup.owned(Kind::Image, &pushed).await?;
        }
        Check::Login => {
            let address = inspect::login_server_address(json()?).map_err(bad_body)?;
            match registries::login_registry(&address) {
                Some(registry) if c.registries.allows(&registry) => {}
                registry => {
                    let rule = &*c.registries_rule;
                    let what = match registry {
                        Some(registry) => format!("use registry {registry}"),
                        None => {
                            "log in to a server address whose registry dockgate cannot tell".into()
                        }
                    };
                    return Err(deny(
                        StatusCode::FORBIDDEN,
                        format!("dockgate: role {role} may not {what} (rule {rule})"),
                        rule,
                    ));
                }
            }
        }
        Check::Pull => {
            let pulled =
                inspect::image_create_query(&query).map_err(|e| e.either(bad_body, violation))?;
            let tag = lookup.image_name_free(&pulled).await?;
            rewrite.tags.push(tag);
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
    role: &'a str,
    owner: &'a str,
    daemon: &'a D,
    owners: &'a dyn Owners,
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
            // A prefix that matches several objects is refused by dockerd
            // (20.10: 500 for containers; current moby: 400), not 404: that
            // would tell that someone else's object shares the prefix.
            Err(_) if could_be_id_prefix(name) => Err(self.not_found(kind, name)),
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
        let id = object.get("Id").and_then(serde_json::Value::as_str);
        // Containers and tags by the record, never by the labels they
        // inherit (see `records`); volumes and networks by their label.
        let owned = match kind {
            Kind::Container => {
                id.and_then(|id| self.owners.container(id)).as_deref() == Some(self.owner)
            }
            Kind::Image => {
                reference::normalize(name)
                    .and_then(|tag| self.owners.tag(&tag))
                    .as_deref()
                    == Some(self.owner)
            }
            Kind::Volume | Kind::Network | Kind::Exec => owned_by(object.get("Labels"), self.owner),
        };
        if !owned {
            return Err(self.not_found(kind, name));
        }
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
            Kind::Volume => volume_path(name),
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

    /// An object anyone may read by naming it exactly (an image, by name
    /// or full ID), and only its owner by an ID prefix: otherwise walking
    /// prefixes would find what lists hide. Returns the ID to pin the
    /// request to when `name` could resolve as a prefix, so that a tag
    /// deleted meanwhile cannot make it find another image.
    async fn shared(&self, kind: Kind, name: &str) -> Result<Option<String>, Denial> {
        if !could_be_id_prefix(name) {
            return Ok(None);
        }
        let object = self.inspect(kind, name).await?;
        let id = object
            .get("Id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned();
        // dockerd tries `name` as a tag (`:latest` unless it has one) first.
        let tag = if name.contains(':') {
            name.to_owned()
        } else {
            format!("{name}:latest")
        };
        let by_tag = object
            .get("RepoTags")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag.as_str())));
        if !by_tag && !self.tagged_for_caller(&object) {
            return Err(self.not_found(kind, name));
        }
        if id.is_empty() {
            return Err(self.not_found(kind, name));
        }
        Ok(Some(id))
    }

    /// Resolves the values of the `naming` filters in `filters` (as
    /// [`add_owner_filter`] writes them) to the IDs of objects the caller
    /// owns. dockerd answers a foreign object in `before` or `since` with
    /// 200 and a list cut at its position, an absent one with an error; both
    /// answer 404 here. `None` when no such filter is present.
    async fn resolve_filters(
        &self,
        filters: &str,
        naming: &[(&str, Kind)],
    ) -> Result<Option<String>, Denial> {
        use serde_json::{Map, Value};
        if naming.is_empty() {
            return Ok(None);
        }
        let mut args: Map<String, Value> = serde_json::from_str(filters).map_err(|e| {
            (self.deny)(
                StatusCode::BAD_REQUEST,
                format!("dockgate: invalid filters: {e}"),
                "unparsable filters",
            )
        })?;
        let mut changed = false;
        let mut lookups = 0;
        for (key, kind) in naming {
            let Some(Value::Object(values)) = args.get_mut(*key) else {
                continue;
            };
            let mut resolved = Map::new();
            for (name, on) in values.iter() {
                lookups += 1;
                if lookups > inspect::MAX_REFERENCES {
                    return Err((self.deny)(
                        StatusCode::FORBIDDEN,
                        format!(
                            "dockgate: role {} may not name more than {} objects in list \
                             filters (rule confined.references)",
                            self.role,
                            inspect::MAX_REFERENCES
                        ),
                        "confined.references",
                    ));
                }
                let id = self.owned(*kind, name).await?;
                resolved.insert(id, on.clone());
            }
            *values = resolved;
            changed = true;
        }
        Ok(changed.then(|| Value::Object(args).to_string()))
    }

    /// A volume create's name: free, or the caller's own volume (which
    /// dockerd returns as it is). dockerd would answer another owner's
    /// volume with 201 and its labels, options and mount point.
    async fn volume_name_free(&self, name: &str) -> Result<(), Denial> {
        if name.is_empty() {
            return Ok(());
        }
        match self.owned(Kind::Volume, name).await {
            Ok(_) => Ok(()),
            Err(denial) if denial.status != StatusCode::NOT_FOUND => Err(denial),
            Err(_) => match self.daemon.get_json(&volume_path(name)).await {
                Ok(None) => Ok(()),
                Ok(Some(_)) => Err((self.deny)(
                    StatusCode::CONFLICT,
                    "Conflict. The volume name is already in use. Choose another name.".into(),
                    "confined.volume-name",
                )),
                Err(e) => Err((self.deny)(
                    StatusCode::BAD_GATEWAY,
                    format!("dockgate: cannot check volume name {name}: {e}"),
                    "confined.lookup-failed",
                )),
            },
        }
    }

    /// The daemon's inspect answer for network `id` (fetched at `target`,
    /// the client's request pinned to the ID), with only the caller's own
    /// containers among its endpoints: others' containers may join a
    /// network the caller owns, and would show with their names, IPs and
    /// MAC addresses.
    async fn network_members(&self, target: &str, id: &str) -> Result<serde_json::Value, Denial> {
        let mut network = self.read(target, "the network").await?;
        let on_network = serde_json::json!({ "network": [id] }).to_string();
        let path = self.owned_list("", "/containers/json", Some(&on_network))?;
        let mine = self.read(&path, "the caller's containers").await?;
        let mine: Vec<&str> = mine
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("Id").and_then(serde_json::Value::as_str))
            .filter(|id| self.owns_container(id))
            .collect();
        if let Some(serde_json::Value::Object(members)) = network.get_mut("Containers") {
            members.retain(|id, _| mine.contains(&id.as_str()));
        }
        Ok(network)
    }

    fn owns_container(&self, id: &str) -> bool {
        self.owners.container(id).as_deref() == Some(self.owner)
    }

    /// Whether an image (an inspect or list entry) carries a tag the
    /// record gives the caller.
    fn tagged_for_caller(&self, image: &serde_json::Value) -> bool {
        image
            .get("RepoTags")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().and_then(reference::normalize))
            .any(|tag| self.owners.tag(&tag).as_deref() == Some(self.owner))
    }

    /// The daemon's `/info` for a confined caller: see [`super::scope`].
    async fn scoped_info(&self, version: Option<&str>) -> Result<serde_json::Value, Denial> {
        let prefix = version.map(|v| format!("/v{v}")).unwrap_or_default();
        let info = format!("{prefix}/info");
        let info = self.read(&info, "the daemon's info").await?;
        let containers = self.owned_list(&prefix, "/containers/json", None)?;
        let mut containers = self.read(&containers, "the caller's containers").await?;
        let images = self.owned_list(&prefix, "/images/json", None)?;
        let mut images = self.read(&images, "the caller's images").await?;
        // Labels are inherited; the record says what is the caller's.
        if let Some(list) = containers.as_array_mut() {
            list.retain(|c| {
                c.get("Id")
                    .and_then(serde_json::Value::as_str)
                    .is_some_and(|id| self.owns_container(id))
            });
        }
        if let Some(list) = images.as_array_mut() {
            list.retain(|i| self.tagged_for_caller(i));
        }
        scope::info(&info, &containers, &images).ok_or_else(|| {
            self.unreadable("the daemon's info", "unexpected shape of an answer".into())
        })
    }

    /// A list of every one of the caller's objects at `path` (containers
    /// stopped or not), narrowed by `filters` if given.
    fn owned_list(
        &self,
        prefix: &str,
        path: &str,
        filters: Option<&str>,
    ) -> Result<String, Denial> {
        let mut query = Query::default();
        query.set("all", "1".into());
        let filters = add_owner_filter(filters, self.owner)
            .map_err(|e| self.unreadable("the caller's objects", e))?;
        query.set("filters", filters);
        Ok(format!("{prefix}{path}?{}", query.encode()))
    }

    /// A daemon answer dockgate rebuilds for the caller; 502 if it cannot.
    async fn read(&self, path: &str, what: &str) -> Result<serde_json::Value, Denial> {
        match self.daemon.get_json(path).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(self.unreadable(what, "the daemon answered 404".into())),
            Err(e) => Err(self.unreadable(what, e)),
        }
    }

    fn unreadable(&self, what: &str, e: String) -> Denial {
        (self.deny)(
            StatusCode::BAD_GATEWAY,
            format!("dockgate: cannot read {what}: {e}"),
            "confined.lookup-failed",
        )
    }

    /// A name the caller may point at an image: a valid name, unused or
    /// recorded as the caller's tag. Replacing someone else's tag would make
    /// them run the caller's code. Returns the name normalized, to record.
    async fn image_name_free(&self, reference: &str) -> Result<String, Denial> {
        let Some(tag) = super::reference::normalize(reference) else {
            return Err((self.deny)(
                StatusCode::FORBIDDEN,
                format!(
                    "dockgate: {reference:?} is not an image name a confined role may use: an ID, or a name dockerd would read as one (rule confined.image-name)"
                ),
                "confined.image-name",
            ));
        };
        if self.owners.tag(&tag).as_deref() == Some(self.owner) {
            return Ok(tag);
        }
        let path = format!("/images/{}/json", escape_segment(reference));
        match self.daemon.get_json(&path).await {
            Ok(None) => Ok(tag),
            Ok(Some(_)) => Err((self.deny)(
                StatusCode::FORBIDDEN,
                format!(
                    "dockgate: image name {reference} is in use by an image you do not own (rule confined.image-name)"
                ),
                "confined.image-name",
            )),
            Err(e) => Err((self.deny)(
                StatusCode::BAD_GATEWAY,
                format!("dockgate: cannot check image name {reference}: {e}"),
                "confined.lookup-failed",
            )),
        }
    }
}

fn volume_path(name: &str) -> String {
    format!("/volumes/{}", escape_segment(name))
}

/// An image reference dockerd may resolve as an ID prefix when no tag of
/// that name exists (`GetImage` → `imageStore.Search`): short hex, with or
/// without `sha256:`. A full ID names one image and is not a prefix.
fn could_be_id_prefix(reference: &str) -> bool {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    hex.len() < 64 && looks_like_id(hex) && !hex.starts_with('/')
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
            containers: None,
            builds: Default::default(),
            registries: Default::default(),
            registries_rule: "roles.ci.registries".into(),
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

    /// A daemon that answers every lookup with an error, as dockerd does
    /// for an ambiguous ID prefix.
    struct Ambiguous;

    struct NoRecords;

    impl Owners for NoRecords {
        fn container(&self, _: &str) -> Option<std::sync::Arc<str>> {
            None
        }

        fn tag(&self, _: &str) -> Option<std::sync::Arc<str>> {
            None
        }
    }

    impl Daemon for Ambiguous {
        async fn get_json(&self, _: &str) -> Result<Option<serde_json::Value>, String> {
            Err("daemon answered 500 Internal Server Error".into())
        }
    }

    #[tokio::test]
    async fn an_ambiguous_prefix_answers_as_an_absent_object() {
        let deny = |status, message, rule: &str| Denial {
            status,
            message,
            decision: Decision {
                operation: None,
                role: None,
                allowed: false,
                rule: rule.into(),
            },
        };
        let lookup = Lookup {
            role: "ci",
            owner: "cn=ci",
            daemon: &Ambiguous,
            owners: &NoRecords,
            deny: &deny,
        };
        let denial = lookup.owned(Kind::Container, "3f").await.unwrap_err();
        assert_eq!(
            (denial.status, denial.message.as_str()),
            (StatusCode::NOT_FOUND, "No such container: 3f")
        );
        // A name is not a prefix: a failing daemon is a failing daemon.
        let denial = lookup.owned(Kind::Container, "web").await.unwrap_err();
        assert_eq!(denial.status, StatusCode::BAD_GATEWAY);
    }

    /// Every image exists; only `owned_tag` is the caller's.
    struct Images {
        owned_tag: &'static str,
        owner: std::sync::Arc<str>,
    }

    impl Owners for Images {
        fn container(&self, _: &str) -> Option<std::sync::Arc<str>> {
            None
        }

        fn tag(&self, tag: &str) -> Option<std::sync::Arc<str>> {
            (tag == self.owned_tag).then(|| self.owner.clone())
        }
    }

    impl Daemon for Images {
        async fn get_json(&self, _: &str) -> Result<Option<serde_json::Value>, String> {
            Ok(Some(
                serde_json::json!({"Id": format!("sha256:{}", "a".repeat(64))}),
            ))
        }
    }

    async fn decide(
        c: &Confined,
        target: &str,
        body: Option<&'static str>,
        images: &Images,
    ) -> Result<Rewrite, Denial> {
        let decision = Decision {
            operation: Some(c.operation.as_str()),
            role: Some("ci".into()),
            allowed: true,
            rule: "roles.ci.operations".into(),
        };
        let mut headers = HeaderMap::new();
        if let Some(body) = body {
            headers.insert(
                http::header::CONTENT_TYPE,
                "application/json".parse().unwrap(),
            );
            headers.insert(http::header::CONTENT_LENGTH, body.len().into());
        }
        let uri: Uri = target.parse().unwrap();
        confine(
            c,
            &decision,
            &uri,
            &headers,
            body.map(|b| Bytes::from_static(b.as_bytes())),
            images,
            images,
        )
        .await
    }

    #[tokio::test]
    async fn a_push_is_one_tag_of_the_callers() {
        let mut c = confined(
            "/images/{name:.*}/push",
            &[("name", "127.0.0.1:5000/app")],
            None,
        );
        c.operation = Operation::ImagePush;
        let images = Images {
            owned_tag: "127.0.0.1:5000/app:1",
            owner: c.owner.as_str().into(),
        };
        let push = |query: &'static str| {
            let c = c.clone();
            let images = &images;
            async move {
                decide(
                    &c,
                    &format!("/images/127.0.0.1:5000/app/push{query}"),
                    None,
                    images,
                )
                .await
            }
        };
        assert!(push("?tag=1").await.is_ok());
        // The tag parameter, not the name, says which image is pushed.
        let other = push("?tag=2").await.unwrap_err();
        assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.message);
        for all in ["", "?tag="] {
            let all = push(all).await.unwrap_err();
            assert_eq!(
                &*all.decision.rule, "confined.push-all-tags",
                "{}",
                all.message
            );
        }
        let mut tagged = c.clone();
        tagged.params = vec![("name", "127.0.0.1:5000/app:1".into())];
        assert!(
            decide(&tagged, "/images/127.0.0.1:5000/app:1/push", None, &images)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_login_names_a_listed_registry_and_its_password_goes_nowhere() {
        let mut c = confined("/auth", &[], None);
        c.operation = Operation::SystemAuth;
        c.registries = std::sync::Arc::new(
            super::registries::Registries::compile(&["127.0.0.1:5000".into()]).unwrap(),
        );
        let images = Images {
            owned_tag: "",
            owner: "x".into(),
        };
        let ok = r#"{"username":"u","password":"pw-3141592653","serveraddress":"127.0.0.1:5000"}"#;
        assert!(decide(&c, "/auth", Some(ok), &images).await.is_ok());
        for (body, status, rule) in [
            (
                r#"{"username":"u","password":"pw-3141592653","serveraddress":"evil.example"}"#,
                StatusCode::FORBIDDEN,
                "roles.ci.registries",
            ),
            // Go's decoder folds case: this is serveraddress.
            (
                r#"{"password":"pw-3141592653","ServerAddress":"https://pw-3141592653@evil.example/"}"#,
                StatusCode::FORBIDDEN,
                "roles.ci.registries",
            ),
            // Docker Hub, when no address is given.
            (
                r#"{"password":"pw-3141592653"}"#,
                StatusCode::FORBIDDEN,
                "roles.ci.registries",
            ),
            (
                r#"{"password":3141592653}"#,
                StatusCode::BAD_REQUEST,
                "unparsable body",
            ),
            (
                r#"{"password":"pw-3141592653""#,
                StatusCode::BAD_REQUEST,
                "unparsable body",
            ),
            ("null", StatusCode::BAD_REQUEST, "unparsable body"),
        ] {
            let denial = decide(&c, "/auth", Some(body), &images).await.unwrap_err();
            assert_eq!(
                (denial.status, &*denial.decision.rule),
                (status, rule),
                "{body}"
            );
            assert!(!denial.message.contains("3141592653"), "{}", denial.message);
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
