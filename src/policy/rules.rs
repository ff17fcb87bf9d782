//! The rule table: for every operation a confined role may call, everything
//! confinement checks, declared once.
//!
//! A [`Rule`] says which object the path names (and through which path
//! variable), how the body is treated, which inspection runs on the body or
//! query, and whether dockerd's answers must be masked. [`super::confine`]
//! carries rules out and holds no per-operation knowledge of its own, so a
//! field that resolves an object cannot be checked in one place and missed
//! in another. An operation with no rule is refused for confined roles:
//! granting a confined role a new operation never silently grants it
//! unchecked.
//!
//! A rule also lists the operation's accepted query parameters: dockerd
//! reads parameters dockgate does not inspect (`checkpoint` on start,
//! `ps_args` on top), so an unlisted one is refused rather than forwarded.
//! And a list rule ([`Check::Filtered`]) names the filters whose values
//! dockerd resolves to objects; [`super::confine`] records, for every
//! field, parameter and filter, how dockerd resolves it and how dockgate
//! checks it.

use dockgate_wire::api::Operation;

/// A kind of object that has an owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Container,
    /// An exec instance belongs to the owner of its container.
    Exec,
    Volume,
    Network,
    Image,
}

impl Kind {
    /// The word dockerd uses in "No such …" errors.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Exec => "exec instance",
            Kind::Volume => "volume",
            Kind::Network => "network",
            Kind::Image => "image",
        }
    }

    /// Whether the request is forwarded with the object's full ID in place
    /// of the name the client gave, so that the daemon acts on exactly the
    /// object that was checked. Not for images, whose names are tags:
    /// deleting by ID is not deleting a tag.
    pub fn pins_id(self) -> bool {
        matches!(self, Kind::Container | Kind::Network)
    }
}

/// The object a request's path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathObject {
    pub kind: Kind,
    /// dockerd's name for the path variable, e.g. `name` in
    /// `/containers/{name:.*}/json`.
    pub var: &'static str,
    /// Readable by anyone who names it exactly (images, by name or full
    /// ID), instead of only by its owner. An ID prefix still finds only
    /// the caller's own objects.
    pub shared: bool,
}

/// How a request body is treated before forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRule {
    /// Streamed through untouched (build contexts, archives, images).
    Stream,
    /// Read whole (up to the inspection limit) and inspected.
    Inspect,
    /// Must be empty: the daemon would read privileges from it.
    Empty,
}

/// What is checked beyond the path's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Nothing more.
    None,
    /// A list or event stream: filtered to the caller's objects. The
    /// filters listed name an object of that kind, which must be the
    /// caller's (else the answer is the daemon's for an absent one).
    Filtered(&'static [(&'static str, Kind)]),
    /// `SystemInfo`: answered by dockgate from the daemon's, with every
    /// count scoped to the caller's objects and host details left out.
    Info,
    /// `NetworkInspect`: answered by dockgate from the daemon's, listing
    /// only the caller's containers among the network's endpoints.
    Members,
    /// Creates an object from an inspected JSON body, then labels it.
    Create(Created),
    /// `ContainerUpdate`: resources only, no host devices.
    Update,
    /// `ContainerExec`: no privileged exec.
    Exec,
    /// `ContainerRename`: the new name must not look like an ID.
    Rename,
    /// `NetworkConnect`/`Disconnect`: the body's container must be owned.
    Connect,
    /// `ImageTag`: the new name must be free or the caller's.
    Tag,
    /// `ImageBuild`: query inspected, tags must be free, owner label added.
    Build,
    /// `ImageCreate`: a pull; the name must be free or the caller's.
    Pull,
    /// `ImagePush`: one tag (the path's name with the `tag` parameter
    /// applied), recorded as the caller's.
    Push,
    /// `SystemAuth`: the body's `serveraddress` must be a registry the role
    /// may use.
    Login,
}

/// Which object a create makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Container,
    Volume,
    Network,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub object: Option<PathObject>,
    /// The query parameters accepted; any other is refused. `None` only
    /// while a rule is being built: [`rule`] gives every rule a list.
    pub params: Option<&'static [&'static str]>,
    pub body: BodyRule,
    pub check: Check,
    /// dockerd's 409 for a name conflict (container create and rename)
    /// names the container holding the name; a confined client must not
    /// learn another owner's IDs that way.
    pub masks_conflicts: bool,
}

