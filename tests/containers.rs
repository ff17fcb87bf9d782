//! What a role's containers get: the defaults and ceilings of `[roles.NAME.containers]`, and
//! `readonly`'s redacted environments. Judged by what the daemon holds, asked on its socket,
//! and by the kernel (no-new-privileges, a fork bomb against the host's process table).

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::gateway::{ClientCerts, Gateway};
use crate::support::image::test_image;
use crate::support::policy::{inspect, post_json, refused, send, API};
use crate::support::{args, docker_direct, ok, run, unique, Janitor, TempDir};

fn cli(gw: &Gateway, who: &ClientCerts, list: &[&str]) -> Command {
    args(gw.docker(who), list)
}

fn host_config(container: &str) -> Value {
    inspect("container", container)
        .unwrap_or_else(|| panic!("the daemon has no container {container}"))["HostConfig"]
        .clone()
}

fn pids_limit(container: &str) -> Option<i64> {
    host_config(container)["PidsLimit"].as_i64()
}

#[test]
fn ci_containers_run_with_no_new_privileges_and_a_pids_limit() {
    let gw = Gateway::start();
    let ci = gw.client(&unique("ci"), "ci");
    let mut janitor = Janitor::new();

    let name = janitor.container(&unique("hardened"));
    ok(&mut cli(
        &gw,
        &ci,
        &["run", "-d", "--name", &name, test_image(), "sleep", "600"],
    ));
    let hc = host_config(&name);
    assert_eq!(hc["PidsLimit"], 4096, "{hc}");
    assert!(
        hc["SecurityOpt"]
            .as_array()
            .is_some_and(|opts| opts.iter().any(|o| o == "no-new-privileges")),
        "{hc}"
    );
    // The kernel agrees: the container's processes, ci's execs too, can't gain privileges.
    let status = ok(&mut cli(
        &gw,
        &ci,
        &["exec", &name, "cat", "/proc/self/status"],
    ));
    assert!(
        status
            .lines()
            .any(|l| l.split_whitespace().eq(["NoNewPrivs:", "1"])),
        "{status}"
    );

    // A lower limit of the client's own is kept.
    let lower = janitor.container(&unique("lower"));
    ok(&mut cli(
        &gw,
        &ci,
        &[
            "create",
            "--name",
            &lower,
            "--pids-limit",
            "100",
            test_image(),
        ],
    ));
    assert_eq!(pids_limit(&lower), Some(100));
}

/// The shipped config, changed by `edits` (each text must be in it).
fn shipped_with(edits: &[(&str, &str)]) -> String {
    let mut config = include_str!("../config/dockgate.toml").to_owned();
    for (from, to) in edits {
        assert!(config.contains(from), "the shipped config has no {from:?}");
        config = config.replace(from, to);
    }
    config
}

