//! The shipped roles against the real daemon: the hostile corpus (tests/corpus/confinement.toml)
//! sent as `ci` over raw mutual TLS, ownership through the real docker CLI, the `readonly` role, a certificate whose role
//! does not exist, and the audit trail. Every case checks the gateway's answer and then what
//! the daemon holds, asked directly on its socket, never through the gateway.

use std::fs;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::corpus::{self, State, Vars};
use crate::support::gateway::{ClientCerts, Gateway};
use crate::support::image::test_image;
use crate::support::policy::{
    containers_labelled, host_access, inspect, owner_of, post_json, refused, refused_stderr, send,
    sized, succeeds, Findings, API,
};
use crate::support::{args, docker_direct, ok, run, run_with, unique, Janitor, TempDir};

/// The `docker` CLI through the gateway as `who`.
fn cli(gw: &Gateway, who: &ClientCerts, list: &[&str]) -> Command {
    args(gw.docker(who), list)
}

/// The owner label value the gateway stamps for a client.
fn owner(who: &ClientCerts) -> String {
    format!("cn={}", who.name)
}

/// A detached `sleep` container created through the gateway as `who`.
fn sleeper(gw: &Gateway, who: &ClientCerts, janitor: &mut Janitor, prefix: &str) -> String {
    let name = janitor.container(&unique(prefix));
    ok(&mut cli(
        gw,
        who,
        &["run", "-d", "--name", &name, test_image(), "sleep", "600"],
    ));
    name
}

/// Combines two independent outcomes, keeping both failures.
trait Both {
    fn and_both(self, other: Result<(), String>) -> Result<(), String>;
}

impl Both for Result<(), String> {
    fn and_both(self, other: Result<(), String>) -> Result<(), String> {
        match (self, other) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        }
    }
}

fn field<'a>(v: &'a Value, pointer: &str) -> &'a Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

fn is_empty(v: &Value) -> bool {
    v.is_null() || v.as_array().is_some_and(Vec::is_empty)
}

// ---- The hostile corpus (tests/corpus/confinement.toml) against the real daemon ----

/// What the daemon must hold after the request.
#[derive(Debug)]
enum Trace {
    NoContainer(String),
    /// Exists, carries this owner label, and is not privileged.
    OwnedBy(String, String),
    Running(String),
    /// Exists, never started, with no privileges or binds.
    Unstarted(String),
    /// Exists and has no exec instances.
    NoExecs(String),
    NoVolume(String),
    VolumeOwnedBy(String, String),
    NoNetwork(String),
    NoImage(String),
    SwarmInactive,
    NoPlugins,
    /// `path` does not exist inside the (running) container.
    NoFile(String, String),
    /// The container is not attached to this network.
    NotOn(String, String),
    /// Exactly one network has this name.
    OneNetworkNamed(String),
}

impl Trace {
    fn check(&self) -> Result<(), String> {
        let container = |name: &str| {
            inspect("container", name).ok_or_else(|| format!("the daemon has no container {name}"))
        };
        match self {
            Trace::NoContainer(name) => match inspect("container", name) {
                None => Ok(()),
                Some(c) => Err(format!("the daemon created {}", host_access(&c))),
            },
            Trace::OwnedBy(name, owner) => {
                let c = container(name)?;
                let privileged = field(&c, "/HostConfig/Privileged").as_bool() == Some(true);
                if owner_of(&c).as_deref() == Some(owner) && !privileged {
                    Ok(())
                } else {
                    Err(format!(
                        "want owner {owner}, the daemon holds {}",
                        host_access(&c)
                    ))
                }
            }
            Trace::Running(name) => {
                let c = container(name)?;
                match field(&c, "/State/Running").as_bool() {
                    Some(true) => Ok(()),
                    _ => Err(format!("not running: {}", host_access(&c))),
                }
            }
            Trace::Unstarted(name) => {
                let c = container(name)?;
                let unchanged = field(&c, "/State/Status") == "created"
                    && field(&c, "/HostConfig/Privileged").as_bool() != Some(true)
                    && is_empty(field(&c, "/HostConfig/Binds"));
                if unchanged {
                    Ok(())
                } else {
                    Err(format!("the daemon holds {}", host_access(&c)))
                }
            }
            Trace::NoExecs(name) => {
                let c = container(name)?;
                let execs = field(&c, "/ExecIDs");
                if is_empty(execs) {
                    Ok(())
                } else {
                    Err(format!("container {name} has exec instances {execs}"))
                }
            }
            Trace::NoVolume(name) => match inspect("volume", name) {
                None => Ok(()),
                Some(v) => Err(format!("the daemon created volume {v}")),
            },
            Trace::VolumeOwnedBy(name, owner) => {
                let v = inspect("volume", name)
                    .ok_or_else(|| format!("the daemon has no volume {name}"))?;
                if field(&v, "/Labels/dockgate.owner") == owner.as_str() {
                    Ok(())
                } else {
                    Err(format!("want owner {owner}, the daemon holds volume {v}"))
                }
            }
            Trace::NoNetwork(name) => match inspect("network", name) {
                None => Ok(()),
                Some(n) => Err(format!("the daemon created network {n}")),
            },
            Trace::NoImage(name) => match inspect("image", name) {
                None => Ok(()),
                Some(i) => Err(format!(
                    "the daemon holds image {name} ({})",
                    field(&i, "/Id")
                )),
            },
            Trace::SwarmInactive => {
                let state = ok(&mut args(
                    docker_direct(),
                    ["info", "--format", "{{.Swarm.LocalNodeState}}"],
                ));
                if state.trim() == "inactive" {
                    Ok(())
                } else {
                    // Leave, so the rest of the suite keeps a plain daemon.
                    let _ = run(&mut args(docker_direct(), ["swarm", "leave", "--force"]));
                    Err(format!("the daemon's swarm state is {:?}", state.trim()))
                }
            }
            Trace::NoPlugins => {
                let plugins = ok(&mut args(docker_direct(), ["plugin", "ls", "-q"]));
                if plugins.trim().is_empty() {
                    Ok(())
                } else {
                    Err(format!("the daemon holds plugins {:?}", plugins.trim()))
                }
            }
            Trace::NoFile(name, path) => {
                let out = run(&mut args(
                    docker_direct(),
                    ["exec", name, "test", "-e", path],
                ));
                match out.code() {
                    Some(1) => Ok(()),
                    Some(0) => Err(format!("container {name} holds {path}")),
                    _ => Err(format!(
                        "cannot look into {name}: {}",
                        out.stderr_str().trim()
                    )),
                }
            }
            Trace::NotOn(name, network) => {
                let c = container(name)?;
                match field(&c, "/NetworkSettings/Networks").get(network.as_str()) {
                    None => Ok(()),
                    Some(_) => Err(format!("container {name} is on network {network}")),
                }
            }
            Trace::OneNetworkNamed(name) => {
                let ids = ok(&mut args(
                    docker_direct(),
                    [
                        "network",
                        "ls",
                        "-q",
                        "--no-trunc",
                        "--filter",
                        &format!("name=^{name}$"),
                    ],
                ));
                match ids.lines().count() {
                    1 => Ok(()),
                    n => {
                        // Ambiguous names break the janitor's removal by name.
                        for id in ids.lines() {
                            let _ = run(&mut args(docker_direct(), ["network", "rm", id]));
                        }
                        Err(format!("the daemon holds {n} networks named {name}"))
                    }
                }
            }
        }
    }
}

