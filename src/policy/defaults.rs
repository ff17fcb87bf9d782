//! Injected defaults and enforced ceilings for the containers a role
//! creates (`[roles.NAME.containers]`).
//!
//! A create body is decoded as dockerd decodes it ([`gojson`]). A value
//! past a ceiling is refused, naming the setting (`containers.pids_limit`);
//! what the role always gets is then appended as one more `"HostConfig"`
//! member, after everything the client wrote, the way the owner label is
//! (see [`super::ownership`]). Go's decoder merges a repeated struct key
//! into the `HostConfig` it already holds, so the client's other settings
//! survive; scalars are replaced, and slices are replaced whole, which is
//! why an appended slice repeats the client's entries.
//!
//! dockerd reads host settings from the inner `HostConfig` when one exists
//! and otherwise from the deprecated copy of its fields at the top level of
//! the body (`runconfig.ContainerConfigWrapper`). The appended member always
//! makes an inner one exist, so top-level host settings would be silently
//! ignored (or, for `Memory`, `MemorySwap`, `CpuShares` and `CpusetCpus`,
//! merged when the inner value is zero). A role with container settings is
//! therefore refused any top-level host setting; real clients never send
//! one.
//!
//! A create's `PidsLimit` of 0 is what the docker CLI sends when no limit
//! is asked for, so it gets the default; below 0 (no limit) is refused.
//!
//! `ContainerUpdate` can change `PidsLimit`, `Memory`, `MemorySwap` and the
//! CPU limits of a running container; [`Containers::update`] holds them to
//! the same ceilings. dockerd turns an update's `PidsLimit <= 0` into "no
//! limit", so there 0 is refused too.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::inspect::{Rejection, Violation};
use crate::config::ContainerSettings;
use dockgate_wire::gojson::{self, Field, Shape, View};

/// The compiled `[roles.NAME.containers]` settings.
#[derive(Debug, Clone)]
pub struct Containers {
    no_new_privileges: bool,
    cap_drop: Vec<String>,
    pids_limit: Option<i64>,
    memory: Option<i64>,
    nano_cpus: Option<i64>,
    ulimits: Vec<(String, i64)>,
    oom_score_adj: Option<i64>,
    ports: Option<Ports>,
    readonly_rootfs: bool,
}

#[derive(Debug, Clone)]
struct Ports {
    /// `None`: any address.
    addresses: Option<Vec<IpAddr>>,
    ranges: Vec<(u16, u16)>,
}

/// The ulimit names dockerd knows (`go-units`' `ulimitNameMapping`).
const ULIMITS: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