/// The shipped `ci`, which may also `docker update` (the shipped one may not at all).
#[tokio::test]
async fn ci_is_refused_past_its_ceilings_with_the_rule_named() {
    let gw = Gateway::start_with_config(&shipped_with(&[(
        "\"ContainerCreate\", \"ContainerStart\",",
        "\"ContainerCreate\", \"ContainerUpdate\", \"ContainerStart\",",
    )]));
    let ci = gw.client(&unique("ci"), "ci");
    let mut janitor = Janitor::new();
    let refusals: &[(&[&str], &str)] = &[
        (&["--pids-limit", "-1"], "containers.pids_limit"),
        (&["--pids-limit", "4097"], "containers.pids_limit"),
        (&["--oom-score-adj", "-500"], "host.oom-score-adj"),
        (&["-p", "80:80"], "containers.ports"),
        (&["-p", "127.0.0.1:1000-1030:80"], "containers.ports"),
    ];
    let mut failures = Vec::new();
    for (flags, rule) in refusals {
        let name = janitor.container(&unique("ceiling"));
        let mut list = vec!["create", "--name", &name];
        list.extend_from_slice(flags);
        list.push(test_image());
        if let Err(e) = refused(&mut cli(&gw, &ci, &list), &format!("(rule {rule})")) {
            failures.push(e);
        }
        if inspect("container", &name).is_some() {
            failures.push(format!("{flags:?}: the daemon holds {name}"));
        }
    }

    // A port above 1024 is allowed (controls the refusals above).
    let published = janitor.container(&unique("published"));
    ok(&mut cli(
        &gw,
        &ci,
        &[
            "create",
            "--name",
            &published,
            "-p",
            "18080:80",
            test_image(),
        ],
    ));
    assert_eq!(
        host_config(&published)["PortBindings"]["80/tcp"][0]["HostPort"],
        "18080"
    );

    // `docker update` can lower the limit, never raise or remove it.
    let running = janitor.container(&unique("update"));
    ok(&mut cli(
        &gw,
        &ci,
        &[
            "run",
            "-d",
            "--name",
            &running,
            test_image(),
            "sleep",
            "600",
        ],
    ));
    for limit in ["5000", "-1"] {
        if let Err(e) = refused(
            &mut cli(&gw, &ci, &["update", "--pids-limit", limit, &running]),
            "(rule containers.pids_limit)",
        ) {
            failures.push(e);
        }
    }
    // dockerd reads an update's 0 as "no limit"; the CLI never sends it.
    let zero = send(
        &gw,
        &ci,
        "POST",
        &post_json(
            &format!("{API}/containers/{running}/update"),
            r#"{"PidsLimit":0}"#,
        ),
    )
    .await;
    if zero.status() != 403 || !zero.message().contains("(rule containers.pids_limit)") {
        failures.push(format!(
            "update to PidsLimit 0: {} {}",
            zero.status(),
            zero.message()
        ));
    }
    if pids_limit(&running) != Some(4096) {
        failures.push(format!(
            "after refused updates PidsLimit is {:?}",
            pids_limit(&running)
        ));
    }
    ok(&mut cli(
        &gw,
        &ci,
        &["update", "--pids-limit", "200", &running],
    ));
    assert_eq!(pids_limit(&running), Some(200));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every setting lands where dockerd reads it: the daemon holds the injected values, the
/// client's own lower ones, and refuses nothing it was sent.
#[test]
fn every_container_setting_reaches_the_daemon() {
    let gw = Gateway::start_with_config(&shipped_with(&[(
        "oom_score_adj = 0\n",
        "oom_score_adj = 100\ncap_drop = [\"NET_RAW\"]\nmemory = 268435456\n\
         nano_cpus = 1000000000\nulimits = { nofile = 1024 }\nreadonly_rootfs = true\n",
    )]));
    let ci = gw.client(&unique("ci"), "ci");
    let mut janitor = Janitor::new();
    let name = janitor.container(&unique("settings"));
    ok(&mut cli(
        &gw,
        &ci,
        &[
            "run",
            "-d",
            "--name",
            &name,
            "--ulimit",
            "core=1:2",
            "--cap-drop",
            "chown",
            test_image(),
            "sleep",
            "600",
        ],
    ));
    let hc = host_config(&name);
    assert_eq!(hc["Memory"], 268_435_456, "{hc}");
    assert_eq!(hc["NanoCpus"], 1_000_000_000, "{hc}");
    assert_eq!(hc["OomScoreAdj"], 100, "{hc}");
    assert_eq!(hc["ReadonlyRootfs"], true, "{hc}");
    assert_eq!(
        hc["CapDrop"],
        serde_json::json!(["CAP_CHOWN", "NET_RAW"]),
        "{hc}"
    );
    assert_eq!(
        hc["Ulimits"],
        serde_json::json!([
            {"Name": "core", "Soft": 1, "Hard": 2},
            {"Name": "nofile", "Soft": 1024, "Hard": 1024}
        ]),
        "{hc}"
    );
    let limits = ok(&mut cli(
        &gw,
        &ci,
        &["exec", &name, "cat", "/proc/self/limits"],
    ));
    assert!(
        limits
            .lines()
            .any(|l| l.starts_with("Max open files") && l.split_whitespace().nth(3) == Some("1024")),
        "{limits}"
    );
    refused(
        &mut cli(&gw, &ci, &["create", "--memory", "512m", test_image()]),
        "(rule containers.memory)",
    )
    .unwrap();
    refused(
        &mut cli(
            &gw,
            &ci,
            &["create", "--ulimit", "nofile=4096", test_image()],
        ),
        "(rule containers.ulimits)",
    )
    .unwrap();
}

/// A fork bomb in a `ci` container stops at its pids limit and the host keeps starting
/// processes. The gateway's limit here is 128 (and half a CPU), not the shipped 4096, so the
/// test stays light on a shared machine; the mechanism is the same.
#[test]
fn a_fork_bomb_stays_inside_its_pids_limit() {
    const LIMIT: i64 = 128;
    let gw = Gateway::start_with_config(&shipped_with(&[(
        "pids_limit = 4096\n",
        &format!("pids_limit = {LIMIT}\nnano_cpus = 500000000\n"),
    )]));
    let ci = gw.client(&unique("ci"), "ci");
    let mut janitor = Janitor::new();
    let name = janitor.container(&unique("forkbomb"));
    ok(&mut cli(
        &gw,
        &ci,
        &[
            "create",
            "--name",
            &name,
            test_image(),
            "sh",
            "-c",
            // Every process forks forever; busybox's sh exits when a fork
            // fails, so the bomb churns at the limit instead of dying out.
            // The container ends itself after 60 s, when its init's sleep
            // does, whatever happens to this test.
            "(f(){ while :; do f & done; }; f) & sleep 60",
        ],
    ));
    // No bomb without a limit in place.
    let hc = host_config(&name);
    assert_eq!(hc["PidsLimit"], LIMIT, "{hc}");
    assert_eq!(hc["NanoCpus"], 500_000_000, "{hc}");

    ok(&mut args(docker_direct(), ["start", &name]));
    let kill = || run(&mut args(docker_direct(), ["kill", &name]));
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut peak = 0;
    while peak < LIMIT * 9 / 10 && Instant::now() < deadline {
        let out = run(&mut args(
            docker_direct(),
            ["stats", "--no-stream", "--format", "{{.PIDs}}", &name],
        ));
        peak = peak.max(out.stdout_str().trim().parse().unwrap_or(0));
        if peak > LIMIT {
            break;
        }
    }
    let spawned = Command::new("true").status();
    kill();
    assert!(
        peak <= LIMIT,
        "the container ran {peak} processes, past its limit {LIMIT}"
    );
    assert!(
        peak >= LIMIT * 9 / 10,
        "the fork bomb never filled its limit (peak {peak})"
    );
    assert!(
        spawned.is_ok_and(|s| s.success()),
        "the host could not start a process during the fork bomb"
    );
}

#[test]
fn readonly_sees_environments_redacted_and_admin_sees_them() {
    let gw = Gateway::start();
    let ro = gw.client(&unique("ro"), "readonly");
    let mut janitor = Janitor::new();
    let name = janitor.container(&unique("secret"));
    ok(&mut cli(
        &gw,
        gw.admin(),
        &[
            "create",
            "--name",
            &name,
            "-e",
            "TOKEN=hunter2=x",
            "-e",
            "EMPTY=",
            test_image(),
        ],
    ));
    let env = |who: &ClientCerts| -> Vec<String> {
        let out = ok(&mut cli(
            &gw,
            who,
            &["inspect", "--format", "{{json .Config.Env}}", &name],
        ));
        serde_json::from_str(out.trim()).unwrap()
    };
    let seen = env(&ro);
    assert!(seen.contains(&"TOKEN=<redacted>".to_owned()), "{seen:?}");
    assert!(seen.contains(&"EMPTY=<redacted>".to_owned()), "{seen:?}");
    assert!(seen.iter().all(|e| e.ends_with("=<redacted>")), "{seen:?}");
    let seen = env(gw.admin());
    assert!(seen.contains(&"TOKEN=hunter2=x".to_owned()), "{seen:?}");

    // The rest of the answer is intact, and errors pass as the daemon wrote them.
    let image = ok(&mut cli(
        &gw,
        &ro,
        &["inspect", "--format", "{{.Config.Image}}", &name],
    ));
    assert_eq!(image.trim(), test_image());
    let missing = unique("missing");
    refused(
        &mut cli(&gw, &ro, &["container", "inspect", &missing]),
        "No such container",
    )
    .unwrap();
}

/// An inspect answer too large to redact is refused, never sent unredacted.
#[test]
fn an_answer_too_large_to_redact_is_refused() {
    let gw = Gateway::start();
    let ro = gw.client(&unique("ro"), "readonly");
    let mut janitor = Janitor::new();
    let name = janitor.container(&unique("bigenv"));
    // 9 MiB of environment (the CLI's env-file lines must stay under 64 KiB).
    let dir = TempDir::new("bigenv");
    let mut lines = String::from("TOKEN=hunter2\n");
    for i in 0..150 {
        lines.push_str(&format!("BIG{i}={}\n", "x".repeat(63 << 10)));
    }
    let file = dir.join("env");
    std::fs::write(&file, lines).unwrap();
    ok(&mut args(
        docker_direct(),
        [
            "create",
            "--name",
            &name,
            "--env-file",
            file.to_str().unwrap(),
            test_image(),
        ],
    ));
    let out = run(&mut cli(
        &gw,
        &ro,
        &["inspect", "--format", "{{json .Config.Env}}", &name],
    ));
    assert!(!out.status.success(), "readonly got an answer");
    let text = out.stdout_str() + &out.stderr_str();
    assert!(
        text.contains("cannot redact the container's environment"),
        "{}",
        crate::support::tail(&text, 500)
    );
    assert!(!text.contains("hunter2"));
    let admin = ok(&mut cli(
        &gw,
        gw.admin(),
        &["inspect", "--format", "{{index .Config.Env 0}}", &name],
    ));
    assert_eq!(admin.trim(), "TOKEN=hunter2");
}
