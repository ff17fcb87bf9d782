//! Routes and policy: who may call which Engine API operation, with what.
//!
//! A request is decided in two steps. [`Policy::decide`] is synchronous and
//! cheap: certificate → role, request target → operation (mirroring
//! dockerd's router), role → allowed or not. For a confined role the
//! request then goes through [`confine`], which reads and inspects bodies
//! and parameters, checks ownership against the daemon, and rewrites the
//! request (owner labels, list filters, resolved IDs). Anything that cannot
//! be parsed or decided is denied: nothing undecided reaches the daemon.

pub mod build;
pub mod confine;
pub mod context;
pub mod defaults;
pub mod explain;
mod glob;
pub mod inspect;
pub mod ownership;
pub mod records;
pub mod reference;
pub mod registries;
mod roles;
pub mod rules;
mod scope;

use std::sync::Arc;

use http::{Method, StatusCode, Uri};

use crate::audit::Decision;
use crate::config::Config;
use crate::tls::Identity;
use dockgate_wire::api::{self, Operation, RouteMatch};
pub use roles::{Role, RoleSource, Roles, RolesError};

/// The compiled, validated policy; swapped whole on reload.
#[derive(Debug)]
pub struct Policy {
    pub roles: Roles,
    /// Largest body read for inspection.
    pub inspect_limit: usize,
    /// How long such a body may take to arrive.
    pub body_read_timeout: std::time::Duration,
}

/// A refusal, shaped for the client and for the audit log.
#[derive(Debug)]
pub struct Denial {
    pub status: StatusCode,
    pub message: String,
    pub decision: Decision,
}

impl Denial {
    /// Refuses, for `rule`, a request its role was allowed to make.
    pub fn of(allowed: &Decision, status: StatusCode, message: String, rule: &str) -> Denial {
        Denial {
            status,
            message,
            decision: Decision {
                allowed: false,
                rule: Arc::from(rule),
                ..allowed.clone()
            },
        }
    }
}

/// What a confined role's request is: enough for [`confine`] to finish the
/// decision.
#[derive(Debug, Clone)]
pub struct Confined {
    pub owner: String,
    pub operation: Operation,
    /// dockerd's route template, e.g. `/containers/{name:.*}/start`.
    pub template: &'static str,
    /// The `/v1.xx` version the client addressed, if any.
    pub version: Option<String>,
    /// Decoded path variables, by dockerd's names.
    pub params: Vec<(&'static str, String)>,
    /// The role's `[containers]` defaults and ceilings.
    pub containers: Option<Arc<defaults::Containers>>,
    /// The role's build settings.
    pub builds: crate::config::Builds,
    /// The registries a login may name (`roles.NAME.registries`), and that
    /// rule's name.
    pub registries: Arc<registries::Registries>,
    pub registries_rule: Arc<str>,
}

impl Confined {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub enum Verdict {
    Allow { decision: Decision, next: Next },
    Deny(Denial),
}

/// What an allowed request needs before it is forwarded.
#[derive(Debug)]
pub enum Next {
    /// Nothing: forward as it is.
    Forward,
    /// An unconfined container create, labelled with this owner. Every
    /// container records who created it, so that one made from a labelled
    /// image can never inherit someone else's ownership.
    Stamp(String),
    /// A confined role's request: [`confine`] finishes the decision.
    Confine(Confined),
    /// An unconfined build, forwarded with `nocache=1` (`builds.nocache`).
    NoCache,
}

impl Policy {
    pub fn new(config: &Config) -> Result<Policy, RolesError> {
        let names: Vec<&str> = Operation::all().iter().map(|op| op.as_str()).collect();
        let roles = Roles::new(
            &config.roles,
            &config.identity.map,
            config.identity.roles_from_certificates,
            &names,
        )?;
        Ok(Policy {
            roles,
            inspect_limit: config.limits.inspect_body,
            body_read_timeout: config.limits.body_read_timeout,
        })
    }

    /// Decides everything that needs no body and no daemon lookup, for a
    /// client whose objects are labelled `owner`.
    pub fn decide(&self, identity: &Identity, owner: &str, method: &Method, uri: &Uri) -> Verdict {
        match self.roles.resolve(identity) {
            Some((role, _)) => self.decide_for(role, owner, method, uri),
            None => Verdict::Deny(Denial {
                status: StatusCode::FORBIDDEN,
                message: format!("dockgate: certificate {} has no role", describe(identity)),
                decision: decision(None, None, false, "no role for certificate".into()),
            }),
        }
    }

