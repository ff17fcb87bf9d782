//! dockerd's route table, in its registration order, with the swagger
//! `operationId` of each route, and a first-match router that mirrors
//! gorilla/mux (see the module docs of `api`).

use std::fmt;

use http::Method;

use super::path::NormalizedPath;

/// Where an operation's name comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// An `operationId` of the Engine API swagger (v1.41, latest, or both).
    Swagger,
    /// A route dockerd registers that the swagger does not document; named
    /// by dockgate in the swagger's `NounVerb` style.
    Dockerd,
}

macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident: $origin:ident,)*) => {
        /// An Engine API operation, named by its swagger `operationId`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Operation {
            $($(#[$doc])* $name,)*
        }

        impl Operation {
            const ALL: &'static [Operation] = &[$(Operation::$name,)*];

            /// The `operationId`, e.g. `"ContainerList"`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Operation::$name => stringify!($name),)*
                }
            }

            /// Whether the name is a swagger `operationId` or dockgate's.
            pub const fn origin(self) -> Origin {
                match self {
                    $(Operation::$name => Origin::$origin,)*
                }
            }
        }
    };
}

operations! {
    // Containers.
    ContainerList: Swagger,
    ContainerCreate: Swagger,
    ContainerInspect: Swagger,
    ContainerTop: Swagger,
    ContainerLogs: Swagger,
    ContainerChanges: Swagger,
    ContainerExport: Swagger,
    ContainerStats: Swagger,
    ContainerResize: Swagger,
    ContainerStart: Swagger,
    ContainerStop: Swagger,
    ContainerRestart: Swagger,
    ContainerKill: Swagger,
    ContainerUpdate: Swagger,
    ContainerRename: Swagger,
    ContainerPause: Swagger,
    ContainerUnpause: Swagger,
    ContainerAttach: Swagger,
    ContainerAttachWebsocket: Swagger,
    ContainerWait: Swagger,
    ContainerDelete: Swagger,
    ContainerArchiveInfo: Swagger,
    ContainerArchive: Swagger,
    PutContainerArchive: Swagger,
    ContainerPrune: Swagger,
    /// `POST /containers/{name}/copy`: removed in API 1.12 (always an error),
    /// still registered by engines before 26.0.
    ContainerCopy: Dockerd,
    /// `GET /containers/{name}/checkpoints` (experimental).
    CheckpointList: Dockerd,
    /// `POST /containers/{name}/checkpoints` (experimental).
    CheckpointCreate: Dockerd,
    /// `DELETE /containers/{name}/checkpoints/{checkpoint}` (experimental).
    CheckpointDelete: Dockerd,
    // Exec.
    ContainerExec: Swagger,
    ExecStart: Swagger,
    ExecResize: Swagger,
    ExecInspect: Swagger,
    // Images.
    ImageList: Swagger,
    ImageBuild: Swagger,
    BuildPrune: Swagger,
    /// `POST /build/cancel`: cancels a BuildKit build by id.
    BuildCancel: Dockerd,
    ImageCreate: Swagger,
    ImageInspect: Swagger,
    /// Only in swagger-latest (API 1.55).
    ImageAttestations: Swagger,
    ImageHistory: Swagger,
    ImagePush: Swagger,
    ImageTag: Swagger,
    ImageDelete: Swagger,
    ImageSearch: Swagger,
    ImagePrune: Swagger,
    ImageCommit: Swagger,
    ImageGet: Swagger,
    ImageGetAll: Swagger,
    ImageLoad: Swagger,
    // System.
    SystemAuth: Swagger,
    SystemInfo: Swagger,
    SystemVersion: Swagger,
    SystemPing: Swagger,
    SystemPingHead: Swagger,
    SystemEvents: Swagger,
    SystemDataUsage: Swagger,
    /// `OPTIONS` on any path: dockerd's CORS preflight handler (answers 200).
    SystemOptions: Dockerd,
    // Networks.
    NetworkList: Swagger,
    NetworkInspect: Swagger,
    NetworkDelete: Swagger,
    NetworkCreate: Swagger,
    NetworkConnect: Swagger,
    NetworkDisconnect: Swagger,
    NetworkPrune: Swagger,
    // Volumes.
    VolumeList: Swagger,
    VolumeCreate: Swagger,
    VolumeInspect: Swagger,
    /// Only in swagger-latest (API 1.42, cluster volumes).
    VolumeUpdate: Swagger,
    VolumeDelete: Swagger,
    VolumePrune: Swagger,
    // Plugins.
    PluginList: Swagger,
    GetPluginPrivileges: Swagger,
    PluginPull: Swagger,
    PluginInspect: Swagger,
    PluginDelete: Swagger,
    PluginEnable: Swagger,
    PluginDisable: Swagger,
    PluginUpgrade: Swagger,
    PluginCreate: Swagger,
    PluginPush: Swagger,
    PluginSet: Swagger,
    // Swarm.
    NodeList: Swagger,
    NodeInspect: Swagger,
    NodeDelete: Swagger,
    NodeUpdate: Swagger,
    SwarmInspect: Swagger,
    SwarmInit: Swagger,
    SwarmJoin: Swagger,
    SwarmLeave: Swagger,
    SwarmUpdate: Swagger,
    SwarmUnlockkey: Swagger,
    SwarmUnlock: Swagger,
    ServiceList: Swagger,
    ServiceCreate: Swagger,
    ServiceInspect: Swagger,
    ServiceDelete: Swagger,
    ServiceUpdate: Swagger,
    ServiceLogs: Swagger,
    TaskList: Swagger,
    TaskInspect: Swagger,
    TaskLogs: Swagger,
    SecretList: Swagger,
    SecretCreate: Swagger,
    SecretInspect: Swagger,
    SecretDelete: Swagger,
    SecretUpdate: Swagger,
    ConfigList: Swagger,
    ConfigCreate: Swagger,
    ConfigInspect: Swagger,
    ConfigDelete: Swagger,
    ConfigUpdate: Swagger,
    // Misc.
    DistributionInspect: Swagger,
    Session: Swagger,
    /// `POST /grpc`: BuildKit's gRPC-over-HTTP/2 upgrade.
    Grpc: Dockerd,
    /// `/debug/vars`: Go expvar.
    DebugVars: Dockerd,
    /// `/debug/pprof/`: the pprof index.
    DebugPprofIndex: Dockerd,
    /// `/debug/pprof/cmdline`.
    DebugPprofCmdline: Dockerd,
    /// `/debug/pprof/profile`: CPU profile.
    DebugPprofProfile: Dockerd,
    /// `/debug/pprof/symbol`.
    DebugPprofSymbol: Dockerd,
    /// `/debug/pprof/trace`: execution trace.
    DebugPprofTrace: Dockerd,
    /// `/debug/pprof/{name}`: a named runtime profile (heap, goroutine, ...).
    DebugPprofLookup: Dockerd,
}

