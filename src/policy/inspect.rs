//! Body and parameter inspection for confined roles.
//!
//! Each function decodes a request the way dockerd does (through
//! [`gojson`], which mirrors Go's `encoding/json`) into the parts of
//! Docker's Go types that can grant host access, and refuses any value that
//! would. Shapes list the Go fields in declaration order, with embedded
//! structs flattened in place, because that order decides which field a
//! case-folded key lands in.
//!
//! Settings dockerd reads from more than one place are checked in every
//! place: a container create body is checked both in `HostConfig` and in the
//! deprecated top-level copy of its fields that dockerd 20.10 still honours
//! when `HostConfig` is absent.

use http::HeaderMap;

use super::ownership::OWNER_LABEL;
use super::reference;
use dockgate_wire::gojson::{self, AccessError, Field, Shape, View};
use dockgate_wire::query::Query;

/// A setting the role may not obtain.
#[derive(Debug, PartialEq, Eq)]
pub struct Violation {
    /// Stable rule name for the audit log and the error message.
    pub rule: &'static str,
    /// What was refused, phrased to follow "may not".
    pub what: String,
}

/// A body or parameter dockgate could not decode as dockerd would.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Rejection {
    Malformed(Malformed),
    Violation(Violation),
}

impl Rejection {
    pub fn either<T>(
        self,
        malformed: impl FnOnce(Malformed) -> T,
        violation: impl FnOnce(Violation) -> T,
    ) -> T {
        match self {
            Rejection::Malformed(m) => malformed(m),
            Rejection::Violation(v) => violation(v),
        }
    }
}

impl From<gojson::Error> for Rejection {
    fn from(e: gojson::Error) -> Self {
        Rejection::Malformed(Malformed(e.to_string()))
    }
}

impl From<AccessError> for Rejection {
    fn from(e: AccessError) -> Self {
        Rejection::Malformed(Malformed(format!("cannot inspect body: {e}")))
    }
}

fn refuse<T>(rule: &'static str, what: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::Violation(Violation {
        rule,
        what: what.into(),
    }))
}

/// Objects a request refers to, which the caller must own.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Refs {
    pub containers: Vec<String>,
    pub volumes: Vec<String>,
    pub networks: Vec<String>,
    /// Images are shared by name: only an ID prefix must find the caller's own.
    pub images: Vec<String>,
}

/// Most references one body may make. Each costs an ownership lookup on
/// the daemon, so a body of thousands would hold the gateway and the daemon
/// busy for minutes; real containers name a handful.
pub const MAX_REFERENCES: usize = 64;

impl Refs {
    pub fn len(&self) -> usize {
        self.containers.len() + self.volumes.len() + self.networks.len() + self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn within_limit(&self) -> Result<(), Rejection> {
        if self.len() > MAX_REFERENCES {
            return refuse(
                "confined.references",
                format!(
                    "refer to more than {MAX_REFERENCES} containers, volumes and networks in one request"
                ),
            );
        }
        Ok(())
    }
}

/// dockerd's `CheckForJSON`: a body must be declared `application/json`
/// (parameters such as `charset` allowed). An empty body is refused too:
/// every inspected operation needs one.
pub fn require_json(headers: &HeaderMap, body: &[u8]) -> Result<(), Malformed> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Malformed("request body is empty".into()));
    }
    let content_type = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = content_type.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(Malformed(format!(
            "Content-Type specified ({content_type}) must be 'application/json'"
        )))
    }
}

// ---- Shapes of Docker's Go types (the fields that matter) ----

static STRING: Shape = Shape::String;
static OPAQUE: Shape = Shape::Opaque;

static DRIVER: Shape = Shape::Struct(&[
    Field {
        name: "Name",
        shape: Shape::String,
    },
    Field {
        name: "Options",
        shape: Shape::Map(&STRING),
    },
]);
static VOLUME_OPTIONS: Shape = Shape::Struct(&[
    Field {
        name: "NoCopy",
        shape: Shape::Bool,
    },
    Field {
        name: "Labels",
        shape: Shape::Map(&STRING),
    },
    Field {
        name: "DriverConfig",
        shape: Shape::Ptr(&DRIVER),
    },
]);
/// `mount.Mount`.
static MOUNT: Shape = Shape::Struct(&[
    Field {
        name: "Type",
        shape: Shape::String,
    },
    Field {
        name: "Source",
        shape: Shape::String,
    },
    Field {
        name: "Target",
        shape: Shape::String,
    },
    Field {
        name: "ReadOnly",
        shape: Shape::Bool,
    },
    Field {
        name: "Consistency",
        shape: Shape::String,
    },
    Field {
        name: "BindOptions",
        shape: Shape::Ptr(&OPAQUE),
    },
    Field {
        name: "VolumeOptions",
        shape: Shape::Ptr(&VOLUME_OPTIONS),
    },
    Field {
        name: "TmpfsOptions",
        shape: Shape::Ptr(&OPAQUE),
    },
]);

