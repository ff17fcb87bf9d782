//! Which registries a role may use: `roles.NAME.registries`.
//!
//! A pull, a push or a login makes the daemon connect, from the VM's
//! network, to a host the client names; a tag or a build `t` names the
//! registry a later push goes to. Each such name is reduced to its
//! registry as dockerd's `ParseNormalizedNamed` does (`alpine` is
//! `docker.io`, `localhost:5000/x` keeps its port) and must be on the
//! role's list. A name dockgate cannot reduce is refused, unless the role
//! may use any registry.

use dockgate_wire::api::Operation;
use dockgate_wire::query::Query;

use super::reference;

/// A compiled `registries` list.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    any: bool,
    /// Exact `host[:port]`, lowercased.
    exact: Vec<String>,
    /// `*.suffix` patterns as `.suffix`, lowercased: one or more labels
    /// before the suffix, matched against the whole `host[:port]`.
    suffixes: Vec<String>,
}

impl Registries {
    /// Any registry: the default when a role lists none, as before roles
    /// had lists.
    pub fn any() -> Registries {
        Registries {
            any: true,
            ..Registries::default()
        }
    }

    pub fn compile(list: &[String]) -> Result<Registries, String> {
        let mut compiled = Registries::default();
        for entry in list {
            let lower = entry.to_ascii_lowercase();
            if lower == "*" {
                compiled.any = true;
            } else if let Some(suffix) = lower.strip_prefix("*.") {
                if !is_host_port(suffix) {
                    return Err(format!("registries: {entry:?} is not *.host[:port]"));
                }
                compiled.suffixes.push(format!(".{suffix}"));
            } else if is_host_port(&lower) {
                compiled.exact.push(lower);
            } else {
                return Err(format!(
                    "registries: {entry:?} is not \"*\", host[:port] or *.host[:port]"
                ));
            }
        }
        Ok(compiled)
    }

    pub fn allows_any(&self) -> bool {
        self.any
    }

    /// Whether `registry` (`host[:port]` as a reference names it) is listed.
    pub fn allows(&self, registry: &str) -> bool {
        let registry = registry.to_ascii_lowercase();
        self.any
            || self.exact.contains(&registry)
            || self
                .suffixes
                .iter()
                .any(|suffix| registry.strip_suffix(suffix.as_str()).is_some_and(is_host))
    }
}

fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn is_host_port(s: &str) -> bool {
    match s.rsplit_once(':') {
        Some((host, port)) => {
            is_host(host) && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())
        }
        None => is_host(s),
    }
}

/// The registry of an image reference, as dockerd splits it: `None` when
/// it is not a name dockerd would resolve to one.
pub fn registry_of(name: &str) -> Option<String> {
    let normalized = reference::normalize(name)?;
    normalized
        .split_once('/')
        .map(|(domain, _)| domain.to_owned())
}

/// The registry a login's `serveraddress` makes dockerd contact, as its
/// registry service reads it: empty is Docker Hub; without a scheme it is
/// `https://`; the URL's host (user info dropped), with `index.docker.io`
/// meaning Docker Hub. `None` for an address dockgate does not parse as Go's
/// `url.Parse` would.
pub fn login_registry(server_address: &str) -> Option<String> {
    if server_address.is_empty() {
        return Some("docker.io".into());
    }
    let rest = server_address
        .strip_prefix("https://")
        .or_else(|| server_address.strip_prefix("http://"))
        .unwrap_or(server_address);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() || !is_host_port(&host.to_ascii_lowercase()) {
        return None;
    }
    let hostname = host.rsplit_once(':').map_or(host, |(name, _)| name);
    Some(if hostname == "index.docker.io" {
        "docker.io".into()
    } else {
        host.to_owned()
    })
}

/// The image names of a request that reach or name a registry: pull
/// `fromImage` (an import's `repo`), push `name`, tag `repo`, build `t`.
/// `name` is the path's image name.
pub fn names<'q>(operation: Operation, name: Option<&'q str>, query: &'q Query) -> Vec<&'q str> {
    match operation {
        Operation::ImageCreate if query.get("fromSrc").is_some() => query
            .get("repo")
            .filter(|r| !r.is_empty())
            .into_iter()
            .collect(),
        Operation::ImageCreate => {
            let image = query.get("fromImage").unwrap_or_default();
            vec![image.strip_suffix(':').unwrap_or(image)]
        }
        Operation::ImagePush => vec![name.unwrap_or_default()],
        Operation::ImageTag => vec![query.get("repo").unwrap_or_default()],
        Operation::ImageBuild => query.all("t").collect(),
        _ => Vec::new(),
    }
}