impl Operation {
    /// Every operation, for validating policy patterns against real names.
    pub fn all() -> &'static [Operation] {
        Self::ALL
    }

    /// The operation with this exact `operationId`.
    pub fn from_name(name: &str) -> Option<Operation> {
        Self::ALL.iter().copied().find(|op| op.as_str() == name)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Engine releases (major, minor) that register a route; the table spans
/// 20.10 to current master.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engines {
    /// Every release.
    All,
    /// Releases from this one on.
    Since(u16, u16),
    /// Releases before this one.
    Before(u16, u16),
}

impl Engines {
    /// Whether engine release `major.minor` registers the route.
    pub fn includes(self, major: u16, minor: u16) -> bool {
        match self {
            Engines::All => true,
            Engines::Since(a, b) => (major, minor) >= (a, b),
            Engines::Before(a, b) => (major, minor) < (a, b),
        }
    }
}

/// One route as dockerd registers it.
#[derive(Debug)]
pub struct RouteDef {
    /// `None`: registered without a method matcher (any method).
    pub method: Option<Method>,
    /// dockerd's gorilla/mux template, e.g. `/images/{name:.*}/json`.
    pub template: &'static str,
    pub operation: Operation,
    /// Also registered under the `/v{version:[0-9.]+}` prefix (first).
    pub versioned: bool,
    pub engines: Engines,
}

const fn def(method: Method, template: &'static str, operation: Operation) -> RouteDef {
    RouteDef {
        method: Some(method),
        template,
        operation,
        versioned: true,
        engines: Engines::All,
    }
}

const fn since(mut route: RouteDef, major: u16, minor: u16) -> RouteDef {
    route.engines = Engines::Since(major, minor);
    route
}

const fn before(mut route: RouteDef, major: u16, minor: u16) -> RouteDef {
    route.engines = Engines::Before(major, minor);
    route
}

/// Engines from 28.0 on register the debug routes like the others, GET only.
const fn modern_debug(template: &'static str, operation: Operation) -> RouteDef {
    since(def(Method::GET, template, operation), 28, 0)
}

