//! CI runners end to end: the real docker CLI as `ci` logs in to a real registry (Debian's
//! `docker-registry` on loopback), builds, tags and pushes; a second runner pulls by tag; and
//! what the role may not do is refused with its rule named. The registry's own catalog says
//! what really arrived.

use std::process::Command;

use serde_json::Value;

use crate::support::dockerd::{apt_install, is_root};
use crate::support::gateway::{dockgate, ClientCerts, Gateway};
use crate::support::image::test_image;
use crate::support::lifecycle::refused_at_handshake;
use crate::support::policy::{inspect, owner_of};
use crate::support::registry::Registry;
use crate::support::{
    args, docker_command, ok, run, run_with, unique, Janitor, TempDir, CLI_TIMEOUT,
};

/// The shipped configuration, with `extra` added to ci's registries.
fn ci_registries_with(extra: &str) -> String {
    let shipped = include_str!("../config/dockgate.toml");
    let ci = "registries = [\"docker.io\"]";
    assert!(shipped.contains(ci), "the shipped config has no {ci:?}");
    shipped.replacen(ci, &format!("registries = [\"docker.io\", \"{extra}\"]"), 1)
}

fn cli(gw: &Gateway, who: &ClientCerts, list: &[&str]) -> Command {
    args(gw.docker(who), list)
}

fn audit(gw: &Gateway) -> Vec<Value> {
    gw.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["kind"] == "request")
        .collect()
}

/// Runs `cmd`, which must fail printing `expected`; returns the rule of the last refusal of
/// `operation` audited for `who`.
fn refused(
    gw: &Gateway,
    who: &ClientCerts,
    cmd: &mut Command,
    expected: &str,
    operation: &str,
) -> String {
    let out = run(cmd);
    let stderr = out.stderr_str();
    assert!(
        !out.status.success() && stderr.contains(expected),
        "{}: wanted a refusal saying {expected:?}, got {}:\n{}{stderr}",
        out.what,
        out.status,
        out.stdout_str()
    );
    let refusal = audit(gw).into_iter().rev().find(|v| {
        v["operation"] == operation && v["decision"] == "deny" && v["cn"] == who.name.as_str()
    });
    let refusal = refusal.unwrap_or_else(|| panic!("no audited refusal of {operation}"));
    refusal["rule"].as_str().unwrap_or_default().to_owned()
}