/// `container.HostConfig` with its embedded `Resources`, in Go field order,
/// after any fields given first.
macro_rules! host_config_fields {
    ($($first:expr,)*) => {
        [
            $($first,)*
            Field { name: "Binds", shape: Shape::Slice(&STRING) },
            Field { name: "LogConfig", shape: Shape::Struct(&[
                Field { name: "Type", shape: Shape::String },
            ]) },
            Field { name: "NetworkMode", shape: Shape::String },
            Field { name: "VolumeDriver", shape: Shape::String },
            Field { name: "VolumesFrom", shape: Shape::Slice(&STRING) },
            Field { name: "CapAdd", shape: Shape::StrSlice },
            Field { name: "CgroupnsMode", shape: Shape::String },
            Field { name: "IpcMode", shape: Shape::String },
            Field { name: "Cgroup", shape: Shape::String },
            Field { name: "Links", shape: Shape::Slice(&STRING) },
            Field { name: "OomScoreAdj", shape: Shape::Int },
            Field { name: "PidMode", shape: Shape::String },
            Field { name: "Privileged", shape: Shape::Bool },
            Field { name: "SecurityOpt", shape: Shape::Slice(&STRING) },
            Field { name: "UTSMode", shape: Shape::String },
            Field { name: "UsernsMode", shape: Shape::String },
            Field { name: "Sysctls", shape: Shape::Map(&STRING) },
            Field { name: "Runtime", shape: Shape::String },
            Field { name: "Isolation", shape: Shape::String },
            // Resources (embedded)
            Field { name: "CgroupParent", shape: Shape::String },
            Field { name: "Devices", shape: Shape::Slice(&OPAQUE) },
            Field { name: "DeviceCgroupRules", shape: Shape::Slice(&STRING) },
            Field { name: "DeviceRequests", shape: Shape::Slice(&OPAQUE) },
            // HostConfig again
            Field { name: "Mounts", shape: Shape::Slice(&MOUNT) },
            Field { name: "MaskedPaths", shape: Shape::Slice(&STRING) },
            Field { name: "ReadonlyPaths", shape: Shape::Slice(&STRING) },
            // API 1.40 only; refused wherever it appears.
            Field { name: "Capabilities", shape: Shape::Slice(&STRING) },
            // API ≥ 1.46.
            Field { name: "Annotations", shape: Shape::Map(&STRING) },
        ]
    };
}

static HOST_CONFIG: Shape = Shape::Struct(&host_config_fields!());

/// `network.EndpointSettings`: the configuration part, `NetworkID` (which
/// dockerd prefers over the network the request names) and `DriverOpts`.
static ENDPOINT_SETTINGS: Shape = Shape::Struct(&[
    Field {
        name: "IPAMConfig",
        shape: Shape::Ptr(&OPAQUE),
    },
    Field {
        name: "Links",
        shape: Shape::Slice(&STRING),
    },
    Field {
        name: "Aliases",
        shape: Shape::Slice(&STRING),
    },
    Field {
        name: "NetworkID",
        shape: Shape::String,
    },
    Field {
        name: "DriverOpts",
        shape: Shape::Map(&STRING),
    },
]);

static NETWORKING_CONFIG: Shape = Shape::Struct(&[Field {
    name: "EndpointsConfig",
    shape: Shape::Map(&Shape::Ptr(&ENDPOINT_SETTINGS)),
}]);

/// `runconfig.ContainerConfigWrapper`: `container.Config` embedded (its
/// `Labels`), the `HostConfig` and `NetworkingConfig` members, and (20.10)
/// the deprecated embedded `HostConfig`, whose fields sit at the top level.
static CONTAINER_CREATE: Shape = Shape::Struct(&host_config_fields!(
    Field {
        name: "Image",
        shape: Shape::String
    },
    Field {
        name: "Labels",
        shape: Shape::Map(&STRING)
    },
    Field {
        name: "HostConfig",
        shape: Shape::Ptr(&HOST_CONFIG)
    },
    Field {
        name: "NetworkingConfig",
        shape: Shape::Ptr(&NETWORKING_CONFIG)
    },
));

/// `container.UpdateConfig`: `Resources` embedded, plus `RestartPolicy`.
static CONTAINER_UPDATE: Shape = Shape::Struct(&[
    Field {
        name: "CgroupParent",
        shape: Shape::String,
    },
    Field {
        name: "Devices",
        shape: Shape::Slice(&OPAQUE),
    },
    Field {
        name: "DeviceCgroupRules",
        shape: Shape::Slice(&STRING),
    },
    Field {
        name: "DeviceRequests",
        shape: Shape::Slice(&OPAQUE),
    },
]);

/// `types.ExecConfig`.
static EXEC_CREATE: Shape = Shape::Struct(&[Field {
    name: "Privileged",
    shape: Shape::Bool,
}]);

/// `volume.CreateOptions` (`VolumeCreateBody` in 20.10).
static VOLUME_CREATE: Shape = Shape::Struct(&[
    Field {
        name: "ClusterVolumeSpec",
        shape: Shape::Ptr(&OPAQUE),
    },
    Field {
        name: "Driver",
        shape: Shape::String,
    },
    Field {
        name: "DriverOpts",
        shape: Shape::Map(&STRING),
    },
]);