/// Engines before 28.0 register the debug routes once, without method
/// matcher nor version prefix, after every other route.
const fn legacy_debug(template: &'static str, operation: Operation) -> RouteDef {
    RouteDef {
        method: None,
        template,
        operation,
        versioned: false,
        engines: Engines::Before(28, 0),
    }
}

use Operation as Op;
const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;
const HEAD: Method = Method::HEAD;
const OPTIONS: Method = Method::OPTIONS;

/// dockerd's routes in registration order (mux serves the first match).
/// Routers: checkpoint, container, image, system, volume, build, session,
/// swarm, plugin, distribution, network, debug, grpc (engine 29; 20.10
/// registers grpc before network and debug last: no route of one of those
/// overlaps another, so the order between them does not matter).
static ROUTES: &[RouteDef] = &[
    // checkpoint router: before the container router "or the DELETE gets masked".
    def(GET, "/containers/{name:.*}/checkpoints", Op::CheckpointList),
    def(
        POST,
        "/containers/{name:.*}/checkpoints",
        Op::CheckpointCreate,
    ),
    def(
        DELETE,
        "/containers/{name}/checkpoints/{checkpoint}",
        Op::CheckpointDelete,
    ),
    // container router.
    def(
        HEAD,
        "/containers/{name:.*}/archive",
        Op::ContainerArchiveInfo,
    ),
    def(GET, "/containers/json", Op::ContainerList),
    def(GET, "/containers/{name:.*}/export", Op::ContainerExport),
    def(GET, "/containers/{name:.*}/changes", Op::ContainerChanges),
    def(GET, "/containers/{name:.*}/json", Op::ContainerInspect),
    def(GET, "/containers/{name:.*}/top", Op::ContainerTop),
    def(GET, "/containers/{name:.*}/logs", Op::ContainerLogs),
    def(GET, "/containers/{name:.*}/stats", Op::ContainerStats),
    def(
        GET,
        "/containers/{name:.*}/attach/ws",
        Op::ContainerAttachWebsocket,
    ),
    def(GET, "/exec/{id:.*}/json", Op::ExecInspect),
    def(GET, "/containers/{name:.*}/archive", Op::ContainerArchive),
    def(POST, "/containers/create", Op::ContainerCreate),
    def(POST, "/containers/{name:.*}/kill", Op::ContainerKill),
    def(POST, "/containers/{name:.*}/pause", Op::ContainerPause),
    def(POST, "/containers/{name:.*}/unpause", Op::ContainerUnpause),
    def(POST, "/containers/{name:.*}/restart", Op::ContainerRestart),
    def(POST, "/containers/{name:.*}/start", Op::ContainerStart),
    def(POST, "/containers/{name:.*}/stop", Op::ContainerStop),
    def(POST, "/containers/{name:.*}/wait", Op::ContainerWait),
    def(POST, "/containers/{name:.*}/resize", Op::ContainerResize),
    def(POST, "/containers/{name:.*}/attach", Op::ContainerAttach),
    before(
        def(POST, "/containers/{name:.*}/copy", Op::ContainerCopy),
        26,
        0,
    ),
    def(POST, "/containers/{name:.*}/exec", Op::ContainerExec),
    def(POST, "/exec/{name:.*}/start", Op::ExecStart),
    def(POST, "/exec/{name:.*}/resize", Op::ExecResize),
    def(POST, "/containers/{name:.*}/rename", Op::ContainerRename),
    def(POST, "/containers/{name:.*}/update", Op::ContainerUpdate),
    def(POST, "/containers/prune", Op::ContainerPrune),
    def(POST, "/commit", Op::ImageCommit),
    def(
        PUT,
        "/containers/{name:.*}/archive",
        Op::PutContainerArchive,
    ),
    def(DELETE, "/containers/{name:.*}", Op::ContainerDelete),
    // image router.
    def(GET, "/images/json", Op::ImageList),
    def(GET, "/images/search", Op::ImageSearch),
    def(GET, "/images/get", Op::ImageGetAll),
    def(GET, "/images/{name:.*}/get", Op::ImageGet),
    def(GET, "/images/{name:.*}/history", Op::ImageHistory),
    def(GET, "/images/{name:.*}/json", Op::ImageInspect),
    since(
        def(GET, "/images/{name:.*}/attestations", Op::ImageAttestations),
        29,
        6,
    ),
    def(POST, "/images/load", Op::ImageLoad),
    def(POST, "/images/create", Op::ImageCreate),
    def(POST, "/images/{name:.*}/push", Op::ImagePush),
    def(POST, "/images/{name:.*}/tag", Op::ImageTag),
    def(POST, "/images/prune", Op::ImagePrune),
    def(DELETE, "/images/{name:.*}", Op::ImageDelete),
    // system router.
    def(OPTIONS, "/{anyroute:.*}", Op::SystemOptions),
    def(GET, "/_ping", Op::SystemPing),
    def(HEAD, "/_ping", Op::SystemPingHead),
    def(GET, "/events", Op::SystemEvents),
    def(GET, "/info", Op::SystemInfo),
    def(GET, "/version", Op::SystemVersion),
    def(GET, "/system/df", Op::SystemDataUsage),
    def(POST, "/auth", Op::SystemAuth),
    // volume router.
    def(GET, "/volumes", Op::VolumeList),
    def(GET, "/volumes/{name:.*}", Op::VolumeInspect),
    def(POST, "/volumes/create", Op::VolumeCreate),
    def(POST, "/volumes/prune", Op::VolumePrune),
    since(def(PUT, "/volumes/{name:.*}", Op::VolumeUpdate), 23, 0),
    def(DELETE, "/volumes/{name:.*}", Op::VolumeDelete),
    // build router.
    def(POST, "/build", Op::ImageBuild),
    def(POST, "/build/prune", Op::BuildPrune),
    def(POST, "/build/cancel", Op::BuildCancel),
    // session router.
    def(POST, "/session", Op::Session),
    // swarm router.
    def(POST, "/swarm/init", Op::SwarmInit),
    def(POST, "/swarm/join", Op::SwarmJoin),
    def(POST, "/swarm/leave", Op::SwarmLeave),
    def(GET, "/swarm", Op::SwarmInspect),
    def(GET, "/swarm/unlockkey", Op::SwarmUnlockkey),
    def(POST, "/swarm/update", Op::SwarmUpdate),
    def(POST, "/swarm/unlock", Op::SwarmUnlock),
    def(GET, "/services", Op::ServiceList),
    def(GET, "/services/{id}", Op::ServiceInspect),
    def(POST, "/services/create", Op::ServiceCreate),
    def(POST, "/services/{id}/update", Op::ServiceUpdate),
    def(DELETE, "/services/{id}", Op::ServiceDelete),
    def(GET, "/services/{id}/logs", Op::ServiceLogs),
    def(GET, "/nodes", Op::NodeList),
    def(GET, "/nodes/{id}", Op::NodeInspect),
    def(DELETE, "/nodes/{id}", Op::NodeDelete),
    def(POST, "/nodes/{id}/update", Op::NodeUpdate),
    def(GET, "/tasks", Op::TaskList),
    def(GET, "/tasks/{id}", Op::TaskInspect),
    def(GET, "/tasks/{id}/logs", Op::TaskLogs),
    def(GET, "/secrets", Op::SecretList),
    def(POST, "/secrets/create", Op::SecretCreate),
    def(DELETE, "/secrets/{id}", Op::SecretDelete),
    def(GET, "/secrets/{id}", Op::SecretInspect),
    def(POST, "/secrets/{id}/update", Op::SecretUpdate),
    def(GET, "/configs", Op::ConfigList),
    def(POST, "/configs/create", Op::ConfigCreate),
    def(DELETE, "/configs/{id}", Op::ConfigDelete),
    def(GET, "/configs/{id}", Op::ConfigInspect),
    def(POST, "/configs/{id}/update", Op::ConfigUpdate),
    // plugin router.
    def(GET, "/plugins", Op::PluginList),
    def(GET, "/plugins/{name:.*}/json", Op::PluginInspect),
    def(GET, "/plugins/privileges", Op::GetPluginPrivileges),
    def(DELETE, "/plugins/{name:.*}", Op::PluginDelete),
    def(POST, "/plugins/{name:.*}/enable", Op::PluginEnable),
    def(POST, "/plugins/{name:.*}/disable", Op::PluginDisable),
    def(POST, "/plugins/pull", Op::PluginPull),
    def(POST, "/plugins/{name:.*}/push", Op::PluginPush),
    def(POST, "/plugins/{name:.*}/upgrade", Op::PluginUpgrade),
    def(POST, "/plugins/{name:.*}/set", Op::PluginSet),
    def(POST, "/plugins/create", Op::PluginCreate),
    // distribution router.
    def(GET, "/distribution/{name:.*}/json", Op::DistributionInspect),
    // network router.
    def(GET, "/networks", Op::NetworkList),
    def(GET, "/networks/", Op::NetworkList),
    def(GET, "/networks/{id:.+}", Op::NetworkInspect),
    def(POST, "/networks/create", Op::NetworkCreate),
    def(POST, "/networks/{id:.*}/connect", Op::NetworkConnect),
    def(POST, "/networks/{id:.*}/disconnect", Op::NetworkDisconnect),
    def(POST, "/networks/prune", Op::NetworkPrune),
    def(DELETE, "/networks/{id:.*}", Op::NetworkDelete),
    // debug router (engine 28 on).
    modern_debug("/debug/vars", Op::DebugVars),
    modern_debug("/debug/pprof/", Op::DebugPprofIndex),
    modern_debug("/debug/pprof/cmdline", Op::DebugPprofCmdline),
    modern_debug("/debug/pprof/profile", Op::DebugPprofProfile),
    modern_debug("/debug/pprof/symbol", Op::DebugPprofSymbol),
    modern_debug("/debug/pprof/trace", Op::DebugPprofTrace),
    modern_debug("/debug/pprof/{name}", Op::DebugPprofLookup),
    // grpc router.
    def(POST, "/grpc", Op::Grpc),
    // debug routes of engines before 28.0.
    legacy_debug("/debug/vars", Op::DebugVars),
    legacy_debug("/debug/pprof/", Op::DebugPprofIndex),
    legacy_debug("/debug/pprof/cmdline", Op::DebugPprofCmdline),
    legacy_debug("/debug/pprof/profile", Op::DebugPprofProfile),
    legacy_debug("/debug/pprof/symbol", Op::DebugPprofSymbol),
    legacy_debug("/debug/pprof/trace", Op::DebugPprofTrace),
    legacy_debug("/debug/pprof/{name}", Op::DebugPprofLookup),
];

