//! Raw HTTP/1.1 over a client's mutual-TLS connection to dockgate: the protocol corners the
//! docker CLI exercises only some of (upgrades, pipelining, half-close, framing errors).

use serde_json::json;

use crate::support::dockerd::docker_socket;
use crate::support::gateway::Gateway;
use crate::support::image::test_image;
use crate::support::raw::{demux, RawConn};
use crate::support::{args, docker_direct, ok, random_bytes, run, unique, Janitor, TempDir};

/// The API version every request here names, as the negotiated docker CLI would.
const API: &str = "/v1.41";
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const H2_SETTINGS: u8 = 0x4;
const H2_FLAG_ACK: u8 = 0x1;

/// One HTTP/2 frame: (type, flags, stream id, payload).
async fn read_h2_frame(conn: &mut RawConn) -> (u8, u8, u32, Vec<u8>) {
    let header = conn.read_exact(9).await;
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
    (header[3], header[4], stream, conn.read_exact(len).await)
}

fn h2_frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags, 0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

/// A detached container from the test image, started directly on the daemon.
fn container(janitor: &mut Janitor, prefix: &str, run_args: &[&str]) -> String {
    let name = janitor.container(&unique(prefix));
    let mut cmd = args(docker_direct(), ["run", "-d", "--name", &name]);
    cmd.args(run_args);
    ok(&mut cmd);
    name
}

/// BuildKit's session: `POST /session` upgraded to h2c. After the 101 the daemon is the gRPC
/// (HTTP/2) client of the CLI, so it speaks first with the client preface and SETTINGS; the
/// test answers as the HTTP/2 server and waits for the daemon to acknowledge its SETTINGS.
#[tokio::test]
async fn session_upgrade_to_h2c_carries_http2_both_ways() {
    let gw = Gateway::start();
    let mut conn = gw.raw(gw.admin()).await;
    let id = unique("session");
    let request = format!(
        "POST {API}/session HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\
         X-Docker-Expose-Session-Uuid: {id}\r\nX-Docker-Expose-Session-Name: dockgate-test\r\n\
         X-Docker-Expose-Session-Sharedkey: {id}-key\r\n\
         X-Docker-Expose-Session-Grpc-Method: /grpc.health.v1.Health/Check\r\n\
         Content-Length: 0\r\n\r\n"
    );
    conn.send(request.as_bytes()).await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(
        head.header("Upgrade")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("h2c"),
        "{head:?}"
    );

    assert_eq!(conn.read_exact(H2_PREFACE.len()).await, H2_PREFACE);
    let (kind, flags, stream, _) = read_h2_frame(&mut conn).await;
    assert_eq!(
        (kind, flags & H2_FLAG_ACK, stream),
        (H2_SETTINGS, 0, 0),
        "the daemon's first frame after its preface must be SETTINGS"
    );

    let mut reply = h2_frame(H2_SETTINGS, 0, &[]);
    reply.extend(h2_frame(H2_SETTINGS, H2_FLAG_ACK, &[]));
    conn.send(&reply).await;
    for _ in 0..32 {
        let (kind, flags, _, _) = read_h2_frame(&mut conn).await;
        if kind == H2_SETTINGS && flags & H2_FLAG_ACK != 0 {
            return;
        }
    }
    panic!("the daemon never acknowledged our HTTP/2 SETTINGS");
}

/// Stdin sent in the same write as the attach request, before the 101 arrives, must reach the
/// container. (dockerd itself drops bytes that arrive with the request: the gateway has to
/// hold them until the daemon has switched protocols.)
#[tokio::test]
async fn bytes_pipelined_after_an_upgrade_request_reach_the_container() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = container(&mut janitor, "pipelined", &["-i", test_image(), "cat"]);
    let payload = b"pipelined-stdin\n";
    let mut request = format!(
        "POST {API}/containers/{name}/attach?stream=1&stdin=1&stdout=1&stderr=1 HTTP/1.1\r\n\
         Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(payload);

    let mut conn = gw.raw(gw.admin()).await;
    conn.send(&request).await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 101, "{head:?}");
    let mut echoed = Vec::new();
    while echoed.len() < payload.len() {
        let (kind, data) = conn
            .read_frame()
            .await
            .unwrap_or_else(|| panic!("stream ended after {echoed:?}"));
        assert_eq!(kind, 1, "unexpected stream type, payload {data:?}");
        echoed.extend(data);
    }
    assert_eq!(echoed, payload);
}