#[test]
fn ci_logs_in_builds_pushes_and_another_runner_pulls_by_tag() {
    let registry = Registry::start();
    let host = registry.host();
    let gw = Gateway::start_with_config(&ci_registries_with(&host));
    let a = gw.client(&unique("runner-a"), "ci");
    let b = gw.client(&unique("runner-b"), "ci");
    let mut janitor = Janitor::new();
    let secret = format!("pw{}", unique("login").replace('-', ""));

    // Login: the daemon checks the credentials with the registry (which takes any).
    let mut login = cli(&gw, &a, &["login", &host, "-u", "ci", "--password-stdin"]);
    run_with(&mut login, Some(secret.clone().into_bytes()), CLI_TIMEOUT).assert_success();

    // Build, tag, push.
    let repo = unique("app");
    let local = janitor.image(&format!("{repo}:1"));
    let remote = janitor.image(&format!("{host}/{repo}:1"));
    let context = gw.scratch().join(unique("ctx"));
    std::fs::create_dir_all(&context).expect("create build context");
    std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {}\nRUN echo built-by-a > /made\n", test_image()),
    )
    .expect("write Dockerfile");
    let mut build = cli(&gw, &a, &["build", "-t", &local]);
    build.arg(&context).env("DOCKER_BUILDKIT", "0");
    ok(&mut build);
    ok(&mut cli(&gw, &a, &["tag", &local, &remote]));
    ok(&mut cli(&gw, &a, &["push", &remote]));
    assert!(
        registry.catalog().contains(&repo),
        "{:?}",
        registry.catalog()
    );
    assert_eq!(registry.tags(&repo), ["1"]);

    // Refused, with the rule named: every tag of a repository.
    let all_tags = format!("{host}/{repo}");
    let rule = refused(
        &gw,
        &a,
        &mut cli(&gw, &a, &["push", "--all-tags", &all_tags]),
        "rule confined.push-all-tags",
        "ImagePush",
    );
    assert_eq!(rule, "confined.push-all-tags");

    // Refused: a registry not on the role's list, for push, tag, pull and login.
    let unlisted = "127.0.0.1:1";
    let elsewhere = format!("{unlisted}/{repo}:1");
    for (list, operation) in [
        (["push", elsewhere.as_str()].as_slice(), "ImagePush"),
        (&["tag", &local, &elsewhere], "ImageTag"),
        (&["pull", &elsewhere], "ImageCreate"),
    ] {
        let rule = refused(
            &gw,
            &a,
            &mut cli(&gw, &a, list),
            &format!("may not use registry {unlisted}"),
            operation,
        );
        assert_eq!(rule, "roles.ci.registries", "{list:?}");
    }
    let mut login = cli(
        &gw,
        &a,
        &["login", unlisted, "-u", "ci", "--password-stdin"],
    );
    let out = run_with(&mut login, Some(secret.clone().into_bytes()), CLI_TIMEOUT);
    assert!(
        !out.status.success() && out.stderr_str().contains("rule roles.ci.registries"),
        "login to an unlisted registry: {}",
        out.stderr_str()
    );
    let refusal = audit(&gw)
        .into_iter()
        .find(|v| v["operation"] == "SystemAuth" && v["decision"] == "deny")
        .expect("the refused login is audited");
    assert_eq!(refusal["rule"], "roles.ci.registries", "{refusal}");

    // Another runner's image: b owns its tag; a's push answers as for an absent image.
    let theirs = janitor.image(&format!("{host}/{}:1", unique("theirs")));
    let mut build = cli(&gw, &b, &["build", "-t", &theirs]);
    build.arg(&context).env("DOCKER_BUILDKIT", "0");
    ok(&mut build);
    let rule = refused(
        &gw,
        &a,
        &mut cli(&gw, &a, &["push", &theirs]),
        "No such image",
        "ImagePush",
    );
    assert_eq!(rule, "confined.ownership");

    // A tagless pull would replace every local tag of the repository.
    let rule = refused(
        &gw,
        &b,
        &mut cli(&gw, &b, &["pull", "--all-tags", &all_tags]),
        "rule confined.pull-all-tags",
        "ImageCreate",
    );
    assert_eq!(rule, "confined.pull-all-tags");

    // a's job is done and removes its tags; b pulls the pushed image by tag and runs it.
    ok(&mut cli(&gw, &a, &["rmi", &remote, &local]));
    ok(&mut cli(&gw, &b, &["pull", &remote]));
    let made = ok(&mut cli(&gw, &b, &["run", "--rm", &remote, "cat", "/made"]));
    assert_eq!(made.trim(), "built-by-a");

    // What arrived at the registry: a's tag, nothing refused.
    let theirs_repo = theirs
        .trim_start_matches(&format!("{host}/"))
        .trim_end_matches(":1");
    let catalog = registry.catalog();
    assert_eq!(catalog, [repo.as_str()], "the registry holds {catalog:?}");
    assert!(registry.tags(theirs_repo).is_empty());

    // The password reached no log line, allowed or refused.
    assert!(
        audit(&gw)
            .iter()
            .any(|v| v["operation"] == "SystemAuth" && v["decision"] == "allow"),
        "no audited login"
    );
    let log = gw.log();
    assert!(
        !log.contains(&secret),
        "the gateway log holds the password:\n{log}"
    );
}