/// The route table, in dockerd's registration order.
pub fn table() -> &'static [RouteDef] {
    ROUTES
}

/// Most path variables in one template (`{name}` and `{checkpoint}`).
const MAX_PARAMS: usize = 2;

/// Path variables of a matched route, keyed by dockerd's variable names
/// (`name`, `id`, `checkpoint`, `anyroute`), decoded. Containers are `name`
/// here where the swagger says `id`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params<'p> {
    items: [(&'static str, &'p str); MAX_PARAMS],
    len: usize,
}

impl<'p> Params<'p> {
    /// The value of variable `name`.
    pub fn get(&self, name: &str) -> Option<&'p str> {
        self.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// (name, value) pairs in template order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'p str)> + '_ {
        self.items.iter().take(self.len).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, name: &'static str, value: &'p str) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = (name, value);
                self.len += 1;
                true
            }
            None => false,
        }
    }
}

/// A matched route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route<'p> {
    pub operation: Operation,
    /// dockerd's template of the matched route.
    pub template: &'static str,
    pub params: Params<'p>,
}

/// The outcome of routing a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteMatch<'p> {
    /// The route that serves the request on every engine release that
    /// registers a matching route (the others answer 404).
    Found(Route<'p>),
    /// dockerd answers 404: no route for this path, or not for this method
    /// (mux's 405 goes to the same handler).
    NoRoute,
    /// Engine releases serve the request with different routes: the first in
    /// table order, and one a release that lacks it serves instead.
    Ambiguous(Route<'p>, Route<'p>),
}