/// The pre-upgrade attach form: no Upgrade header, a 200 and then the raw multiplexed stream
/// up to the end of the connection, exactly as dockerd writes it.
#[tokio::test]
async fn attach_without_upgrade_returns_200_and_the_raw_stream() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = container(
        &mut janitor,
        "oldattach",
        &[
            test_image(),
            "sh",
            "-c",
            "echo first; sleep 1; echo second; echo third >&2",
        ],
    );
    let mut conn = gw.raw(gw.admin()).await;
    let request = format!(
        "POST {API}/containers/{name}/attach?stream=1&logs=1&stdout=1&stderr=1 HTTP/1.1\r\n\
         Host: docker\r\nContent-Length: 0\r\n\r\n"
    );
    conn.send(request.as_bytes()).await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(
        head.header("Content-Type"),
        Some("application/vnd.docker.raw-stream"),
        "{head:?}"
    );
    assert!(
        head.header("Transfer-Encoding").is_none(),
        "the raw stream must follow the head as-is, not re-framed: {head:?}"
    );
    let (stream, ended) = conn.read_until_end().await;
    ended.expect("the stream ends with a clean TLS close");
    let (out, err) = demux(&stream);
    assert_eq!(String::from_utf8_lossy(&out), "first\nsecond\n");
    assert_eq!(String::from_utf8_lossy(&err), "third\n");
}

/// Half-close: after stdin is written on an upgraded exec, TLS close_notify must become EOF on
/// the process's stdin while everything the process writes afterwards still arrives.
#[tokio::test]
async fn close_notify_half_closes_an_upgraded_exec() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = container(&mut janitor, "halfclose", &[test_image(), "sleep", "300"]);

    let mut api = gw.raw(gw.admin()).await;
    let create = json!({
        "AttachStdin": true,
        "AttachStdout": true,
        "AttachStderr": true,
        "Cmd": ["sh", "-c", "cat; echo after-eof; seq 1 100000"],
    });
    let (head, body) = api
        .request(
            "POST",
            &format!("{API}/containers/{name}/exec"),
            Some(&create),
        )
        .await;
    assert_eq!(
        head.status,
        201,
        "{head:?} {}",
        String::from_utf8_lossy(&body)
    );
    let created: serde_json::Value = serde_json::from_slice(&body).expect("exec create JSON");
    let exec_id = created["Id"].as_str().expect("exec Id").to_owned();

    let start = r#"{"Detach":false,"Tty":false}"#;
    let request = format!(
        "POST {API}/exec/{exec_id}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\n\
         Upgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{start}",
        start.len()
    );
    let mut conn = gw.raw(gw.admin()).await;
    conn.send(request.as_bytes()).await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 101, "{head:?}");

    // Small enough to sit in socket buffers while nothing is read yet.
    let payload = random_bytes(32 << 10);
    conn.send(&payload).await;
    conn.close_notify().await;

    let (stream, ended) = conn.read_until_end().await;
    ended.expect("the stream ends with a clean TLS close after the process exits");
    let (out, err) = demux(&stream);
    assert_eq!(err, b"", "stderr: {}", String::from_utf8_lossy(&err));
    let mut expected = payload;
    expected.extend_from_slice(b"after-eof\n");
    expected.extend((1..=100000).flat_map(|i| format!("{i}\n").into_bytes()));
    assert_eq!(out.len(), expected.len(), "stdout length");
    assert!(out == expected, "stdout differs from stdin echo + trailer");
}

