//! Ownership that a client cannot forge or inherit: containers and image tags belong to
//! whoever created them through the gateway, as dockgate recorded it, never to whatever
//! labels dockerd copied onto them from an image. Judged by what the daemon holds.

use std::process::Command;

use crate::support::gateway::{ClientCerts, Gateway};
use crate::support::image::test_image;
use crate::support::{args, docker_direct, ok, run, unique, Janitor, TempDir};

fn cli(gw: &Gateway, who: &ClientCerts, list: &[&str]) -> Command {
    args(gw.docker(who), list)
}

/// Builds `tag` through the gateway as `who` with the classic builder.
fn build(gw: &Gateway, who: &ClientCerts, tag: &str, dockerfile: &str) {
    let context = TempDir::new("ownership-ctx");
    std::fs::write(context.join("Dockerfile"), dockerfile).expect("write Dockerfile");
    let mut build = cli(
        gw,
        who,
        &["build", "-t", tag, &context.path().to_string_lossy()],
    );
    build.env("DOCKER_BUILDKIT", "0");
    ok(&mut build);
}

fn image_id(reference: &str) -> Option<String> {
    let out = run(&mut args(
        docker_direct(),
        ["image", "inspect", "--format", "{{.Id}}", reference],
    ));
    out.status
        .success()
        .then(|| out.stdout_str().trim().to_owned())
}