/// The oldest release, and every `Engines` boundary in the table: together
/// they represent every release.
const RELEASES: [(u16, u16); 5] = [(20, 10), (23, 0), (26, 0), (28, 0), (29, 6)];

/// Routes a request the way dockerd's mux does: the first route, in
/// registration order, whose method and path regexp both match.
pub fn route<'p>(method: &Method, path: &'p NormalizedPath) -> RouteMatch<'p> {
    route_in(ROUTES, method, path)
}

fn route_in<'p>(
    table: &'static [RouteDef],
    method: &Method,
    path: &'p NormalizedPath,
) -> RouteMatch<'p> {
    let Some((index, engines, found)) = table.iter().enumerate().find_map(|(index, def)| {
        match_def(def, method, path).map(|route| (index, def.engines, route))
    }) else {
        return RouteMatch::NoRoute;
    };
    if engines == Engines::All {
        return RouteMatch::Found(found);
    }
    // Some releases lack this route: they serve a later one, if any.
    for (major, minor) in RELEASES {
        let served = table
            .iter()
            .skip(index)
            .filter(|def| def.engines.includes(major, minor))
            .find_map(|def| match_def(def, method, path));
        if let Some(other) = served {
            if other.operation != found.operation || other.params != found.params {
                return RouteMatch::Ambiguous(found, other);
            }
        }
    }
    RouteMatch::Found(found)
}