impl Rule {
    /// Touches no one's objects.
    const fn free() -> Rule {
        Rule {
            object: None,
            params: None,
            body: BodyRule::Stream,
            check: Check::None,
            masks_conflicts: false,
        }
    }

    /// Acts on the object named by path variable `var`.
    const fn on(kind: Kind, var: &'static str) -> Rule {
        Rule {
            object: Some(PathObject {
                kind,
                var,
                shared: false,
            }),
            ..Rule::free()
        }
    }

    const fn checks(check: Check) -> Rule {
        Rule {
            check,
            ..Rule::free()
        }
    }

    const fn and(self, check: Check) -> Rule {
        Rule { check, ..self }
    }

    const fn body(self, body: BodyRule) -> Rule {
        Rule { body, ..self }
    }

    const fn params(self, params: &'static [&'static str]) -> Rule {
        Rule {
            params: Some(params),
            ..self
        }
    }

    const fn shared(self) -> Rule {
        match self.object {
            Some(PathObject { kind, var, .. }) => Rule {
                object: Some(PathObject {
                    kind,
                    var,
                    shared: true,
                }),
                ..self
            },
            None => self,
        }
    }

    const fn masking_conflicts(self) -> Rule {
        Rule {
            masks_conflicts: true,
            ..self
        }
    }
}

/// Query parameters of the container log and attach routes.
const LOGS: &[&str] = &[
    "follow",
    "stdout",
    "stderr",
    "since",
    "until",
    "timestamps",
    "tail",
    "details",
];
const ATTACH: &[&str] = &["stream", "stdin", "stdout", "stderr", "logs", "detachKeys"];
/// `POST /build`: what dockerd 20.10 and current moby read
/// (`newImageBuildOptions`), which the docker CLI sends even when empty.
/// The values that grant anything are inspected by [`Check::Build`].
const BUILD: &[&str] = &[
    "t",
    "dockerfile",
    "target",
    "q",
    "nocache",
    "rm",
    "forcerm",
    "pull",
    "squash",
    "memory",
    "memswap",
    "cpushares",
    "cpuperiod",
    "cpuquota",
    "cpusetcpus",
    "cpusetmems",
    "cgroupparent",
    "shmsize",
    "ulimits",
    "networkmode",
    "extrahosts",
    "securityopt",
    "isolation",
    "remote",
    "platform",
    "buildargs",
    "labels",
    "cachefrom",
    "outputs",
    "session",
    "buildid",
    "version",
];

