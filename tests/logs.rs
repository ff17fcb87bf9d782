//! The service log: text or JSON, and one line per event in both.

use std::fs;
use std::time::Duration;

use crate::support::gateway::{dockgate, Gateway};
use crate::support::{run, TempDir};

const BAD_TOML: &str = "[limits]\nconnections_per_identity = \"many\"\n";

#[test]
fn with_log_format_json_every_line_is_a_json_object() {
    let gw = Gateway::start_with_config("log_format = \"json\"\n");
    let log = gw.log();
    // The audit log (standard output) shares the file here: its lines are JSON too.
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}\n{log}"));
        assert!(v.is_object(), "{line}");
    }
    assert!(
        log.lines().any(|l| l.contains(r#""message":"listening""#)),
        "{log}"
    );
}

#[test]
fn a_multi_line_toml_error_at_start_is_one_line_in_either_format() {
    let dir = TempDir::new("logs");
    let config = dir.join("bad.toml");
    fs::write(&config, BAD_TOML).expect("write config");
    for format in ["text", "json"] {
        let out = run(dockgate()
            .args(["serve", "--log-format", format, "--config"])
            .arg(&config));
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{format}: {stderr}");
        // The TOML error's last line (what was wrong) is on that one line.
        assert!(lines[0].contains("invalid type"), "{format}: {stderr}");
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(lines[0]).expect("JSON");
            assert_eq!(v["level"], "ERROR", "{stderr}");
        } else {
            assert!(lines[0].starts_with("dockgate: invalid config"), "{stderr}");
        }
    }
}

#[test]
fn a_rejected_reload_is_logged_on_one_line() {
    let gw = Gateway::start_with_config("");
    fs::write(gw.scratch().join("dockgate.toml"), BAD_TOML).expect("write config");
    gw.signal("HUP");
    let line = gw
        .wait_for_log_line(Duration::from_secs(30), |l| l.contains("reload rejected"))
        .unwrap_or_else(|| panic!("no rejected reload:\n{}", gw.log()));
    assert!(
        line.contains("ERROR") && line.contains("invalid type"),
        "{line}\n{}",
        gw.log()
    );
}