static IPAM: Shape = Shape::Struct(&[
    Field {
        name: "Driver",
        shape: Shape::String,
    },
    Field {
        name: "Config",
        shape: Shape::Slice(&OPAQUE),
    },
    Field {
        name: "Options",
        shape: Shape::Map(&STRING),
    },
]);
/// `types.NetworkCreateRequest`.
static NETWORK_CREATE: Shape = Shape::Struct(&[
    Field {
        name: "Driver",
        shape: Shape::String,
    },
    Field {
        name: "Scope",
        shape: Shape::String,
    },
    Field {
        name: "IPAM",
        shape: Shape::Ptr(&IPAM),
    },
    Field {
        name: "Ingress",
        shape: Shape::Bool,
    },
    Field {
        name: "ConfigOnly",
        shape: Shape::Bool,
    },
    Field {
        name: "ConfigFrom",
        shape: Shape::Ptr(&OPAQUE),
    },
    Field {
        name: "Options",
        shape: Shape::Map(&STRING),
    },
]);

/// The `Name` member of volume and network create bodies.
static NAMED: Shape = Shape::Struct(&[Field {
    name: "Name",
    shape: Shape::String,
}]);

/// `registry.AuthConfig` (`types.AuthConfig` in 20.10), which dockerd
/// decodes through a pointer: `null` leaves it nil.
static AUTH_CONFIG: Shape = Shape::Struct(&[
    Field {
        name: "username",
        shape: Shape::String,
    },
    Field {
        name: "password",
        shape: Shape::String,
    },
    Field {
        name: "auth",
        shape: Shape::String,
    },
    Field {
        name: "email",
        shape: Shape::String,
    },
    Field {
        name: "serveraddress",
        shape: Shape::String,
    },
    Field {
        name: "identitytoken",
        shape: Shape::String,
    },
    Field {
        name: "registrytoken",
        shape: Shape::String,
    },
]);

static AUTH: Shape = Shape::Ptr(&AUTH_CONFIG);

/// `types.NetworkConnect` / `types.NetworkDisconnect`.
static NETWORK_CONNECT: Shape = Shape::Struct(&[
    Field {
        name: "Container",
        shape: Shape::String,
    },
    Field {
        name: "EndpointConfig",
        shape: Shape::Ptr(&ENDPOINT_SETTINGS),
    },
]);

// ---- Checks ----

pub fn container_create(body: &[u8], _version: Option<&str>) -> Result<Refs, Rejection> {
    let go = gojson::unmarshal(body, &CONTAINER_CREATE)?;
    let top = go.view(&CONTAINER_CREATE);
    let mut refs = Refs::default();
    let image = top.field("Image")?.as_str()?.unwrap_or("");
    if !image.is_empty() {
        refs.images.push(image.to_owned());
    }
    host_config(top, &mut refs)?;
    let inner = top.field("HostConfig")?;
    if !inner.is_nil()? {
        host_config(inner, &mut refs)?;
    }
    for (network, settings) in top.path("NetworkingConfig.EndpointsConfig")?.entries()? {
        network_mode(network, &mut refs)?;
        endpoint_settings(settings, &mut refs)?;
    }
    refs.within_limit()?;
    Ok(refs)
}

pub fn container_update(body: &[u8]) -> Result<(), Rejection> {
    let go = gojson::unmarshal(body, &CONTAINER_UPDATE)?;
    resources(go.view(&CONTAINER_UPDATE))
}

pub fn exec_create(body: &[u8]) -> Result<(), Rejection> {
    let go = gojson::unmarshal(body, &EXEC_CREATE)?;
    if go.view(&EXEC_CREATE).field("Privileged")?.as_bool()? == Some(true) {
        return refuse("exec.privileged", "run a privileged exec");
    }
    Ok(())
}

pub fn volume_create(body: &[u8]) -> Result<Refs, Rejection> {
    let go = gojson::unmarshal(body, &VOLUME_CREATE)?;
    let v = go.view(&VOLUME_CREATE);
    if !v.field("ClusterVolumeSpec")?.is_nil()? {
        return refuse("volume.cluster", "create a cluster volume");
    }
    let driver = v.field("Driver")?.as_str()?.unwrap_or("");
    if !matches!(driver, "" | "local") {
        return refuse(
            "volume.driver",
            format!("create a volume with driver {driver:?}"),
        );
    }
    if v.field("DriverOpts")?.entries()?.len() > 0 {
        return refuse(
            "volume.driver-opts",
            "set volume driver options (they can bind host paths)",
        );
    }
    Ok(Refs::default())
}