impl Trace {
    /// The check of a corpus daemon state, for the caller whose owner label is `me`.
    fn of(state: State, me: &str) -> Trace {
        match state {
            State::NoContainer(c) => Trace::NoContainer(c),
            State::OwnedByCaller(c) => Trace::OwnedBy(c, me.to_owned()),
            State::Running(c) => Trace::Running(c),
            State::Unstarted(c) => Trace::Unstarted(c),
            State::NoExecs(c) => Trace::NoExecs(c),
            State::NoVolume(v) => Trace::NoVolume(v),
            State::VolumeOwnedByCaller(v) => Trace::VolumeOwnedBy(v, me.to_owned()),
            State::NoNetwork(n) => Trace::NoNetwork(n),
            State::OneNetworkNamed(n) => Trace::OneNetworkNamed(n),
            State::NotOnNetwork(c, n) => Trace::NotOn(c, n),
            State::NoImage(i) => Trace::NoImage(i),
            State::NoFile(c, path) => Trace::NoFile(c, path),
            State::SwarmInactive => Trace::SwarmInactive,
            State::NoPlugins => Trace::NoPlugins,
        }
    }
}

#[tokio::test]
async fn ci_hostile_corpus_is_refused_and_leaves_the_daemon_untouched() {
    let gw = Gateway::start();
    let ci = gw.client(&unique("ci"), "ci");
    let admin = gw.admin().clone();
    let mut janitor = Janitor::new();

    // The admin's objects, made through the gateway as admin.
    let theirs = sleeper(&gw, &admin, &mut janitor, "admin-ctr");
    let theirs_id = inspect("container", &theirs)
        .and_then(|c| c.get("Id").and_then(Value::as_str).map(str::to_owned))
        .expect("admin's container exists");
    let stopped = janitor.container(&unique("admin-stopped"));
    ok(&mut cli(
        &gw,
        &admin,
        &["create", "--name", &stopped, test_image(), "true"],
    ));
    let admin_vol = janitor.volume(&unique("admin-vol"));
    ok(&mut cli(&gw, &admin, &["volume", "create", &admin_vol]));
    let admin_net = janitor.network(&unique("admin-net"));
    ok(&mut cli(&gw, &admin, &["network", "create", &admin_net]));
    // An exec instance the admin created and has not started yet.
    let exec_target = sleeper(&gw, &admin, &mut janitor, "admin-exec-target");
    let reply = send(
        &gw,
        &admin,
        "POST",
        &post_json(
            &format!("{API}/containers/{exec_target}/exec"),
            r#"{"Cmd":["touch","/tmp/pwned"]}"#,
        ),
    )
    .await;
    assert_eq!(
        reply.status(),
        201,
        "admin exec create: {}",
        reply.message()
    );
    let admin_exec: Value = serde_json::from_slice(&reply.body).expect("exec create JSON");
    let admin_exec = admin_exec["Id"]
        .as_str()
        .expect("exec create returns an Id")
        .to_owned();

    let mut vars = Vars::default();
    vars.set("$IMG", Value::from(test_image()).to_string());
    vars.set("$IMG_NAME", test_image());
    // The test image is owned by no one: ci may use it by name, and must not find it by prefix.
    let hidden = inspect("image", test_image())
        .and_then(|i| i.get("Id").and_then(Value::as_str).map(str::to_owned))
        .expect("the test image exists");
    vars.set("$HIDDEN_IMG_SHORT", &hidden["sha256:".len()..][..12]);
    vars.set("$HIDDEN_IMG_ID", hidden);
    vars.set("$ADMIN", &theirs);
    vars.set("$ADMIN_ID", &theirs_id);
    vars.set("$ADMIN_SHORT_ID", &theirs_id[..12]);
    vars.set("$ADMIN_STOPPED", &stopped);
    vars.set("$ADMIN_VOL", &admin_vol);
    vars.set("$ADMIN_NET", &admin_net);
    vars.set("$ADMIN_EXEC", &admin_exec);
    vars.set("$ADMIN_EXEC_TARGET", &exec_target);
    // ci's own containers, which the corpus's controls create.
    vars.set("$CREATED", janitor.container(&unique("ci-created")));
    vars.set("$RUNNING", janitor.container(&unique("ci-running")));
    let me = owner(&ci);

    let mut findings = Findings::new();
    for case in corpus::cases() {
        let mut vars = vars.clone();
        for (name, stem) in case.fresh() {
            let fresh = unique(stem);
            vars.set(
                name,
                match name {
                    "$VOL" => janitor.volume(&fresh),
                    "$NET" => janitor.network(&fresh),
                    "$TAG" => janitor.image(&fresh),
                    _ => janitor.container(&fresh),
                },
            );
        }
        let reply = send(&gw, &ci, &case.method, &case.wire(&vars)).await;
        let mut problems: Vec<String> = case
            .check_reply(&vars, reply.status(), &reply.message())
            .err()
            .into_iter()
            .collect();
        problems.extend(
            case.states(&vars)
                .into_iter()
                .filter_map(|s| Trace::of(s, &me).check().err()),
        );
        let outcome = if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        };
        findings.check(&case.label, outcome);
    }
    // The admin's objects are untouched by all of the above.
    findings.check(
        "the admin's container still runs",
        Trace::Running(theirs.clone()).check(),
    );
    findings.finish();
}

// ---- Ownership through the docker CLI ----

