//! Real BuildKit builds through the gateway over mutual TLS, driven by bollard as the admin and
//! as the confined `ci` role. A BuildKit build hijacks two connections besides `POST /build`:
//! `POST /session` (the daemon calls back into the client over HTTP/2, e.g. to fetch the build
//! context) and `POST /grpc` (the client calls the daemon's BuildKit controller). Images are
//! checked on the daemon directly; the sessions through the gateway's audit log.

use std::future::Future;
use std::time::Duration;

use bollard::grpc::build::{ImageBuildFrontendOptions, ImageBuildLoadInput};
use bollard::grpc::driver::moby::Moby;
use bollard::grpc::driver::Build;
use bollard::models::BuildInfoAux;
use bollard::query_parameters::{BuildImageOptionsBuilder, BuilderVersion};
use bollard::{Docker, API_DEFAULT_VERSION};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{Either, Full};
use serde_json::Value;

use crate::support::gateway::{ClientCerts, Gateway};
use crate::support::image::test_image;
use crate::support::policy::{inspect, owner_of, tar};
use crate::support::{args, docker_direct, ok, unique, Janitor};

/// Ceiling for one build; a hang is a failure.
const BUILD_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the gateway may take to log a session after its client went away.
const AUDIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs one client's work on a runtime of its own and then drops that runtime, which closes
/// every connection the client still holds (bollard keeps the `/session` stream served by a
/// background task), so the gateway sees those sessions end.
fn as_client<T>(work: impl Future<Output = T>) -> T {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let out = runtime.block_on(async {
        tokio::time::timeout(BUILD_TIMEOUT, work)
            .await
            .unwrap_or_else(|_| panic!("the build did not finish within {BUILD_TIMEOUT:?}"))
    });
    runtime.shutdown_timeout(Duration::from_secs(5));
    out
}

/// bollard connected to the gateway as `who`, at the API version the daemon speaks.
async fn connect(gw: &Gateway, who: &ClientCerts) -> Docker {
    let docker = Docker::connect_with_ssl(
        &format!("tcp://{}", gw.addr()),
        &who.key(),
        &who.cert(),
        &who.ca(),
        BUILD_TIMEOUT.as_secs(),
        API_DEFAULT_VERSION,
    )
    .unwrap_or_else(|e| panic!("bollard client for {}: {e}", who.name));
    docker.negotiate_version().await.unwrap_or_else(|e| {
        panic!(
            "version negotiation through the gateway as {}: {e}",
            who.name
        )
    })
}

/// A build context whose Dockerfile copies a file out of the context and runs a step on it.
fn context(token: &str) -> Vec<u8> {
    let dockerfile = format!(
        "FROM {}\nCOPY token.txt /token.txt\nRUN cp /token.txt /ran.txt\n",
        test_image()
    );
    tar(&[
        ("Dockerfile", dockerfile.as_bytes()),
        ("token.txt", token.as_bytes()),
    ])
}

/// `POST /build` with `version=2` and a session: the classic API entry point to BuildKit.
/// Returns the image ID the daemon reported; panics if no BuildKit progress came back, i.e. the
/// daemon did not build with BuildKit.
async fn build_image(
    docker: &Docker,
    tag: &str,
    networkmode: Option<&str>,
    context: Vec<u8>,
) -> Result<String, bollard::errors::Error> {
    let mut options = BuildImageOptionsBuilder::default()
        .t(tag)
        .version(BuilderVersion::BuilderBuildKit)
        .session(&unique("session"));
    if let Some(mode) = networkmode {
        options = options.networkmode(mode);
    }
    let mut stream = docker.build_image(
        options.build(),
        None,
        Some(Either::Left(Full::new(Bytes::from(context)))),
    );
    let (mut id, mut progress) = (None, 0);
    while let Some(info) = stream.next().await {
        match info?.aux {
            Some(BuildInfoAux::Default(image)) => id = image.id,
            Some(BuildInfoAux::BuildKit(_)) => progress += 1,
            None => {}
        }
    }
    assert!(
        progress > 0,
        "the build of {tag} reported no BuildKit progress"
    );
    Ok(id.unwrap_or_else(|| panic!("the build of {tag} reported no image ID")))
}