impl Containers {
    /// Checks and compiles the settings; the error names the bad key.
    pub fn compile(s: &ContainerSettings) -> Result<Containers, String> {
        for (key, value) in [
            ("pids_limit", s.pids_limit),
            ("memory", s.memory),
            ("nano_cpus", s.nano_cpus),
        ] {
            if value.is_some_and(|v| v <= 0) {
                return Err(format!("containers.{key} must be above 0"));
            }
        }
        if s.oom_score_adj.is_some_and(|v| !(0..=1000).contains(&v)) {
            return Err("containers.oom_score_adj must be 0 to 1000".into());
        }
        for (name, max) in &s.ulimits {
            if !ULIMITS.contains(&name.as_str()) {
                return Err(format!("containers.ulimits: unknown ulimit {name:?}"));
            }
            if *max < 0 {
                return Err(format!("containers.ulimits.{name} must be 0 or more"));
            }
        }
        for cap in &s.cap_drop {
            if cap.is_empty() || !cap.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("containers.cap_drop: bad capability {cap:?}"));
            }
        }
        let ports = match &s.ports {
            None => None,
            Some(p) => {
                let addresses = if p.addresses.iter().any(|a| a == "*") {
                    None
                } else {
                    let parsed = p.addresses.iter().map(|a| {
                        a.parse::<IpAddr>()
                            .map_err(|_| format!("containers.ports.addresses: bad address {a:?}"))
                    });
                    Some(parsed.collect::<Result<Vec<_>, _>>()?)
                };
                let ranges = p
                    .ranges
                    .iter()
                    .map(|r| {
                        port_range(r)
                            .filter(|(low, _)| *low > 0)
                            .ok_or_else(|| format!("containers.ports.ranges: bad range {r:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(Ports { addresses, ranges })
            }
        };
        Ok(Containers {
            no_new_privileges: s.no_new_privileges,
            cap_drop: s.cap_drop.clone(),
            pids_limit: s.pids_limit,
            memory: s.memory,
            nano_cpus: s.nano_cpus,
            ulimits: s.ulimits.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            oom_score_adj: s.oom_score_adj,
            ports,
            readonly_rootfs: s.readonly_rootfs,
        })
    }

    /// Checks a container create body against the ceilings and returns the
    /// member to append (`"HostConfig"`, its JSON), if anything is injected.
    pub fn create(&self, body: &[u8]) -> Result<Option<(&'static str, String)>, Rejection> {
        let go = gojson::unmarshal(body, &CREATE)?;
        let top = go.view(&CREATE);
        for field in TOP_LEVEL_HOST_FIELDS {
            if !top.field(field)?.is_nil()? {
                return refuse(
                    "containers.top-level-host-config",
                    format!(
                        "set {field} outside HostConfig (the HostConfig dockgate adds would make dockerd ignore it)"
                    ),
                );
            }
        }
        let hc = top.field("HostConfig")?;
        let mut inject = Map::new();
        if let Some(max) = self.pids_limit {
            // The docker CLI sends 0 when no limit is asked for; dockerd
            // reads it as unset. Either way the role gets its default.
            let pids = hc.field("PidsLimit")?.as_i64()?.filter(|p| *p != 0);
            inject.insert(
                "PidsLimit".into(),
                json!(pids_within(pids, max)?.unwrap_or(max)),
            );
        }
        self.resources(hc, &mut inject)?;
        if !self.ulimits.is_empty() {
            inject.insert("Ulimits".into(), Value::Array(self.ulimits(hc)?));
        }
        if let Some(min) = self.oom_score_adj {
            // Absent and 0 decode alike (dockerd can't tell them apart
            // either): both get the minimum.
            let adj = hc.field("OomScoreAdj")?.as_i64()?.unwrap_or(0);
            if adj < 0 || (adj != 0 && adj < min) {
                let rule = if adj < 0 {
                    "host.oom-score-adj"
                } else {
                    "containers.oom_score_adj"
                };
                return refuse(rule, format!("set OomScoreAdj {adj} (the least is {min})"));
            }
            inject.insert("OomScoreAdj".into(), json!(adj.max(min)));
        }
        if let Some(ports) = &self.ports {
            // -P publishes every exposed port on the daemon's default
            // address.
            if ports.addresses.is_some() && hc.field("PublishAllPorts")?.as_bool()? == Some(true) {
                return refuse(
                    "containers.ports",
                    "publish all ports (on every host address)",
                );
            }
            for (port, bindings) in hc.field("PortBindings")?.entries()? {
                for binding in bindings.elements()? {
                    ports.check(port, binding)?;
                }
            }
        }
        if !self.cap_drop.is_empty() {
            let mut caps: Vec<String> = hc
                .field("CapDrop")?
                .strings()?
                .into_iter()
                .map(str::to_owned)
                .collect();
            for cap in &self.cap_drop {
                if !caps.iter().any(|c| same_capability(c, cap)) {
                    caps.push(cap.clone());
                }
            }
            inject.insert("CapDrop".into(), json!(caps));
        }
        if self.no_new_privileges {
            // dockerd applies security options in order: the last word on
            // no-new-privileges is ours.
            let mut opts = hc.field("SecurityOpt")?.strings()?;
            opts.push("no-new-privileges");
            inject.insert("SecurityOpt".into(), json!(opts));
        }
        if self.readonly_rootfs {
            inject.insert("ReadonlyRootfs".into(), Value::Bool(true));
        }
        if inject.is_empty() {
            return Ok(None);
        }
        Ok(Some(("HostConfig", Value::Object(inject).to_string())))
    }

    /// Checks a `ContainerUpdate` body: it may lower limits, never raise
    /// them past a ceiling or lift them.
    pub fn update(&self, body: &[u8]) -> Result<(), Rejection> {
        let go = gojson::unmarshal(body, &UPDATE)?;
        let update = go.view(&UPDATE);
        if let Some(max) = self.pids_limit {
            pids_within(update.field("PidsLimit")?.as_i64()?, max)?;
        }
        // Zero leaves a value unchanged in an update.
        self.resources(update, &mut Map::new())
    }

    /// Memory and CPU: refused past their ceilings, injected when zero.
    fn resources(&self, r: View<'_>, inject: &mut Map<String, Value>) -> Result<(), Rejection> {
        if let Some(max) = self.memory {
            let memory = r.field("Memory")?.as_i64()?.unwrap_or(0);
            if memory < 0 || memory > max {
                return refuse(
                    "containers.memory",
                    format!("set Memory {memory} (the most is {max})"),
                );
            }
            if r.field("MemorySwap")?.as_i64()?.unwrap_or(0) < 0 {
                return refuse("containers.memory", "use unlimited swap (MemorySwap -1)");
            }
            if memory == 0 {
                inject.insert("Memory".into(), json!(max));
            }
        }
        if let Some(max) = self.nano_cpus {
            let cpus = r.field("NanoCpus")?.as_i64()?.unwrap_or(0);
            if cpus < 0 || cpus > max {
                return refuse(
                    "containers.nano_cpus",
                    format!("set NanoCpus {cpus} (the most is {max})"),
                );
            }
            for field in ["CpuPeriod", "CpuQuota"] {
                if r.field(field)?.as_i64()?.unwrap_or(0) != 0 {
                    return refuse(
                        "containers.nano_cpus",
                        format!("limit CPU with {field} (use NanoCpus)"),
                    );
                }
            }
            if cpus == 0 {
                inject.insert("NanoCpus".into(), json!(max));
            }
        }
        Ok(())
    }

    /// The client's ulimits, checked, followed by the configured ones it
    /// left out. Every entry is written whole: Go decodes an appended
    /// slice of pointers into the structs it already holds.
    fn ulimits(&self, hc: View<'_>) -> Result<Vec<Value>, Rejection> {
        let mut out = Vec::new();
        let mut named = Vec::new();
        for ulimit in hc.field("Ulimits")?.elements()? {
            if ulimit.is_nil()? {
                return refuse("containers.ulimits", "send a null ulimit");
            }
            let name = ulimit.field("Name")?.as_str()?.unwrap_or("");
            let soft = ulimit.field("Soft")?.as_i64()?.unwrap_or(0);
            let hard = ulimit.field("Hard")?.as_i64()?.unwrap_or(0);
            if let Some((_, max)) = self.ulimits.iter().find(|(n, _)| n == name) {
                if soft < 0 || hard < 0 || soft > *max || hard > *max {
                    return refuse(
                        "containers.ulimits",
                        format!("set ulimit {name} to {soft}:{hard} (the most is {max})"),
                    );
                }
            }
            named.push(name);
            out.push(json!({"Name": name, "Hard": hard, "Soft": soft}));
        }
        for (name, max) in &self.ulimits {
            if !named.contains(&name.as_str()) {
                out.push(json!({"Name": name, "Hard": max, "Soft": max}));
            }
        }
        Ok(out)
    }
}

impl Ports {
    /// One `PortBindings` entry: its host address and host port (or range;
    /// empty lets the daemon pick an ephemeral port).
    fn check(&self, port: &str, binding: View<'_>) -> Result<(), Rejection> {
        let ip = binding.field("HostIp")?.as_str()?.unwrap_or("");
        let host_port = binding.field("HostPort")?.as_str()?.unwrap_or("");
        if let Some(addresses) = &self.addresses {
            // An empty HostIp publishes on every address.
            let parsed = if ip.is_empty() {
                Some(IpAddr::from([0, 0, 0, 0]))
            } else {
                ip.parse::<IpAddr>().ok()
            };
            if !parsed.is_some_and(|a| addresses.contains(&a)) {
                return refuse(
                    "containers.ports",
                    format!("publish port {port} on host address {ip:?}"),
                );
            }
        }
        if host_port.is_empty() {
            return Ok(());
        }
        let allowed = port_range(host_port)
            .is_some_and(|(low, high)| self.ranges.iter().any(|(a, b)| *a <= low && high <= *b));
        if !allowed {
            return refuse(
                "containers.ports",
                format!("publish port {port} on host port {host_port:?}"),
            );
        }
        Ok(())
    }
}

/// `PORT` or `LOW-HIGH`, decimal digits only, as go-connections'
/// `ParsePortRange` reads them.
fn port_range(text: &str) -> Option<(u16, u16)> {
    let number = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u16>().ok()
    };
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (number(low)?, number(high)?),
        None => {
            let port = number(text)?;
            (port, port)
        }
    };
    (low <= high).then_some((low, high))
}