pub fn network_create(body: &[u8]) -> Result<Refs, Rejection> {
    let go = gojson::unmarshal(body, &NETWORK_CREATE)?;
    let n = go.view(&NETWORK_CREATE);
    let driver = n.field("Driver")?.as_str()?.unwrap_or("");
    if !matches!(driver, "" | "bridge") {
        return refuse(
            "network.driver",
            format!("create a network with driver {driver:?}"),
        );
    }
    if !matches!(n.field("Scope")?.as_str()?.unwrap_or(""), "" | "local") {
        return refuse("network.scope", "create a non-local network");
    }
    if n.field("Ingress")?.as_bool()? == Some(true)
        || n.field("ConfigOnly")?.as_bool()? == Some(true)
        || !n.field("ConfigFrom")?.is_nil()?
    {
        return refuse("network.special", "create ingress or config-only networks");
    }
    if n.field("Options")?.entries()?.len() > 0 {
        return refuse("network.options", "set network driver options");
    }
    let ipam = n.field("IPAM")?;
    if !matches!(
        ipam.field("Driver")?.as_str()?.unwrap_or(""),
        "" | "default"
    ) || ipam.field("Options")?.entries()?.len() > 0
    {
        return refuse("network.ipam", "choose an IPAM driver or its options");
    }
    // Subnets, ranges and gateways become host routes and addresses: a
    // chosen prefix can capture the VM's own traffic (its gateway, the
    // cloud metadata address).
    if ipam.field("Config")?.elements()?.len() > 0 {
        return refuse(
            "network.ipam",
            "choose network subnets, ranges or gateways (they change the host's routes)",
        );
    }
    Ok(Refs::default())
}

/// The `Name` a volume or network create body asks for.
pub fn object_name(body: &[u8]) -> Result<Option<String>, Rejection> {
    let go = gojson::unmarshal(body, &NAMED)?;
    Ok(go.view(&NAMED).field("Name")?.as_str()?.map(str::to_owned))
}

/// The objects a network connect or disconnect names: its container, and
/// the network `EndpointConfig.NetworkID` names, which dockerd joins in
/// preference to the network in the path.
pub fn network_connect(body: &[u8]) -> Result<Refs, Rejection> {
    let go = gojson::unmarshal(body, &NETWORK_CONNECT)?;
    let connect = go.view(&NETWORK_CONNECT);
    let mut refs = Refs::default();
    let container = connect.field("Container")?.as_str()?.unwrap_or("");
    refs.containers.push(container.to_owned());
    endpoint_settings(connect.field("EndpointConfig")?, &mut refs)?;
    Ok(refs)
}

/// Build parameters the daemon turns into privileges.
pub fn build_query(query: &Query) -> Result<(), Rejection> {
    let network = query.get("networkmode").unwrap_or("");
    if !matches!(network, "" | "default" | "bridge" | "none") {
        return refuse(
            "build.networkmode",
            format!("build with network mode {network:?}"),
        );
    }
    if !query.get("cgroupparent").unwrap_or("").is_empty() {
        return refuse("build.cgroupparent", "build under a cgroup parent");
    }
    if !matches!(query.get("isolation").unwrap_or(""), "" | "default") {
        return refuse("build.isolation", "choose a build isolation");
    }
    if !query.get("remote").unwrap_or("").is_empty() {
        return refuse(
            "build.remote",
            "make the daemon fetch a remote build context",
        );
    }
    // BuildKit exporters name images themselves (`moby` with a `name`
    // attribute tags any name, past the `t` checks) or write elsewhere.
    if query
        .all("outputs")
        .any(|o| !matches!(o.trim(), "" | "[]" | "null"))
    {
        return refuse(
            "build.outputs",
            "choose build outputs (an exporter can name any image)",
        );
    }
    super::build::parameters(query)
}

/// The images a build's `cachefrom` parameter names (a JSON array of
/// strings; dockerd reads the first value).
pub fn build_cache_from(query: &Query) -> Result<Vec<String>, Malformed> {
    match query.get("cachefrom") {
        None | Some("") => Ok(Vec::new()),
        Some(text) => serde_json::from_str(text)
            .map_err(|_| Malformed("invalid cachefrom: want a JSON array of strings".into())),
    }
}

/// Adds the owner label to a build's `labels` parameter (a JSON object of
/// strings) so the image it produces is owned.
pub fn merge_build_labels(labels: Option<&str>, owner: &str) -> Result<String, Malformed> {
    let mut map = match labels {
        None | Some("") => serde_json::Map::new(),
        Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(m)) if m.values().all(serde_json::Value::is_string) => m,
            _ => {
                return Err(Malformed(
                    "invalid labels: want a JSON object of strings".into(),
                ))
            }
        },
    };
    map.insert(
        OWNER_LABEL.to_owned(),
        serde_json::Value::String(owner.to_owned()),
    );
    Ok(serde_json::Value::Object(map).to_string())
}

/// Image create: a pull of one image, by tag or digest. `fromSrc` makes
/// the daemon fetch a URL or import the body as an unowned image; a pull of
/// a bare repository pulls every tag, replacing other owners' tags. Returns
/// the reference pulled.
pub fn image_create_query(query: &Query) -> Result<String, Rejection> {
    if !query.get("fromSrc").unwrap_or("").is_empty() {
        return refuse("image.import", "import an image from a URL or archive");
    }
    // dockerd trims one trailing ':' before parsing fromImage.
    let image = query.get("fromImage").unwrap_or_default();
    let image = image.strip_suffix(':').unwrap_or(image);
    let pulled = reference::with_tag(image, query.get("tag"));
    if !reference::names_one_image(&pulled) {
        return refuse(
            "confined.pull-all-tags",
            format!(
                "pull every tag of {pulled:?} (name a tag or a digest: other owners' tags would be replaced)"
            ),
        );
    }
    Ok(pulled)
}