/// A buildx-style build: `Solve` on the daemon's controller over `/grpc`, the context fetched
/// by the daemon from the client's upload service over `/session`; no `POST /build` at all.
async fn solve(docker: &Docker, tag: &str, context: Vec<u8>) -> Result<(), String> {
    Moby::new(docker)
        .docker_build(
            tag,
            ImageBuildFrontendOptions::builder().build(),
            ImageBuildLoadInput::Upload(Bytes::from(context)),
            None,
            None,
        )
        .await
        .map_err(|e| e.to_string())
}

/// What the image's files hold, read by a container the daemon runs directly.
fn files_in(image: &str) -> String {
    ok(&mut args(
        docker_direct(),
        ["run", "--rm", image, "cat", "/token.txt", "/ran.txt"],
    ))
}

/// The audit lines (JSON) the gateway wrote so far.
fn audit(gw: &Gateway) -> Vec<Value> {
    gw.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("kind").is_some())
        .collect()
}

/// Waits for the audit line of an ended `operation` session opened by `who`. A `POST /build`
/// that needs none of the client's session services completes even when `/session` is refused,
/// so this line is what shows the hijack went through.
fn ended_session(gw: &Gateway, who: &ClientCerts, operation: &str) {
    let line = gw.wait_for_log_line(AUDIT_TIMEOUT, |l| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| {
            v["kind"] == "session" && v["operation"] == operation && v["cn"] == who.name.as_str()
        })
    });
    let line = line.unwrap_or_else(|| {
        panic!(
            "no ended {operation} session of {} in the audit log within {AUDIT_TIMEOUT:?}; \
             audit so far:\n{}",
            who.name,
            audit(gw)
                .iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let v: Value = serde_json::from_str(&line).expect("audit line is JSON");
    assert_eq!(v["decision"], "allow", "{v}");
    assert_eq!(v["status"], 101, "{v}");
    assert_eq!(v["method"], "POST", "{v}");
    assert_eq!(v["role"], who.role.as_str(), "{v}");
}

#[test]
fn admin_builds_with_buildkit_through_the_gateway() {
    let gw = Gateway::start();
    let admin = gw.admin().clone();
    let mut janitor = Janitor::new();
    let via_build = janitor.image(&format!("{}:bk", unique("admin-build")));
    let via_solve = janitor.image(&format!("{}:bk", unique("admin-solve")));
    let build_token = unique("token");
    let solve_token = unique("token");

    let (built, solved) = as_client(async {
        let docker = connect(&gw, &admin).await;
        let built = build_image(&docker, &via_build, None, context(&build_token)).await;
        let solved = solve(&docker, &via_solve, context(&solve_token)).await;
        (built, solved)
    });

    let id = built.unwrap_or_else(|e| panic!("BuildKit build via POST /build as admin: {e}"));
    let image = inspect("image", &via_build).expect("the built image exists");
    assert_eq!(
        image["Id"],
        id.as_str(),
        "the tag names the image the build reported"
    );
    assert_eq!(files_in(&via_build), format!("{build_token}{build_token}"));

    solved.unwrap_or_else(|e| panic!("BuildKit Solve via /grpc as admin: {e}"));
    assert_eq!(files_in(&via_solve), format!("{solve_token}{solve_token}"));

    ended_session(&gw, &admin, "Session");
    ended_session(&gw, &admin, "Grpc");
    // Sessions are counted as bytes flow, so even one a client drops without a TLS
    // close_notify reports what it carried.
    // The build context travels client → daemon over /session (a tar of a few KiB).
    let context_session = |v: &Value| {
        v["kind"] == "session"
            && v["operation"] == "Session"
            && v["bytes_in"].as_u64().unwrap_or(0) > 1000
            && v["bytes_out"].as_u64().unwrap_or(0) > 0
    };
    assert!(
        gw.wait_for_log_line(AUDIT_TIMEOUT, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| context_session(&v))
        })
        .is_some(),
        "no Session line counts the build context's bytes"
    );
}

/// The docker daemon's answer to a build that must be refused with 403 for `rule`.
fn refused_with(built: Result<String, bollard::errors::Error>, rule: &str, what: &str) {
    match built {
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code,
            message,
        }) => {
            assert_eq!(status_code, 403, "{what}: {message}");
            assert!(
                message.contains(&format!("(rule {rule})")),
                "{what}: {message}"
            );
        }
        other => panic!("{what} was not refused with 403: {other:?}"),
    }
}

