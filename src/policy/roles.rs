//! Identity → role, and role → allowed operations.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::defaults::Containers;
use super::glob::Glob;
use super::registries::Registries;
use crate::config::{Builds, IdentityMapping, RoleConfig};
use crate::tls::Identity;

/// A compiled role. Rule names for the audit log are built once here, so
/// deciding a request allocates none.
#[derive(Debug)]
pub struct Role {
    pub name: Arc<str>,
    /// Each pattern with its rule name, `roles.NAME.operations: PATTERN`.
    operations: Vec<(Glob, Arc<str>)>,
    pub confined: bool,
    pub unrouted: bool,
    /// `roles.NAME.builds`.
    pub builds: Builds,
    /// `roles.NAME.operations`: what refuses an operation no pattern allows.
    pub operations_rule: Arc<str>,
    /// `roles.NAME.unrouted`.
    pub unrouted_rule: Arc<str>,
    /// `[roles.NAME.containers]`, for the containers a confined role creates.
    pub containers: Option<Arc<Containers>>,
    /// Container inspect answers have their `Config.Env` values replaced.
    pub redact_env: bool,
    /// `roles.NAME.registries`.
    pub registries: Arc<Registries>,
    pub registries_rule: Arc<str>,
}

impl Role {
    /// The rule (pattern) that allows `operation`, if any.
    pub fn allowing(&self, operation: &str) -> Option<&Arc<str>> {
        self.operations
            .iter()
            .find(|(g, _)| g.matches(operation))
            .map(|(_, rule)| rule)
    }
}

/// How a certificate got its role, for the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleSource {
    Mapping,
    Certificate,
}

#[derive(Debug)]
enum Selector {
    CommonName(String),
    Dns(String),
    Uri(String),
    Email(String),
    Fingerprint(String),
}

impl Selector {
    fn matches(&self, id: &Identity) -> bool {
        match self {
            Selector::CommonName(cn) => id.common_name.as_deref() == Some(cn),
            Selector::Dns(d) => id.dns_names.iter().any(|n| n.eq_ignore_ascii_case(d)),
            Selector::Uri(u) => id.uris.iter().any(|n| n == u),
            Selector::Email(e) => id.emails.iter().any(|n| n.eq_ignore_ascii_case(e)),
            Selector::Fingerprint(f) => &id.fingerprint == f,
        }
    }
}

#[derive(Debug)]
pub struct Roles {
    roles: BTreeMap<String, Role>,
    mappings: Vec<(Selector, String)>,
    from_certificates: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RolesError {
    Pattern { role: String, error: String },
    UnknownOperation { role: String, pattern: String },
    Mapping(usize, String),
    Containers { role: String, error: String },
    Registries { role: String, error: String },
}

impl std::fmt::Display for RolesError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RolesError::Pattern { role, error } => write!(f, "role {role}: {error}"),
            RolesError::UnknownOperation { role, pattern } => write!(
                f,
                "role {role}: {pattern:?} matches no Engine API operation"
            ),
            RolesError::Mapping(i, e) => write!(f, "identity.map[{i}]: {e}"),
            RolesError::Containers { role, error } | RolesError::Registries { role, error } => {
                write!(f, "role {role}: {error}")
            }
        }
    }
}

impl std::error::Error for RolesError {}

impl Roles {
    /// Compiles roles, checking every pattern against `operations` (all
    /// operationIds dockgate knows) so a typo can't silently allow nothing.
    pub fn new(
        config: &BTreeMap<String, RoleConfig>,
        mappings: &[IdentityMapping],
        from_certificates: bool,
        operations: &[&str],
    ) -> Result<Roles, RolesError> {
        let mut roles = BTreeMap::new();
        for (name, rc) in config {
            let mut globs = Vec::with_capacity(rc.operations.len());
            for pattern in &rc.operations {
                let glob = Glob::parse(pattern).map_err(|e| RolesError::Pattern {
                    role: name.clone(),
                    error: e.to_string(),
                })?;
                if !operations.iter().any(|op| glob.matches(op)) {
                    return Err(RolesError::UnknownOperation {
                        role: name.clone(),
                        pattern: pattern.clone(),
                    });
                }
                let rule = format!("roles.{name}.operations: {pattern}");
                globs.push((glob, Arc::from(rule)));
            }
            let containers = match &rc.containers {
                None => None,
                // Only confined roles' create bodies are inspected.
                Some(_) if !rc.confined => {
                    return Err(RolesError::Containers {
                        role: name.clone(),
                        error: "containers settings need confined = true".into(),
                    })
                }
                Some(settings) => Some(Arc::new(Containers::compile(settings).map_err(
                    |error| RolesError::Containers {
                        role: name.clone(),
                        error,
                    },
                )?)),
            };
            let registries = match &rc.registries {
                None => Registries::any(),
                Some(list) => {
                    Registries::compile(list).map_err(|error| RolesError::Registries {
                        role: name.clone(),
                        error,
                    })?
                }
            };
            roles.insert(
                name.clone(),
                Role {
                    name: Arc::from(name.as_str()),
                    operations: globs,
                    confined: rc.confined,
                    unrouted: rc.unrouted,
                    builds: rc.builds,
                    operations_rule: Arc::from(format!("roles.{name}.operations")),
                    unrouted_rule: Arc::from(format!("roles.{name}.unrouted")),
                    containers,
                    redact_env: rc.redact_env,
                    registries: Arc::new(registries),
                    registries_rule: Arc::from(format!("roles.{name}.registries")),
                },
            );
        }
        let mut compiled = Vec::with_capacity(mappings.len());
        for (i, m) in mappings.iter().enumerate() {
            if !roles.contains_key(&m.role) {
                return Err(RolesError::Mapping(i, format!("unknown role {:?}", m.role)));
            }
            let selectors: Vec<Selector> = [
                m.common_name.clone().map(Selector::CommonName),
                m.dns.clone().map(Selector::Dns),
                m.uri.clone().map(Selector::Uri),
                m.email.clone().map(Selector::Email),
                m.fingerprint
                    .as_deref()
                    .map(|f| Selector::Fingerprint(f.replace(':', "").to_ascii_lowercase())),
            ]
            .into_iter()
            .flatten()
            .collect();
            let [selector] = <[Selector; 1]>::try_from(selectors).map_err(|_| {
                RolesError::Mapping(
                    i,
                    "give exactly one of common_name, dns, uri, email, fingerprint".into(),
                )
            })?;
            compiled.push((selector, m.role.clone()));
        }
        Ok(Roles {
            roles,
            mappings: compiled,
            from_certificates,
        })
    }

