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
use crate::support::raw::{Head, RawConn};
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
    session: &str,
    context: Vec<u8>,
) -> Result<String, bollard::errors::Error> {
    let mut options = BuildImageOptionsBuilder::default()
        .t(tag)
        .version(BuilderVersion::BuilderBuildKit)
        .session(session);
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
        let built = build_image(
            &docker,
            &via_build,
            None,
            &unique("session"),
            context(&build_token),
        )
        .await;
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
        let built = build_image(&docker, &tag, None, &unique("session"), context(&token)).await;
        let host = build_image(
            &docker,
            &host_tag,
            Some("host"),
            &unique("session"),
            context(&token),
        )
        .await;
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
    let gw = Gateway::start_with_config(&with_ci_buildkit());
    let ci = gw.client("bk-ci", "ci");
    let mut janitor = Janitor::new();
    let tag = janitor.image(&format!("{}:bk", unique("ci-build")));
    let host_tag = janitor.image(&format!("{}:bk", unique("ci-host")));
    let token = unique("token");

    let (built, host) = as_client(async {
        let docker = connect(&gw, &ci).await;
        let built = build_image(&docker, &tag, None, &unique("session"), context(&token)).await;
        let host = build_image(
            &docker,
            &host_tag,
            Some("host"),
            &unique("session"),
            context(&token),
        )
        .await;
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

/// Opens BuildKit session `uuid` through the gateway as `who`, with the request the docker CLI
/// sends (`POST /session`, an h2c upgrade). The session lives as long as the connection.
async fn open_session(gw: &Gateway, who: &ClientCerts, uuid: &str) -> (RawConn, Head) {
    let mut conn = gw.raw(who).await;
    let request = format!(
        "POST /session HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\
         X-Docker-Expose-Session-Uuid: {uuid}\r\nX-Docker-Expose-Session-Name: dockgate-test\r\n\
         X-Docker-Expose-Session-Sharedkey: dockgate-test\r\nContent-Length: 0\r\n\r\n"
    );
    conn.send(request.as_bytes()).await;
    let head = conn.read_head().await;
    (conn, head)
}

/// The shipped config with `[roles.ci.builds] buildkit = true`.
fn with_ci_buildkit() -> String {
    let shipped = include_str!("../config/dockgate.toml");
    let (off, on) = (
        "[roles.ci.builds]\nbuildkit = false",
        "[roles.ci.builds]\nbuildkit = true",
    );
    assert!(shipped.contains(off), "the shipped config has no {off:?}");
    shipped.replacen(off, on, 1)
}

/// `POST /build?version=2` as `who`, naming BuildKit session `uuid`, with a Dockerfile as the
/// body. Returns the connection too: it holds what the request claimed.
async fn build_naming(
    gw: &Gateway,
    who: &ClientCerts,
    uuid: &str,
    tag: &str,
) -> (RawConn, Head, String) {
    let mut conn = gw.raw(who).await;
    let dockerfile = format!("FROM {}\nLABEL built-by={}\n", test_image(), who.name);
    let request = format!(
        "POST /build?version=2&session={uuid}&t={tag} HTTP/1.1\r\nHost: docker\r\n\
         Content-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n{dockerfile}",
        dockerfile.len()
    );
    conn.send(request.as_bytes()).await;
    let head = conn.read_head().await;
    let body = conn.read_body(&head, "POST").await;
    (conn, head, String::from_utf8_lossy(&body).into_owned())
}

/// dockerd's BuildKit hands a build the files, secrets, SSH agent and registry credentials of
/// whichever client opened the session it names, and has no notion of an owner: a confined
/// build may only name sessions nobody else holds (issue 8). Confined BuildKit builds need
/// `builds.buildkit`, so the gateway runs with it.
#[test]
fn a_confined_build_cannot_use_another_clients_session() {
    let gw = Gateway::start_with_config(&with_ci_buildkit());
    let ci = gw.client("bk-ci-owner", "ci");
    let other = gw.client("bk-ci-other", "ci");
    let mut janitor = Janitor::new();
    let admin_tag = janitor.image(&format!("{}:bk", unique("admin-session")));
    let ci_tag = janitor.image(&format!("{}:bk", unique("ci-session")));
    let stolen = janitor.image(&format!("{}:bk", unique("ci-stolen")));
    let admins = unique("session");
    let admin_session_ended = |l: &str| {
        serde_json::from_str::<Value>(l).is_ok_and(|v| {
            v["kind"] == "session" && v["operation"] == "Session" && v["cn"] == "admin"
        })
    };

    as_client(async {
        // The admin builds with a session that bollard keeps serving while this runtime lives.
        let docker = connect(&gw, gw.admin()).await;
        build_image(&docker, &admin_tag, None, &admins, context("admin"))
            .await
            .unwrap_or_else(|e| panic!("the admin's BuildKit build: {e}"));
        assert!(
            audit(&gw).iter().any(|v| v["kind"] == "request"
                && v["operation"] == "Session"
                && v["cn"] == "admin"
                && v["status"] == 101),
            "the admin's /session was not upgraded"
        );

        let (_, head, body) = build_naming(&gw, &ci, &admins, &stolen).await;
        assert_eq!(
            head.status, 403,
            "ci built with the admin's session: {body}"
        );
        assert!(body.contains("confined.build-session"), "{body}");
        let (_, head) = open_session(&gw, &ci, &admins).await;
        assert_eq!(
            head.status, 403,
            "ci opened a session under the admin's uuid"
        );
        assert!(
            !gw.log().lines().any(admin_session_ended),
            "the admin's session ended before ci's attempts, which proves nothing"
        );

        // Between two ci identities alike: a session a build names is its builder's while the
        // connection lasts, even before (or without) a /session.
        let cis = unique("session");
        let (_ci_conn, head, body) = build_naming(&gw, &ci, &cis, &ci_tag).await;
        assert_eq!(head.status, 200, "ci's own build: {body}");
        let (_, head, body) = build_naming(&gw, &other, &cis, &stolen).await;
        assert_eq!(
            head.status, 403,
            "a second ci identity built with the first's session: {body}"
        );
        assert!(body.contains("confined.build-session"), "{body}");
        let (_, head) = open_session(&gw, &other, &cis).await;
        assert_eq!(
            head.status, 403,
            "a second ci identity opened the first's session"
        );
    });
    assert!(
        inspect("image", &stolen).is_none(),
        "a refused build left an image"
    );
}