/// `dockgate renew --expires-in`: a pipeline step runs it every time; it renews only when the
/// certificate expires within the window, and otherwise changes nothing.
#[test]
fn renew_expires_in_renews_only_when_due() {
    let gw = Gateway::start();
    // Issued for 90 days.
    let runner = gw.client(&unique("renewing"), "ci");
    let cert = runner.dir.join("cert.pem");
    let key = runner.dir.join("key.pem");
    let read = |path: &std::path::Path| std::fs::read(path).expect("read the client's files");
    let renew = |window: &str| {
        ok(dockgate()
            .args(["renew", "--expires-in", window, "--cert-path"])
            .arg(&runner.dir)
            .args(["--host", &format!("tcp://{}", gw.addr())]))
    };
    let (before, key_before) = (read(&cert), read(&key));

    let skipped = renew("30d");
    assert!(skipped.contains("Not renewed"), "{skipped}");
    assert_eq!(read(&cert), before, "cert.pem changed although not due");
    assert_eq!(read(&key), key_before, "key.pem changed although not due");

    let renewed = renew("91d");
    assert!(renewed.contains("Renewed"), "{renewed}");
    assert_ne!(read(&cert), before, "cert.pem was not renewed");
    assert_ne!(read(&key), key_before, "key.pem was not replaced");
    ok(&mut cli(&gw, &runner, &["version"]));

    let out = run(dockgate()
        .args(["renew", "--expires-in", "7x", "--cert-path"])
        .arg(&runner.dir)
        .args(["--host", &format!("tcp://{}", gw.addr())]));
    assert!(
        !out.status.success() && out.stderr_str().contains("unknown unit"),
        "{}",
        out.stderr_str()
    );
}

/// `pki client --config` refuses a role the gateway's config does not define, naming the roles
/// that exist, and writes nothing.
#[test]
fn pki_client_refuses_an_undefined_role() {
    let dir = TempDir::new("undefined-role");
    let certs = dir.join("certs");
    let config = dir.join("dockgate.toml");
    std::fs::write(&config, include_str!("../config/dockgate.toml")).expect("write config");
    ok(dockgate().args(["pki", "init", "--dir"]).arg(&certs));
    let client = |role: &str, out: &str| {
        run(dockgate()
            .args(["pki", "client", "--name", "runner", "--role", role, "--dir"])
            .arg(&certs)
            .arg("--out")
            .arg(dir.join(out))
            .arg("--config")
            .arg(&config))
    };
    let refused = client("deploy", "deploy");
    let stderr = refused.stderr_str();
    assert!(
        !refused.status.success()
            && stderr.contains("\"deploy\" is not defined")
            && stderr.contains("admin, ci, readonly"),
        "{stderr}"
    );
    assert!(!dir.join("deploy").exists(), "a refused role left files");
    client("ci", "ci").assert_success();
    assert!(dir.join("ci/cert.pem").exists());
}