/// The rule for `op`, or `None` when confinement cannot check it.
///
/// Each rule lists the query parameters the operation accepts: those
/// dockerd 20.10 and current moby read for the route, and those the docker
/// CLI, docker-py and compose send (docker-py's `trunc_cmd` and `only_ids`,
/// which dockerd ignores). A confined request with any other parameter is
/// refused (`confined.query`), so a parameter dockgate does not inspect
/// never reaches the daemon. Deliberately left out although dockerd reads
/// them: `checkpoint` and `checkpoint-dir` on start (restore from a host
/// directory; a path traversal on 20.10) and `ps_args` on top (arguments
/// to the host's `ps`, run by the daemon as root).
pub fn rule(op: Operation) -> Option<Rule> {
    use BodyRule::{Empty, Inspect};
    use Kind::{Container, Exec, Image, Network, Volume};
    use Operation as O;
    let on = Rule::on;
    Some(match op {
        O::SystemPing | O::SystemPingHead | O::SystemVersion => Rule::free().params(&[]),
        O::SystemInfo => Rule::checks(Check::Info).params(&[]),
        // Not Grpc: raw BuildKit calls can't be inspected (see the config).
        O::Session => Rule::free().params(&[]),
        O::ImageInspect => on(Image, "name")
            .shared()
            .params(&["manifests", "platform"]),
        O::ImageHistory => on(Image, "name").shared().params(&["platform"]),

        O::ContainerInspect => on(Container, "name").params(&["size"]),
        O::ContainerStop | O::ContainerRestart => on(Container, "name").params(&["t", "signal"]),
        O::ContainerKill => on(Container, "name").params(&["signal"]),
        // `link` removes a link from the parent named in the path; the
        // path is pinned to the checked container's ID, which names none.
        O::ContainerDelete => on(Container, "name").params(&["force", "v", "link"]),
        O::ContainerLogs => on(Container, "name").params(LOGS),
        O::ContainerAttach | O::ContainerAttachWebsocket => on(Container, "name").params(ATTACH),
        O::ContainerResize => on(Container, "name").params(&["h", "w"]),
        O::ContainerWait => on(Container, "name").params(&["condition"]),
        O::ContainerTop => on(Container, "name").params(&[]),
        O::ContainerStats => on(Container, "name").params(&["stream", "one-shot"]),
        O::ContainerArchive | O::ContainerArchiveInfo => on(Container, "name").params(&["path"]),
        O::PutContainerArchive => {
            on(Container, "name").params(&["path", "noOverwriteDirNonDir", "copyUIDGID"])
        }
        O::ContainerChanges | O::ContainerExport | O::ContainerPause | O::ContainerUnpause => {
            on(Container, "name").params(&[])
        }
        // API < 1.24 reads a HostConfig from the start body.
        O::ContainerStart => on(Container, "name").body(Empty).params(&[]),
        O::ContainerRename => on(Container, "name")
            .and(Check::Rename)
            .masking_conflicts()
            .params(&["name"]),
        O::ContainerUpdate => on(Container, "name")
            .and(Check::Update)
            .body(Inspect)
            .params(&[]),
        O::ContainerExec => on(Container, "name")
            .and(Check::Exec)
            .body(Inspect)
            .params(&[]),

        O::ExecStart => on(Exec, "name").params(&[]),
        O::ExecResize => on(Exec, "name").params(&["h", "w"]),
        O::ExecInspect => on(Exec, "id").params(&[]),

        O::VolumeInspect => on(Volume, "name").params(&[]),
        O::VolumeDelete => on(Volume, "name").params(&["force"]),

        O::NetworkInspect => on(Network, "id")
            .and(Check::Members)
            .params(&["verbose", "scope"]),
        O::NetworkDelete => on(Network, "id").params(&[]),
        O::NetworkConnect | O::NetworkDisconnect => on(Network, "id")
            .and(Check::Connect)
            .body(Inspect)
            .params(&[]),

        O::ImageDelete => on(Image, "name").params(&["force", "noprune", "platforms"]),
        // Not a path object: the `tag` parameter replaces the name's tag,
        // so the name alone is not the image pushed.
        O::ImagePush => Rule::checks(Check::Push).params(&["tag", "platform"]),
        O::SystemAuth => Rule::checks(Check::Login).body(Inspect).params(&[]),
        // docker-py sends `force` (ignored since API 1.10).
        O::ImageTag => on(Image, "name")
            .and(Check::Tag)
            .params(&["repo", "tag", "force"]),

        // Filters whose values dockerd resolves to an object: a foreign
        // one must answer as an absent one does.
        O::ContainerList => Rule::checks(Check::Filtered(&[
            ("before", Container),
            ("since", Container),
        ]))
        // `since` and `before` as parameters are read but unused.
        .params(&[
            "all",
            "size",
            "limit",
            "filters",
            "since",
            "before",
            "trunc_cmd",
        ]),
        O::ImageList => Rule::checks(Check::Filtered(&[("before", Image), ("since", Image)]))
            // `filter` is the reference filter of API < 1.41.
            .params(&[
                "all",
                "filters",
                "filter",
                "digests",
                "shared-size",
                "manifests",
                "only_ids",
            ]),
        O::VolumeList | O::NetworkList => Rule::checks(Check::Filtered(&[])).params(&["filters"]),
        O::SystemEvents => {
            Rule::checks(Check::Filtered(&[])).params(&["since", "until", "filters"])
        }

        O::ContainerCreate => Rule::checks(Check::Create(Created::Container))
            .body(Inspect)
            .masking_conflicts()
            .params(&["name", "platform"]),
        O::VolumeCreate => Rule::checks(Check::Create(Created::Volume))
            .body(Inspect)
            .params(&[]),
        O::NetworkCreate => Rule::checks(Check::Create(Created::Network))
            .body(Inspect)
            .params(&[]),
        O::ImageBuild => Rule::checks(Check::Build).params(BUILD),
        // `fromSrc`, `repo`, `message` and `changes` are an import, which
        // [`Check::Pull`] refuses by name.
        O::ImageCreate => Rule::checks(Check::Pull).params(&[
            "fromImage",
            "tag",
            "platform",
            "fromSrc",
            "repo",
            "message",
            "changes",
        ]),
        _ => return None,
    })
}