/// A container made on the daemon's own socket from a `ci`-built image carries `ci`'s owner
/// label (dockerd copies image labels), as the builder's RUN containers do when an
/// administrator builds FROM it. It is still not `ci`'s: `ci` can neither exec into it nor
/// inspect it.
#[test]
fn a_container_that_inherits_a_confined_owner_label_is_not_that_owners() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let started = unix_now();
    let ci = gw.client(&unique("inherit-ci"), "ci");
    let base = janitor.image(&unique("inherit-base"));
    build(
        &gw,
        &ci,
        &base,
        &format!("FROM {}\nLABEL purpose=base\n", test_image()),
    );
    let admins = janitor.container(&unique("inherit-admin"));
    ok(&mut args(
        docker_direct(),
        ["run", "-d", "--name", &admins, &base, "sleep", "600"],
    ));
    let label = run(&mut args(
        docker_direct(),
        [
            "container",
            "inspect",
            "--format",
            "{{index .Config.Labels \"dockgate.owner\"}}",
            &admins,
        ],
    ));
    assert_eq!(
        label.stdout_str().trim(),
        format!("cn={}", ci.name),
        "the premise: the container inherited ci's owner label"
    );

    let exec = run(&mut cli(
        &gw,
        &ci,
        &["exec", &admins, "sh", "-c", "echo pwned > /tmp/pwned"],
    ));
    assert!(
        !exec.status.success(),
        "ci exec'd into a container it did not create"
    );
    assert!(
        exec.stderr_str().contains("No such container"),
        "{}",
        exec.stderr_str()
    );
    let planted = run(&mut args(
        docker_direct(),
        ["exec", &admins, "test", "-e", "/tmp/pwned"],
    ));
    assert!(!planted.status.success(), "ci planted a file");
    let inspect = run(&mut cli(&gw, &ci, &["container", "inspect", &admins]));
    assert!(!inspect.status.success(), "ci inspected it");
    let listed = run(&mut cli(
        &gw,
        &ci,
        &["ps", "-a", "--no-trunc", "--format", "{{.ID}} {{.Names}}"],
    ));
    assert!(listed.status.success(), "{}", listed.stderr_str());
    assert!(
        !listed.stdout_str().contains(&admins),
        "ci's container list shows it:\n{}",
        listed.stdout_str()
    );
    let events = run(&mut cli(
        &gw,
        &ci,
        &[
            "events",
            "--since",
            &started.to_string(),
            "--until",
            &(unix_now() + 1).to_string(),
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"name\"}}",
        ],
    ));
    assert!(events.status.success(), "{}", events.stderr_str());
    assert!(
        !events.stdout_str().contains(&admins),
        "ci's event stream shows it:\n{}",
        events.stdout_str()
    );

    // ci's own containers still work.
    let own = janitor.container(&unique("inherit-own"));
    ok(&mut cli(
        &gw,
        &ci,
        &["run", "-d", "--name", &own, &base, "sleep", "600"],
    ));
    ok(&mut cli(&gw, &ci, &["exec", &own, "true"]));
    let listed = run(&mut cli(&gw, &ci, &["ps", "--format", "{{.Names}}"]));
    assert!(
        listed.stdout_str().lines().any(|l| l == own),
        "ci's own container is missing from its list:\n{}",
        listed.stdout_str()
    );
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Tags have owners. An administrator's tag on an image `ci` built can be neither re-pointed
/// nor deleted by `ci`; `ci`'s own tag on the same image can.
#[test]
fn a_confined_role_cannot_move_or_delete_a_tag_it_did_not_create() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let ci = gw.client(&unique("tags-ci"), "ci");
    let built = janitor.image(&unique("tags-ci-app"));
    build(
        &gw,
        &ci,
        &built,
        &format!("FROM {}\nLABEL purpose=app\n", test_image()),
    );
    let other = janitor.image(&unique("tags-ci-other"));
    build(
        &gw,
        &ci,
        &other,
        &format!("FROM {}\nLABEL purpose=other\n", test_image()),
    );
    // The administrator releases ci's build under its own name.
    let release = janitor.image(&format!("{}:1", unique("tags-release")));
    ok(&mut cli(&gw, gw.admin(), &["tag", &built, &release]));
    let released = image_id(&release).expect("the release tag exists");

    let moved = run(&mut cli(&gw, &ci, &["tag", &other, &release]));
    assert!(!moved.status.success(), "ci re-pointed the admin's tag");
    assert!(
        moved.stderr_str().contains("rule confined.image-name"),
        "{}",
        moved.stderr_str()
    );
    let deleted = run(&mut cli(&gw, &ci, &["rmi", &release]));
    assert!(!deleted.status.success(), "ci deleted the admin's tag");
    assert_eq!(
        image_id(&release).as_deref(),
        Some(released.as_str()),
        "the admin's tag no longer points where the admin put it"
    );
    let images = run(&mut cli(
        &gw,
        &ci,
        &["images", "--format", "{{.Repository}}:{{.Tag}}"],
    ));
    assert!(images.status.success(), "{}", images.stderr_str());
    let release_repo = release.split(':').next().unwrap_or_default();
    assert!(
        !images.stdout_str().contains(release_repo),
        "ci's image list shows the admin's tag:\n{}",
        images.stdout_str()
    );
    assert!(
        images.stdout_str().contains(&built),
        "ci's image list lacks its own build:\n{}",
        images.stdout_str()
    );

    // ci's own tags stay ci's to move and delete.
    let mine = janitor.image(&format!("{}:2", unique("tags-ci-mine")));
    ok(&mut cli(&gw, &ci, &["tag", &built, &mine]));
    ok(&mut cli(&gw, &ci, &["tag", &other, &mine]));
    assert_eq!(image_id(&mine), image_id(&other));
    ok(&mut cli(&gw, &ci, &["rmi", &mine]));
    assert_eq!(image_id(&mine), None);
}

/// dockerd keeps the valid pairs of a query it cannot parse whole, so an administrator's tag
/// whose query dockgate cannot read could still take a name over without clearing its
/// recorded owner: such a request is refused, and the daemon holds no new tag.
#[tokio::test]
async fn an_unreadable_tag_query_is_refused() {
    let gw = Gateway::start();
    let tag = unique("unreadable");
    let mut conn = gw.raw(gw.admin()).await;
    let target = format!("/v1.41/images/{}/tag?repo={tag}&tag=1&x=%zz", test_image());
    let (head, body) = conn.request("POST", &target, None).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(head.status, 400, "{body}");
    assert!(
        body.contains("dockgate:"),
        "refused by the daemon, not dockgate: {body}"
    );
    let tagged = run(&mut args(
        docker_direct(),
        ["image", "inspect", &format!("{tag}:1")],
    ));
    assert!(!tagged.status.success(), "the daemon made the tag {tag}:1");
}