    /// The role for a verified client: the first explicit mapping that
    /// matches, else the role its certificate records (when trusted).
    pub fn resolve(&self, id: &Identity) -> Option<(&Role, RoleSource)> {
        if let Some((_, name)) = self.mappings.iter().find(|(s, _)| s.matches(id)) {
            return self.roles.get(name).map(|r| (r, RoleSource::Mapping));
        }
        if self.from_certificates {
            let name = id.recorded_role.as_deref()?;
            return self.roles.get(name).map(|r| (r, RoleSource::Certificate));
        }
        None
    }

    pub fn get(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.roles.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPS: &[&str] = &[
        "ContainerCreate",
        "ContainerList",
        "ImageList",
        "ImageInspect",
    ];

    fn role(ops: &[&str]) -> RoleConfig {
        RoleConfig {
            operations: ops.iter().map(|s| s.to_string()).collect(),
            confined: false,
            unrouted: false,
            containers: None,
            redact_env: false,
            builds: Builds::default(),
            registries: None,
        }
    }

    fn mapping(role: &str) -> IdentityMapping {
        IdentityMapping {
            role: role.into(),
            common_name: None,
            dns: None,
            uri: None,
            email: None,
            fingerprint: None,
        }
    }

    #[test]
    fn patterns_must_name_real_operations() {
        let mut cfg = BTreeMap::new();
        cfg.insert("r".to_string(), role(&["Contianer*"]));
        assert!(matches!(
            Roles::new(&cfg, &[], true, OPS),
            Err(RolesError::UnknownOperation { .. })
        ));
    }

    #[test]
    fn mapping_wins_over_recorded_role_and_needs_one_selector() {
        let mut cfg = BTreeMap::new();
        cfg.insert("admin".to_string(), role(&["*"]));
        cfg.insert("readonly".to_string(), role(&["Image{List,Inspect}"]));
        let mut m = mapping("readonly");
        m.fingerprint = Some("AB:CD".into());
        let roles = Roles::new(&cfg, &[m.clone()], true, OPS).unwrap();
        let id = Identity {
            fingerprint: "abcd".into(),
            recorded_role: Some("admin".into()),
            ..Identity::default()
        };
        let (r, source) = roles.resolve(&id).unwrap();
        assert_eq!((&*r.name, source), ("readonly", RoleSource::Mapping));
        assert_eq!(
            r.allowing("ImageList").map(|r| &**r),
            Some("roles.readonly.operations: Image{List,Inspect}")
        );
        assert_eq!(r.allowing("ContainerCreate"), None);

        m.common_name = Some("x".into());
        assert!(Roles::new(&cfg, &[m], true, OPS).is_err());
    }

    #[test]
    fn container_settings_need_a_confined_role_and_valid_values() {
        let settings = crate::config::ContainerSettings {
            pids_limit: Some(10),
            ..Default::default()
        };
        let mut rc = role(&["Container*"]);
        rc.containers = Some(settings.clone());
        let mut cfg = BTreeMap::new();
        cfg.insert("ci".to_string(), rc.clone());
        assert!(matches!(
            Roles::new(&cfg, &[], true, OPS),
            Err(RolesError::Containers { .. })
        ));
        rc.confined = true;
        cfg.insert("ci".to_string(), rc.clone());
        assert!(Roles::new(&cfg, &[], true, OPS)
            .unwrap()
            .get("ci")
            .unwrap()
            .containers
            .is_some());
        rc.containers = Some(crate::config::ContainerSettings {
            pids_limit: Some(-1),
            ..settings
        });
        cfg.insert("ci".to_string(), rc);
        assert!(Roles::new(&cfg, &[], true, OPS).is_err());
    }

    #[test]
    fn recorded_role_only_when_enabled_and_known() {
        let mut cfg = BTreeMap::new();
        cfg.insert("ci".to_string(), role(&["Container*"]));
        let id = Identity {
            recorded_role: Some("ci".into()),
            ..Identity::default()
        };
        let on = Roles::new(&cfg, &[], true, OPS).unwrap();
        assert_eq!(on.resolve(&id).unwrap().1, RoleSource::Certificate);
        let off = Roles::new(&cfg, &[], false, OPS).unwrap();
        assert!(off.resolve(&id).is_none());
        let unknown = Identity {
            recorded_role: Some("root".into()),
            ..Identity::default()
        };
        assert!(on.resolve(&unknown).is_none());
    }
}
