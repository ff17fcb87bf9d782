//! Operator ergonomics through the real binary: where `pki` and `serve` find their
//! directory and address (flags, `DOCKGATE_*` variables, the config file), what a missing
//! file says, the built-in config, the man page and completions. No daemon is needed: the
//! gateways here forward to a socket that does not exist.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::support::gateway::dockgate;
use crate::support::{ok, run, TempDir};

/// `dockgate ARGS…` (with no `DOCKGATE_*` variables from the test's environment).
fn cmd(list: &[&str]) -> Command {
    let mut c = dockgate();
    c.args(list).env("NO_COLOR", "1");
    c
}

/// Runs a `dockgate serve`-like command until it logs `listening`, then kills it; returns
/// its log up to and including that line. Panics with the log if it exits first.
fn log_until_listening(mut c: Command) -> String {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start dockgate");
    let mut log = String::new();
    for line in BufReader::new(child.stderr.take().expect("piped stderr")).lines() {
        let line = line.expect("read the gateway's log");
        log.push_str(&line);
        log.push('\n');
        if line.contains("listening") {
            let _ = child.kill();
            let _ = child.wait();
            return log;
        }
    }
    let status = child.wait().expect("wait for dockgate");
    panic!("dockgate exited ({status}) before listening:\n{log}");
}

