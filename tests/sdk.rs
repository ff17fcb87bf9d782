//! docker-py (the Python Docker SDK) through dockgate over mutual TLS: the SDK frames
//! requests, hijacks and streams its own way, independently of the Go docker CLI.

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::gateway::{ClientCerts, Gateway};
use crate::support::image::test_image;
use crate::support::{args, docker_direct, run, run_with, unique, Janitor};

/// The docker-py release these tests were written against (it reaches PyPI like any package).
const DOCKER_PY: &str = "docker==7.1.0";

/// Makes `import docker` work, installing docker-py with pip when it is missing.
fn docker_py() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let present = Command::new("python3")
            .args(["-c", "import docker"])
            .status()
            .is_ok_and(|s| s.success());
        if !present {
            let out = run_with(
                Command::new("python3").args(["-m", "pip", "install", "--quiet", DOCKER_PY]),
                None,
                Duration::from_secs(300),
            );
            assert!(
                out.status.success(),
                "docker-py is needed for this suite and `pip install {DOCKER_PY}` failed:\n{}",
                out.stderr_str()
            );
        }
    });
}

/// Runs a Python script with `client` (a docker.DockerClient for `who` through the gateway),
/// `image` and `name` defined; returns its stdout, failing on a non-zero exit.
fn python(gw: &Gateway, who: &ClientCerts, name: &str, script: &str) -> String {
    docker_py();
    let prelude = format!(
        "import docker\n\
         tls = docker.tls.TLSConfig(client_cert=({cert:?}, {key:?}), ca_cert={ca:?}, verify=True)\n\
         client = docker.DockerClient(base_url='https://127.0.0.1:{port}', tls=tls, version='auto')\n\
         image = {image:?}\n\
         name = {name:?}\n",
        cert = who.cert().display().to_string(),
        key = who.key().display().to_string(),
        ca = who.ca().display().to_string(),
        port = gw.addr().port(),
        image = test_image(),
    );
    // requests lets REQUESTS_CA_BUNDLE override the CA docker-py configures.
    let out = run_with(
        Command::new("python3")
            .args(["-c", &format!("{prelude}{script}")])
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE"),
        None,
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "python failed:\n{}\n--- gateway log ---\n{}",
        out.stderr_str(),
        gw.log()
    );
    out.stdout_str()
}

#[test]
fn docker_py_runs_attaches_and_execs_as_admin() {
    let gw = Gateway::start();
    let mut janitor = Janitor::new();
    let name = janitor.container(&unique("sdk"));
    let out = python(
        &gw,
        gw.admin(),
        &name,
        r#"
assert client.ping()
out = client.containers.run(image, ["sh", "-c", "echo out; echo err >&2; exit 0"], stderr=True, remove=True)
# stdout and stderr are separate streams: their order in the log is not fixed.
print("run:", ",".join(sorted(out.decode().split())))

c = client.containers.run(image, ["sh", "-c", "read line; echo got:$line; sleep 30"], name=name, detach=True, stdin_open=True)
sock = c.attach_socket(params={"stdin": 1, "stdout": 1, "stream": 1})
raw = getattr(sock, "_sock", sock)  # over TLS docker-py hands out the SSLSocket itself
raw.sendall(b"hello\n")
data = b""
while b"got:hello" not in data:
    chunk = raw.recv(4096)
    assert chunk, "attach stream ended early"
    data += chunk
print("attach: ok")
sock.close()

code, output = c.exec_run(["sh", "-c", "echo exec-out; exit 4"])
print("exec:", code, output.decode().strip())
c.kill()
print("wait:", c.wait()["StatusCode"])
"#,
    );
    assert!(out.contains("run: err,out"), "{out}");
    assert!(out.contains("attach: ok"), "{out}");
    assert!(out.contains("exec: 4 exec-out"), "{out}");
    assert!(out.contains("wait: 137"), "{out}");
}

#[test]
fn docker_py_as_ci_runs_its_own_and_is_refused_privilege() {
    let gw = Gateway::start();
    let ci = gw.client(&unique("sdk-ci"), "ci");
    let mut janitor = Janitor::new();
    let name = janitor.container(&unique("sdk-ci"));
    let out = python(
        &gw,
        &ci,
        &name,
        r#"
out = client.containers.run(image, ["echo", "ci-ok"], remove=True)
print("run:", out.decode().strip())
try:
    client.containers.run(image, ["true"], name=name, privileged=True)
    print("privileged: allowed")
except docker.errors.APIError as e:
    print("privileged:", e.status_code, e.explanation)
"#,
    );
    assert!(out.contains("run: ci-ok"), "{out}");
    assert!(
        out.contains("privileged: 403") && out.contains("host.privileged"),
        "{out}"
    );
    let created = run(&mut args(docker_direct(), ["container", "inspect", &name]));
    assert!(
        !created.status.success(),
        "the refused privileged container {name} exists"
    );
}
