//! What a confined role's classic builds may make the daemon do, through the real docker CLI
//! (`DOCKER_BUILDKIT=0`) and the real daemon: no fetches from the host's network, and no build
//! cache shared with other owners. Outcomes are judged by what a loopback-only HTTP server
//! saw and by what the images hold, read on the daemon's socket.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::gateway::{ClientCerts, Gateway};
use crate::support::image::test_image;
use crate::support::policy::{inspect, refused_stderr, send, sized, succeeds, tar, API};
use crate::support::{args, docker_direct, ok, random_bytes, unique, Janitor};

/// The shipped configuration with one setting changed.
fn shipped_with(setting: &str, value: &str) -> String {
    let shipped = include_str!("../config/dockgate.toml");
    assert!(
        shipped.contains(setting),
        "the shipped config has no {setting:?}"
    );
    shipped.replacen(setting, value, 1)
}

/// An HTTP server on the host's loopback that answers every request with `body`; counts the
/// connections it accepted.
fn loopback_server(body: &'static str) -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, seen)
}

/// A classic `docker build` through the gateway as `who`, of a context holding `files`.
fn build(gw: &Gateway, who: &ClientCerts, tag: &str, files: &[(&str, &[u8])]) -> Command {
    let context = gw.scratch().join(unique("build-ctx"));
    std::fs::create_dir_all(&context).expect("create build context");
    for (name, data) in files {
        std::fs::write(context.join(name), data).expect("write context file");
    }
    let mut cmd = args(gw.docker(who), ["build", "-t", tag]);
    cmd.arg(&context).env("DOCKER_BUILDKIT", "0");
    cmd
}

fn cat(image: &str, path: &str) -> String {
    ok(&mut args(
        docker_direct(),
        ["run", "--rm", image, "cat", path],
    ))
}

#[test]
fn ci_classic_add_from_the_host_loopback_is_refused_before_any_fetch() {
    let gw = Gateway::start();
    let ci = gw.client("builds-add-ci", "ci");
    let mut janitor = Janitor::new();
    let (port, seen) = loopback_server("host-only-secret");
    let dockerfile = format!("FROM {}\nADD http://127.0.0.1:{port}/x /x\n", test_image());

    let tag = janitor.image(&unique("ci-add-url"));
    let err = refused_stderr(
        &mut build(&gw, &ci, &tag, &[("Dockerfile", dockerfile.as_bytes())]),
        "(rule build.add-remote)",
    )
    .unwrap_or_else(|e| panic!("ci's ADD from 127.0.0.1: {e}"));
    assert!(err.contains("may not ADD from a URL"), "{err}");
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the daemon fetched for ci");
    assert!(
        inspect("image", &tag).is_none(),
        "the refused build left an image"
    );

    // Variable expansion is refused as well: the URL would only appear at build time.
    let expanded = format!("FROM {}\nARG U\nADD $U /x\n", test_image());
    let mut cmd = build(&gw, &ci, &tag, &[("Dockerfile", expanded.as_bytes())]);
    cmd.args(["--build-arg", &format!("U=http://127.0.0.1:{port}/x")]);
    refused_stderr(&mut cmd, "(rule build.add-remote)")
        .unwrap_or_else(|e| panic!("ci's ADD $U: {e}"));
    // A line ending in an escaped backslash does not continue: the ADD below it is an
    // instruction of its own to dockerd's parser.
    let escaped = format!(
        "FROM {}\nRUN echo \\\\\nADD http://127.0.0.1:{port}/x /x\n",
        test_image()
    );
    refused_stderr(
        &mut build(&gw, &ci, &tag, &[("Dockerfile", escaped.as_bytes())]),
        "(rule build.add-remote)",
    )
    .unwrap_or_else(|e| panic!("ci's ADD after an escaped backslash: {e}"));

    // A Dockerfile behind 2 MiB of context is checked while the context streams to the daemon:
    // the upload is cut before the Dockerfile's bytes, so the build fails before any step, and
    // the client still gets the refusal.
    let late = janitor.image(&unique("ci-add-url-late"));
    let padding = random_bytes(2 << 20);
    refused_stderr(
        &mut build(
            &gw,
            &ci,
            &late,
            &[("AAA.bin", &padding), ("Dockerfile", dockerfile.as_bytes())],
        ),
        "(rule build.add-remote)",
    )
    .unwrap_or_else(|e| panic!("ci's ADD behind 2 MiB of context: {e}"));
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the daemon fetched for ci");
    assert!(
        inspect("image", &late).is_none(),
        "the refused build left an image"
    );
    // The same context with a Dockerfile that fetches nothing builds.
    let fine = janitor.image(&unique("ci-late-fine"));
    let plain = format!(
        "FROM {}\nCOPY AAA.bin /AAA.bin\nRUN wc -c < /AAA.bin > /size\n",
        test_image()
    );
    succeeds(&mut build(
        &gw,
        &ci,
        &fine,
        &[("AAA.bin", &padding), ("Dockerfile", plain.as_bytes())],
    ))
    .unwrap_or_else(|e| panic!("ci's build behind 2 MiB of context: {e}"));
    assert_eq!(cat(&fine, "/size").trim(), (2 << 20).to_string());

    // The control: the same Dockerfile as the admin makes the daemon fetch from the host's
    // loopback, which is what ci must not get.
    let admin_tag = janitor.image(&unique("admin-add-url"));
    succeeds(&mut build(
        &gw,
        gw.admin(),
        &admin_tag,
        &[("Dockerfile", dockerfile.as_bytes())],
    ))
    .unwrap_or_else(|e| panic!("the admin's ADD build: {e}"));
    assert!(
        seen.load(Ordering::SeqCst) > 0,
        "the daemon did not fetch for the admin"
    );
    assert_eq!(cat(&admin_tag, "/x"), "host-only-secret");
}