#[test]
fn ci_runs_execs_copies_logs_builds_and_removes_its_own_containers() {
    let gw = Gateway::start();
    let ci = gw.client(&unique("ci"), "ci");
    let admin = gw.admin().clone();
    let me = owner(&ci);
    let mut janitor = Janitor::new();
    let mut f = Findings::new();

    let mine = janitor.container(&unique("ci-mine"));
    f.check(
        "ci docker run -d",
        succeeds(&mut cli(
            &gw,
            &ci,
            &[
                "run",
                "-d",
                "--name",
                &mine,
                test_image(),
                "sh",
                "-c",
                "echo ci-log-line; exec sleep 600",
            ],
        ))
        .map(drop)
        .and_then(|()| Trace::OwnedBy(mine.clone(), me.clone()).check())
        .and_then(|()| Trace::Running(mine.clone()).check()),
    );
    f.check(
        "ci docker inspect shows the owner label",
        succeeds(&mut cli(
            &gw,
            &ci,
            &[
                "container",
                "inspect",
                "--format",
                "{{index .Config.Labels \"dockgate.owner\"}}",
                &mine,
            ],
        ))
        .and_then(|out| {
            (out.trim() == me)
                .then_some(())
                .ok_or(format!("label {:?}, want {me:?}", out.trim()))
        }),
    );
    f.check(
        "ci docker run --rm (attached)",
        succeeds(&mut cli(
            &gw,
            &ci,
            &["run", "--rm", test_image(), "echo", "hello-from-ci"],
        ))
        .and_then(|out| {
            (out == "hello-from-ci\n")
                .then_some(())
                .ok_or(format!("stdout {out:?}"))
        }),
    );
    f.check(
        "ci docker exec",
        succeeds(&mut cli(
            &gw,
            &ci,
            &["exec", &mine, "sh", "-c", "echo exec-ok; id -u"],
        ))
        .and_then(|out| {
            (out == "exec-ok\n0\n")
                .then_some(())
                .ok_or(format!("stdout {out:?}"))
        }),
    );
    f.check(
        "ci docker logs",
        succeeds(&mut cli(&gw, &ci, &["logs", &mine])).and_then(|out| {
            (out == "ci-log-line\n")
                .then_some(())
                .ok_or(format!("stdout {out:?}"))
        }),
    );
    f.check(
        "ci docker cp out of its container",
        succeeds(&mut cli(
            &gw,
            &ci,
            &["cp", &format!("{mine}:/etc/passwd"), "-"],
        ))
        .and_then(|out| {
            out.contains("root:x:0:0:root:/root:/bin/sh")
                .then_some(())
                .ok_or(format!("archive {:?}", crate::support::tail(&out, 300)))
        }),
    );
    let scratch = TempDir::new("policy-cp");
    let local = scratch.join("cp-in.txt");
    fs::write(&local, "copied-in-by-ci\n").expect("write file to copy");
    f.check(
        "ci docker cp into its container",
        succeeds(&mut cli(
            &gw,
            &ci,
            &[
                "cp",
                &local.to_string_lossy(),
                &format!("{mine}:/tmp/cp-in.txt"),
            ],
        ))
        .and_then(|_| {
            let inside = ok(&mut args(
                docker_direct(),
                ["exec", &mine, "cat", "/tmp/cp-in.txt"],
            ));
            (inside == "copied-in-by-ci\n")
                .then_some(())
                .ok_or(format!("the container holds {inside:?}"))
        }),
    );
    f.check(
        "ci docker ps lists its container",
        succeeds(&mut cli(&gw, &ci, &["ps", "--format", "{{.Names}}"])).and_then(|out| {
            out.lines()
                .any(|l| l == mine)
                .then_some(())
                .ok_or(format!("ps printed {out:?}"))
        }),
    );

    // A classic build: the image and the containers made from it.
    let tag = janitor.image(&unique("ci-built"));
    let context = TempDir::new("policy-build");
    fs::write(
        context.join("Dockerfile"),
        format!(
            "FROM {}\nRUN echo built-by-ci > /built\nLABEL dgt.case=ci-build\n",
            test_image()
        ),
    )
    .expect("write Dockerfile");
    let mut build = cli(
        &gw,
        &ci,
        &["build", "-t", &tag, &context.path().to_string_lossy()],
    );
    build.env("DOCKER_BUILDKIT", "0");
    f.check(
        "ci docker build (classic builder)",
        succeeds(&mut build).map(drop).and_then(|()| {
            let image = inspect("image", &tag).ok_or("no image was built")?;
            match owner_of(&image) {
                Some(o) if o == me => Ok(()),
                other => Err(format!("image owner label {other:?}, want {me:?}")),
            }
        }),
    );
    f.check(
        "ci docker image inspect and history of its image by ID prefix",
        inspect("image", &tag)
            .and_then(|i| i.get("Id").and_then(Value::as_str).map(str::to_owned))
            .ok_or("no image was built".to_owned())
            .and_then(|id| {
                let short = &id["sha256:".len()..][..10];
                succeeds(&mut cli(&gw, &ci, &["history", "-q", short]))?;
                let out = succeeds(&mut cli(
                    &gw,
                    &ci,
                    &["image", "inspect", "--format", "{{.Id}}", short],
                ))?;
                (out.trim() == id)
                    .then_some(())
                    .ok_or(format!("printed {out:?}"))
            }),
    );
    f.check(
        "ci docker run of its built image",
        succeeds(&mut cli(&gw, &ci, &["run", "--rm", &tag, "cat", "/built"])).and_then(|out| {
            (out == "built-by-ci\n")
                .then_some(())
                .ok_or(format!("stdout {out:?}"))
        }),
    );
    let from_built = janitor.container(&unique("ci-from-built"));
    f.check(
        "ci's container from its image is ci's",
        succeeds(&mut cli(
            &gw,
            &ci,
            &["create", "--name", &from_built, &tag, "true"],
        ))
        .map(drop)
        .and_then(|()| Trace::OwnedBy(from_built.clone(), me.clone()).check()),
    );
    let admins = janitor.container(&unique("admin-from-ci-image"));
    f.check(
        "admin's container from ci's image is labelled with admin's owner",
        succeeds(&mut cli(
            &gw,
            &admin,
            &["run", "-d", "--name", &admins, &tag, "sleep", "600"],
        ))
        .map(drop)
        .and_then(|()| Trace::OwnedBy(admins.clone(), "cn=admin".into()).check()),
    );
    for verb in [&["container", "inspect"][..], &["exec"][..], &["logs"][..]] {
        let mut list = verb.to_vec();
        list.push(&admins);
        if verb == ["exec"] {
            list.push("true");
        }
        f.check(
            &format!(
                "ci docker {} on admin's container from ci's image",
                verb.join(" ")
            ),
            refused(&mut cli(&gw, &ci, &list), "No such container"),
        );
    }

    f.check(
        "ci docker rm -f of its containers",
        succeeds(&mut cli(&gw, &ci, &["rm", "-f", &mine, &from_built])).and_then(|_| {
            for name in [&mine, &from_built] {
                Trace::NoContainer(name.clone()).check()?;
            }
            Ok(())
        }),
    );
    // The admin's container pins the image; it goes first.
    ok(&mut args(docker_direct(), ["rm", "-f", &admins]));
    f.check(
        "ci docker rmi of its image",
        succeeds(&mut cli(&gw, &ci, &["rmi", &tag]))
            .map(drop)
            .and_then(|()| Trace::NoImage(tag.clone()).check()),
    );
    f.finish();
}