/// The README's scheduled renewal, step by step: a context export is unpacked, renewed when
/// due, packed again and imported by a fresh docker CLI, which works; the export it replaced is
/// refused once its certificate is revoked.
#[test]
fn a_context_export_renews_and_packs_again_as_the_readme_shows() {
    let gw = Gateway::start();
    let work = TempDir::new("ctx-renew");
    let host = format!("tcp://{}", gw.addr());
    let name = unique("exported");
    ok(dockgate()
        .args(["pki", "client", "--dir"])
        .arg(gw.certs_dir())
        .args(["--name", &name, "--role", "ci", "--out"])
        .arg(work.join("issued"))
        .args(["--context", "dockgate", "--host", &host]));
    let export = work.join("issued/dockgate.dockercontext");
    let unpacked = work.join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("create unpack dir");
    ok(Command::new("tar")
        .arg("-xf")
        .arg(&export)
        .arg("-C")
        .arg(&unpacked));
    let cert = unpacked.join("tls/docker/cert.pem");
    let before = std::fs::read(&cert).expect("read cert.pem");
    ok(dockgate()
        .args(["renew", "--expires-in", "91d", "--cert-path"])
        .arg(unpacked.join("tls/docker"))
        .args(["--host", &host]));
    assert_ne!(std::fs::read(&cert).expect("read cert.pem"), before);
    let renewed = work.join("renewed.tar");
    ok(Command::new("tar")
        .arg("-chf")
        .arg(&renewed)
        .arg("-C")
        .arg(&unpacked)
        .args([
            "meta.json",
            "tls/docker/ca.pem",
            "tls/docker/cert.pem",
            "tls/docker/key.pem",
        ]));

    let import = |tar: &std::path::Path, config: &str| {
        let config = work.join(config);
        std::fs::create_dir_all(&config).expect("create docker config dir");
        ok(args(docker_command(&config), ["context", "import", "dockgate"]).arg(tar));
        args(
            docker_command(&config),
            ["--context", "dockgate", "version"],
        )
    };
    ok(&mut import(&renewed, "fresh-cli"));
    // Refused once the gateway has loaded the new CRL (it watches its certs directory).
    let mut stale = import(&export, "stale-cli");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = run(&mut stale);
        if !out.status.success() {
            assert!(
                refused_at_handshake(&out),
                "the replaced export failed for another reason: {}",
                out.stderr_str()
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replaced export still works:\n{}",
            out.stdout_str()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    ok(&mut import(&renewed, "fresh-cli-again"));
}

/// `dockgate renew --context NAME` renews the certificate a docker context holds, in place:
/// the same context keeps working with the new certificate, the old one is refused once the
/// gateway loads the new revocation list, and nothing but the three files is left behind.
#[test]
fn a_docker_context_renews_in_place() {
    let gw = Gateway::start();
    let work = TempDir::new("ctx-in-place");
    let host = format!("tcp://{}", gw.addr());
    let name = unique("in-place");
    ok(dockgate()
        .args(["pki", "client", "--dir"])
        .arg(gw.certs_dir())
        .args(["--name", &name, "--role", "ci", "--out"])
        .arg(work.join("issued"))
        .args(["--context", "vm-ci", "--host", &host]));
    let config = work.join("docker-config");
    std::fs::create_dir_all(&config).expect("create docker config dir");
    ok(
        args(docker_command(&config), ["context", "import", "vm-ci"])
            .arg(work.join("issued/vm-ci.dockercontext")),
    );
    let version = || args(docker_command(&config), ["--context", "vm-ci", "version"]);
    ok(&mut version());
    let tls = std::fs::read_dir(config.join("contexts/tls"))
        .expect("the imported context's TLS store")
        .filter_map(Result::ok)
        .map(|e| e.path().join("docker"))
        .find(|p| p.join("cert.pem").exists())
        .expect("the context's TLS directory");
    let old_cert = std::fs::read(tls.join("cert.pem")).expect("read cert.pem");
    let old_dir = work.join("old");
    std::fs::create_dir_all(&old_dir).expect("create old dir");
    for file in ["ca.pem", "cert.pem", "key.pem"] {
        std::fs::copy(tls.join(file), old_dir.join(file)).expect("keep the old set");
    }

    // The old set, used directly: it works before the renewal.
    let stale = || {
        let mut cmd = args(docker_command(&config), ["version"]);
        cmd.env("DOCKER_HOST", &host)
            .env("DOCKER_TLS_VERIFY", "1")
            .env("DOCKER_CERT_PATH", &old_dir)
            .env_remove("DOCKER_CONTEXT");
        cmd
    };
    ok(&mut stale());
    ok(dockgate()
        .env("DOCKER_CONFIG", &config)
        .args(["renew", "--context", "vm-ci"]));
    assert_ne!(
        std::fs::read(tls.join("cert.pem")).expect("read cert.pem"),
        old_cert,
        "the context still holds the old certificate"
    );
    let mut entries: Vec<String> = std::fs::read_dir(&tls)
        .expect("list the TLS directory")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["ca.pem", "cert.pem", "key.pem"]);
    let tls_root: Vec<_> = std::fs::read_dir(config.join("contexts/tls"))
        .expect("list the TLS store")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        tls_root.len(),
        1,
        "a staging directory was left: {tls_root:?}"
    );
    ok(&mut version());

    // The replaced certificate stops working once the gateway has the new CRL.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let out = run(&mut stale());
        if !out.status.success() {
            assert!(
                refused_at_handshake(&out),
                "the replaced certificate failed for another reason: {}",
                out.stderr_str()
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the replaced certificate is still accepted"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    ok(&mut version());
}

/// docker-compose 1.29 (docker-py) as `ci`.
fn compose(
    gw: &Gateway,
    who: &ClientCerts,
    project_dir: &std::path::Path,
    project: &str,
) -> Command {
    if !std::path::Path::new("/usr/bin/docker-compose").exists() {
        assert!(
            is_root(),
            "docker-compose is missing; install Debian's docker-compose package (or run as root)"
        );
        apt_install("docker-compose");
    }
    let mut cmd = Command::new("docker-compose");
    // requests would verify the gateway against the system's CAs instead of ca.pem.
    for var in [
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "DOCKER_CONTEXT",
        "COMPOSE_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(project_dir)
        .env("DOCKER_HOST", format!("tcp://{}", gw.addr()))
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &who.dir)
        .args(["--no-ansi", "-p", project]);
    cmd
}

fn labels(kind: &str, name: &str) -> Value {
    let inspected = inspect(kind, name).unwrap_or_else(|| panic!("{kind} {name} is missing"));
    let pointer = if kind == "container" {
        "/Config/Labels"
    } else {
        "/Labels"
    };
    inspected.pointer(pointer).cloned().unwrap_or_default()
}

/// A compose project as `ci`: up, ps, logs, exec and down work; everything compose made is
/// the runner's, and another runner neither sees it nor can take it down.
#[test]
fn compose_runs_a_project_owned_by_its_runner() {
    let gw = Gateway::start();
    let a = gw.client(&unique("compose-a"), "ci");
    let b = gw.client(&unique("compose-b"), "ci");
    let dir = TempDir::new("compose");
    let project = unique("proj").replace('-', "");
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!(
            r#"version: "3"
services:
  web:
    image: {image}
    command: ["sh", "-c", "echo hello-from-web; sleep 600"]
    volumes: ["data:/data"]
    networks: ["back"]
  worker:
    image: {image}
    command: ["sleep", "600"]
    networks: ["back"]
volumes:
  data: {{}}
networks:
  back: {{}}
"#,
            image = test_image()
        ),
    )
    .expect("write docker-compose.yml");
    let mut janitor = Janitor::new();
    let (web, worker) = (
        janitor.container(&format!("{project}_web_1")),
        janitor.container(&format!("{project}_worker_1")),
    );
    let volume = janitor.volume(&format!("{project}_data"));
    let network = janitor.network(&format!("{project}_back"));
    let run_a = |list: &[&str]| ok(&mut args(compose(&gw, &a, dir.path(), &project), list));

    run_a(&["up", "-d"]);
    let ps = run_a(&["ps"]);
    assert!(ps.contains(&web) && ps.contains(&worker), "{ps}");
    assert!(run_a(&["logs", "web"]).contains("hello-from-web"));
    let written = run_a(&[
        "exec",
        "-T",
        "web",
        "sh",
        "-c",
        "echo kept > /data/x && cat /data/x",
    ]);
    assert_eq!(written.trim(), "kept");

    // Everything compose made is a's.
    let owner = owner_of(&inspect("container", &web).expect("web exists")).expect("web's owner");
    for (kind, name) in [
        ("container", &web),
        ("container", &worker),
        ("volume", &volume),
        ("network", &network),
    ] {
        assert_eq!(
            labels(kind, name)["dockgate.owner"],
            owner.as_str(),
            "{kind} {name}"
        );
    }

    // b sees none of it and cannot take it down.
    let run_b = |list: &[&str]| run(&mut args(compose(&gw, &b, dir.path(), &project), list));
    let ps = run_b(&["ps"]);
    ps.assert_success();
    let ps = ps.stdout_str();
    assert!(
        !ps.contains(&web) && !ps.contains(&worker),
        "b sees a's project:\n{ps}"
    );
    run_b(&["down", "-v"]);
    run_b(&["kill"]);
    for (kind, name) in [
        ("container", &web),
        ("container", &worker),
        ("volume", &volume),
        ("network", &network),
    ] {
        assert!(inspect(kind, name).is_some(), "b removed {kind} {name}");
    }
    let running = inspect("container", &web).expect("web exists");
    assert_eq!(running.pointer("/State/Running"), Some(&Value::Bool(true)));
    // `rm -f` exits 0 for an absent container, which a's is to b.
    run(&mut cli(&gw, &b, &["rm", "-f", &web])).assert_success();
    let out = run(&mut cli(&gw, &b, &["stop", &web]));
    assert!(
        !out.status.success() && out.stderr_str().contains("No such container"),
        "b stopped a's container: {}",
        out.stderr_str()
    );
    let running = inspect("container", &web).expect("web survives b");
    assert_eq!(running.pointer("/State/Running"), Some(&Value::Bool(true)));

    run_a(&["down", "-v"]);
    for (kind, name) in [
        ("container", &web),
        ("container", &worker),
        ("volume", &volume),
        ("network", &network),
    ] {
        assert!(inspect(kind, name).is_none(), "down -v left {kind} {name}");
    }
}