/// How the body of `op` is treated for a confined role; streamed when the
/// operation has no rule (it is refused anyway).
pub fn body_rule(op: Operation) -> BodyRule {
    rule(op).map_or(BodyRule::Stream, |r| r.body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::policy::Policy;

    /// Every operation a shipped confined role may call has a rule; a new
    /// grant without one fails here, not in production.
    #[test]
    fn every_operation_a_shipped_confined_role_may_call_has_a_rule() {
        let policy = Policy::new(&Config::default()).unwrap();
        let mut checked = 0;
        for name in policy.roles.names() {
            let role = policy.roles.get(name).unwrap();
            if !role.confined {
                continue;
            }
            for op in Operation::all() {
                if role.allowing(op.as_str()).is_some() {
                    assert!(
                        rule(*op).is_some(),
                        "role {name} may call {op}, which has no rule"
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 40, "only {checked} confined grants found");
    }

    /// A rule's path variable exists in every route of its operation, so
    /// the object is never looked up under an empty name.
    #[test]
    fn path_objects_name_a_variable_of_every_route() {
        for op in Operation::all() {
            let Some(Rule {
                object: Some(object),
                ..
            }) = rule(*op)
            else {
                continue;
            };
            let templates: Vec<&str> = dockgate_wire::api::table()
                .iter()
                .filter(|def| def.operation == *op)
                .map(|def| def.template)
                .collect();
            assert!(!templates.is_empty(), "{op} has no route");
            for template in templates {
                assert!(
                    template.contains(&format!("{{{}:", object.var)),
                    "{op}: {template} has no {{{}}}",
                    object.var
                );
            }
        }
    }

    /// Every rule says which query parameters it accepts, each listed
    /// once; a new rule without a list fails here, not in production
    /// (where it would refuse every request).
    #[test]
    fn every_rule_lists_its_query_parameters() {
        let mut ruled = 0;
        for op in Operation::all() {
            let Some(rule) = rule(*op) else { continue };
            let params = rule
                .params
                .unwrap_or_else(|| panic!("{op} has no query parameter list"));
            for (i, p) in params.iter().enumerate() {
                assert!(!params[..i].contains(p), "{op} lists {p} twice");
            }
            ruled += 1;
        }
        assert!(ruled > 40, "only {ruled} rules");
        let start = rule(Operation::ContainerStart).unwrap().params.unwrap();
        for refused in ["checkpoint", "checkpoint-dir"] {
            assert!(!start.contains(&refused), "start accepts {refused}");
        }
        let top = rule(Operation::ContainerTop).unwrap().params.unwrap();
        assert!(!top.contains(&"ps_args"));
    }

    /// Both of dockerd's name-conflict answers name the holder's full ID.
    #[test]
    fn name_conflicts_are_masked_wherever_a_name_is_taken() {
        for op in [Operation::ContainerCreate, Operation::ContainerRename] {
            assert!(rule(op).unwrap().masks_conflicts, "{op}");
        }
    }

    #[test]
    fn bodies_are_inspected_exactly_where_a_check_reads_them() {
        for op in Operation::all() {
            let Some(rule) = rule(*op) else { continue };
            let reads_body = matches!(
                rule.check,
                Check::Create(_) | Check::Update | Check::Exec | Check::Connect | Check::Login
            );
            assert_eq!(rule.body == BodyRule::Inspect, reads_body, "{op}");
        }
    }
}
