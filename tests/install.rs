//! `deploy/install.sh` into a throwaway root (`--destdir`, `DESTDIR`), checked file by file.
//! The script runs from a copy of `deploy/` alone, as it would next to a released binary:
//! no checkout around it. Staging must touch nothing on this host: `systemctl`, `useradd`
//! and `runuser` are shadowed on PATH by stubs that record being called.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::gateway::dockgate;
use crate::support::{ok, TempDir};

const UNITS: [&str; 3] = [
    "dockgate.service",
    "dockgate-crl-refresh.service",
    "dockgate-crl-refresh.timer",
];

fn repo(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A copy of `deploy/` and a PATH whose `systemctl`, `useradd` and `runuser` only record
/// their calls in `tmp/called`.
fn setup(tmp: &TempDir) -> (std::path::PathBuf, String) {
    let deploy = tmp.join("deploy");
    ok(Command::new("cp")
        .arg("-r")
        .arg(repo("deploy"))
        .arg(&deploy));
    let stubs = tmp.join("stubs");
    fs::create_dir_all(&stubs).unwrap();
    for tool in ["systemctl", "useradd", "runuser"] {
        let stub = stubs.join(tool);
        let called = tmp.join("called");
        fs::write(
            &stub,
            format!("#!/bin/sh\necho {tool} \"$@\" >> '{}'\n", called.display()),
        )
        .unwrap();
        fs::set_permissions(&stub, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!(
        "{}:{}",
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    (deploy.join("install.sh"), path)
}

fn install(script: &Path, path: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(script)
        .arg("--binary")
        .arg(env!("CARGO_BIN_EXE_dockgate"))
        .args(args)
        .env("PATH", path)
        .env_remove("DESTDIR");
    cmd
}

/// Every file and directory under `root`, as `MODE PATH` lines (PATH relative to root).
fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let kind = if meta.is_dir() { "d" } else { "f" };
            out.push(format!(
                "{kind} {:o} /{rel}",
                meta.permissions().mode() & 0o7777
            ));
            if meta.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn install_sh_stages_a_prefix_usr_tree_file_by_file() {
    let tmp = TempDir::new("install-usr");
    let (script, path) = setup(&tmp);
    let root = tmp.join("root");
    let dest = format!("--destdir={}", root.display());
    ok(&mut install(&script, &path, &["--prefix", "/usr", &dest]));

    let expected = [
        "d 700 /etc/dockgate/certs",
        "d 700 /var/lib/dockgate",
        "d 700 /var/lib/dockgate/clients",
        "d 750 /etc/dockgate",
        "d 750 /var/log/dockgate",
        "d 755 /etc",
        "d 755 /etc/logrotate.d",
        "d 755 /etc/systemd",
        "d 755 /etc/systemd/system",
        "d 755 /usr",
        "d 755 /usr/bin",
        "d 755 /usr/share",
        "d 755 /usr/share/doc",
        "d 755 /usr/share/doc/dockgate",
        "d 755 /usr/share/man",
        "d 755 /usr/share/man/man1",
        "d 755 /var",
        "d 755 /var/lib",
        "d 755 /var/log",
        "f 640 /etc/dockgate/dockgate.toml",
        "f 644 /etc/logrotate.d/dockgate",
        "f 644 /etc/systemd/system/dockgate-crl-refresh.service",
        "f 644 /etc/systemd/system/dockgate-crl-refresh.timer",
        "f 644 /etc/systemd/system/dockgate.service",
        "f 644 /usr/share/doc/dockgate/README.md",
        "f 644 /usr/share/man/man1/dockgate.1",
        "f 755 /usr/bin/dockgate",
    ];
    let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(tree(&root), expected);

    // The binary, byte for byte; the man page is the one it prints.
    assert_eq!(
        fs::read(root.join("usr/bin/dockgate")).unwrap(),
        fs::read(env!("CARGO_BIN_EXE_dockgate")).unwrap()
    );
    assert_eq!(
        fs::read_to_string(root.join("usr/share/man/man1/dockgate.1")).unwrap(),
        ok(dockgate().arg("man"))
    );
    // The units run the binary where --prefix put it; nothing else changes.
    for unit in UNITS {
        let shipped = fs::read_to_string(repo(&format!("deploy/{unit}"))).unwrap();
        let staged = fs::read_to_string(root.join("etc/systemd/system").join(unit)).unwrap();
        let want = shipped
            .replace("/usr/local/bin/dockgate", "/usr/bin/dockgate")
            .replace("/usr/local/share/doc/dockgate", "/usr/share/doc/dockgate");
        assert_eq!(staged, want, "{unit}");
        assert!(!staged.contains("/usr/local"), "{unit}");
    }
    assert_eq!(
        fs::read(root.join("etc/logrotate.d/dockgate")).unwrap(),
        fs::read(repo("deploy/dockgate.logrotate")).unwrap()
    );
    assert_eq!(
        fs::read(root.join("usr/share/doc/dockgate/README.md")).unwrap(),
        fs::read(repo("deploy/README.md")).unwrap()
    );
    // The config is the built-in one with the host's certs and audit paths, and checks.
    let config = fs::read_to_string(root.join("etc/dockgate/dockgate.toml")).unwrap();
    let builtin = ok(dockgate().args(["config", "default"]));
    let want = builtin
        .replace(
            "\ncerts = \"certs\"\n",
            "\ncerts = \"/etc/dockgate/certs\"\n",
        )
        .replace(
            "# path = \"/var/log/dockgate/audit.log\"",
            "path = \"/var/log/dockgate/audit.log\"",
        );
    assert_ne!(want, builtin);
    assert_eq!(config, want);
    ok(dockgate()
        .args(["policy", "check", "--config"])
        .arg(root.join("etc/dockgate/dockgate.toml")));

    // Again: nothing to write, and the config is kept.
    let again = ok(&mut install(&script, &path, &["--prefix", "/usr", &dest]));
    assert!(!again.contains("wrote"), "{again}");
    assert!(
        again.contains("Keeping existing /etc/dockgate/dockgate.toml"),
        "{again}"
    );
    assert!(
        !tmp.join("called").exists(),
        "{:?}",
        fs::read_to_string(tmp.join("called"))
    );
}

#[test]
fn install_sh_honours_destdir_from_the_environment() {
    let tmp = TempDir::new("install-env");
    let (script, path) = setup(&tmp);
    let root = tmp.join("root");
    ok(install(&script, &path, &[]).env("DESTDIR", &root));
    assert!(root.join("usr/local/bin/dockgate").is_file());
    assert!(root.join("usr/local/share/man/man1/dockgate.1").is_file());
    for unit in UNITS {
        assert_eq!(
            fs::read(root.join("etc/systemd/system").join(unit)).unwrap(),
            fs::read(repo(&format!("deploy/{unit}"))).unwrap(),
            "{unit}: the default prefix is the one the shipped units name"
        );
    }
    assert!(
        !tmp.join("called").exists(),
        "{:?}",
        fs::read_to_string(tmp.join("called"))
    );
}