/// The `serveraddress` of a login body (`POST /auth`). The body carries a
/// password: what could not be decoded is reported without any of it (Go's
/// errors quote numbers and characters from the input).
pub fn login_server_address(body: &[u8]) -> Result<String, Malformed> {
    let malformed = || Malformed("cannot decode the login body as dockerd would".into());
    let go = gojson::unmarshal(body, &AUTH).map_err(|_| malformed())?;
    let auth = go.view(&AUTH);
    if auth.is_nil().map_err(|_| malformed())? {
        return Err(Malformed("the login body is null".into()));
    }
    let address = auth
        .field("serveraddress")
        .and_then(View::as_str)
        .map_err(|_| malformed())?;
    Ok(address.unwrap_or_default().to_owned())
}

fn host_config(hc: View<'_>, refs: &mut Refs) -> Result<(), Rejection> {
    if hc.field("Privileged")?.as_bool()? == Some(true) {
        return refuse("host.privileged", "create privileged containers");
    }
    for field in ["CapAdd", "Capabilities"] {
        if let Some(cap) = hc.field(field)?.strings()?.first() {
            return refuse("host.capabilities", format!("add capability {cap}"));
        }
    }
    for bind in hc.field("Binds")?.strings()? {
        bind_spec(bind, refs)?;
    }
    for mount in hc.field("Mounts")?.elements()? {
        mount_spec(mount, refs)?;
    }
    network_mode(hc.field("NetworkMode")?.as_str()?.unwrap_or(""), refs)?;
    for (field, allowed) in [
        ("PidMode", &[""][..]),
        ("IpcMode", &["", "private", "shareable", "none"][..]),
        ("UTSMode", &[""][..]),
        ("UsernsMode", &[""][..]),
        ("CgroupnsMode", &["", "private"][..]),
        ("Cgroup", &[""][..]),
    ] {
        let mode = hc.field(field)?.as_str()?.unwrap_or("");
        namespace_mode(field, mode, allowed, refs)?;
    }
    for opt in hc.field("SecurityOpt")?.strings()? {
        if !is_no_new_privileges(opt) {
            return refuse("host.security-opt", format!("set security option {opt:?}"));
        }
    }
    if hc.field("Sysctls")?.entries()?.len() > 0 {
        return refuse("host.sysctls", "set sysctls");
    }
    // Below 0 the kernel's OOM killer spares the container and kills the
    // host's processes instead.
    if let Some(adj) = hc.field("OomScoreAdj")?.as_i64()? {
        if adj < 0 {
            return refuse(
                "host.oom-score-adj",
                format!("set OomScoreAdj {adj} (below 0 it outlives the host's processes)"),
            );
        }
    }
    let runtime = hc.field("Runtime")?.as_str()?.unwrap_or("");
    if !runtime.is_empty() {
        return refuse("host.runtime", format!("choose runtime {runtime:?}"));
    }
    let driver = hc.field("VolumeDriver")?.as_str()?.unwrap_or("");
    if !matches!(driver, "" | "local") {
        return refuse(
            "host.volume-driver",
            format!("use volume driver {driver:?}"),
        );
    }
    if !matches!(
        hc.field("Isolation")?.as_str()?.unwrap_or(""),
        "" | "default"
    ) {
        return refuse("host.isolation", "choose an isolation technology");
    }
    for field in ["MaskedPaths", "ReadonlyPaths"] {
        if !hc.field(field)?.is_nil()? {
            return refuse("host.system-paths", format!("override {field}"));
        }
    }
    // Other log drivers make the daemon connect out with its own credentials.
    let log = hc.path("LogConfig.Type")?.as_str()?.unwrap_or("");
    if !matches!(log, "" | "json-file" | "local" | "none") {
        return refuse("host.log-driver", format!("use log driver {log:?}"));
    }
    if hc.field("Annotations")?.entries()?.len() > 0 {
        return refuse("host.annotations", "set runtime annotations");
    }
    for from in hc.field("VolumesFrom")?.strings()? {
        let container = from.split(':').next().unwrap_or("");
        refs.containers.push(container.to_owned());
    }
    for link in hc.field("Links")?.strings()? {
        let container = link.split(':').next().unwrap_or("");
        refs.containers
            .push(container.trim_start_matches('/').to_owned());
    }
    resources(hc)
}

fn resources(r: View<'_>) -> Result<(), Rejection> {
    if !r.field("CgroupParent")?.as_str()?.unwrap_or("").is_empty() {
        return refuse("host.cgroup-parent", "set a cgroup parent");
    }
    for field in ["Devices", "DeviceCgroupRules", "DeviceRequests"] {
        if r.field(field)?.elements()?.len() > 0 {
            return refuse("host.devices", format!("use host devices ({field})"));
        }
    }
    Ok(())
}