/// `PidsLimit` within 1 to `max` (dockerd reads 0 and below as no limit);
/// `None` when unset.
fn pids_within(pids: Option<i64>, max: i64) -> Result<Option<i64>, Rejection> {
    match pids {
        Some(p) if p <= 0 => refuse(
            "containers.pids_limit",
            format!("set PidsLimit {p} (no limit; the most is {max})"),
        ),
        Some(p) if p > max => refuse(
            "containers.pids_limit",
            format!("set PidsLimit {p} (the most is {max})"),
        ),
        other => Ok(other),
    }
}

/// dockerd compares capabilities without case and with or without `CAP_`.
fn same_capability(a: &str, b: &str) -> bool {
    let norm = |c: &str| {
        let c = c.to_ascii_uppercase();
        c.strip_prefix("CAP_").map(str::to_owned).unwrap_or(c)
    };
    norm(a) == norm(b)
}

fn refuse<T>(rule: &'static str, what: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection::Violation(Violation {
        rule,
        what: what.into(),
    }))
}

// ---- Shapes (the fields read here, in Go's order) ----

static STRING: Shape = Shape::String;
static OPAQUE: Shape = Shape::Opaque;
static INT: Shape = Shape::Int;

/// `units.Ulimit`.
static ULIMIT: Shape = Shape::Struct(&[
    Field {
        name: "Name",
        shape: Shape::String,
    },
    Field {
        name: "Hard",
        shape: Shape::Int,
    },
    Field {
        name: "Soft",
        shape: Shape::Int,
    },
]);