#[test]
fn admin_containers_are_invisible_to_ci() {
    let gw = Gateway::start();
    let ci = gw.client(&unique("ci"), "ci");
    let admin = gw.admin().clone();
    let mut janitor = Janitor::new();
    let mut f = Findings::new();

    let theirs = sleeper(&gw, &admin, &mut janitor, "admin-ctr");
    let mine = sleeper(&gw, &ci, &mut janitor, "ci-ctr");
    let id = inspect("container", &theirs)
        .and_then(|c| c.get("Id").and_then(Value::as_str).map(str::to_owned))
        .expect("admin's container exists");
    f.check(
        "the admin's container is labelled cn=admin",
        Trace::OwnedBy(theirs.clone(), "cn=admin".into()).check(),
    );

    let listed = |list: &[&str]| -> Result<Vec<String>, String> {
        succeeds(&mut cli(&gw, &ci, list)).map(|out| out.lines().map(str::to_owned).collect())
    };
    f.check(
        "ci docker ps -a lists its own container and not the admin's",
        listed(&["ps", "-a", "--format", "{{.Names}}"]).and_then(|names| {
            (names.contains(&mine) && !names.contains(&theirs))
                .then_some(())
                .ok_or(format!("ps -a printed {names:?}"))
        }),
    );
    f.check(
        "ci docker ps with a forged owner filter lists nothing of the admin's",
        listed(&[
            "ps",
            "-a",
            "--filter",
            "label=dockgate.owner=cn=admin",
            "--format",
            "{{.Names}}",
        ])
        .and_then(|names| {
            names
                .is_empty()
                .then_some(())
                .ok_or(format!("ps -a printed {names:?}"))
        }),
    );
    f.check(
        "ci docker ps filtered by the admin's container name",
        listed(&[
            "ps",
            "-a",
            "--filter",
            &format!("name={theirs}"),
            "--format",
            "{{.Names}}",
        ])
        .and_then(|names| {
            names
                .is_empty()
                .then_some(())
                .ok_or(format!("ps -a printed {names:?}"))
        }),
    );

    let short = &id[..12];
    let target = format!("{theirs}:/etc/passwd");
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("inspect".into(), vec!["container", "inspect", &theirs]),
        (
            "inspect by full ID".into(),
            vec!["container", "inspect", &id],
        ),
        (
            "inspect by short ID".into(),
            vec!["container", "inspect", short],
        ),
        ("exec".into(), vec!["exec", &theirs, "true"]),
        ("exec by short ID".into(), vec!["exec", short, "true"]),
        ("logs".into(), vec!["logs", &theirs]),
        ("rm".into(), vec!["rm", &theirs]),
        ("cp out".into(), vec!["cp", &target, "-"]),
        ("attach".into(), vec!["attach", "--no-stdin", &theirs]),
        ("kill".into(), vec!["kill", &theirs]),
        ("stop".into(), vec!["stop", &theirs]),
        ("top".into(), vec!["top", &theirs]),
    ];
    for (label, list) in &cases {
        let out = run_with(&mut cli(&gw, &ci, list), None, Duration::from_secs(60));
        let err = out.stderr_str();
        let outcome = if out.status.success() {
            Err(format!("`{}` succeeded: {:?}", out.what, out.stdout_str()))
        } else if !err.contains("No such container") {
            Err(format!(
                "`{}` failed without \"No such container\": {}",
                out.what,
                err.trim()
            ))
        } else {
            Ok(())
        };
        f.check(
            &format!("ci docker {label} on the admin's container"),
            outcome,
        );
    }
    f.check(
        "ci docker rm -f of the admin's container",
        succeeds(&mut cli(&gw, &ci, &["rm", "-f", &theirs]))
            .map(drop)
            .or_else(|e| e.contains("No such container").then_some(()).ok_or(e)),
    );
    let local = TempDir::new("policy-cp-in");
    let file = local.join("planted");
    fs::write(&file, "planted\n").expect("write file");
    f.check(
        "ci docker cp into the admin's container",
        refused(
            &mut cli(
                &gw,
                &ci,
                &[
                    "cp",
                    &file.to_string_lossy(),
                    &format!("{theirs}:/tmp/planted"),
                ],
            ),
            "No such container",
        )
        .and_then(|()| {
            let out = run(&mut args(
                docker_direct(),
                ["exec", &theirs, "test", "-e", "/tmp/planted"],
            ));
            (!out.status.success())
                .then_some(())
                .ok_or("the file was planted in the admin's container".to_owned())
        }),
    );
    f.check(
        "ci creating a container under the admin's name gets a conflict that names no ID",
        refused_stderr(
            &mut cli(&gw, &ci, &["create", "--name", &theirs, test_image()]),
            "Conflict",
        )
        .and_then(|err| {
            (!err.contains(&id[..12])).then_some(()).ok_or(format!(
                "the conflict leaked the admin's container ID: {err}"
            ))
        }),
    );
    f.check(
        "after all of it the admin's container still runs, with no execs",
        Trace::Running(theirs.clone())
            .check()
            .and_then(|()| Trace::NoExecs(theirs.clone()).check()),
    );
    f.check(
        "the admin sees both containers",
        succeeds(&mut cli(
            &gw,
            &admin,
            &["ps", "-a", "--format", "{{.Names}}"],
        ))
        .and_then(|out| {
            let names: Vec<&str> = out.lines().collect();
            (names.contains(&mine.as_str()) && names.contains(&theirs.as_str()))
                .then_some(())
                .ok_or(format!("admin ps -a printed {names:?}"))
        }),
    );
    f.finish();
}

