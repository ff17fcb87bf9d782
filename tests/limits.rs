//! Denial of service by one `ci` certificate: slow bodies, held inspection memory and piles
//! of connections. Each case leaves another identity served, and is judged by what the
//! daemon holds as well as by the gateway's answers.

use crate::support::gateway::{ClientCerts, Gateway};
use crate::support::image::test_image;
use crate::support::raw::RawConn;
use crate::support::{args, docker_direct, ok, run, unique, Janitor};

const API: &str = "/v1.41";

/// A container create whose head promises `declared` body bytes, followed by only `sent`.
fn partial_create(name: &str, declared: usize, sent: &str) -> String {
    format!(
        "POST {API}/containers/create?name={name} HTTP/1.1\r\nHost: docker\r\n\
         Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n{sent}"
    )
}

fn container_exists(name: &str) -> bool {
    run(&mut args(docker_direct(), ["container", "inspect", name]))
        .status
        .success()
}

async fn ping(gw: &Gateway, client: &ClientCerts) -> (u16, String) {
    let mut conn = gw.raw(client).await;
    conn.send(format!("GET {API}/_ping HTTP/1.1\r\nHost: docker\r\n\r\n").as_bytes())
        .await;
    let head = conn.read_head().await;
    let len = head
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = String::from_utf8_lossy(&conn.read_exact(len).await).into_owned();
    (head.status, body)
}