/// `nat.PortBinding`.
static PORT_BINDING: Shape = Shape::Struct(&[
    Field {
        name: "HostIp",
        shape: Shape::String,
    },
    Field {
        name: "HostPort",
        shape: Shape::String,
    },
]);
static PORT_BINDINGS: Shape = Shape::Slice(&PORT_BINDING);
static ULIMIT_PTR: Shape = Shape::Ptr(&ULIMIT);

/// `container.HostConfig` with its embedded `Resources`.
static HOST_CONFIG: Shape = Shape::Struct(&[
    Field {
        name: "PortBindings",
        shape: Shape::Map(&PORT_BINDINGS),
    },
    Field {
        name: "CapDrop",
        shape: Shape::StrSlice,
    },
    Field {
        name: "OomScoreAdj",
        shape: Shape::Int,
    },
    Field {
        name: "PublishAllPorts",
        shape: Shape::Bool,
    },
    Field {
        name: "SecurityOpt",
        shape: Shape::Slice(&STRING),
    },
    Field {
        name: "Memory",
        shape: Shape::Int,
    },
    Field {
        name: "NanoCpus",
        shape: Shape::Int,
    },
    Field {
        name: "CpuPeriod",
        shape: Shape::Int,
    },
    Field {
        name: "CpuQuota",
        shape: Shape::Int,
    },
    Field {
        name: "MemorySwap",
        shape: Shape::Int,
    },
    Field {
        name: "PidsLimit",
        shape: Shape::Ptr(&INT),
    },
    Field {
        name: "Ulimits",
        shape: Shape::Slice(&ULIMIT_PTR),
    },
]);

