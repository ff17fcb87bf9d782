//! What a confined role is told about the host: `GET /info`, rebuilt.
//!
//! dockerd's `/info` counts every container and image on the daemon,
//! whoever owns them (`Containers`, `ContainersRunning`, …, `Images`), how
//! many event streams are open, and describes the host: its name, root
//! directory, storage details, proxies, registry mirrors and insecure
//! CIDRs, address pools, runtimes and their paths, operator labels,
//! warnings, the swarm. A confined caller gets an answer built from an
//! allow-list: the counts of its own objects, and the fields that describe
//! the engine it talks to (versions, OS type and architecture, kernel,
//! CPUs and memory, which any of its containers can read from `/proc`
//! anyway, cgroup and security features). A field dockerd adds later is
//! left out until it is listed here.

use serde_json::{Map, Value};

/// Fields passed on as dockerd wrote them.
const KEPT: &[&str] = &[
    "ID",
    "Driver",
    "MemoryLimit",
    "SwapLimit",
    "KernelMemory",
    "KernelMemoryTCP",
    "CpuCfsPeriod",
    "CpuCfsQuota",
    "CPUShares",
    "CPUSet",
    "PidsLimit",
    "IPv4Forwarding",
    "BridgeNfIptables",
    "BridgeNfIp6tables",
    "OomKillDisable",
    "SystemTime",
    "LoggingDriver",
    "CgroupDriver",
    "CgroupVersion",
    "KernelVersion",
    "OSType",
    "Architecture",
    "IndexServerAddress",
    "NCPU",
    "MemTotal",
    "ServerVersion",
    "DefaultRuntime",
    "LiveRestoreEnabled",
    "Isolation",
    "InitBinary",
    "ContainerdCommit",
    "RuncCommit",
    "InitCommit",
    "SecurityOptions",
    "ExperimentalBuild",
];

/// The `/info` answer for a confined caller, from the daemon's `info` and
/// the caller's own `containers` and `images` (list answers filtered to
/// its owner label). `None` when an input is not the shape dockerd sends.
pub fn info(info: &Value, containers: &Value, images: &Value) -> Option<Value> {
    let info = info.as_object()?;
    let containers = containers.as_array()?;
    let images = images.as_array()?;
    let mut out = Map::new();
    for key in KEPT {
        if let Some(v) = info.get(*key) {
            out.insert((*key).to_owned(), v.clone());
        }
    }
    let state = |c: &Value| c.get("State").and_then(Value::as_str).map(str::to_owned);
    let states: Vec<Option<String>> = containers.iter().map(state).collect();
    let running = states.iter().filter(|s| s.as_deref() == Some("running"));
    let paused = states.iter().filter(|s| s.as_deref() == Some("paused"));
    let (running, paused) = (running.count(), paused.count());
    out.insert("Containers".into(), states.len().into());
    out.insert("ContainersRunning".into(), running.into());
    out.insert("ContainersPaused".into(), paused.into());
    out.insert(
        "ContainersStopped".into(),
        (states.len() - running - paused).into(),
    );
    out.insert("Images".into(), images.len().into());
    // Clients read the swarm state (compose, `docker info`); the cluster
    // it describes is not theirs to see.
    let node_state = info
        .get("Swarm")
        .and_then(|s| s.get("LocalNodeState"))
        .cloned()
        .unwrap_or_else(|| Value::from("inactive"));
    out.insert(
        "Swarm".into(),
        serde_json::json!({ "LocalNodeState": node_state }),
    );
    Some(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_are_the_callers_and_host_details_are_left_out() {
        let daemon = json!({
            "ID": "X", "Containers": 40, "ContainersRunning": 30, "ContainersPaused": 1,
            "ContainersStopped": 9, "Images": 53, "Name": "vm-7", "DockerRootDir": "/var/lib/docker",
            "HttpProxy": "http://proxy:3128", "Labels": ["team=x"], "NEventsListener": 3,
            "RegistryConfig": {"InsecureRegistryCIDRs": ["10.0.0.0/8"]}, "NCPU": 2,
            "Swarm": {"LocalNodeState": "active", "NodeID": "n1", "RemoteManagers": []},
            "SomethingNew": true,
        });
        let mine = json!([{"State": "running"}, {"State": "exited"}, {"State": "paused"}, {"State": "created"}]);
        let out = info(&daemon, &mine, &json!([{}])).unwrap();
        assert_eq!(
            out,
            json!({
                "ID": "X", "NCPU": 2, "Containers": 4, "ContainersRunning": 1,
                "ContainersPaused": 1, "ContainersStopped": 2, "Images": 1,
                "Swarm": {"LocalNodeState": "active"},
            })
        );
    }

    #[test]
    fn unexpected_shapes_fail_closed() {
        assert!(info(&json!([]), &json!([]), &json!([])).is_none());
        assert!(info(&json!({}), &json!({}), &json!([])).is_none());
        assert!(info(&json!({}), &json!([]), &json!(null)).is_none());
    }
}