/// Connections that each hold a body open count against their owner's limit; the next
/// one gets a Docker-style 429 naming the rule, while another identity is served and
/// nothing the held requests would create reaches the daemon.
#[tokio::test]
async fn an_identity_at_its_connection_limit_is_refused_while_others_are_served() {
    let gw = Gateway::start_with_config("[limits]\nconnections_per_identity = 5\n");
    let ci = gw.client(&unique("dos-ci"), "ci");
    // A `logs -f` stream the identity holds counts, and is never cut by the limit.
    let ticker = unique("dos-ticker");
    let started = run(&mut args(
        gw.docker(&ci),
        [
            "run",
            "-d",
            "--name",
            &ticker,
            test_image(),
            "sh",
            "-c",
            "while true; do echo tick; sleep 0.2; done",
        ],
    ));
    started.assert_success();
    let mut logs = gw.raw(&ci).await;
    logs.send(
        format!(
            "GET {API}/containers/{ticker}/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: docker\r\n\r\n"
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(logs.read_head().await.status, 200);
    let mut held: Vec<(RawConn, String)> = Vec::new();
    for _ in 0..4 {
        let name = unique("dos-held");
        let mut conn = gw.raw(&ci).await;
        conn.send(partial_create(&name, 100, "{").as_bytes()).await;
        held.push((conn, name));
    }
    // The handshake alone does not show a refusal under TLS 1.3; the first answer does.
    let (status, body) = ping(&gw, &ci).await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("rule limits.connections_per_identity"),
        "{body}"
    );
    let (status, body) = ping(&gw, gw.admin()).await;
    assert_eq!((status, body.as_str()), (200, "OK"));
    for (_, name) in &held {
        assert!(
            !container_exists(name),
            "a held create reached the daemon: {name}"
        );
    }
    // A line written after the refusal still arrives.
    let marker = unique("after-refusal");
    ok(&mut args(
        docker_direct(),
        [
            "exec",
            &ticker,
            "sh",
            "-c",
            &format!("echo {marker} > /proc/1/fd/1"),
        ],
    ));
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(&marker) {
        let bytes = logs.try_read_some().await.expect("the logs stream");
        assert!(!bytes.is_empty(), "the logs -f stream was cut");
        seen.extend(bytes);
    }
    drop(held);
    drop(logs);
    let _ = run(&mut args(docker_direct(), ["rm", "-f", &ticker]));
    // Slots come back when connections end.
    let mut freed = false;
    for _ in 0..50 {
        if ping(&gw, &ci).await.0 == 200 {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(freed, "ci's connection slots were not released");
}

/// A confined body that does not arrive within `limits.body_read_timeout` gets 408, and
/// the create is never forwarded.
#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_refused_before_the_daemon() {
    let gw = Gateway::start_with_config("[limits]\nbody_read_timeout = 1\n");
    let ci = gw.client(&unique("slow-ci"), "ci");
    let name = unique("slow-body");
    let mut conn = gw.raw(&ci).await;
    conn.send(partial_create(&name, 100, "{\"Image\":").as_bytes())
        .await;
    let head = conn.read_head().await;
    assert_eq!(head.status, 408, "{head:?}");
    assert!(
        !container_exists(&name),
        "the slow create reached the daemon"
    );
}

/// Bodies held for inspection share `limits.inspect_memory`: a confined request that would
/// go over it is refused with 503 at once, while an administrator's create (which is not
/// confined) still goes through.
#[tokio::test]
async fn inspection_memory_is_shared_and_refused_when_spent() {
    let gw = Gateway::start_with_config("[limits]\ninspect_memory = 1000\n");
    let ci = gw.client(&unique("mem-ci"), "ci");
    let held_name = unique("mem-held");
    let mut held = gw.raw(&ci).await;
    held.send(partial_create(&held_name, 800, "{").as_bytes())
        .await;
    // The held body's reservation is taken once the gateway reads its head; a request on
    // another connection may overtake it, so retry until the budget is seen spent.
    let refused_name = unique("mem-refused");
    let mut refused = None;
    for _ in 0..50 {
        let mut conn = gw.raw(&ci).await;
        let body = format!("{{\"Image\":\"{}\"}}{}", test_image(), " ".repeat(700));
        conn.send(partial_create(&refused_name, body.len(), &body).as_bytes())
            .await;
        let head = conn.read_head().await;
        if head.status == 503 {
            refused = Some(head);
            break;
        }
        assert_eq!(head.status, 201, "{head:?}");
        ok_remove(&refused_name);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    if refused.is_none() {
        // Say what became of the held request (seen once in a loaded CI run, not reproduced).
        let held_answer =
            tokio::time::timeout(std::time::Duration::from_secs(2), held.read_head()).await;
        panic!("the inspection budget was never spent; the held request: {held_answer:?}");
    }
    assert!(!container_exists(&refused_name));

    let admin_name = unique("mem-admin");
    let mut admin = gw.raw(gw.admin()).await;
    let body = format!("{{\"Image\":\"{}\"}}", test_image());
    admin
        .send(partial_create(&admin_name, body.len(), &body).as_bytes())
        .await;
    let head = admin.read_head().await;
    assert_eq!(head.status, 201, "{head:?}");
    ok_remove(&admin_name);
    assert!(!container_exists(&held_name));
}

fn ok_remove(name: &str) {
    let _ = run(&mut args(docker_direct(), ["rm", "-f", name]));
}

/// An identity over its request rate gets a Docker-style 429 naming the rule, on a new
/// connection as on the one it used, while another identity is served.
#[tokio::test]
async fn an_identity_over_its_request_rate_is_refused_while_others_are_served() {
    // 0.01/s: the burst does not come back while the test runs.
    let gw =
        Gateway::start_with_config("[limits]\nrequests_per_second = 0.01\nrequest_burst = 5\n");
    let ci = gw.client(&unique("rate-ci"), "ci");
    for _ in 0..5 {
        let (status, body) = ping(&gw, &ci).await;
        assert_eq!((status, body.as_str()), (200, "OK"));
    }
    let (status, body) = ping(&gw, &ci).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("rule limits.requests_per_second"), "{body}");
    let out = run(gw.docker(&ci).args(["ps", "-q"]));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rule limits.requests_per_second"),
        "{out:?}"
    );
    // The admin identity has its own bucket: a ping and `docker ps` fit in its burst.
    let (status, body) = ping(&gw, gw.admin()).await;
    assert_eq!((status, body.as_str()), (200, "OK"));
    let out = run(gw.docker(gw.admin()).args(["ps", "-q"]));
    assert!(out.status.success(), "{out:?}");
}

/// Reads `conn` until what arrived contains `text`.
async fn read_until(conn: &mut RawConn, text: &str) -> String {
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains(text) {
        let more = conn.try_read_some().await.expect("read the stream");
        assert!(
            !more.is_empty(),
            "the stream ended before {text:?}: {seen:?}"
        );
        seen.extend(more);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// The request rate counts requests, not what an established stream carries: a `logs -f`
/// opened within the burst keeps streaming after its owner is refused with 429.
#[tokio::test]
async fn a_stream_opened_within_the_rate_is_not_cut_when_its_owner_goes_over() {
    let gw =
        Gateway::start_with_config("[limits]\nrequests_per_second = 0.01\nrequest_burst = 2\n");
    let client = gw.client(&unique("rate-stream"), "admin");
    let mut janitor = Janitor::new();
    let name = janitor.container(&unique("rate-logs"));
    // Prints "one", then "two" once the test creates /tmp/go.
    let script = "echo one; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo two";
    ok(&mut args(
        docker_direct(),
        [
            "run",
            "-d",
            "--name",
            &name,
            test_image(),
            "sh",
            "-c",
            script,
        ],
    ));
    let mut stream = gw.raw(&client).await;
    stream
        .send(
            format!("GET {API}/containers/{name}/logs?follow=1&stdout=1 HTTP/1.1\r\nHost: docker\r\n\r\n")
                .as_bytes(),
        )
        .await;
    assert_eq!(stream.read_head().await.status, 200);
    read_until(&mut stream, "one").await;
    assert_eq!(ping(&gw, &client).await.0, 200);
    let (status, body) = ping(&gw, &client).await;
    assert_eq!(status, 429, "{body}");
    ok(&mut args(
        docker_direct(),
        ["exec", &name, "touch", "/tmp/go"],
    ));
    read_until(&mut stream, "two").await;
}
