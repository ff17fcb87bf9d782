//! `deploy/cloud-init.yaml` against cloud-init's own schema (Debian's `cloud-init`
//! package, installed when missing and the tests run as root), and its shell scripts
//! through `bash -n`.

use std::fs;
use std::process::Command;

use crate::support::{ok, run, TempDir};

/// Debian's `cloud-init` package, installed if missing.
fn cloud_init() -> &'static str {
    if run(Command::new("sh").args(["-c", "command -v cloud-init"]))
        .status
        .success()
    {
        return "cloud-init";
    }
    ok(Command::new("apt-get").arg("update"));
    ok(Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "cloud-init"])
        .env("DEBIAN_FRONTEND", "noninteractive"));
    "cloud-init"
}

fn config_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/cloud-init.yaml")
}

#[test]
fn cloud_init_yaml_passes_the_schema() {
    let out = ok(Command::new(cloud_init())
        .args(["schema", "--config-file"])
        .arg(config_path()));
    assert!(out.contains("Valid cloud-config"), "{out}");

    // The check rejects what it should: a broken copy fails.
    let tmp = TempDir::new("cloud-init");
    let broken = tmp.join("broken.yaml");
    let text = fs::read_to_string(config_path()).unwrap();
    fs::write(&broken, text.replace("runcmd:\n", "runcmd: 5\nbootcmd:\n")).unwrap();
    let refused = run(Command::new(cloud_init())
        .args(["schema", "--config-file"])
        .arg(&broken));
    assert!(!refused.status.success(), "{}", refused.stdout_str());
}

#[test]
fn cloud_init_scripts_parse_and_run_in_order() {
    cloud_init();
    // cloud-init depends on python3-yaml: read the file as cloud-init does.
    let tmp = TempDir::new("cloud-init-scripts");
    let listing = ok(Command::new("python3")
        .args([
            "-c",
            "import sys, yaml, os\n\
             c = yaml.safe_load(open(sys.argv[1]))\n\
             for f in c['write_files']:\n\
             \x20   name = f['path'].replace('/', '_')\n\
             \x20   open(os.path.join(sys.argv[2], name), 'w').write(f['content'])\n\
             \x20   print(f['path'])\n\
             print('runcmd', *c['runcmd'], sep='\\n')\n\
             print('packages', *c['packages'])\n",
        ])
        .arg(config_path())
        .arg(tmp.path()));
    for path in [
        "/etc/dockgate/first-boot.env",
        "/root/.docker/config.json",
        "/opt/dockgate-app/compose.yaml",
        "/usr/local/sbin/dockgate-first-boot",
        "/usr/local/sbin/dockgate-compose-up",
    ] {
        assert!(listing.lines().any(|l| l == path), "{path} in {listing}");
    }
    assert!(listing.contains("packages docker.io"), "{listing}");
    for script in ["dockgate-first-boot", "dockgate-compose-up"] {
        let file = tmp.join(format!("_usr_local_sbin_{script}"));
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("#!/bin/bash\n"), "{script}");
        ok(Command::new("bash").arg("-n").arg(&file));
    }
    let env = tmp.join("_etc_dockgate_first-boot.env");
    ok(Command::new("bash").arg("-n").arg(&env));
    let json = fs::read_to_string(tmp.join("_root_.docker_config.json")).unwrap();
    let auths: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(auths["auths"].is_object(), "{json}");
    // Docker first, then the compose project, then dockgate.
    let runcmd: Vec<&str> = listing
        .lines()
        .skip_while(|l| *l != "runcmd")
        .skip(1)
        .take(3)
        .collect();
    assert_eq!(
        runcmd,
        [
            "systemctl enable --now docker.service",
            "/usr/local/sbin/dockgate-compose-up",
            "/usr/local/sbin/dockgate-first-boot"
        ]
    );
}
