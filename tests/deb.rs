//! The .deb as `deploy/README.md` builds it: `install.sh --prefix /usr --destdir
//! target/deb-root`, then `cargo deb --no-build` (cargo-deb is installed with `cargo install`
//! when missing), read back with `dpkg-deb`. It packages the binary under test, so the
//! test's own build profile is the one cargo-deb is told about.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::{ok, run, TempDir};

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// `cargo deb`, installed first if missing.
fn cargo_deb() -> Command {
    if !run(cargo().args(["deb", "--version"])).status.success() {
        ok(cargo().args(["install", "--locked", "cargo-deb"]));
    }
    let mut cmd = cargo();
    cmd.arg("deb");
    cmd
}

#[test]
fn the_deb_holds_the_staged_tree_and_makes_the_ca_on_configure() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = Path::new(env!("CARGO_BIN_EXE_dockgate"));
    // target/debug/dockgate is the dev profile's; target/release/dockgate the release one's.
    let profile = match binary.parent().and_then(|p| p.file_name()) {
        Some(dir) if dir == "debug" => "dev",
        Some(dir) => dir.to_str().expect("a UTF-8 profile directory"),
        None => panic!("{} is in no profile directory", binary.display()),
    };
    let target = binary.parent().unwrap().parent().unwrap();
    let root = target.join("deb-root");
    let _ = fs::remove_dir_all(&root);
    ok(Command::new("bash")
        .arg(manifest.join("deploy/install.sh"))
        .arg("--binary")
        .arg(binary)
        .args(["--prefix", "/usr", "--destdir"])
        .arg(&root)
        .env_remove("DESTDIR"));
    let out = TempDir::new("deb");
    let built = run(cargo_deb()
        .args(["-p", "dockgate", "--no-build", "--profile", profile, "-o"])
        .arg(out.path())
        .current_dir(manifest));
    // cargo-deb strips a copy of the binary in target/<package>/.
    for scratch in [root, target.join("dockgate")] {
        let _ = fs::remove_dir_all(scratch);
    }
    built.assert_success();
    let deb = fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");

    let contents = ok(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    let files: Vec<(&str, &str)> = contents
        .lines()
        .filter(|l| l.starts_with('-'))
        .map(|l| (&l[..10], l.rsplit(' ').next().unwrap()))
        .collect();
    let mut want = vec![
        ("-rwxr-xr-x", "./usr/bin/dockgate"),
        ("-rw-r-----", "./etc/dockgate/dockgate.toml"),
        ("-rw-r--r--", "./etc/logrotate.d/dockgate"),
        ("-rw-r--r--", "./usr/lib/systemd/system/dockgate.service"),
        (
            "-rw-r--r--",
            "./usr/lib/systemd/system/dockgate-crl-refresh.service",
        ),
        (
            "-rw-r--r--",
            "./usr/lib/systemd/system/dockgate-crl-refresh.timer",
        ),
        ("-rw-r--r--", "./usr/share/man/man1/dockgate.1.gz"),
        ("-rw-r--r--", "./usr/share/doc/dockgate/README.md"),
        ("-rw-r--r--", "./usr/share/doc/dockgate/LICENSE"),
        ("-rw-r--r--", "./usr/share/doc/dockgate/copyright"),
    ];
    let mut got = files.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "{contents}");

    let control = TempDir::new("deb-control");
    ok(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(control.path()));
    let conffiles = fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/dockgate/dockgate.toml"),
        "{conffiles}"
    );
    let fields = fs::read_to_string(control.join("control")).unwrap();
    assert!(fields.contains("docker.io | docker-ce"), "{fields}");
    // The package's own first-configure steps come before the generated systemd ones,
    // which enable and start the gateway and the CRL timer.
    let postinst = fs::read_to_string(control.join("postinst")).unwrap();
    let ca = postinst.find("pki init --dir").expect("makes the CA");
    let generated = postinst
        .find("# Automatically added by cargo-deb")
        .expect("systemd fragments");
    assert!(ca < generated, "{postinst}");
    assert!(!postinst.contains("#DEBHELPER#"), "{postinst}");
    for unit in ["dockgate.service", "dockgate-crl-refresh.timer"] {
        assert!(
            postinst.contains(&format!("deb-systemd-helper enable {unit}")),
            "{unit}: {postinst}"
        );
    }
    ok(Command::new("sh").arg("-n").arg(control.join("postinst")));

    // The unit in the package runs the packaged binary.
    let unpacked = TempDir::new("deb-files");
    ok(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(unpacked.path()));
    let unit =
        fs::read_to_string(unpacked.join("usr/lib/systemd/system/dockgate.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/bin/dockgate serve --config /etc/dockgate/dockgate.toml"),
        "{unit}"
    );
    let config = unpacked.join("etc/dockgate/dockgate.toml");
    assert!(fs::read_to_string(&config)
        .unwrap()
        .contains("\ncerts = \"/etc/dockgate/certs\"\n"));
    ok(Command::new(binary)
        .args(["policy", "check", "--config"])
        .arg(&config));
}