/// By default a confined role does not build with BuildKit at all: dockgate cannot see the
/// Dockerfile BuildKit runs (it may come through the session, or `# syntax` may replace the
/// frontend), and BuildKit fetches `ADD <url>` from the host's network.
#[test]
fn ci_buildkit_builds_are_refused_by_default() {
    let gw = Gateway::start();
    let ci = gw.client("bk-ci", "ci");
    let mut janitor = Janitor::new();
    let tag = janitor.image(&format!("{}:bk", unique("ci-build")));
    let host_tag = janitor.image(&format!("{}:bk", unique("ci-host")));
    let token = unique("token");

    let (built, host) = as_client(async {
        let docker = connect(&gw, &ci).await;
        let built = build_image(&docker, &tag, None, context(&token)).await;
        let host = build_image(&docker, &host_tag, Some("host"), context(&token)).await;
        (built, host)
    });

    refused_with(built, "build.buildkit", "a BuildKit build as ci");
    assert!(
        inspect("image", &tag).is_none(),
        "the refused build left an image"
    );
    refused_with(host, "build.networkmode", "a host-network build as ci");
    assert!(
        inspect("image", &host_tag).is_none(),
        "the refused build left an image"
    );

    // A buildx-style build talks to BuildKit over /grpc, whose calls dockgate cannot inspect
    // (they could tag over others' images or ask for host networking): refused for ci.
    let grpc_tag = janitor.image(&format!("{}:bk", unique("ci-grpc")));
    let solved = as_client(async {
        let docker = connect(&gw, &ci).await;
        solve(&docker, &grpc_tag, context(&token)).await
    });
    assert!(solved.is_err(), "a /grpc Solve as ci succeeded");
    assert!(
        inspect("image", &grpc_tag).is_none(),
        "the refused /grpc build left an image"
    );
    assert!(
        audit(&gw).iter().any(|v| v["kind"] == "request"
            && v["operation"] == "Grpc"
            && v["decision"] == "deny"
            && v["status"] == 403
            && v["cn"] == ci.name.as_str()),
        "no audited 403 for ci's /grpc"
    );
    let refusal = audit(&gw).into_iter().find(|v| {
        v["kind"] == "request"
            && v["operation"] == "ImageBuild"
            && v["decision"] == "deny"
            && v["cn"] == ci.name.as_str()
    });
    let refusal = refusal.expect("the refused build is audited");
    assert_eq!(refusal["status"], 403, "{refusal}");
    assert_eq!(refusal["rule"], "build.buildkit", "{refusal}");
}

/// With `builds.buildkit`, the operator lets a confined role build with BuildKit: its images
/// are owned, and host networking is still refused.
#[test]
fn ci_buildkit_builds_with_builds_buildkit_are_owned_and_host_network_is_refused() {
    let shipped = include_str!("../config/dockgate.toml");
    let (off, on) = (
        "[roles.ci.builds]\nbuildkit = false",
        "[roles.ci.builds]\nbuildkit = true",
    );
    assert!(shipped.contains(off), "the shipped config has no {off:?}");
    let config = shipped.replacen(off, on, 1);
    let gw = Gateway::start_with_config(&config);
    let ci = gw.client("bk-ci", "ci");
    let mut janitor = Janitor::new();
    let tag = janitor.image(&format!("{}:bk", unique("ci-build")));
    let host_tag = janitor.image(&format!("{}:bk", unique("ci-host")));
    let token = unique("token");

    let (built, host) = as_client(async {
        let docker = connect(&gw, &ci).await;
        let built = build_image(&docker, &tag, None, context(&token)).await;
        let host = build_image(&docker, &host_tag, Some("host"), context(&token)).await;
        (built, host)
    });

    let id = built.unwrap_or_else(|e| panic!("BuildKit build via POST /build as ci: {e}"));
    let image = inspect("image", &tag).expect("the built image exists");
    assert_eq!(
        image["Id"],
        id.as_str(),
        "the tag names the image the build reported"
    );
    assert_eq!(
        owner_of(&image).as_deref(),
        Some(format!("cn={}", ci.name).as_str()),
        "owner label of {tag}: {}",
        image["Config"]["Labels"]
    );
    assert_eq!(files_in(&tag), format!("{token}{token}"));
    let visible = ok(&mut args(
        gw.docker(&ci),
        ["image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
    ));
    assert!(
        visible.lines().any(|l| l == tag),
        "ci does not see its own image {tag}: {visible:?}"
    );

    refused_with(host, "build.networkmode", "a host-network build as ci");
    assert!(
        inspect("image", &host_tag).is_none(),
        "the refused build left an image"
    );
}