pub(super) fn match_def<'p>(
    def: &'static RouteDef,
    method: &Method,
    path: &'p NormalizedPath,
) -> Option<Route<'p>> {
    if def.method.as_ref().is_some_and(|m| m != method) {
        return None;
    }
    if path.version().is_some() && !def.versioned {
        return None;
    }
    let params = match_template(def.template, path.route_path())?;
    Some(Route {
        operation: def.operation,
        template: def.template,
        params,
    })
}

/// Matches `path` against a mux template, as the anchored regexp mux builds
/// from it would. Variables: `{n}` is `[^/]+`, always followed by `/` or the
/// end; `{n:.*}` and `{n:.+}` are only followed by literal text, so the
/// greedy capture is everything up to that fixed suffix (the path holds no
/// `\n`, the only character `.` rejects). `table_templates_are_supported`
/// checks these shapes.
fn match_template<'p>(template: &'static str, path: &'p str) -> Option<Params<'p>> {
    // Most templates part from the path within a few bytes of their literal
    // start: refuse those before scanning the template for variables.
    let shared = template
        .bytes()
        .zip(path.bytes())
        .take_while(|&(t, p)| t == p && t != b'{')
        .count();
    if template.as_bytes().get(shared).is_some_and(|&b| b != b'{') {
        return None;
    }
    let mut params = Params::default();
    let mut template = template;
    let mut path = path;
    loop {
        let Some((literal, rest)) = template.split_once('{') else {
            return (template == path).then_some(params);
        };
        path = path.strip_prefix(literal)?;
        let (variable, rest) = rest.split_once('}')?;
        let (name, pattern) = variable.split_once(':').unwrap_or((variable, "[^/]+"));
        template = rest;
        let value = match pattern {
            "[^/]+" => {
                let segment = path.split('/').next().unwrap_or_default();
                (!segment.is_empty()).then_some(segment)?
            }
            ".*" | ".+" if !template.contains('{') => {
                let value = path.strip_suffix(template)?;
                (pattern == ".*" || !value.is_empty()).then_some(value)?
            }
            _ => return None,
        };
        path = path.strip_prefix(value)?;
        if !params.push(name, value) {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::normalize;

    fn norm(target: &str) -> NormalizedPath {
        normalize(&target.parse().expect("test target parses")).expect("normalizes")
    }

    fn found(method: Method, target: &str) -> (Operation, Vec<(&'static str, String)>) {
        let path = norm(target);
        match route(&method, &path) {
            RouteMatch::Found(route) => (
                route.operation,
                route
                    .params
                    .iter()
                    .map(|(k, v)| (k, v.to_owned()))
                    .collect(),
            ),
            other => panic!("{method} {target}: {other:?}"),
        }
    }

    fn name(value: &str) -> Vec<(&'static str, String)> {
        vec![("name", value.to_owned())]
    }

    #[test]
    fn operation_names_are_unique_and_resolvable() {
        let all = Operation::all();
        for (i, op) in all.iter().enumerate() {
            assert_eq!(Operation::from_name(op.as_str()), Some(*op));
            assert_eq!(op.to_string(), op.as_str());
            assert!(!all[..i].contains(op));
        }
        assert_eq!(Operation::from_name("containerlist"), None);
        // Every operation has a route, and every route a known operation.
        for op in all {
            assert!(
                ROUTES.iter().any(|def| def.operation == *op),
                "{op} has no route"
            );
        }
    }

    /// `match_template` relies on these shapes to mirror mux's regexps.
    #[test]
    fn table_templates_are_supported() {
        for def in table() {
            let mut rest = def.template;
            let mut params = 0;
            assert!(rest.starts_with('/'), "{}", def.template);
            while let Some(open) = rest.find('{') {
                let close = open + rest[open..].find('}').expect("closed variable");
                let inner = &rest[open + 1..close];
                rest = &rest[close + 1..];
                params += 1;
                match inner.split_once(':').map(|(_, pattern)| pattern) {
                    None => assert!(rest.is_empty() || rest.starts_with('/'), "{}", def.template),
                    Some(".*" | ".+") => assert!(!rest.contains('{'), "{}", def.template),
                    Some(other) => panic!("unsupported pattern {other} in {}", def.template),
                }
            }
            assert!(params <= MAX_PARAMS, "{}", def.template);
            assert!(!rest.contains('}'), "{}", def.template);
        }
    }

    #[test]
    fn releases_cover_every_engine_boundary() {
        for def in table() {
            if let Engines::Since(major, minor) | Engines::Before(major, minor) = def.engines {
                assert!(RELEASES.contains(&(major, minor)), "{}", def.template);
            }
        }
        assert!(RELEASES.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn image_names_may_contain_slashes_and_route_words() {
        let cases = [
            (
                GET,
                "/images/registry:5000/org/app:v1/json",
                Op::ImageInspect,
                "registry:5000/org/app:v1",
            ),
            (
                GET,
                "/v1.41/images/registry:5000/org/app:v1/json",
                Op::ImageInspect,
                "registry:5000/org/app:v1",
            ),
            (GET, "/images/foo/tag/json", Op::ImageInspect, "foo/tag"),
            (GET, "/images/json/json", Op::ImageInspect, "json"),
            (GET, "/images/search/json", Op::ImageInspect, "search"),
            (GET, "/images/get/get", Op::ImageGet, "get"),
            (
                GET,
                "/images/foo/attestations/json",
                Op::ImageInspect,
                "foo/attestations",
            ),
            (POST, "/images/foo/tag", Op::ImageTag, "foo"),
            (POST, "/images/foo/tag/tag", Op::ImageTag, "foo/tag"),
            (POST, "/images/foo/push/tag", Op::ImageTag, "foo/push"),
            (
                POST,
                "/v1.56/images/registry:5000/org/app:v1/push",
                Op::ImagePush,
                "registry:5000/org/app:v1",
            ),
            (DELETE, "/images/json", Op::ImageDelete, "json"),
            (
                DELETE,
                "/images/registry:5000/org/app@sha256:abc",
                Op::ImageDelete,
                "registry:5000/org/app@sha256:abc",
            ),
            (
                DELETE,
                "/v1.41/images/v1.40/foo",
                Op::ImageDelete,
                "v1.40/foo",
            ),
            (DELETE, "/images/", Op::ImageDelete, ""),
            (
                GET,
                "/distribution/docker.io/library/alpine:3/json",
                Op::DistributionInspect,
                "docker.io/library/alpine:3",
            ),
            (
                GET,
                "/plugins/privileges/json",
                Op::PluginInspect,
                "privileges",
            ),
            (
                POST,
                "/plugins/vieux/sshfs:latest/enable",
                Op::PluginEnable,
                "vieux/sshfs:latest",
            ),
            (
                DELETE,
                "/plugins/foo/enable",
                Op::PluginDelete,
                "foo/enable",
            ),
            (
                POST,
                "/containers/create/start",
                Op::ContainerStart,
                "create",
            ),
            (DELETE, "/containers/foo/", Op::ContainerDelete, "foo/"),
            (GET, "/containers/a%2Fb/json", Op::ContainerInspect, "a/b"),
        ];
        for (method, target, op, value) in cases {
            assert_eq!(
                found(method.clone(), target),
                (op, name(value)),
                "{method} {target}"
            );
        }
        // Exact templates win where registered first.
        assert_eq!(found(GET, "/images/json"), (Op::ImageList, vec![]));
        assert_eq!(found(GET, "/v1.41/images/json"), (Op::ImageList, vec![]));
        assert_eq!(found(POST, "/images/create"), (Op::ImageCreate, vec![]));
    }

    #[test]
    fn checkpoint_delete_masks_container_delete() {
        let expected = vec![("name", "foo".to_owned()), ("checkpoint", "cp1".to_owned())];
        assert_eq!(
            found(DELETE, "/containers/foo/checkpoints/cp1"),
            (Op::CheckpointDelete, expected)
        );
        // {name} is one segment: a slashed name falls through to ContainerDelete.
        assert_eq!(
            found(DELETE, "/containers/foo/bar/checkpoints/cp1"),
            (Op::ContainerDelete, name("foo/bar/checkpoints/cp1"))
        );
        assert_eq!(
            found(GET, "/containers/a/b/checkpoints"),
            (Op::CheckpointList, name("a/b"))
        );
    }

    #[test]
    fn trailing_slashes_and_segment_variables() {
        assert_eq!(route(&GET, &norm("/containers/json/")), RouteMatch::NoRoute);
        assert_eq!(route(&GET, &norm("/images/foo/json/")), RouteMatch::NoRoute);
        assert_eq!(route(&GET, &norm("/services/abc/")), RouteMatch::NoRoute);
        assert_eq!(route(&GET, &norm("/services/a/b")), RouteMatch::NoRoute);
        assert_eq!(found(GET, "/networks/"), (Op::NetworkList, vec![]));
        assert_eq!(
            found(GET, "/networks/abc/"),
            (Op::NetworkInspect, vec![("id", "abc/".to_owned())])
        );
        assert_eq!(found(GET, "/volumes/"), (Op::VolumeInspect, name("")));
        assert_eq!(
            found(GET, "/configs/create"),
            (Op::ConfigInspect, vec![("id", "create".to_owned())])
        );
    }

    #[test]
    fn methods_must_match_exactly() {
        assert_eq!(route(&HEAD, &norm("/containers/json")), RouteMatch::NoRoute);
        assert_eq!(route(&POST, &norm("/_ping")), RouteMatch::NoRoute);
        let lower = Method::from_bytes(b"get").unwrap();
        assert_eq!(
            route(&lower, &norm("/containers/json")),
            RouteMatch::NoRoute
        );
        assert_eq!(found(HEAD, "/v1.41/_ping"), (Op::SystemPingHead, vec![]));
        assert_eq!(
            found(HEAD, "/containers/c1/archive"),
            (Op::ContainerArchiveInfo, name("c1"))
        );
        assert_eq!(
            route(&POST, &norm("/containers/foo/attach/ws")),
            RouteMatch::NoRoute
        );
    }

    #[test]
    fn options_matches_any_path() {
        let anyroute = |v: &str| vec![("anyroute", v.to_owned())];
        assert_eq!(found(OPTIONS, "/"), (Op::SystemOptions, anyroute("")));
        assert_eq!(
            found(OPTIONS, "/v1.41/containers/json"),
            (Op::SystemOptions, anyroute("containers/json"))
        );
        assert_eq!(
            found(OPTIONS, "/v1.41"),
            (Op::SystemOptions, anyroute("v1.41"))
        );
        assert_eq!(
            found(OPTIONS, "/debug/vars"),
            (Op::SystemOptions, anyroute("debug/vars"))
        );
    }

    #[test]
    fn debug_routes_of_all_releases() {
        // Engines >= 28: GET, with or without version; before 28: any method
        // (OPTIONS excepted, matched earlier), unversioned only.
        assert_eq!(found(GET, "/debug/vars"), (Op::DebugVars, vec![]));
        assert_eq!(found(GET, "/v1.41/debug/vars"), (Op::DebugVars, vec![]));
        assert_eq!(
            found(POST, "/debug/pprof/symbol"),
            (Op::DebugPprofSymbol, vec![])
        );
        assert_eq!(
            route(&POST, &norm("/v1.41/debug/vars")),
            RouteMatch::NoRoute
        );
        assert_eq!(
            found(GET, "/debug/pprof/heap"),
            (Op::DebugPprofLookup, name("heap"))
        );
        assert_eq!(route(&GET, &norm("/debug/pprof")), RouteMatch::NoRoute);
    }

    #[test]
    fn releases_that_disagree_are_ambiguous() {
        static TABLE: [RouteDef; 3] = [
            since(def(POST, "/things/{name:.*}/go", Op::ContainerStart), 28, 0),
            def(POST, "/things/{name:.*}", Op::ContainerUpdate),
            def(GET, "/things/{name}", Op::ContainerInspect),
        ];
        let path = norm("/things/a/go");
        match route_in(&TABLE, &POST, &path) {
            RouteMatch::Ambiguous(first, other) => {
                assert_eq!(
                    (first.operation, first.params.get("name")),
                    (Op::ContainerStart, Some("a"))
                );
                assert_eq!(
                    (other.operation, other.params.get("name")),
                    (Op::ContainerUpdate, Some("a/go"))
                );
            }
            other => panic!("{other:?}"),
        }
        // Only one interpretation where the newer route does not match.
        assert!(
            matches!(route_in(&TABLE, &POST, &norm("/things/a")), RouteMatch::Found(r) if r.operation == Op::ContainerUpdate)
        );
        assert!(
            matches!(route_in(&TABLE, &GET, &norm("/things/a")), RouteMatch::Found(r) if r.operation == Op::ContainerInspect)
        );
        assert_eq!(
            route_in(&TABLE, &GET, &norm("/things/a/go")),
            RouteMatch::NoRoute
        );
    }
}