/// Content-Length together with Transfer-Encoding is a smuggling vector: refused with 400 and
/// never forwarded (the container it would create must not exist).
#[tokio::test]
async fn content_length_with_transfer_encoding_is_rejected_before_the_daemon() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = janitor.container(&unique("smuggle"));
    let body = json!({ "Image": test_image(), "Cmd": ["true"] }).to_string();
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let request = format!(
        "POST {API}/containers/create?name={name} HTTP/1.1\r\nHost: docker\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\
         Transfer-Encoding: chunked\r\n\r\n{chunked}",
        chunked.len()
    );
    let mut conn = gw.raw(gw.admin()).await;
    conn.send(request.as_bytes()).await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 400, "{head:?}");
    assert!(
        !run(&mut args(docker_direct(), ["container", "inspect", &name]))
            .status
            .success(),
        "the request reached the daemon: container {name} exists"
    );
}

/// HEAD /_ping answers with headers only; the next request on the same connection is parsed
/// cleanly, which fails if any body bytes leaked after the HEAD response.
#[tokio::test]
async fn head_ping_has_headers_and_no_body() {
    let gw = Gateway::start();
    let mut conn = gw.raw(gw.admin()).await;
    conn.send(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        .await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 200, "{head:?}");
    let api = head
        .header("Api-Version")
        .unwrap_or_else(|| panic!("no Api-Version: {head:?}"));
    assert!(api.starts_with("1."), "{head:?}");

    conn.send(b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n")
        .await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(conn.read_body(&head, "GET").await, b"OK");
}

/// The daemon is down: 502 with a Docker-style body. It comes back (here: its socket appears):
/// the same gateway process, even the same client connection, is served again.
#[tokio::test]
async fn daemon_down_is_502_and_its_return_needs_no_restart() {
    let dir = TempDir::new("downsock");
    let socket = dir.join("docker.sock");
    let gw = Gateway::start_with_socket(&socket);
    let pid = gw.pid();
    let mut conn = gw.raw(gw.admin()).await;

    let (head, body) = conn.request("GET", &format!("{API}/version"), None).await;
    assert_eq!(head.status, 502, "{head:?}");
    assert_eq!(head.header("Content-Type"), Some("application/json"));
    let message: serde_json::Value = serde_json::from_slice(&body).expect("JSON error body");
    let message = message["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("cannot reach the Docker daemon"),
        "{message}"
    );

    std::os::unix::fs::symlink(docker_socket(), &socket).expect("link the daemon socket");
    let (head, body) = conn.request("GET", "/_ping", None).await;
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(body, b"OK");
    assert_eq!(gw.pid(), pid, "the gateway was restarted");
}

/// WebSocket attach: `GET /containers/{id}/attach/ws` upgraded to `websocket`; the container's
/// output arrives as WebSocket frames.
#[tokio::test]
async fn websocket_attach_streams_output() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = container(
        &mut janitor,
        "wsattach",
        &[
            test_image(),
            "sh",
            "-c",
            "sleep 1; echo from-websocket; sleep 30",
        ],
    );
    let mut conn = gw.raw(gw.admin()).await;
    let request = format!(
        "GET {API}/containers/{name}/attach/ws?stream=1&stdout=1 HTTP/1.1\r\nHost: localhost\r\n\
         Origin: http://localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    conn.send(request.as_bytes()).await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 101, "{head:?}");
    assert_eq!(
        head.header("Sec-WebSocket-Accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{head:?}"
    );
    // Frames until the payload shows up: FIN/opcode byte, 7-bit length (short lines), payload.
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("from-websocket") {
        let header = conn.read_exact(2).await;
        let len = usize::from(header[1] & 0x7f);
        assert!(len < 126, "unexpectedly long frame: {header:?}");
        seen.extend(conn.read_exact(len).await);
    }
}