#[test]
fn two_ci_identities_cannot_see_each_others_objects() {
    let gw = Gateway::start();
    let a = gw.client(&unique("ci-a"), "ci");
    let b = gw.client(&unique("ci-b"), "ci");
    let admin = gw.admin().clone();
    let mut janitor = Janitor::new();
    let mut f = Findings::new();

    let ctr_a = sleeper(&gw, &a, &mut janitor, "ci-a-ctr");
    let ctr_b = sleeper(&gw, &b, &mut janitor, "ci-b-ctr");
    let vol_a = janitor.volume(&unique("ci-a-vol"));
    let net_a = janitor.network(&unique("ci-a-net"));
    let net_b = janitor.network(&unique("ci-b-net"));
    f.check(
        "a creates a volume and a network, labelled as a's",
        succeeds(&mut cli(&gw, &a, &["volume", "create", &vol_a]))
            .and_then(|_| succeeds(&mut cli(&gw, &a, &["network", "create", &net_a])))
            .and_then(|_| succeeds(&mut cli(&gw, &b, &["network", "create", &net_b])))
            .map(drop)
            .and_then(|()| Trace::VolumeOwnedBy(vol_a.clone(), owner(&a)).check())
            .and_then(|()| {
                let net = inspect("network", &net_a).ok_or("no network")?;
                (field(&net, "/Labels/dockgate.owner") == owner(&a).as_str())
                    .then_some(())
                    .ok_or(format!("network labels {}", field(&net, "/Labels")))
            }),
    );
    f.check(
        "a uses its own volume and network",
        succeeds(&mut cli(
            &gw,
            &a,
            &[
                "run",
                "--rm",
                "-v",
                &format!("{vol_a}:/data"),
                "--network",
                &net_a,
                test_image(),
                "sh",
                "-c",
                "echo a > /data/f && cat /data/f",
            ],
        ))
        .and_then(|out| {
            (out == "a\n")
                .then_some(())
                .ok_or(format!("stdout {out:?}"))
        }),
    );

    let listing = |who: &ClientCerts, list: &[&str]| -> Result<Vec<String>, String> {
        succeeds(&mut cli(&gw, who, list)).map(|out| out.lines().map(str::to_owned).collect())
    };
    let sees = |who: &ClientCerts, list: &[&str], want: &[&String], not: &[&String]| {
        listing(who, list).and_then(|names| {
            (want.iter().all(|w| names.contains(w)) && not.iter().all(|n| !names.contains(n)))
                .then_some(())
                .ok_or(format!("`{}` listed {names:?}", list.join(" ")))
        })
    };
    let ps = ["ps", "-a", "--format", "{{.Names}}"];
    let vols = ["volume", "ls", "--format", "{{.Name}}"];
    let nets = ["network", "ls", "--format", "{{.Name}}"];
    f.check("b's ps -a", sees(&b, &ps, &[&ctr_b], &[&ctr_a]));
    f.check("a's ps -a", sees(&a, &ps, &[&ctr_a], &[&ctr_b]));
    f.check("b's volume ls", sees(&b, &vols, &[], &[&vol_a]));
    f.check("a's volume ls", sees(&a, &vols, &[&vol_a], &[]));
    f.check("b's network ls", sees(&b, &nets, &[&net_b], &[&net_a]));
    f.check("a's network ls", sees(&a, &nets, &[&net_a], &[&net_b]));
    f.check(
        "the admin lists everything",
        sees(&admin, &ps, &[&ctr_a, &ctr_b], &[])
            .and_then(|()| sees(&admin, &vols, &[&vol_a], &[]))
            .and_then(|()| sees(&admin, &nets, &[&net_a, &net_b], &[])),
    );

    let b_run = janitor.container(&unique("ci-b-run"));
    let refusals: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "inspect a's container",
            vec!["container", "inspect", &ctr_a],
            "No such container",
        ),
        (
            "exec in a's container",
            vec!["exec", &ctr_a, "true"],
            "No such container",
        ),
        (
            "volume inspect a's volume",
            vec!["volume", "inspect", &vol_a],
            "No such volume",
        ),
        (
            "network inspect a's network",
            vec!["network", "inspect", &net_a],
            "No such network",
        ),
        (
            "volume rm a's volume",
            vec!["volume", "rm", &vol_a],
            "No such volume",
        ),
        (
            "network rm a's network",
            vec!["network", "rm", &net_a],
            "No such network",
        ),
        (
            "connect a's container to b's network",
            vec!["network", "connect", &net_b, &ctr_a],
            "No such container",
        ),
        (
            "connect b's container to a's network",
            vec!["network", "connect", &net_a, &ctr_b],
            "No such network",
        ),
    ];
    for (label, list, needle) in &refusals {
        f.check(
            &format!("b: {label}"),
            refused(&mut cli(&gw, &b, list), needle),
        );
    }
    let vol_mount = format!("{vol_a}:/data");
    let volumes_from = ["--volumes-from", ctr_a.as_str()];
    let network = ["--network", net_a.as_str()];
    for (label, extra, needle) in [
        (
            "run with a's volume",
            &["-v", vol_mount.as_str()][..],
            "No such volume",
        ),
        (
            "run --volumes-from a's container",
            &volumes_from[..],
            "No such container",
        ),
        ("run on a's network", &network[..], "No such network"),
    ] {
        let mut list = vec!["run", "--name", b_run.as_str()];
        list.extend_from_slice(extra);
        list.extend([test_image(), "true"]);
        // The CLI takes a 404 from a container create for a missing image and pulls it.
        f.check(
            &format!("b: {label}"),
            refused_stderr(&mut cli(&gw, &b, &list), needle)
                .and_then(|err| {
                    (!err.contains("Unable to find image"))
                        .then_some(())
                        .ok_or(format!("the CLI went on to pull the image: {}", err.trim()))
                })
                .and_then(|()| Trace::NoContainer(b_run.clone()).check()),
        );
    }
    f.check(
        "a's objects survive b's attempts",
        Trace::Running(ctr_a.clone())
            .check()
            .and_then(|()| Trace::NoExecs(ctr_a.clone()).check())
            .and_then(|()| Trace::VolumeOwnedBy(vol_a.clone(), owner(&a)).check())
            .and_then(|()| {
                inspect("network", &net_a)
                    .map(drop)
                    .ok_or(format!("network {net_a} is gone"))
            })
            .and_then(|()| {
                let owned = containers_labelled("dockgate.owner", &owner(&a));
                (owned == [ctr_a.clone()])
                    .then_some(())
                    .ok_or(format!("a's containers are {owned:?}"))
            }),
    );
    f.finish();
}

