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
    /// A list or event stream: filtered to the caller's objects.
    Filtered,
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
    pub body: BodyRule,
    pub check: Check,
    /// dockerd's 409 for a name conflict names the container holding the
    /// name; a confined client must not learn another owner's IDs that way.
    pub masks_conflicts: bool,
}

impl Rule {
    /// Touches no one's objects.
    const fn free() -> Rule {
        Rule {
            object: None,
            body: BodyRule::Stream,
            check: Check::None,
            masks_conflicts: false,
        }
    }

    /// Acts on the object named by path variable `var`.
    const fn on(kind: Kind, var: &'static str) -> Rule {
        Rule {
            object: Some(PathObject { kind, var }),
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

    const fn masking_conflicts(self) -> Rule {
        Rule {
            masks_conflicts: true,
            ..self
        }
    }
}

/// The rule for `op`, or `None` when confinement cannot check it.
pub fn rule(op: Operation) -> Option<Rule> {
    use BodyRule::{Empty, Inspect};
    use Kind::{Container, Exec, Image, Network, Volume};
    use Operation as O;
    Some(match op {
        O::SystemPing | O::SystemPingHead | O::SystemVersion | O::SystemInfo => Rule::free(),
        // Not Grpc: raw BuildKit calls can't be inspected (see the config).
        O::Session | O::ImageInspect | O::ImageHistory => Rule::free(),

        O::ContainerInspect
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
        | O::ContainerUnpause => Rule::on(Container, "name"),
        // API < 1.24 reads a HostConfig from the start body.
        O::ContainerStart => Rule::on(Container, "name").body(Empty),
        O::ContainerRename => Rule::on(Container, "name").and(Check::Rename),
        O::ContainerUpdate => Rule::on(Container, "name").and(Check::Update).body(Inspect),
        O::ContainerExec => Rule::on(Container, "name").and(Check::Exec).body(Inspect),

        O::ExecStart | O::ExecResize => Rule::on(Exec, "name"),
        O::ExecInspect => Rule::on(Exec, "id"),

        O::VolumeInspect | O::VolumeDelete => Rule::on(Volume, "name"),

        O::NetworkInspect | O::NetworkDelete => Rule::on(Network, "id"),
        O::NetworkConnect | O::NetworkDisconnect => {
            Rule::on(Network, "id").and(Check::Connect).body(Inspect)
        }

        O::ImageDelete | O::ImagePush => Rule::on(Image, "name"),
        O::ImageTag => Rule::on(Image, "name").and(Check::Tag),

        O::ContainerList | O::VolumeList | O::NetworkList | O::ImageList | O::SystemEvents => {
            Rule::checks(Check::Filtered)
        }

        O::ContainerCreate => Rule::checks(Check::Create(Created::Container))
            .body(Inspect)
            .masking_conflicts(),
        O::VolumeCreate => Rule::checks(Check::Create(Created::Volume)).body(Inspect),
        O::NetworkCreate => Rule::checks(Check::Create(Created::Network)).body(Inspect),
        O::ImageBuild => Rule::checks(Check::Build),
        O::ImageCreate => Rule::checks(Check::Pull),
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

    #[test]
    fn bodies_are_inspected_exactly_where_a_check_reads_them() {
        for op in Operation::all() {
            let Some(rule) = rule(*op) else { continue };
            let reads_body = matches!(
                rule.check,
                Check::Create(_) | Check::Update | Check::Exec | Check::Connect
            );
            assert_eq!(rule.body == BodyRule::Inspect, reads_body, "{op}");
        }
    }
}