#[test]
fn ci_proxy_build_args_are_refused() {
    let gw = Gateway::start();
    let ci = gw.client("builds-proxy-ci", "ci");
    let mut janitor = Janitor::new();
    let dockerfile = format!("FROM {}\nRUN echo built > /built\n", test_image());
    for arg in [
        "HTTP_PROXY=http://127.0.0.1:9",
        "no_proxy=*",
        "all_proxy=socks5://x",
    ] {
        let tag = janitor.image(&unique("ci-proxy"));
        let mut cmd = build(&gw, &ci, &tag, &[("Dockerfile", dockerfile.as_bytes())]);
        cmd.args(["--build-arg", arg]);
        refused_stderr(&mut cmd, "(rule build.proxy-args)")
            .unwrap_or_else(|e| panic!("ci's build with {arg}: {e}"));
        assert!(
            inspect("image", &tag).is_none(),
            "the refused build left an image"
        );
    }
}

/// A Dockerfile whose RUN step writes a value nobody else can predict.
fn secret_dockerfile(salt: &str) -> String {
    format!(
        "FROM {}\nLABEL dgt.case={salt}\nRUN cat /proc/sys/kernel/random/uuid > /secret\n",
        test_image()
    )
}

#[test]
fn ci_builds_never_reuse_another_owners_cached_layers() {
    let gw = Gateway::start();
    let ci = gw.client("builds-cache-ci", "ci");
    let mut janitor = Janitor::new();
    let dockerfile = secret_dockerfile(&unique("cache"));

    let admin_tag = janitor.image(&unique("admin-secret"));
    succeeds(&mut build(
        &gw,
        gw.admin(),
        &admin_tag,
        &[("Dockerfile", dockerfile.as_bytes())],
    ))
    .unwrap_or_else(|e| panic!("the admin's build: {e}"));
    let ci_tag = janitor.image(&unique("ci-secret"));
    let out = succeeds(&mut build(
        &gw,
        &ci,
        &ci_tag,
        &[("Dockerfile", dockerfile.as_bytes())],
    ))
    .unwrap_or_else(|e| panic!("ci's build of the same Dockerfile: {e}"));

    assert!(
        !out.contains("Using cache"),
        "ci's build used the cache:\n{out}"
    );
    let (admins, cis) = (cat(&admin_tag, "/secret"), cat(&ci_tag, "/secret"));
    assert_ne!(admins, cis, "ci's image holds the admin's step output");
}

#[test]
fn builds_nocache_keeps_the_admins_builds_off_confined_layers() {
    let gw = Gateway::start_with_config(&shipped_with(
        "[roles.admin.builds]\nnocache = false",
        "[roles.admin.builds]\nnocache = true",
    ));
    let ci = gw.client("builds-plant-ci", "ci");
    let mut janitor = Janitor::new();
    let dockerfile = secret_dockerfile(&unique("plant"));

    let ci_tag = janitor.image(&unique("ci-planted"));
    succeeds(&mut build(
        &gw,
        &ci,
        &ci_tag,
        &[("Dockerfile", dockerfile.as_bytes())],
    ))
    .unwrap_or_else(|e| panic!("ci's build: {e}"));
    let admin_tag = janitor.image(&unique("admin-after-ci"));
    let out = succeeds(&mut build(
        &gw,
        gw.admin(),
        &admin_tag,
        &[("Dockerfile", dockerfile.as_bytes())],
    ))
    .unwrap_or_else(|e| panic!("the admin's build of the same Dockerfile: {e}"));

    assert!(
        !out.contains("Using cache"),
        "the admin's build used the cache:\n{out}"
    );
    assert_ne!(
        cat(&ci_tag, "/secret"),
        cat(&admin_tag, "/secret"),
        "the admin's image holds ci's step output"
    );
}

/// A raw API build with a Content-Length context and the `dockerfile` parameter: the file the
/// parameter names is the one checked.
#[test]
fn ci_classic_builds_check_the_dockerfile_the_parameter_names() {
    let gw = Gateway::start();
    let ci = gw.client("builds-raw-ci", "ci");
    let mut janitor = Janitor::new();
    let (port, seen) = loopback_server("host-only-secret");
    let remote = format!("FROM {}\nADD http://127.0.0.1:{port}/x /x\n", test_image());
    let plain = format!("FROM {}\nRUN echo ok > /ok\n", test_image());
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let post = |tag: &str, named: &str, other: &str| {
        let context = tar(&[
            ("Dockerfile", other.as_bytes()),
            ("sub/Build.df", named.as_bytes()),
        ]);
        let target = format!("{API}/build?t={tag}&dockerfile=sub%2F.%2FBuild.df");
        let wire = sized("POST", &target, Some("application/x-tar"), &context);
        runtime.block_on(send(&gw, &ci, "POST", &wire))
    };

    let built = janitor.image(&unique("ci-raw-build"));
    let reply = post(&built, &plain, &remote);
    assert_eq!(
        reply.status(),
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(cat(&built, "/ok"), "ok\n");

    let refused = janitor.image(&unique("ci-raw-refused"));
    let reply = post(&refused, &remote, &plain);
    assert_eq!(
        reply.status(),
        403,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(
        reply.message().contains("(rule build.add-remote)"),
        "{}",
        reply.message()
    );
    assert!(
        inspect("image", &refused).is_none(),
        "the refused build left an image"
    );
    assert_eq!(seen.load(Ordering::SeqCst), 0, "the daemon fetched for ci");
}