/// What the daemon says about the whole host: `/info` counts every owner's containers and
/// images and describes the host; an ID prefix finds any image. A confined client gets its own
/// counts, no host details, and finds by prefix only its own images.
#[tokio::test]
async fn ci_learns_nothing_of_others_from_info_or_image_prefixes() {
    let gw = Gateway::start();
    let ci = gw.client(&unique("ci"), "ci");
    let admin = gw.admin().clone();
    let mut janitor = Janitor::new();
    let mut f = Findings::new();
    sleeper(&gw, &admin, &mut janitor, "admin-info");
    sleeper(&gw, &ci, &mut janitor, "ci-info");
    let stopped = janitor.container(&unique("ci-info-stopped"));
    ok(&mut cli(
        &gw,
        &ci,
        &["create", "--name", &stopped, test_image(), "true"],
    ));

    let direct: Value = serde_json::from_str(&ok(&mut args(
        docker_direct(),
        ["info", "--format", "{{json .}}"],
    )))
    .expect("docker info JSON");
    let reply = send(
        &gw,
        &ci,
        "GET",
        &sized("GET", &format!("{API}/info"), None, b""),
    )
    .await;
    let info: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
    f.check(
        "ci /info counts its own containers and images",
        if reply.status() != 200 {
            Err(format!("status {}: {}", reply.status(), reply.message()))
        } else {
            let counts: Vec<&Value> = [
                "/Containers",
                "/ContainersRunning",
                "/ContainersStopped",
                "/Images",
            ]
            .iter()
            .map(|p| field(&info, p))
            .collect();
            (counts
                == [
                    &Value::from(2),
                    &Value::from(1),
                    &Value::from(1),
                    &Value::from(0),
                ]
                && field(&direct, "/Containers").as_u64() > Some(2))
            .then_some(())
            .ok_or(format!(
                "ci was told {counts:?}; the daemon holds {} containers",
                field(&direct, "/Containers")
            ))
        },
    );
    f.check(
        "ci /info leaves out host details",
        match [
            "Name",
            "DockerRootDir",
            "RegistryConfig",
            "Labels",
            "NEventsListener",
            "DriverStatus",
            "HttpProxy",
        ]
        .iter()
        .find(|k| info.get(**k).is_some())
        {
            None => Ok(()),
            Some(k) => Err(format!("ci was told {k}: {}", info[*k])),
        },
    );
    f.check(
        "ci docker info works",
        succeeds(&mut cli(
            &gw,
            &ci,
            &[
                "info",
                "--format",
                "{{.Containers}} {{.ServerVersion}} {{.Swarm.LocalNodeState}}",
            ],
        ))
        .and_then(|out| {
            let want = format!(
                "2 {} {}",
                field(&direct, "/ServerVersion")
                    .as_str()
                    .unwrap_or_default(),
                field(&direct, "/Swarm/LocalNodeState")
                    .as_str()
                    .unwrap_or_default()
            );
            (out.trim() == want)
                .then_some(())
                .ok_or(format!("printed {out:?}, want {want:?}"))
        }),
    );

    // The test image is no one's: ci uses it by name, but does not find it by prefix.
    let image = inspect("image", test_image()).expect("the test image exists");
    let id = field(&image, "/Id").as_str().unwrap_or_default().to_owned();
    let short = &id["sha256:".len()..][..6];
    for list in [
        vec!["image", "inspect", short],
        vec!["image", "history", short],
    ] {
        f.check(
            &format!(
                "ci docker {} <a foreign image's ID prefix>",
                list[..2].join(" ")
            ),
            refused(&mut cli(&gw, &ci, &list), "No such image"),
        );
    }
    f.check(
        "ci docker image inspect <a shared image by name>",
        succeeds(&mut cli(
            &gw,
            &ci,
            &["image", "inspect", "--format", "{{.Id}}", test_image()],
        ))
        .and_then(|out| {
            (out.trim() == id)
                .then_some(())
                .ok_or(format!("printed {out:?}"))
        }),
    );
    f.finish();
}

/// Anyone may join a network to a confined client's network (an admin can); the network's
/// inspect answer lists every endpoint on it, with names, addresses and MACs.
#[test]
fn ci_network_inspect_lists_only_its_own_containers() {
    let gw = Gateway::start();
    let ci = gw.client(&unique("ci"), "ci");
    let admin = gw.admin().clone();
    let mut janitor = Janitor::new();
    let mut f = Findings::new();
    let net = janitor.network(&unique("ci-net"));
    ok(&mut cli(&gw, &ci, &["network", "create", &net]));
    let mine = janitor.container(&unique("ci-on-net"));
    ok(&mut cli(
        &gw,
        &ci,
        &[
            "run",
            "-d",
            "--name",
            &mine,
            "--network",
            &net,
            test_image(),
            "sleep",
            "600",
        ],
    ));
    let theirs = sleeper(&gw, &admin, &mut janitor, "admin-on-ci-net");
    ok(&mut cli(
        &gw,
        &admin,
        &["network", "connect", &net, &theirs],
    ));
    let names = |who: &ClientCerts| {
        succeeds(&mut cli(
            &gw,
            who,
            &[
                "network",
                "inspect",
                "--format",
                "{{range .Containers}}{{.Name}} {{end}}",
                &net,
            ],
        ))
        .map(|out| {
            let mut names: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
            names.sort();
            names
        })
    };
    let mut both = vec![mine.clone(), theirs.clone()];
    both.sort();
    f.check(
        "the admin sees both containers on ci's network",
        names(&admin).and_then(|n| (n == both).then_some(()).ok_or(format!("{n:?}"))),
    );
    f.check(
        "ci sees only its own container on its network",
        names(&ci).and_then(|n| {
            (n == [mine.clone()])
                .then_some(())
                .ok_or(format!("ci was shown {n:?}"))
        }),
    );
    f.finish();
}