    /// Decides for a client of `role` whose objects are labelled `owner`.
    pub fn decide_for(&self, role: &Role, owner: &str, method: &Method, uri: &Uri) -> Verdict {
        let path = match api::normalize(uri) {
            Ok(path) => path,
            Err(e) => {
                return deny(
                    StatusCode::BAD_REQUEST,
                    format!("dockgate: {e}"),
                    decision(Some(role), None, false, "unparsable path".into()),
                )
            }
        };
        let route = match api::route(method, &path) {
            RouteMatch::Found(route) => route,
            // An unknown or ambiguous route could pull or push: a role whose
            // registries are listed gets it only where the list is checked.
            RouteMatch::NoRoute if role.unrouted && role.registries.allows_any() => {
                return Verdict::Allow {
                    decision: decision(Some(role), None, true, role.unrouted_rule.clone()),
                    next: Next::Forward,
                }
            }
            RouteMatch::Ambiguous(a, _)
                if role.unrouted && !role.confined && role.registries.allows_any() =>
            {
                return Verdict::Allow {
                    decision: decision(Some(role), Some(a.operation), true, role.unrouted_rule.clone()),
                    next: Next::Forward,
                }
            }
            RouteMatch::NoRoute => {
                return deny(
                    StatusCode::FORBIDDEN,
                    format!(
                        "dockgate: role {} may not call {method} {path}: it is not a known Engine API operation",
                        role.name
                    ),
                    decision(Some(role), None, false, "no route".into()),
                )
            }
            RouteMatch::Ambiguous(a, b) => {
                return deny(
                    StatusCode::FORBIDDEN,
                    format!(
                        "dockgate: role {} may not call {method} {path}: daemons route it to {} or {}",
                        role.name, a.operation, b.operation
                    ),
                    decision(Some(role), None, false, "ambiguous route".into()),
                )
            }
        };
        let operation = route.operation;
        let Some(rule) = role.allowing(operation.as_str()) else {
            return deny(
                StatusCode::FORBIDDEN,
                format!(
                    "dockgate: role {} may not call {operation} (rule roles.{}.operations)",
                    role.name, role.name
                ),
                decision(
                    Some(role),
                    Some(operation),
                    false,
                    role.operations_rule.clone(),
                ),
            );
        };
        if let Err(denial) = registries_allowed(role, operation, route.params.get("name"), uri) {
            return Verdict::Deny(denial);
        }
        let next = if role.confined {
            Next::Confine(Confined {
                owner: owner.to_owned(),
                operation,
                template: route.template,
                version: path.version().map(str::to_owned),
                params: route
                    .params
                    .iter()
                    .map(|(k, v)| (k, v.to_owned()))
                    .collect(),
                containers: role.containers.clone(),
                builds: role.builds,
                registries: role.registries.clone(),
                registries_rule: role.registries_rule.clone(),
            })
        } else if operation == Operation::ContainerCreate {
            Next::Stamp(owner.to_owned())
        } else if operation == Operation::ImageBuild && role.builds.nocache {
            Next::NoCache
        } else {
            Next::Forward
        };
        Verdict::Allow {
            decision: decision(Some(role), Some(operation), true, rule.clone()),
            next,
        }
    }
}

/// `roles.NAME.registries`: every image name of the request that reaches
/// or names a registry must name a listed one.
fn registries_allowed(
    role: &Role,
    operation: Operation,
    name: Option<&str>,
    uri: &Uri,
) -> Result<(), Denial> {
    if role.registries.allows_any() {
        return Ok(());
    }
    let refuse = |message: String| Denial {
        status: StatusCode::FORBIDDEN,
        message,
        decision: decision(
            Some(role),
            Some(operation),
            false,
            role.registries_rule.clone(),
        ),
    };
    if operation == Operation::SystemAuth && !role.confined {
        return Err(refuse(format!(
            "dockgate: role {} may not log in to a registry: its registries are listed, and only a confined role's login is inspected (rule {})",
            role.name, role.registries_rule
        )));
    }
    let query = dockgate_wire::query::Query::parse(uri.query())
        .map_err(|e| refuse(format!("dockgate: {e}")))?;
    registries::check(&role.registries, &registries::names(operation, name, &query)).map_err(
        |unlisted| {
            let rule = &role.registries_rule;
            refuse(match unlisted.registry {
                Some(registry) => format!(
                    "dockgate: role {} may not use registry {registry} (image {}; rule {rule})",
                    role.name, unlisted.name
                ),
                None => format!(
                    "dockgate: role {} may not use image name {:?}: not a name whose registry dockgate can tell (rule {rule})",
                    role.name, unlisted.name
                ),
            })
        },
    )
}

fn describe(identity: &Identity) -> String {
    match &identity.common_name {
        Some(cn) => format!("CN={cn} (serial {})", identity.serial),
        None => format!("with fingerprint {}", identity.fingerprint),
    }
}

fn decision(
    role: Option<&Role>,
    operation: Option<Operation>,
    allowed: bool,
    rule: Arc<str>,
) -> Decision {
    Decision {
        operation: operation.map(|op| op.as_str()),
        role: role.map(|r| r.name.clone()),
        allowed,
        rule,
    }
}

fn deny(status: StatusCode, message: String, decision: Decision) -> Verdict {
    Verdict::Deny(Denial {
        status,
        message,
        decision,
    })
}