/// The DNS names and IP addresses in a PEM certificate's subjectAltName.
fn sans(pem_path: &Path) -> Vec<String> {
    let text = fs::read(pem_path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text).unwrap();
    let (_, cert) = X509Certificate::from_der(&pem.contents).unwrap();
    let san = cert.subject_alternative_name().unwrap().expect("a SAN");
    san.value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => d.to_string(),
            GeneralName::IPAddress(ip) => format!("{ip:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn pki_finds_its_directory_in_the_environment_and_the_config() {
    let tmp = TempDir::new("ops-pki");
    let certs = tmp.join("pki");
    ok(cmd(&["pki", "init"]).env("DOCKGATE_CERTS", &certs));
    assert!(
        certs.join("ca.pem").exists(),
        "DOCKGATE_CERTS is the directory"
    );

    // A config file's relative `certs` is relative to the file, not the working directory.
    let config = tmp.join("dockgate.toml");
    fs::write(&config, "certs = \"pki\"\n").unwrap();
    let issued = ok(cmd(&["pki", "server", "--san", "gw.example"])
        .arg("--config")
        .arg(&config)
        .current_dir("/"));
    assert!(issued.contains("gw.example"), "{issued}");
    let listed = ok(cmd(&["pki", "list"])
        .env("DOCKGATE_CONFIG", &config)
        .current_dir("/"));
    assert!(listed.contains("gw.example"), "{listed}");

    // --dir wins over both.
    let other = tmp.join("other");
    ok(cmd(&["pki", "init", "--dir"])
        .arg(&other)
        .env("DOCKGATE_CERTS", &certs)
        .env("DOCKGATE_CONFIG", &config));
    assert!(other.join("ca.pem").exists());

    let nowhere = run(&mut cmd(&["pki", "list"]));
    assert!(!nowhere.status.success());
    assert!(
        nowhere.stderr_str().contains("--dir"),
        "{}",
        nowhere.stderr_str()
    );
}

#[test]
fn a_missing_file_names_the_command_that_makes_it() {
    let tmp = TempDir::new("ops-missing");
    let certs = tmp.join("certs");
    let serve = |certs: &Path| {
        run(cmd(&["serve", "--listen", "127.0.0.1:0", "--certs"])
            .arg(certs)
            .arg("--docker-socket")
            .arg(tmp.join("no-docker.sock")))
    };
    let out = serve(&certs);
    assert!(!out.status.success());
    let expected = format!("run `dockgate pki init --dir {}`", certs.display());
    assert!(out.stderr_str().contains(&expected), "{}", out.stderr_str());
    assert!(out.stderr_str().contains("ca.pem"), "{}", out.stderr_str());

    ok(cmd(&["pki", "init", "--dir"]).arg(&certs));
    let out = serve(&certs);
    assert!(!out.status.success());
    let expected = format!(
        "run `dockgate pki server --dir {} --san HOST`",
        certs.display()
    );
    assert!(out.stderr_str().contains(&expected), "{}", out.stderr_str());
}

#[test]
fn serve_takes_certs_and_listen_from_the_environment_and_warns_without_a_crl() {
    let tmp = TempDir::new("ops-serve");
    let certs = tmp.join("certs");
    ok(cmd(&["pki", "init", "--dir"]).arg(&certs));
    ok(cmd(&["pki", "server", "--san", "localhost", "--dir"]).arg(&certs));

    let mut serve = cmd(&["serve", "--docker-socket"]);
    serve
        .arg(tmp.join("no-docker.sock"))
        .env("DOCKGATE_CERTS", &certs)
        .env("DOCKGATE_LISTEN", "localhost:0");
    let log = log_until_listening(serve);
    assert!(log.contains("addr=127.0.0.1:"), "{log}");
    assert!(!log.contains("no CRL"), "{log}");

    fs::remove_file(certs.join("crl.pem")).unwrap();
    let config = tmp.join("dockgate.toml");
    fs::write(
        &config,
        "listen = \"localhost:0\"\ncerts = \"certs\"\nshutdown_grace = \"5s\"\n[limits]\nhandshake_timeout = \"1m\"\n",
    )
    .unwrap();
    let mut serve = cmd(&["serve", "--docker-socket"]);
    serve
        .arg(tmp.join("no-docker.sock"))
        .env("DOCKGATE_CONFIG", &config)
        .current_dir("/");
    let log = log_until_listening(serve);
    assert!(log.contains("addr=127.0.0.1:"), "{log}");
    assert!(log.contains("no CRL: revocation is off"), "{log}");
}

#[test]
fn listen_shorthands_on_the_command_line() {
    let tmp = TempDir::new("ops-listen");
    let certs = tmp.join("certs");
    ok(cmd(&["pki", "init", "--dir"]).arg(&certs));
    ok(cmd(&["pki", "server", "--san", "localhost", "--dir"]).arg(&certs));
    let mut serve = cmd(&["serve", "--listen", ":0", "--certs"]);
    serve
        .arg(&certs)
        .arg("--docker-socket")
        .arg(tmp.join("no-docker.sock"));
    let log = log_until_listening(serve);
    assert!(log.contains("addr=0.0.0.0:"), "{log}");

    let bad = run(&mut cmd(&["serve", "--listen", "2376"]));
    assert!(!bad.status.success());
    assert!(
        bad.stderr_str().contains("invalid listen address"),
        "{}",
        bad.stderr_str()
    );
}

#[test]
fn quickstart_adds_sans() {
    let tmp = TempDir::new("ops-quickstart");
    let certs = tmp.join("certs");
    let mut quickstart = cmd(&[
        "quickstart",
        "--listen",
        "localhost:0",
        "--san",
        "gw.example",
        "--san",
        "203.0.113.10",
        "--certs",
    ]);
    quickstart
        .arg(&certs)
        .arg("--docker-socket")
        .arg(tmp.join("no-docker.sock"));
    log_until_listening(quickstart);
    let names = sans(&certs.join("server-cert.pem"));
    for want in ["localhost", "gw.example"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    assert!(
        names.iter().any(|n| n.contains("203, 0, 113, 10")),
        "{names:?}"
    );
}

#[test]
fn config_default_prints_the_shipped_config() {
    let printed = ok(&mut cmd(&["config", "default"]));
    let shipped =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dockgate.toml"))
            .unwrap();
    assert_eq!(printed, shipped);
    let tmp = TempDir::new("ops-config");
    let file = tmp.join("dockgate.toml");
    fs::write(&file, &printed).unwrap();
    let checked = ok(cmd(&["policy", "check"]).env("DOCKGATE_CONFIG", &file));
    assert!(checked.contains("roles admin, ci, readonly"), "{checked}");
}

#[test]
fn man_page_and_completions() {
    let man = ok(&mut cmd(&["man"]));
    assert!(
        man.starts_with(".ie") || man.contains(".TH dockgate"),
        "{man}"
    );
    assert!(man.contains("quickstart") && man.contains("pki"), "{man}");
    let bash = ok(&mut cmd(&["completions", "bash"]));
    assert!(bash.contains("complete -F _dockgate"), "{bash}");
    assert!(bash.contains("refresh-crl"), "{bash}");
    let zsh = ok(&mut cmd(&["completions", "zsh"]));
    assert!(zsh.starts_with("#compdef dockgate"), "{zsh}");
}