/// Image names are global: a confined client that could point a name someone else runs at an
/// image of its own would get its code run with their privileges.
#[test]
fn ci_cannot_take_over_image_names_others_use() {
    let gw = Gateway::start();
    let ci = gw.client(&unique("ci"), "ci");
    let admin = gw.admin().clone();
    let mut janitor = Janitor::new();
    let mut f = Findings::new();

    let app = janitor.image(&unique("admin-app"));
    ok(&mut cli(&gw, &admin, &["tag", test_image(), &app]));
    let image_id = |name: &str| inspect("image", name).map(|i| field(&i, "/Id").clone());
    let original = image_id(&app).expect("the admin's tag exists");
    // Checks the name still points at the admin's image, then puts it back for the next case.
    let unchanged = |app: &str| {
        let now = image_id(app);
        ok(&mut args(docker_direct(), ["tag", test_image(), app]));
        match now {
            Some(id) if id == original => Ok(()),
            other => Err(format!("{app} now points at {other:?}, not {original}")),
        }
    };

    let context = TempDir::new("policy-hijack");
    fs::write(
        context.join("Dockerfile"),
        format!("FROM {}\nRUN echo ci-was-here > /hijacked\n", test_image()),
    )
    .expect("write Dockerfile");
    let ctx = context.path().to_string_lossy().into_owned();
    let mut build = cli(&gw, &ci, &["build", "-t", &app, &ctx]);
    build.env("DOCKER_BUILDKIT", "0");
    let out = run(&mut build);
    f.check(
        "ci docker build -t <the admin's image name>",
        if out.status.success() {
            Err(format!("the build succeeded: {}", out.stdout_str().trim()))
        } else {
            Ok(())
        }
        .and_both(unchanged(&app)),
    );

    let own = janitor.image(&unique("ci-own-img"));
    let mut build = cli(&gw, &ci, &["build", "-t", &own, &ctx]);
    build.env("DOCKER_BUILDKIT", "0");
    f.check(
        "ci docker build -t <a new name>",
        succeeds(&mut build).map(drop),
    );
    let out = run(&mut cli(&gw, &ci, &["tag", &own, &app]));
    f.check(
        "ci docker tag <own image> <the admin's image name>",
        if out.status.success() {
            Err("the tag succeeded".to_owned())
        } else {
            Ok(())
        }
        .and_both(unchanged(&app)),
    );
    f.check(
        "ci docker rmi <the admin's image name>",
        refused(&mut cli(&gw, &ci, &["rmi", &app]), "No such image").and_both(unchanged(&app)),
    );
    f.finish();
}

// ---- readonly ----

#[test]
fn readonly_reads_and_changes_nothing() {
    let gw = Gateway::start();
    let ro = gw.client(&unique("ro"), "readonly");
    let admin = gw.admin().clone();
    let mut janitor = Janitor::new();
    let mut f = Findings::new();
    let theirs = sleeper(&gw, &admin, &mut janitor, "admin-ctr");

    f.check(
        "readonly docker ps",
        succeeds(&mut cli(&gw, &ro, &["ps", "--format", "{{.Names}}"])).and_then(|out| {
            out.lines()
                .any(|l| l == theirs)
                .then_some(())
                .ok_or(format!("ps printed {out:?}"))
        }),
    );
    f.check(
        "readonly docker images",
        succeeds(&mut cli(
            &gw,
            &ro,
            &["images", "--format", "{{.Repository}}:{{.Tag}}"],
        ))
        .and_then(|out| {
            out.lines()
                .any(|l| l == test_image())
                .then_some(())
                .ok_or(format!("images printed {out:?}"))
        }),
    );
    f.check(
        "readonly docker version",
        succeeds(&mut cli(
            &gw,
            &ro,
            &["version", "--format", "{{.Server.APIVersion}}"],
        ))
        .and_then(|out| {
            out.trim()
                .starts_with("1.")
                .then_some(())
                .ok_or(format!("version printed {out:?}"))
        }),
    );
    f.check(
        "readonly docker info",
        succeeds(&mut cli(&gw, &ro, &["info", "--format", "{{.ID}}"])).and_then(|out| {
            (!out.trim().is_empty())
                .then_some(())
                .ok_or("info printed nothing".to_owned())
        }),
    );

    let name = janitor.container(&unique("ro-run"));
    f.check(
        "readonly docker run",
        refused(
            &mut cli(&gw, &ro, &["run", "--name", &name, test_image(), "true"]),
            "dockgate: role readonly may not call ContainerCreate",
        )
        .and_then(|()| Trace::NoContainer(name.clone()).check()),
    );
    let name = janitor.container(&unique("ro-create"));
    f.check(
        "readonly docker create",
        refused(
            &mut cli(&gw, &ro, &["create", "--name", &name, test_image(), "true"]),
            "dockgate: role readonly may not call ContainerCreate",
        )
        .and_then(|()| Trace::NoContainer(name.clone()).check()),
    );
    f.check(
        "readonly docker exec",
        refused(
            &mut cli(&gw, &ro, &["exec", &theirs, "true"]),
            "dockgate: role readonly may not call ContainerExec",
        )
        .and_then(|()| Trace::NoExecs(theirs.clone()).check()),
    );
    f.check(
        "readonly docker rm -f",
        refused(
            &mut cli(&gw, &ro, &["rm", "-f", &theirs]),
            "dockgate: role readonly may not call ContainerDelete",
        )
        .and_then(|()| Trace::Running(theirs.clone()).check()),
    );
    f.check(
        "readonly docker kill",
        refused(
            &mut cli(&gw, &ro, &["kill", &theirs]),
            "dockgate: role readonly may not call ContainerKill",
        )
        .and_then(|()| Trace::Running(theirs.clone()).check()),
    );
    let local = TempDir::new("policy-ro-cp");
    let file = local.join("planted");
    fs::write(&file, "planted\n").expect("write file");
    // The CLI's first call is a HEAD, whose 403 carries no message body.
    let out = run(&mut cli(
        &gw,
        &ro,
        &[
            "cp",
            &file.to_string_lossy(),
            &format!("{theirs}:/tmp/planted"),
        ],
    ));
    let planted = run(&mut args(
        docker_direct(),
        ["exec", &theirs, "test", "-e", "/tmp/planted"],
    ))
    .status
    .success();
    f.check(
        "readonly docker cp into a container",
        if out.status.success() || planted {
            Err(format!(
                "`{}` exited {} (stderr {:?}); file planted: {planted}",
                out.what,
                out.status,
                out.stderr_str().trim()
            ))
        } else {
            Ok(())
        },
    );
    f.check(
        "the container is untouched",
        Trace::Running(theirs.clone())
            .check()
            .and_then(|()| Trace::NoExecs(theirs.clone()).check()),
    );
    f.finish();
}