/// A name whose registry the role may not use.
#[derive(Debug, PartialEq, Eq)]
pub struct Unlisted {
    pub name: String,
    /// `None` when the name has no registry dockgate can tell.
    pub registry: Option<String>,
}

/// Checks every name of a request against `allowed`.
pub fn check(allowed: &Registries, names: &[&str]) -> Result<(), Unlisted> {
    if allowed.allows_any() {
        return Ok(());
    }
    for name in names {
        match registry_of(name) {
            Some(registry) if allowed.allows(&registry) => {}
            registry => {
                return Err(Unlisted {
                    name: (*name).to_owned(),
                    registry,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Registries {
        Registries::compile(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn names_reduce_to_the_registry_dockerd_contacts() {
        for (name, registry) in [
            ("alpine", "docker.io"),
            ("library/alpine:3", "docker.io"),
            ("user/app", "docker.io"),
            ("index.docker.io/library/alpine", "docker.io"),
            ("localhost:5000/x", "localhost:5000"),
            ("localhost/x", "localhost"),
            ("127.0.0.1:5000/app:1", "127.0.0.1:5000"),
            (
                "registry.example:5000/team/app@sha256:aa",
                "registry.example:5000",
            ),
        ] {
            assert_eq!(registry_of(name).as_deref(), Some(registry), "{name}");
        }
        for not_a_name in ["", "3f2a", "App", "Reg/app"] {
            assert_eq!(registry_of(not_a_name), None, "{not_a_name}");
        }
    }

    #[test]
    fn login_addresses_reduce_to_the_host_dockerd_contacts() {
        for (address, registry) in [
            ("", "docker.io"),
            ("https://index.docker.io/v1/", "docker.io"),
            ("index.docker.io:443", "docker.io"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
            ("http://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
            ("https://user@evil.example/docker.io", "evil.example"),
            ("registry.example:5000?x", "registry.example:5000"),
        ] {
            assert_eq!(
                login_registry(address).as_deref(),
                Some(registry),
                "{address}"
            );
        }
        for unparsed in ["https://", "ftp://x", "[::1]:5000", "a b", "x%41.example"] {
            assert_eq!(login_registry(unparsed), None, "{unparsed}");
        }
    }

    #[test]
    fn lists_match_exact_hosts_ports_and_suffixes() {
        let l = list(&["docker.io", "registry.example:5000", "*.corp.example"]);
        for ok in [
            "docker.io",
            "registry.example:5000",
            "REGISTRY.example:5000",
            "a.corp.example",
            "a.b.corp.example",
        ] {
            assert!(l.allows(ok), "{ok}");
        }
        for refused in [
            "registry.example",
            "registry.example:5001",
            "corp.example",
            ".corp.example",
            "a.corp.example:5000",
            "evilcorp.example",
            "localhost:5000",
        ] {
            assert!(!l.allows(refused), "{refused}");
        }
        assert!(list(&["*"]).allows("anything.example:1"));
        assert!(!list(&[]).allows("docker.io"));
        for bad in ["", "http://x", "x/y", "*x.example", "x:port", "*."] {
            assert!(Registries::compile(&[bad.to_string()]).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_name_of_a_request_is_checked() {
        let q = |s: &str| Query::parse(Some(s)).unwrap();
        let ci = list(&["docker.io"]);
        let pull = q("fromImage=127.0.0.1%3A5000%2Fapp&tag=1");
        assert_eq!(
            check(&ci, &names(Operation::ImageCreate, None, &pull)),
            Err(Unlisted {
                name: "127.0.0.1:5000/app".into(),
                registry: Some("127.0.0.1:5000".into()),
            })
        );
        let pull = q("fromImage=alpine%3A&tag=3");
        assert_eq!(
            check(&ci, &names(Operation::ImageCreate, None, &pull)),
            Ok(())
        );
        let import = q("fromSrc=-&repo=evil.example%2Fx");
        assert!(check(&ci, &names(Operation::ImageCreate, None, &import)).is_err());
        let build = q("t=app%3A1&t=evil.example%2Fapp%3A1");
        assert!(check(&ci, &names(Operation::ImageBuild, None, &build)).is_err());
        let tag = q("repo=evil.example%2Fapp&tag=1");
        assert!(check(&ci, &names(Operation::ImageTag, Some("app:1"), &tag)).is_err());
        let push = q("tag=1");
        assert!(check(
            &ci,
            &names(Operation::ImagePush, Some("evil.example/app"), &push)
        )
        .is_err());
        assert_eq!(
            check(&ci, &names(Operation::ImagePush, Some("user/app"), &push)),
            Ok(())
        );
        // Not a name: refused unless any registry is allowed.
        let hex = q("fromImage=abcdef");
        assert_eq!(
            check(&ci, &names(Operation::ImageCreate, None, &hex)),
            Err(Unlisted {
                name: "abcdef".into(),
                registry: None
            })
        );
        assert_eq!(
            check(
                &Registries::any(),
                &names(Operation::ImageCreate, None, &hex)
            ),
            Ok(())
        );
        assert!(names(Operation::ContainerList, None, &q("")).is_empty());
    }

    /// The shipped roles: ci may use Docker Hub only, on every operation
    /// that names a registry; admin any; a bad list fails the config.
    /// A route dockgate cannot pin to one operation could be a pull or a
    /// push: a role with a registry list never gets it forwarded unchecked,
    /// even with `unrouted`.
    #[test]
    fn unrouted_requests_need_an_unrestricted_role() {
        use crate::config::Config;
        use crate::policy::{Policy, Verdict};
        use http::{Method, Uri};
        let config = Config::parse(
            "[roles.ops]\noperations = [\"*\"]\nunrouted = true\nregistries = [\"docker.io\"]\n\
             [roles.wide]\noperations = [\"*\"]\nunrouted = true\n",
        )
        .unwrap();
        let policy = Policy::new(&config).unwrap();
        let unknown = "/v1.41/images/create/extra".parse::<Uri>().unwrap();
        let decide = |role: &str| {
            let role = policy.roles.get(role).unwrap();
            matches!(
                policy.decide_for(role, "o", &Method::POST, &unknown),
                Verdict::Allow { .. }
            )
        };
        assert!(!decide("ops"), "a listed role got an unknown route");
        assert!(decide("wide"), "an unrestricted unrouted role lost it");
    }

    #[test]
    fn shipped_roles_decide_by_their_lists() {
        use crate::config::Config;
        use crate::policy::{Policy, Verdict};
        use http::{Method, Uri};
        let policy = Policy::new(&Config::default()).unwrap();
        let decide = |role: &str, method: Method, target: &str| {
            let role = policy.roles.get(role).unwrap();
            match policy.decide_for(role, "o", &method, &target.parse::<Uri>().unwrap()) {
                Verdict::Allow { .. } => Ok(()),
                Verdict::Deny(d) => Err((d.decision.rule.to_string(), d.message)),
            }
        };
        let foreign = [
            (
                Method::POST,
                "/v1.43/images/create?fromImage=127.0.0.1%3A5000%2Fapp&tag=1",
            ),
            (
                Method::POST,
                "/v1.43/images/app:1/tag?repo=127.0.0.1%3A5000%2Fapp&tag=1",
            ),
            (Method::POST, "/v1.43/build?t=127.0.0.1%3A5000%2Fapp%3A1"),
        ];
        for (method, target) in foreign.clone() {
            let (rule, message) = decide("ci", method.clone(), target).unwrap_err();
            assert_eq!(rule, "roles.ci.registries", "{target}");
            assert!(
                message.contains("registry 127.0.0.1:5000")
                    && message.contains("rule roles.ci.registries"),
                "{message}"
            );
            assert_eq!(decide("admin", method, target), Ok(()), "{target}");
        }
        for (method, target) in [
            (Method::POST, "/images/create?fromImage=alpine&tag=3"),
            (Method::POST, "/images/app:1/tag?repo=user%2Fapp&tag=1"),
            (Method::POST, "/build?t=app%3A1"),
        ] {
            assert_eq!(decide("ci", method, target), Ok(()), "{target}");
        }

        // An unconfined role's login body is not read: with a list, it may
        // not log in at all; without one, it may.
        let mut config = Config::default();
        config.roles.get_mut("admin").unwrap().registries = Some(vec!["docker.io".into()]);
        let listed = Policy::new(&config).unwrap();
        let login = |policy: &Policy| {
            let admin = policy.roles.get("admin").unwrap();
            match policy.decide_for(admin, "o", &Method::POST, &"/auth".parse::<Uri>().unwrap()) {
                Verdict::Allow { .. } => None,
                Verdict::Deny(d) => Some(d.decision.rule.to_string()),
            }
        };
        assert_eq!(login(&listed).as_deref(), Some("roles.admin.registries"));
        assert_eq!(login(&policy), None);

        config.roles.get_mut("ci").unwrap().registries = Some(vec!["http://x".into()]);
        assert!(Policy::new(&config).is_err());
    }
}
