//! The test harness itself, straight against the test daemon (no gateway): if these fail,
//! every end-to-end failure elsewhere is about the environment, not dockgate.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use crate::support::dockerd::docker_socket;
use crate::support::image::test_image;
use crate::support::{args, docker_direct, ok, run, unique, Janitor};

#[test]
fn daemon_answers_ping_on_its_unix_socket() {
    let mut stream = UnixStream::connect(docker_socket()).expect("connect to the daemon socket");
    stream
        .write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        .expect("send ping");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read ping");
    assert!(response.starts_with("HTTP/1."), "{response}");
    assert!(response.contains(" 200 "), "{response}");
    assert!(
        response.to_lowercase().contains("api-version: 1.4"),
        "{response}"
    );
    assert!(response.ends_with("OK"), "{response}");
}

#[test]
fn cli_reaches_the_daemon() {
    let api = ok(&mut args(
        docker_direct(),
        ["version", "--format", "{{.Server.APIVersion}}"],
    ));
    // The suites are written against API 1.41 (dockerd 20.10), which the v28 CLI negotiates.
    let minor: u32 = api
        .trim()
        .strip_prefix("1.")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("unexpected API version {api:?}"));
    assert!(minor >= 41, "daemon API {api:?} is older than 1.41");
}

#[test]
fn test_image_is_present() {
    let image = test_image();
    let inspect = ok(&mut args(
        docker_direct(),
        [
            "image",
            "inspect",
            "--format",
            "{{json .Config.Cmd}}",
            image,
        ],
    ));
    assert_eq!(inspect.trim(), r#"["sh"]"#);
}

#[test]
fn run_echo_hi() {
    let out = ok(&mut args(
        docker_direct(),
        ["run", "--rm", test_image(), "echo", "hi"],
    ));
    assert_eq!(out, "hi\n");
}

#[test]
fn image_has_the_applets_the_suites_use() {
    let script = "for a in sh cat echo sleep head tail dd sha256sum wc ls mkdir true false env \
                  id yes tr seq printf tee ping; do command -v $a >/dev/null || echo missing:$a; done";
    let out = ok(&mut args(
        docker_direct(),
        ["run", "--rm", test_image(), "sh", "-c", script],
    ));
    assert_eq!(out, "", "applets missing from the test image");
}

#[test]
fn user_networks_and_volumes_work() {
    let mut janitor = Janitor::new();
    let net = janitor.network(&unique("hnet"));
    let vol = janitor.volume(&unique("hvol"));
    let server = janitor.container(&unique("hsrv"));
    ok(&mut args(docker_direct(), ["network", "create", &net]));
    ok(&mut args(docker_direct(), ["volume", "create", &vol]));
    ok(&mut args(
        docker_direct(),
        [
            "run",
            "-d",
            "--name",
            &server,
            "--network",
            &net,
            test_image(),
            "sleep",
            "300",
        ],
    ));
    // Name resolution and reachability on the user network, and a write through the volume.
    let mount = format!("{vol}:/data");
    let script =
        format!("ping -c 1 -W 5 {server} >/dev/null && echo reached > /data/f && cat /data/f");
    let out = run(&mut args(
        docker_direct(),
        [
            "run",
            "--rm",
            "--network",
            &net,
            "-v",
            &mount,
            test_image(),
            "sh",
            "-c",
            &script,
        ],
    ));
    out.assert_success();
    assert_eq!(out.stdout_str(), "reached\n");
    let again = ok(&mut args(
        docker_direct(),
        ["run", "--rm", "-v", &mount, test_image(), "cat", "/data/f"],
    ));
    assert_eq!(again, "reached\n");
}