/// `source:target[:mode]`: a source that is a path (as dockerd's Linux
/// parser decides: absolute) binds the host; anything that is not a plain
/// volume name is refused outright.
fn bind_spec(bind: &str, refs: &mut Refs) -> Result<(), Rejection> {
    let parts: Vec<&str> = bind.split(':').collect();
    let source = match parts.len() {
        1 => return Ok(()), // anonymous volume at a container path
        2 | 3 => parts[0],
        _ => return refuse("host.binds", format!("use bind {bind:?}")),
    };
    if !is_volume_name(source) {
        return refuse("host.binds", format!("bind-mount host path {source:?}"));
    }
    refs.volumes.push(source.to_owned());
    Ok(())
}

/// dockerd's volume name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn is_volume_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn mount_spec(mount: View<'_>, refs: &mut Refs) -> Result<(), Rejection> {
    let kind = mount.field("Type")?.as_str()?.unwrap_or("");
    match kind {
        "tmpfs" => Ok(()),
        "volume" => {
            if !mount.field("BindOptions")?.is_nil()? {
                return refuse("host.mounts", "set bind options on a volume mount");
            }
            let driver = mount.path("VolumeOptions.DriverConfig")?;
            if !driver.is_nil()? {
                let name = driver.field("Name")?.as_str()?.unwrap_or("");
                if !matches!(name, "" | "local") || driver.field("Options")?.entries()?.len() > 0 {
                    return refuse(
                        "host.mounts",
                        "set volume driver options in a mount (they can bind host paths)",
                    );
                }
            }
            // Labels of the volume the mount creates: they could claim it
            // for another owner.
            if mount.path("VolumeOptions.Labels")?.entries()?.len() > 0 {
                return refuse("host.mounts", "label the volume a mount creates");
            }
            let source = mount.field("Source")?.as_str()?.unwrap_or("");
            if !source.is_empty() {
                refs.volumes.push(source.to_owned());
            }
            Ok(())
        }
        other => refuse("host.mounts", format!("use {other:?} mounts")),
    }
}

/// `NetworkMode` and `EndpointsConfig` keys: the host network never; another
/// container's namespace or a user network only if owned.
fn network_mode(mode: &str, refs: &mut Refs) -> Result<(), Rejection> {
    match mode {
        "" | "default" | "bridge" | "none" => Ok(()),
        m if m.eq_ignore_ascii_case("host") => refuse("host.network", "use the host network"),
        m => {
            if let Some(container) = m.strip_prefix("container:") {
                refs.containers.push(container.to_owned());
            } else {
                refs.networks.push(m.to_owned());
            }
            Ok(())
        }
    }
}

/// An endpoint's settings: `NetworkID` is a network reference dockerd
/// resolves (by name, ID or ID prefix) instead of the map key or path;
/// driver options reach the network driver (and, on newer engines,
/// interface sysctls).
fn endpoint_settings(settings: View<'_>, refs: &mut Refs) -> Result<(), Rejection> {
    let network = settings.field("NetworkID")?.as_str()?.unwrap_or("");
    if !network.is_empty() {
        network_mode(network, refs)?;
    }
    if settings.field("DriverOpts")?.entries()?.len() > 0 {
        return refuse("network.endpoint-options", "set endpoint driver options");
    }
    Ok(())
}

fn namespace_mode(
    field: &'static str,
    mode: &str,
    allowed: &[&str],
    refs: &mut Refs,
) -> Result<(), Rejection> {
    if allowed.contains(&mode) {
        return Ok(());
    }
    if let Some(container) = mode.strip_prefix("container:") {
        refs.containers.push(container.to_owned());
        return Ok(());
    }
    refuse("host.namespaces", format!("set {field} {mode:?}"))
}

