//! systemd integration: the notifications a `Type=notify-reload` unit depends on, sent to
//! a `NOTIFY_SOCKET` the test owns, and the shipped unit passing `systemd-analyze verify`.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::support::gateway::Gateway;
use crate::support::{ok, TempDir};

/// The notifications systemd would receive.
struct Notifications(UnixDatagram);

impl Notifications {
    fn bind(path: &Path) -> Notifications {
        let socket = UnixDatagram::bind(path).expect("bind the notify socket");
        // A guard against a gateway that never sends, not a timing assertion.
        socket
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set a read timeout");
        Notifications(socket)
    }

    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let len = self.0.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..len]).into_owned()
    }

    /// Reads until a message has `field`; returns the messages read.
    fn until(&self, field: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let message = self.next();
            let done = message.lines().any(|l| l == field);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
}

fn status(message: &str) -> &str {
    message
        .lines()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or("")
}

/// A reload's messages end with READY=1; RELOADING=1 with MONOTONIC_USEC came before.
fn assert_reload_announced(messages: &[String]) {
    let reloading = messages
        .iter()
        .find(|m| m.lines().any(|l| l == "RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 before READY=1: {messages:?}"));
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {reloading:?}"));
    assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{reloading:?}");
}

#[test]
fn systemd_is_told_ready_watchdog_reloading_reloaded_and_stopping() {
    let dir = TempDir::new("notify");
    let socket = dir.join("notify.sock");
    let notifications = Notifications::bind(&socket);
    let config = "[limits]\nconnections_per_identity = 256\n";
    let env = [
        ("NOTIFY_SOCKET", socket.as_os_str()),
        // WatchdogSec=2s: a WATCHDOG=1 every second.
        ("WATCHDOG_USEC", OsStr::new("2000000")),
    ];
    let mut gw = Gateway::start_with_config_and_env(config, &env);
    // The gateway accepted a handshake before start returned; READY=1 is the first message.
    let first = notifications.next();
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    notifications.until("WATCHDOG=1");
    ok(gw.docker(gw.admin()).args(["version"]));

    // A good reload: the file changed, then SIGHUP.
    let file = gw.scratch().join("dockgate.toml");
    fs::write(&file, "[limits]\nconnections_per_identity = 128\n").expect("write config");
    gw.signal("HUP");
    let messages = notifications.until("READY=1");
    assert_reload_announced(&messages);
    let done = messages.last().expect("READY=1");
    assert!(status(done).contains("reloaded"), "{messages:?}");

    // A bad reload: refused, and the previous state keeps serving.
    fs::write(&file, "[limits]\nconnections_per_identity = \"many\"\n").expect("write config");
    gw.signal("HUP");
    let messages = loop {
        // The file watcher may reload the good file once more before seeing the change.
        let messages = notifications.until("READY=1");
        if !status(messages.last().expect("READY=1")).contains("serving; reloaded") {
            break messages;
        }
    };
    assert_reload_announced(&messages);
    let done = messages.last().expect("READY=1");
    assert!(
        status(done).contains("reload refused") && status(done).contains("previous state"),
        "{messages:?}"
    );
    ok(gw.docker(gw.admin()).args(["version"]));

    gw.signal("TERM");
    let messages = notifications.until("STOPPING=1");
    assert!(
        status(messages.last().unwrap()).contains("draining"),
        "{messages:?}"
    );
    assert!(gw
        .wait_exit(Duration::from_secs(60))
        .is_some_and(|s| s.success()));
}

/// The shipped unit passes `systemd-analyze verify` without a warning. systemd before 253
/// does not know `Type=notify-reload`: there the unit is verified with the drop-in
/// deploy/README.md gives for such hosts.
#[test]
fn the_systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        ok(Command::new("apt-get").args(["update", "-q"]));
        ok(Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends", "systemd"])
            .env("DEBIAN_FRONTEND", "noninteractive"));
    }
    let version = ok(Command::new("systemd-analyze").arg("--version"));
    let version: u32 = version
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("systemd version in {version:?}"));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut unit = fs::read_to_string(root.join("deploy/dockgate.service")).expect("read unit");
    assert!(unit.contains("\nType=notify-reload\n"), "{unit}");
    if version < 253 {
        let dropin = fs::read_to_string(root.join("deploy/dockgate-before-systemd-253.conf"))
            .expect("read the drop-in");
        let service = dropin
            .split("[Service]\n")
            .nth(1)
            .expect("[Service] in the drop-in");
        unit = unit.replace("Type=notify-reload\n", service);
    }
    // The binary it names exists here only as the test build.
    let unit = unit.replace("/usr/local/bin/dockgate", env!("CARGO_BIN_EXE_dockgate"));
    let dir = TempDir::new("unit");
    let path = dir.join("dockgate.service");
    fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "{out:?}");
}