/// `container.UpdateConfig`: `Resources` embedded.
static UPDATE: Shape = Shape::Struct(&[
    Field {
        name: "Memory",
        shape: Shape::Int,
    },
    Field {
        name: "NanoCpus",
        shape: Shape::Int,
    },
    Field {
        name: "CpuPeriod",
        shape: Shape::Int,
    },
    Field {
        name: "CpuQuota",
        shape: Shape::Int,
    },
    Field {
        name: "MemorySwap",
        shape: Shape::Int,
    },
    Field {
        name: "PidsLimit",
        shape: Shape::Ptr(&INT),
    },
]);

/// `runconfig.ContainerConfigWrapper`: the inner `HostConfig`, then every
/// field of `container.HostConfig` (with `Resources`) as the deprecated
/// embedded copy at the top level. Those are pointers to opaque values, so
/// that any non-null value shows as present. (A `null` there leaves the
/// embedded copy zero, which dockerd ignores once an inner one exists.)
macro_rules! create_shape {
    ($($name:literal),* $(,)?) => {
        static CREATE: Shape = Shape::Struct(&[
            Field { name: "HostConfig", shape: Shape::Ptr(&HOST_CONFIG) },
            $(Field { name: $name, shape: Shape::Ptr(&OPAQUE) },)*
        ]);
        const TOP_LEVEL_HOST_FIELDS: &[&str] = &[$($name,)*];
    };
}
create_shape!(
    "Binds",
    "ContainerIDFile",
    "LogConfig",
    "NetworkMode",
    "PortBindings",
    "RestartPolicy",
    "AutoRemove",
    "VolumeDriver",
    "VolumesFrom",
    "ConsoleSize",
    "Annotations",
    "CapAdd",
    "CapDrop",
    "CgroupnsMode",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "IpcMode",
    "Cgroup",
    "Links",
    "OomScoreAdj",
    "PidMode",
    "Privileged",
    "PublishAllPorts",
    "ReadonlyRootfs",
    "SecurityOpt",
    "StorageOpt",
    "Tmpfs",
    "UTSMode",
    "UsernsMode",
    "ShmSize",
    "Sysctls",
    "Runtime",
    "Isolation",
    "CpuShares",
    "Memory",
    "NanoCpus",
    "CgroupParent",
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetCpus",
    "CpusetMems",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "KernelMemory",
    "KernelMemoryTCP",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "OomKillDisable",
    "PidsLimit",
    "Ulimits",
    "CpuCount",
    "CpuPercent",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
    "Mounts",
    "MaskedPaths",
    "ReadonlyPaths",
    "Init",
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PortSettings;

    fn ci() -> Containers {
        let settings = ContainerSettings {
            no_new_privileges: true,
            pids_limit: Some(4096),
            oom_score_adj: Some(0),
            ports: Some(PortSettings {
                addresses: vec!["*".into()],
                ranges: vec!["1025-65535".into()],
            }),
            ..ContainerSettings::default()
        };
        Containers::compile(&settings).unwrap()
    }

    fn strict() -> Containers {
        let settings = ContainerSettings {
            cap_drop: vec!["NET_RAW".into()],
            memory: Some(1 << 30),
            nano_cpus: Some(2_000_000_000),
            ulimits: [("nofile".to_string(), 1024)].into(),
            oom_score_adj: Some(500),
            ports: Some(PortSettings {
                addresses: vec!["127.0.0.1".into()],
                ranges: vec!["8000-8099".into()],
            }),
            readonly_rootfs: true,
            ..ContainerSettings::default()
        };
        Containers::compile(&settings).unwrap()
    }

    fn injected(c: &Containers, body: &str) -> Value {
        let (name, json) = c.create(body.as_bytes()).unwrap().unwrap();
        assert_eq!(name, "HostConfig");
        serde_json::from_str(&json).unwrap()
    }

    fn refused(r: Result<impl std::fmt::Debug, Rejection>) -> &'static str {
        match r {
            Err(Rejection::Violation(v)) => v.rule,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    #[test]
    fn defaults_are_injected_and_the_clients_values_kept_within_ceilings() {
        let hc = injected(&ci(), r#"{"Image":"x"}"#);
        assert_eq!(
            hc,
            json!({"PidsLimit": 4096, "OomScoreAdj": 0, "SecurityOpt": ["no-new-privileges"]})
        );
        let hc = injected(
            &ci(),
            r#"{"HostConfig":{"pidslimit":100,"SecurityOpt":["no-new-privileges:false"]}}"#,
        );
        assert_eq!(hc["PidsLimit"], 100);
        let unset = injected(&ci(), r#"{"HostConfig":{"PidsLimit":0}}"#);
        assert_eq!(unset["PidsLimit"], 4096);
        assert_eq!(
            hc["SecurityOpt"],
            json!(["no-new-privileges:false", "no-new-privileges"])
        );

        let hc = injected(
            &strict(),
            r#"{"HostConfig":{"CapDrop":"cap_net_raw","Ulimits":[{"Name":"core","Soft":1,"Hard":2}],"OomScoreAdj":600}}"#,
        );
        assert_eq!(
            hc,
            json!({
                "CapDrop": ["cap_net_raw"],
                "Memory": 1u64 << 30,
                "NanoCpus": 2_000_000_000u64,
                "Ulimits": [{"Name":"core","Hard":2,"Soft":1},{"Name":"nofile","Hard":1024,"Soft":1024}],
                "OomScoreAdj": 600,
                "ReadonlyRootfs": true,
            })
        );
        assert_eq!(injected(&strict(), "{}")["CapDrop"], json!(["NET_RAW"]));
        assert_eq!(injected(&strict(), "{}")["OomScoreAdj"], 500);
    }

    #[test]
    fn ceilings_name_their_setting() {
        let cases = [
            (
                ci(),
                r#"{"HostConfig":{"PidsLimit":-1}}"#,
                "containers.pids_limit",
            ),
            (
                ci(),
                r#"{"HostConfig":{"PidsLimit":4097}}"#,
                "containers.pids_limit",
            ),
            (
                ci(),
                r#"{"HostConfig":{"PidsLimit":1},"HostConfig":{"PIDSLIMIT":-1}}"#,
                "containers.pids_limit",
            ),
            (
                ci(),
                r#"{"HostConfig":{"OomScoreAdj":-1}}"#,
                "host.oom-score-adj",
            ),
            (
                ci(),
                r#"{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"80"}]}}}"#,
                "containers.ports",
            ),
            (
                ci(),
                r#"{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"1000-2000"}]}}}"#,
                "containers.ports",
            ),
            (
                ci(),
                r#"{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"+8080"}]}}}"#,
                "containers.ports",
            ),
            (
                ci(),
                r#"{"PidsLimit":null,"Memory":1}"#,
                "containers.top-level-host-config",
            ),
            (
                ci(),
                r#"{"memoryswap":-1}"#,
                "containers.top-level-host-config",
            ),
            (
                strict(),
                r#"{"HostConfig":{"OomScoreAdj":499}}"#,
                "containers.oom_score_adj",
            ),
            (
                strict(),
                r#"{"HostConfig":{"Memory":1073741825}}"#,
                "containers.memory",
            ),
            (
                strict(),
                r#"{"HostConfig":{"MemorySwap":-1}}"#,
                "containers.memory",
            ),
            (
                strict(),
                r#"{"HostConfig":{"NanoCpus":3000000000}}"#,
                "containers.nano_cpus",
            ),
            (
                strict(),
                r#"{"HostConfig":{"CpuQuota":100000}}"#,
                "containers.nano_cpus",
            ),
            (
                strict(),
                r#"{"HostConfig":{"Ulimits":[{"Name":"nofile","Soft":1,"Hard":-1}]}}"#,
                "containers.ulimits",
            ),
            (
                strict(),
                r#"{"HostConfig":{"PortBindings":{"80/tcp":[{"HostIp":"0.0.0.0","HostPort":"8080"}]}}}"#,
                "containers.ports",
            ),
            (
                strict(),
                r#"{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":""}]}}}"#,
                "containers.ports",
            ),
            (
                strict(),
                r#"{"HostConfig":{"publishallports":true}}"#,
                "containers.ports",
            ),
        ];
        for (c, body, rule) in cases {
            assert_eq!(refused(c.create(body.as_bytes())), rule, "{body}");
        }
    }

    #[test]
    fn allowed_ports() {
        for body in [
            r#"{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"8080"},{"HostIp":"::1","HostPort":""}]}}}"#,
            r#"{"HostConfig":{"PortBindings":{"80/tcp":[{"HostPort":"1025-65535"}]},"PublishAllPorts":true}}"#,
        ] {
            assert!(ci().create(body.as_bytes()).is_ok(), "{body}");
        }
        let body = r#"{"HostConfig":{"PortBindings":{"80/tcp":[{"HostIp":"127.0.0.1","HostPort":"8001"}]}}}"#;
        assert!(strict().create(body.as_bytes()).is_ok());
    }

    #[test]
    fn updates_stay_under_the_ceilings() {
        assert!(ci()
            .update(br#"{"PidsLimit":4096,"Memory":1000000}"#)
            .is_ok());
        assert!(ci().update(br#"{"CpuShares":512}"#).is_ok());
        for body in [
            r#"{"PidsLimit":4097}"#,
            r#"{"PidsLimit":-1}"#,
            r#"{"pidsLimit":0}"#,
        ] {
            assert_eq!(
                refused(ci().update(body.as_bytes())),
                "containers.pids_limit",
                "{body}"
            );
        }
        assert_eq!(
            refused(strict().update(br#"{"Memory":2147483648}"#)),
            "containers.memory"
        );
        assert_eq!(
            refused(strict().update(br#"{"MemorySwap":-1}"#)),
            "containers.memory"
        );
        assert!(strict().update(br#"{"Memory":1000000}"#).is_ok());
    }

    #[test]
    fn bad_settings_are_refused_at_load() {
        let bad = [
            ContainerSettings {
                pids_limit: Some(0),
                ..ContainerSettings::default()
            },
            ContainerSettings {
                ulimits: [("files".to_string(), 1)].into(),
                ..ContainerSettings::default()
            },
            ContainerSettings {
                oom_score_adj: Some(-1),
                ..ContainerSettings::default()
            },
            ContainerSettings {
                ports: Some(PortSettings {
                    addresses: vec!["localhost".into()],
                    ranges: vec![],
                }),
                ..ContainerSettings::default()
            },
            ContainerSettings {
                ports: Some(PortSettings {
                    addresses: vec!["*".into()],
                    ranges: vec!["2000-1000".into()],
                }),
                ..ContainerSettings::default()
            },
        ];
        for settings in bad {
            assert!(Containers::compile(&settings).is_err(), "{settings:?}");
        }
    }
}
