//! The hostile corpus (tests/corpus/confinement.toml) sent as `ci` through the real `dockgate`
//! binary to a fake daemon in this process: for each case, dockgate's answer, and exactly what
//! reached the daemon. A refusal lets through nothing but ownership lookups; an allowed
//! request arrives rewritten (owner label, nothing privileged) as dockerd would decode it. The
//! same corpus runs against the real dockerd in `policy::`, and its bodies are fuzz seeds.

use std::fs;
use std::path::Path;

use crate::support::corpus::{self, State, Vars};
use crate::support::fake_daemon::FakeDaemon;
use crate::support::gateway::Gateway;
use crate::support::policy::{send, Findings};
use crate::support::{sha256_hex, unique};

#[tokio::test]
async fn hostile_corpus_against_a_fake_daemon() {
    let fake = FakeDaemon::start();
    let mut vars = Vars::default();
    vars.set("$IMG", r#""dockgate-test/busybox:latest""#);
    vars.set("$IMG_NAME", "dockgate-test/busybox:latest");
    let hidden = fake.add_image("dockgate-test/busybox:latest");
    // The test image is owned by no one: ci may use it by name, and must not find it by prefix.
    vars.set("$HIDDEN_IMG_SHORT", &hidden["sha256:".len()..][..12]);
    vars.set("$HIDDEN_IMG_ID", hidden);
    for network in ["bridge", "host", "none"] {
        fake.add_network(network, None);
    }

    // The admin's objects, and ci's own container names (its controls create them).
    let admin = unique("admin-ctr");
    let admin_id = fake.add_container(&admin, "cn=admin", true);
    vars.set("$ADMIN", &admin);
    vars.set("$ADMIN_SHORT_ID", &admin_id[..12]);
    vars.set("$ADMIN_ID", admin_id);
    let stopped = unique("admin-stopped");
    fake.add_container(&stopped, "cn=admin", false);
    vars.set("$ADMIN_STOPPED", stopped);
    let exec_target = unique("admin-exec-target");
    fake.add_container(&exec_target, "cn=admin", true);
    vars.set("$ADMIN_EXEC", fake.add_exec(&exec_target));
    vars.set("$ADMIN_EXEC_TARGET", exec_target);
    let admin_vol = unique("admin-vol");
    fake.add_volume(&admin_vol, "cn=admin");
    vars.set("$ADMIN_VOL", admin_vol);
    let admin_net = unique("admin-net");
    fake.add_network(&admin_net, Some("cn=admin"));
    vars.set("$ADMIN_NET", admin_net);
    vars.set("$CREATED", unique("ci-created"));
    vars.set("$RUNNING", unique("ci-running"));

    let gw = Gateway::start_with_socket(fake.socket());
    let ci = gw.client(&unique("ci"), "ci");
    let me = format!("cn={}", ci.name);

    let mut findings = Findings::new();
    for case in corpus::cases() {
        let mut vars = vars.clone();
        for (name, stem) in case.fresh() {
            vars.set(name, unique(stem));
        }
        let before = fake.received().len();
        let reply = send(&gw, &ci, &case.method, &case.wire(&vars)).await;
        let mut problems: Vec<String> = case
            .check_reply(&vars, reply.status(), &reply.message())
            .err()
            .into_iter()
            .collect();
        let forwarded: Vec<String> = fake.received()[before..]
            .iter()
            .filter(|r| !r.is_lookup())
            .map(ToString::to_string)
            .collect();
        if case.refused_by_dockgate() && !forwarded.is_empty() {
            problems.push(format!("the daemon received {forwarded:?}"));
        }
        if case.allowed() && forwarded.len() != 1 {
            problems.push(format!(
                "want the request forwarded once, the daemon received {forwarded:?}"
            ));
        }
        problems.extend(
            case.states(&vars)
                .iter()
                .filter_map(|s| fake.holds(s, &me).err()),
        );
        let outcome = if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        };
        findings.check(&case.label, outcome);
    }
    findings.check(
        "the admin's container still runs",
        fake.holds(&State::Running(vars.get("$ADMIN").to_owned()), &me)
            .and_then(|()| fake.holds(&State::NoExecs(vars.get("$ADMIN").to_owned()), &me)),
    );
    findings.finish();
}

const SEEDS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fuzz/seeds/gojson_decode"
);
/// Seeds from the corpus are named `corpus-<hash>.json`; other seeds are left alone.
const SEED_PREFIX: &str = "corpus-";

/// Every JSON body of the corpus is a seed of the `gojson_decode` fuzz target, named by its
/// content hash. `DOCKGATE_WRITE_SEEDS=1` writes the missing ones and removes the stale ones.
#[test]
fn corpus_bodies_are_fuzz_seeds() {
    let dir = Path::new(SEEDS);
    let mut wanted: Vec<(String, Vec<u8>)> = corpus::cases()
        .iter()
        .filter_map(|case| case.seed())
        .map(|body| {
            let name = format!("{SEED_PREFIX}{}.json", &sha256_hex(&body)[..16]);
            (name, body)
        })
        .collect();
    wanted.sort();
    wanted.dedup();
    let present: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(SEED_PREFIX))
        .collect();
    let missing: Vec<&(String, Vec<u8>)> = wanted
        .iter()
        .filter(|(name, body)| fs::read(dir.join(name)).ok().as_ref() != Some(body))
        .collect();
    let stale: Vec<&String> = present
        .iter()
        .filter(|name| !wanted.iter().any(|(w, _)| w == *name))
        .collect();
    if std::env::var("DOCKGATE_WRITE_SEEDS").as_deref() == Ok("1") {
        for (name, body) in &missing {
            fs::write(dir.join(name), body).unwrap_or_else(|e| panic!("write seed {name}: {e}"));
        }
        for name in &stale {
            fs::remove_file(dir.join(name)).unwrap_or_else(|e| panic!("remove seed {name}: {e}"));
        }
        // A regenerating run never passes: the seeds are to be committed, then checked.
        assert!(
            missing.is_empty() && stale.is_empty(),
            "wrote {} seeds and removed {}: commit tests/fuzz/seeds and run again without \
             DOCKGATE_WRITE_SEEDS",
            missing.len(),
            stale.len()
        );
    }
    assert!(
        missing.is_empty() && stale.is_empty(),
        "{} corpus bodies are not seeds yet (e.g. {:?}) and {} seeds are no longer in the \
         corpus (e.g. {:?}); run `DOCKGATE_WRITE_SEEDS=1 cargo test --test e2e \
         corpus_bodies_are_fuzz_seeds` and commit tests/fuzz/seeds",
        missing.len(),
        missing.first().map(|(name, _)| name),
        stale.len(),
        stale.first()
    );
}