fn is_no_new_privileges(opt: &str) -> bool {
    matches!(
        opt,
        "no-new-privileges" | "no-new-privileges=true" | "no-new-privileges:true"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: &str) -> Result<Refs, Rejection> {
        container_create(body.as_bytes(), Some("1.41"))
    }

    fn rule(r: Result<Refs, Rejection>) -> &'static str {
        match r {
            Err(Rejection::Violation(v)) => v.rule,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn plain_container_is_allowed() {
        let refs = create(r#"{"Image":"busybox","Cmd":["sh"],"HostConfig":{"Binds":["data:/data"],"NetworkMode":"default","AutoRemove":true}}"#).unwrap();
        assert_eq!(refs.volumes, ["data"]);
    }

    #[test]
    fn privileged_in_every_spelling() {
        // More spellings are in the corpus.
        for body in [
            r#"{"HostConfig":{"PRIVILEGED":true}}"#,
            r#"{"HostConfig":{"Privileged":true},"HostConfig":{"Memory":1}}"#,
        ] {
            assert_eq!(rule(create(body)), "host.privileged", "{body}");
        }
    }

    #[test]
    fn folded_keys_reach_their_fields() {
        // U+212A KELVIN SIGN folds to 'k'; the corpus holds more folds.
        assert_eq!(
            rule(create(
                "{\"HostConfig\":{\"Lin\u{212a}s\":[],\"CapAdd\":\"SYS_ADMIN\"}}"
            )),
            "host.capabilities"
        );
    }

    #[test]
    fn host_reaching_settings() {
        // Variants of what the corpus holds.
        let cases = [
            (
                r#"{"HostConfig":{"CapAdd":["NET_ADMIN"]}}"#,
                "host.capabilities",
            ),
            (
                r#"{"HostConfig":{"Mounts":[{"Type":"volume","Target":"/h","VolumeOptions":{"DriverConfig":{"Options":{"type":"none","o":"bind","device":"/"}}}}]}}"#,
                "host.mounts",
            ),
            (
                r#"{"HostConfig":{"Devices":[{"PathOnHost":"/dev/sda"}]}}"#,
                "host.devices",
            ),
            (
                r#"{"HostConfig":{"DeviceRequests":[{"Count":-1}]}}"#,
                "host.devices",
            ),
            (
                r#"{"HostConfig":{"LogConfig":{"Type":"syslog","Config":{"syslog-address":"tcp://10.0.0.1:514"}}}}"#,
                "host.log-driver",
            ),
            (
                r#"{"HostConfig":{"Sysctls":{"kernel.shmmax":"1"}}}"#,
                "host.sysctls",
            ),
            (r#"{"HostConfig":{"Binds":["/etc:/x:ro"]}}"#, "host.binds"),
            (r#"{"HostConfig":{"Binds":["./rel:/x"]}}"#, "host.binds"),
            (
                r#"{"HostConfig":{"Mounts":[{"Type":"Bind","Source":"/","Target":"/h"}]}}"#,
                "host.mounts",
            ),
            (r#"{"HostConfig":{"NetworkMode":"HOST"}}"#, "host.network"),
            (
                r#"{"HostConfig":{"SecurityOpt":["seccomp={}"]}}"#,
                "host.security-opt",
            ),
            (r#"{"HostConfig":{"Runtime":"runsc"}}"#, "host.runtime"),
            (r#"{"CapAdd":"ALL"}"#, "host.capabilities"),
        ];
        for (body, expected) in cases {
            assert_eq!(rule(create(body)), expected, "{body}");
        }
    }

    #[test]
    fn references_to_other_objects_are_collected() {
        let refs = create(r#"{"HostConfig":{"NetworkMode":"container:web","PidMode":"container:db","VolumesFrom":["data:ro"],"Links":["/cache:c"],"Mounts":[{"Type":"volume","Source":"v1","Target":"/v"}]},"NetworkingConfig":{"EndpointsConfig":{"mynet":{}}}}"#).unwrap();
        assert_eq!(refs.containers, ["web", "db", "data", "cache"]);
        assert_eq!(refs.volumes, ["v1"]);
        assert_eq!(refs.networks, ["mynet"]);
        let refs = create(r#"{"image":"3f2a","Image":"busybox"}"#).unwrap();
        assert_eq!(refs.images, ["busybox"]);
    }

    #[test]
    fn undecodable_bodies_are_malformed_not_allowed() {
        for body in [
            r#"{"HostConfig":{"Privileged":true}"#,
            r#"{"HostConfig":{"Binds":"/:/h"}}"#,
            "[]",
        ] {
            assert!(
                matches!(create(body), Err(Rejection::Malformed(_))),
                "{body}"
            );
        }
    }

    #[test]
    fn exec_volume_network_and_update() {
        assert!(exec_create(br#"{"Cmd":["sh"]}"#).is_ok());
        assert!(volume_create(br#"{"Name":"v"}"#).is_ok());
        assert!(volume_create(br#"{"Driver":"nfs-plugin"}"#).is_err());
        assert!(network_create(br#"{"Name":"n"}"#).is_ok());
        assert!(
            network_create(br#"{"Name":"n","Driver":"macvlan","Options":{"parent":"eth0"}}"#)
                .is_err()
        );
        assert!(container_update(br#"{"Memory":1000000}"#).is_ok());
        assert!(container_update(br#"{"CgroupParent":"/x"}"#).is_err());
        assert_eq!(
            network_connect(br#"{"Container":"web"}"#)
                .unwrap()
                .containers,
            ["web"]
        );
        let refs = network_connect(
            br#"{"Container":"web","EndpointConfig":{"NetworkID":"theirs","Aliases":["db"]}}"#,
        )
        .unwrap();
        assert_eq!(refs.networks, ["theirs"]);
        let refs =
            network_connect(br#"{"Container":"web","endpointconfig":{"networkID":"x"}}"#).unwrap();
        assert_eq!(refs.networks, ["x"]);
        assert_eq!(
            rule(network_connect(
                br#"{"Container":"web","EndpointConfig":{"DriverOpts":{"a":"b"}}}"#
            )),
            "network.endpoint-options"
        );
    }

    #[test]
    fn build_and_pull_parameters() {
        let q = |s: &str| Query::parse(Some(s)).unwrap();
        assert!(build_query(&q("t=app&networkmode=default")).is_ok());
        assert!(build_query(&q("remote=http://169.254.169.254/")).is_err());
        assert!(image_create_query(&q("fromImage=busybox&tag=latest")).is_ok());
        assert!(image_create_query(&q("fromSrc=http://x/")).is_err());
        let labels =
            merge_build_labels(Some(r#"{"a":"b","dockgate.owner":"cn=admin"}"#), "cn=ci").unwrap();
        let v: serde_json::Value = serde_json::from_str(&labels).unwrap();
        assert_eq!(v["dockgate.owner"], "cn=ci");
        assert_eq!(v["a"], "b");
    }

    #[test]
    fn content_type_must_be_json() {
        let mut h = HeaderMap::new();
        assert!(require_json(&h, b"{}").is_err());
        h.insert(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8".parse().unwrap(),
        );
        assert!(require_json(&h, b"{}").is_ok());
        assert!(require_json(&h, b"  ").is_err());
        h.insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(require_json(&h, b"{}").is_err());
    }

    /// The hostile corpus the end-to-end tests send through the gateway
    /// (tests/corpus/confinement.toml): every body and query string it
    /// expects one of these inspections to refuse, refused here for the
    /// same rule without a gateway.
    mod corpus {
        use super::*;

        #[derive(serde::Deserialize)]
        struct File {
            case: Vec<Case>,
        }

        /// The part of a corpus case these tests read.
        #[derive(serde::Deserialize)]
        struct Case {
            label: String,
            target: String,
            body: Option<String>,
            chunks: Option<Vec<String>>,
            content_type: Option<String>,
            status: toml::Value,
            rule: Option<String>,
            message_contains: Option<String>,
        }

        fn cases() -> Vec<Case> {
            let file: File =
                toml::from_str(include_str!("../../tests/corpus/confinement.toml")).unwrap();
            file.case
        }

        /// Fills placeholders with stand-ins: `$IMG` an image reference
        /// (a JSON string), the others an object name.
        fn fill(template: &str) -> String {
            let mut out = String::new();
            let mut rest = template;
            while let Some(at) = rest.find('$') {
                out.push_str(&rest[..at]);
                let len = rest[at + 1..]
                    .bytes()
                    .take_while(|b| b.is_ascii_uppercase() || *b == b'_')
                    .count();
                let name = &rest[at + 1..at + 1 + len];
                if name == "IMG" {
                    out.push_str(r#""busybox""#);
                } else {
                    out.push_str(&name.to_ascii_lowercase().replace('_', "-"));
                }
                rest = &rest[at + 1 + len..];
            }
            out.push_str(rest);
            out
        }

        fn violated<T: std::fmt::Debug>(r: Result<T, Rejection>) -> &'static str {
            match r {
                Err(Rejection::Violation(v)) => v.rule,
                other => panic!("expected a violation, got {other:?}"),
            }
        }

        #[test]
        fn corpus_violations_are_found_by_inspection() {
            let mut checked = 0;
            for case in cases() {
                let Some(rule) = &case.rule else { continue };
                // Refused by the rule table's parameter list, before inspection.
                if rule == "confined.query" {
                    continue;
                }
                let target = fill(&case.target);
                let (path, query) = target.split_once('?').unwrap_or((&target, ""));
                let body = case
                    .chunks
                    .as_ref()
                    .map(|c| c.concat())
                    .or(case.body.clone())
                    .map(|b| fill(&b))
                    .unwrap_or_default();
                let body = body.as_bytes();
                let query = Query::parse(Some(query)).unwrap();
                let found = match path {
                    p if p.ends_with("/containers/create") => violated(create_body(body)),
                    p if p.ends_with("/exec") => violated(exec_create(body)),
                    p if p.ends_with("/volumes/create") => violated(volume_create(body)),
                    p if p.ends_with("/networks/create") => violated(network_create(body)),
                    p if p.ends_with("/build") => violated(build_query(&query)),
                    p if p.ends_with("/images/create") => violated(image_create_query(&query)),
                    // Rules of the role or of confinement, not of inspection.
                    _ => continue,
                };
                assert_eq!(found, rule, "{}", case.label);
                checked += 1;
            }
            assert!(checked >= 77, "only {checked} corpus cases were inspected");
        }

        /// A create as the shipped `ci` role's: inspected, then held to
        /// its `[containers]` ceilings.
        fn create_body(body: &[u8]) -> Result<Refs, Rejection> {
            let refs = container_create(body, Some("1.41"))?;
            let policy = crate::policy::Policy::new(&crate::config::Config::default()).unwrap();
            let ci = policy.roles.get("ci").unwrap();
            ci.containers.as_ref().unwrap().create(body)?;
            Ok(refs)
        }

        #[test]
        fn corpus_bodies_dockerd_could_not_decode_are_malformed() {
            let mut checked = 0;
            for case in cases() {
                // A 400 that names a missing object is an ownership answer.
                let unowned = case
                    .message_contains
                    .as_deref()
                    .is_some_and(|m| m.starts_with("No such"));
                let malformed = case.target == "/v1.41/containers/create?name=$NAME"
                    && case.status.as_integer() == Some(400)
                    && case.content_type.is_none()
                    && !unowned;
                if !malformed {
                    continue;
                }
                let body = fill(case.body.as_deref().unwrap_or_default());
                assert!(
                    matches!(create_body(body.as_bytes()), Err(Rejection::Malformed(_))),
                    "{}",
                    case.label
                );
                checked += 1;
            }
            assert!(checked >= 4, "only {checked} malformed corpus bodies");
        }
    }
}