// ---- A certificate whose role does not exist ----

#[tokio::test]
async fn a_certificate_with_an_unknown_role_gets_nothing() {
    let gw = Gateway::start();
    let nobody = gw.client(&unique("norole"), "nosuchrole");

    let reply = send(&gw, &nobody, "GET", &sized("GET", "/_ping", None, b"")).await;
    assert_eq!(reply.status(), 403, "GET /_ping: {}", reply.message());
    assert!(
        reply
            .message()
            .starts_with(&format!("dockgate: certificate CN={} ", nobody.name))
            && reply.message().ends_with("has no role"),
        "GET /_ping: {}",
        reply.message()
    );

    let out = run(&mut cli(&gw, &nobody, &["version"]));
    assert!(
        !out.status.success() && out.stderr_str().contains("has no role"),
        "docker version with no role: exit {}, stderr {}",
        out.status,
        out.stderr_str()
    );
    assert!(
        !out.stdout_str().contains("Server:"),
        "docker version showed the server: {}",
        out.stdout_str()
    );

    let warned = gw.wait_for_log_line(Duration::from_secs(10), |l| {
        l.contains(&nobody.name) && l.contains("no role") && !l.starts_with('{')
    });
    assert!(
        warned.is_some(),
        "the gateway log does not mention {} having no role:\n{}",
        nobody.name,
        gw.log()
    );
    let audited = gw.wait_for_log_line(Duration::from_secs(10), |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| {
            v["cn"] == nobody.name.as_str()
                && v["path"] == "/_ping"
                && v["decision"] == "deny"
                && v["role"].is_null()
                && v["status"] == 403
        })
    });
    assert!(
        audited.is_some(),
        "no audit line denying {}'s /_ping:\n{}",
        nobody.name,
        gw.log()
    );
}

// ---- Audit ----

/// The gateway's audit lines (JSON objects with a `kind`) so far.
fn audit_lines(gw: &Gateway) -> Vec<Value> {
    gw.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

#[tokio::test]
async fn audit_records_each_request_and_never_registry_credentials() {
    let gw = Gateway::start();
    let ci = gw.client(&unique("ci"), "ci");
    let mut janitor = Janitor::new();

    // A denied create.
    let name = janitor.container(&unique("audit-priv"));
    let body = format!(
        r#"{{"Image":{},"HostConfig":{{"Privileged":true}}}}"#,
        Value::from(test_image())
    );
    let reply = send(
        &gw,
        &ci,
        "POST",
        &post_json(&format!("{API}/containers/create?name={name}"), &body),
    )
    .await;
    assert_eq!(reply.status(), 403, "{}", reply.message());
    let line = gw.wait_for_log_line(Duration::from_secs(10), |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| {
            v["kind"] == "request"
                && v["decision"] == "deny"
                && v["cn"] == ci.name.as_str()
                && v["role"] == "ci"
                && v["operation"] == "ContainerCreate"
                && v["rule"] == "host.privileged"
                && v["method"] == "POST"
                && v["path"] == format!("{API}/containers/create")
                && v["status"] == 403
        })
    });
    assert!(
        line.is_some(),
        "no audit line for the denied privileged create:\n{}",
        gw.log()
    );

    // Exactly one line per request.
    let missing = format!("{API}/containers/{}/json", unique("audit-missing"));
    for _ in 0..3 {
        let reply = send(&gw, gw.admin(), "GET", &sized("GET", &missing, None, b"")).await;
        assert_eq!(reply.status(), 404, "{}", reply.message());
    }
    let count = || {
        audit_lines(&gw)
            .iter()
            .filter(|v| v["path"] == missing.as_str())
            .count()
    };
    let line = gw.wait_for_log_line(Duration::from_secs(10), |_| count() >= 3);
    assert!(line.is_some(), "fewer than 3 audit lines for {missing}");
    // Lines are written asynchronously: give a duplicate the chance to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count(), 3, "audit lines for {missing}:\n{}", gw.log());

    // Registry credentials on allowed and denied requests never reach the log.
    let secret = format!("dgtSecret{}", unique("auth").replace('-', ""));
    let with_auth = |method: &str, target: &str, header: &str| {
        format!(
            "{method} {target} HTTP/1.1\r\nHost: docker\r\n{header}: {secret}\r\n\
             Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    };
    let requests = [
        ("GET", format!("{API}/images/json"), "X-Registry-Auth", 200),
        (
            "POST",
            format!("{API}/plugins/pull?remote=vieux/sshfs"),
            "X-Registry-Auth",
            403,
        ),
        (
            "POST",
            format!("{API}/images/create?fromSrc=http://127.0.0.1:9/x"),
            "X-Registry-Auth",
            403,
        ),
        (
            "POST",
            format!("{API}/build?networkmode=host"),
            "X-Registry-Config",
            403,
        ),
    ];
    for (method, target, header, status) in &requests {
        let reply = send(&gw, &ci, method, &with_auth(method, target, header)).await;
        assert_eq!(
            reply.status(),
            *status,
            "{method} {target}: {}",
            reply.message()
        );
    }
    for (method, target, _, status) in &requests {
        let path = target.split('?').next().unwrap_or_default().to_owned();
        let seen = gw.wait_for_log_line(Duration::from_secs(10), |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| {
                v["path"] == path.as_str() && v["method"] == *method && v["status"] == *status
            })
        });
        assert!(seen.is_some(), "no audit line for {method} {target}");
    }
    let log = gw.log();
    assert!(
        !log.contains(&secret),
        "the gateway log contains a registry credential:\n{log}"
    );
}

/// A refusal that comes before the request body is read still reaches a client that is
/// uploading: `docker load` of a 16 MiB archive as `readonly` prints the 403 naming the rule,
/// not a broken pipe or a reset.
#[test]
fn a_refused_upload_gets_its_refusal() {
    let gw = Gateway::start();
    let ro = gw.client(&unique("ro-upload"), "readonly");
    let dir = TempDir::new("refused-upload");
    let archive = dir.join("image.tar");
    std::fs::write(&archive, vec![0u8; 16 << 20]).expect("write the archive");
    for _ in 0..3 {
        let mut load = cli(&gw, &ro, &["load", "-i", &archive.to_string_lossy()]);
        let refused = refused_stderr(&mut load, "(rule roles.readonly.operations)");
        assert!(refused.is_ok(), "{}", refused.unwrap_err());
    }
}
