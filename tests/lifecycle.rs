//! Certificate and policy lifecycle against a running gateway: revocation, server
//! certificate rotation, rejected reloads, CA rotation and retirement, self-renewal, CSR
//! issuance and policy reloads — over real mutual TLS to a real dockerd, with the gateway
//! process never restarted.

use std::ffi::OsStr;
use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::gateway::{dockgate, ClientCerts, Gateway};
use crate::support::image::test_image;
use crate::support::lifecycle::{
    assert_not_restarted, config_file, copy_client, docker_version, expired_client, log_count,
    poll_until, read, refused_at_handshake, served_serial, unix_now, wait_log_count, write_atomic,
    CertInfo, ProcessIdentity, Session, CUTTING, QUICK_CLI, RELOADED, RELOAD_REJECTED,
};
use crate::support::{ok, run, run_with, unique, Janitor, Output};

/// Ceiling for changes without a required latency: only catches "never happened".
const SETTLE: Duration = Duration::from_secs(15);
/// How long an open session gets to echo a line.
const ECHO: Duration = Duration::from_secs(10);

/// Runs `dockgate pki <args> --dir <gateway certs>` and requires success.
fn pki<I, S>(gw: &Gateway, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = dockgate();
    cmd.arg("pki").args(args).arg("--dir").arg(gw.certs_dir());
    ok(&mut cmd)
}

/// Re-issues the gateway's server certificate (new key, new serial).
fn reissue_server(gw: &Gateway) -> String {
    pki(gw, ["server", "--san", "127.0.0.1", "--san", "localhost"]);
    CertInfo::from_pem_file(&gw.certs_dir().join("server-cert.pem")).serial
}

/// `dockgate renew` for `client` against this gateway.
fn self_renew(gw: &Gateway, client: &ClientCerts) -> Output {
    run(dockgate()
        .arg("renew")
        .arg("--cert-path")
        .arg(&client.dir)
        .args(["--host", &format!("tcp://{}", gw.addr())]))
}

/// Polls `docker version` as `client` until it is refused at the TLS handshake; returns
/// the refused call and the time from `since` to its end.
fn wait_refused(
    gw: &Gateway,
    client: &ClientCerts,
    since: Instant,
    timeout: Duration,
) -> (Output, Duration) {
    poll_until(since, timeout, || {
        let out = docker_version(gw, client);
        (!out.status.success()).then_some(out)
    })
    .unwrap_or_else(|| {
        panic!(
            "{} still gets through {timeout:?} later\n--- gateway log ---\n{}",
            client.name,
            gw.log()
        )
    })
}

fn assert_refused_at_handshake(out: &Output, who: &str) {
    assert!(
        refused_at_handshake(out),
        "{who}: expected a TLS handshake refusal, got {}:\n{}",
        out.status,
        out.stderr_str()
    );
}

fn assert_served(gw: &Gateway, client: &ClientCerts, serial: &str) {
    let served = served_serial(gw.addr(), client)
        .unwrap_or_else(|e| panic!("handshake as {}: {e}", client.name));
    assert_eq!(
        served, serial,
        "the gateway presents another server certificate"
    );
}

/// Polls handshakes until the gateway presents `serial`; every handshake on the way must
/// succeed with `old` or `serial`. Returns the time from `since`.
fn wait_served(
    gw: &Gateway,
    client: &ClientCerts,
    old: &str,
    serial: &str,
    since: Instant,
) -> Duration {
    let mut failures = Vec::new();
    let found = poll_until(since, SETTLE, || match served_serial(gw.addr(), client) {
        Ok(s) if s == serial => Some(()),
        Ok(s) => {
            assert_eq!(s, old, "an unexpected server certificate was presented");
            None
        }
        Err(e) => {
            failures.push(e);
            None
        }
    });
    assert!(
        failures.is_empty(),
        "handshakes failed while the server certificate changed: {failures:?}\n--- log ---\n{}",
        gw.log()
    );
    let ((), latency) = found.unwrap_or_else(|| {
        panic!(
            "the gateway never presented server certificate {serial}\n--- log ---\n{}",
            gw.log()
        )
    });
    latency
}

#[test]
fn revoked_certificate_is_refused_at_the_next_handshake() {
    let mut gw = Gateway::start();
    let process = ProcessIdentity::of(&gw);
    let victim = gw.client("revoked-1", "admin");
    let bystander = gw.client("bystander-1", "admin");
    docker_version(&gw, &victim).assert_success();

    pki(&gw, ["revoke", "--name", "revoked-1"]);
    let since = Instant::now();
    let (refused, latency) = wait_refused(&gw, &victim, since, SETTLE);
    eprintln!(
        "revocation: a new `docker version` was refused {latency:?} after `pki revoke` returned"
    );
    assert_refused_at_handshake(&refused, "revoked certificate");
    let logged = gw.wait_for_log_line(Duration::from_secs(5), |l| {
        l.contains("TLS handshake refused") && l.to_lowercase().contains("revoked")
    });
    assert!(
        logged.is_some(),
        "no refusal naming revocation in:\n{}",
        gw.log()
    );

    docker_version(&gw, &bystander).assert_success();
    assert_not_restarted(&mut gw, &process);
}

#[test]
fn revoked_session_is_cut_while_others_continue() {
    let mut gw = Gateway::start();
    let process = ProcessIdentity::of(&gw);
    let image = test_image();
    let mut janitor = Janitor::new();
    let victim = gw.client("cut-victim", "admin");
    let other = gw.client("cut-other", "admin");
    let mut victim_session = Session::start(
        &gw,
        &victim,
        &janitor.container(&unique("cut-victim")),
        image,
    );
    let mut other_session =
        Session::start(&gw, &other, &janitor.container(&unique("cut-other")), image);
    let cuts = log_count(&gw, CUTTING);

    pki(&gw, ["revoke", "--name", "cut-victim"]);
    let since = Instant::now();
    let latency = victim_session
        .wait_closed(since, SETTLE)
        .unwrap_or_else(|| {
            panic!(
                "the revoked client's session is still open {SETTLE:?} later\n--- log ---\n{}",
                gw.log()
            )
        });
    // Latencies are reported, not asserted: timing belongs to the bench, not to tests.
    eprintln!("revocation: the revoked client's `docker run -i` session ended {latency:?} after `pki revoke` returned");
    assert!(
        wait_log_count(&gw, CUTTING, cuts, Duration::from_secs(5)),
        "the gateway did not log the cut:\n{}",
        gw.log()
    );

    // The reload that cut the victim has happened: the other session must still echo.
    assert!(other_session.is_running(), "{}", other_session.stderr());
    other_session.echo(ECHO).unwrap_or_else(|e| {
        panic!(
            "the other client's session: {e}\n{}",
            other_session.stderr()
        )
    });
    docker_version(&gw, &other).assert_success();
    let refused = docker_version(&gw, &victim);
    assert_refused_at_handshake(&refused, "revoked certificate");
    other_session.finish(SETTLE);
    assert_not_restarted(&mut gw, &process);
}

#[test]
fn server_certificate_rotation_keeps_open_sessions() {
    let mut gw = Gateway::start();
    let process = ProcessIdentity::of(&gw);
    let mut janitor = Janitor::new();
    let admin = gw.admin().clone();
    let old = CertInfo::from_pem_file(&gw.certs_dir().join("server-cert.pem")).serial;
    assert_served(&gw, &admin, &old);
    let mut session = Session::start(
        &gw,
        &admin,
        &janitor.container(&unique("rotate-server")),
        test_image(),
    );

    let new = reissue_server(&gw);
    let since = Instant::now();
    assert_ne!(new, old, "pki server kept the serial");
    let latency = wait_served(&gw, &admin, &old, &new, since);
    eprintln!("server certificate rotation: the new serial was served {latency:?} after `pki server` returned");

    session
        .echo(ECHO)
        .unwrap_or_else(|e| panic!("the open session after rotation: {e}\n{}", session.stderr()));
    docker_version(&gw, &admin).assert_success();
    session.finish(SETTLE);
    assert_not_restarted(&mut gw, &process);
}

#[test]
fn invalid_server_certificate_is_rejected_and_the_old_one_keeps_serving() {
    let mut gw = Gateway::start();
    let process = ProcessIdentity::of(&gw);
    let admin = gw.admin().clone();
    let certs = gw.certs_dir();
    let cert_path = certs.join("server-cert.pem");
    let good = read(&cert_path);
    let serial = CertInfo::from_pem_file(&cert_path).serial;
    assert_served(&gw, &admin, &serial);

    // Garbage.
    let rejected = log_count(&gw, RELOAD_REJECTED);
    write_atomic(
        &cert_path,
        b"-----BEGIN CERTIFICATE-----\nthis is not base64 !!\n-----END CERTIFICATE-----\n",
    );
    assert!(
        wait_log_count(&gw, RELOAD_REJECTED, rejected, SETTLE),
        "no rejected reload logged for a garbled server-cert.pem:\n{}",
        gw.log()
    );
    assert_served(&gw, &admin, &serial);
    docker_version(&gw, &admin).assert_success();

    // A well-formed certificate from the same CA whose key is not server-key.pem.
    let copy = gw.scratch().join("certs-copy");
    ok(Command::new("cp").arg("-a").arg(&certs).arg(&copy));
    ok(dockgate()
        .args(["pki", "server", "--san", "127.0.0.1", "--dir"])
        .arg(&copy));
    let rejected = log_count(&gw, RELOAD_REJECTED);
    write_atomic(&cert_path, &read(&copy.join("server-cert.pem")));
    assert!(
        wait_log_count(&gw, RELOAD_REJECTED, rejected, SETTLE),
        "no rejected reload logged for a certificate not matching server-key.pem:\n{}",
        gw.log()
    );
    assert_served(&gw, &admin, &serial);
    docker_version(&gw, &admin).assert_success();

    // The valid file back: a clean reload.
    let reloads = log_count(&gw, RELOADED);
    write_atomic(&cert_path, &good);
    assert!(
        wait_log_count(&gw, RELOADED, reloads, SETTLE),
        "restoring server-cert.pem did not reload:\n{}",
        gw.log()
    );
    assert_served(&gw, &admin, &serial);

    // And the watcher still picks up a new pair after the rejections.
    let new = reissue_server(&gw);
    let latency = wait_served(&gw, &admin, &serial, &new, Instant::now());
    eprintln!("server certificate after rejected reloads: new serial served after {latency:?}");
    docker_version(&gw, &admin).assert_success();
    assert_not_restarted(&mut gw, &process);
}

#[test]
fn ca_rotation_then_retirement() {
    let mut gw = Gateway::start();
    let process = ProcessIdentity::of(&gw);
    let mut janitor = Janitor::new();
    let certs = gw.certs_dir();
    let old_client = gw.client("pre-rotation", "admin");
    let old_ca = CertInfo::from_pem_file(&certs.join("ca-cert.pem"));

    let reloads = log_count(&gw, RELOADED);
    pki(&gw, ["rotate-ca"]);
    assert!(
        wait_log_count(&gw, RELOADED, reloads, SETTLE),
        "the rotated bundle was not loaded:\n{}",
        gw.log()
    );
    let new_ca = CertInfo::from_pem_file(&certs.join("ca-cert.pem"));
    assert_ne!(
        new_ca.serial, old_ca.serial,
        "rotate-ca kept the signing CA"
    );
    let new_client = gw.client("post-rotation", "admin");
    assert_eq!(
        CertInfo::from_pem_file(&old_client.cert()).issuer,
        old_ca.subject
    );
    assert_eq!(
        CertInfo::from_pem_file(&new_client.cert()).issuer,
        new_ca.subject
    );

    // Both CAs are trusted; the server certificate still comes from the old one, which the
    // old client's ca.pem and the new client's bundle both hold.
    docker_version(&gw, &old_client).assert_success();
    docker_version(&gw, &new_client).assert_success();

    // Clients get the new bundle first, then the server certificate moves to the new CA.
    for client in [&old_client, gw.admin()] {
        fs::copy(certs.join("ca.pem"), client.ca()).expect("hand the new bundle to a client");
    }
    let old_server = CertInfo::from_pem_file(&certs.join("server-cert.pem")).serial;
    let new_server = reissue_server(&gw);
    assert_eq!(
        CertInfo::from_pem_file(&certs.join("server-cert.pem")).issuer,
        new_ca.subject,
        "the re-issued server certificate is not from the new CA"
    );
    wait_served(&gw, &old_client, &old_server, &new_server, Instant::now());
    docker_version(&gw, &old_client).assert_success();
    docker_version(&gw, &new_client).assert_success();

    let mut old_session = Session::start(
        &gw,
        &old_client,
        &janitor.container(&unique("old-ca")),
        test_image(),
    );
    let mut new_session = Session::start(
        &gw,
        &new_client,
        &janitor.container(&unique("new-ca")),
        test_image(),
    );

    // --force: the old CA's clients are still valid, and stranding them is the point.
    pki(&gw, ["retire-ca", "--force"]);
    let since = Instant::now();
    let latency = old_session.wait_closed(since, SETTLE).unwrap_or_else(|| {
        panic!(
            "the old CA's session is still open {SETTLE:?} after retire-ca\n--- log ---\n{}",
            gw.log()
        )
    });
    eprintln!(
        "CA retirement: the old CA's session ended {latency:?} after `pki retire-ca` returned"
    );
    new_session
        .echo(ECHO)
        .unwrap_or_else(|e| panic!("the new CA's session: {e}\n{}", new_session.stderr()));
    docker_version(&gw, &new_client).assert_success();
    assert_refused_at_handshake(&docker_version(&gw, &old_client), "retired CA's client");
    assert_refused_at_handshake(&docker_version(&gw, gw.admin()), "retired CA's admin");
    new_session.finish(SETTLE);
    assert_not_restarted(&mut gw, &process);
}

#[test]
fn self_renewal() {
    let mut gw = Gateway::start();
    let process = ProcessIdentity::of(&gw);
    let certs = gw.certs_dir();

    let runner = gw.client("renew-runner", "ci");
    let old = CertInfo::from_pem_file(&runner.cert());
    let old_key = read(&runner.key());
    let kept = copy_client(&runner, &gw.scratch().join("renew-old"), "renew-runner-old");
    self_renew(&gw, &runner).assert_success();
    let renewed_at = unix_now();
    let new = CertInfo::from_pem_file(&runner.cert());
    assert_ne!(new.serial, old.serial, "renewal kept the serial");
    assert_eq!(new.common_name.as_deref(), Some("renew-runner"));
    assert_eq!(new.org_unit.as_deref(), Some("ci"));
    assert_eq!(new.issuer, old.issuer);
    assert_ne!(read(&runner.key()), old_key, "renewal kept the key");
    assert_ne!(new.public_key, old.public_key);
    assert!(
        new.lifetime() <= old.lifetime(),
        "renewal widened the lifetime: {}s > {}s",
        new.lifetime(),
        old.lifetime()
    );
    assert!(
        new.not_after <= renewed_at + old.lifetime(),
        "renewed notAfter {} is past now + the old lifetime ({})",
        new.not_after,
        renewed_at + old.lifetime()
    );
    docker_version(&gw, &runner).assert_success();
    ok(gw.docker(&runner).args(["ps", "-q"]));
    // The replaced certificate was revoked once the new one was in place: refused at the
    // handshake once the CRL is loaded, and `pki list` shows it revoked.
    let (refused, _) = wait_refused(&gw, &kept, Instant::now(), Duration::from_secs(10));
    assert!(!refused.status.success());
    let listing = pki(&gw, ["list"]);
    let old_line = listing
        .lines()
        .find(|l| l.contains(&old.serial))
        .unwrap_or_else(|| panic!("serial {} not listed:\n{listing}", old.serial));
    assert!(old_line.to_lowercase().contains("revoked"), "{old_line}");
    let new_line = listing
        .lines()
        .find(|l| l.contains(&new.serial))
        .unwrap_or_else(|| panic!("serial {} not listed:\n{listing}", new.serial));
    assert!(new_line.contains(&old.serial), "no lineage: {new_line}");

    // One renewal per name per minute.
    let cert_now = read(&runner.cert());
    let again = self_renew(&gw, &runner);
    assert!(
        !again.status.success() && again.stderr_str().contains("429"),
        "a second renewal right away was not rate-limited: {}\n{}",
        again.status,
        again.stderr_str()
    );
    assert_eq!(
        read(&runner.cert()),
        cert_now,
        "a refused renewal changed cert.pem"
    );

    // Revoked: refused at the handshake once the CRL is loaded.
    let gone = gw.client("renew-revoked", "ci");
    pki(&gw, ["revoke", "--name", "renew-revoked"]);
    let (refused, _) = wait_refused(&gw, &gone, Instant::now(), SETTLE);
    assert_refused_at_handshake(&refused, "revoked certificate");
    let gone_cert = read(&gone.cert());
    let out = self_renew(&gw, &gone);
    assert!(
        !out.status.success(),
        "a revoked certificate renewed itself"
    );
    assert_eq!(
        read(&gone.cert()),
        gone_cert,
        "a refused renewal changed cert.pem"
    );

    // Revoked in the index while the loaded CRL predates the revocation: the TLS layer lets
    // it in, and the renewal endpoint must still refuse.
    let stale = gw.client("renew-stale-crl", "ci");
    let crl_path = certs.join("crl.pem");
    let crl = read(&crl_path);
    pki(&gw, ["revoke", "--name", "renew-stale-crl"]);
    write_atomic(&crl_path, &crl);
    poll_until(Instant::now(), SETTLE, || {
        docker_version(&gw, &stale).status.success().then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the gateway never went back to the older crl.pem\n--- log ---\n{}",
            gw.log()
        )
    });
    let stale_cert = read(&stale.cert());
    let out = self_renew(&gw, &stale);
    assert!(
        !out.status.success()
            && out.stderr_str().contains("403")
            && out.stderr_str().contains("revoked"),
        "a certificate revoked in the index renewed itself: {}\n{}",
        out.status,
        out.stderr_str()
    );
    assert_eq!(
        read(&stale.cert()),
        stale_cert,
        "a refused renewal changed cert.pem"
    );

    // Expired: TLS refuses it before any renewal logic runs.
    let expired = expired_client(&gw, &runner, &gw.scratch().join("renew-expired"));
    let expired_cert = read(&expired.cert());
    let out = self_renew(&gw, &expired);
    assert!(
        !out.status.success(),
        "an expired certificate renewed itself"
    );
    assert_eq!(
        read(&expired.cert()),
        expired_cert,
        "a refused renewal changed cert.pem"
    );
    let logged = gw.wait_for_log_line(Duration::from_secs(5), |l| {
        l.contains("TLS handshake refused") && l.to_lowercase().contains("expired")
    });
    assert!(
        logged.is_some(),
        "no refusal naming expiry in:\n{}",
        gw.log()
    );
    assert_not_restarted(&mut gw, &process);
}

#[test]
fn csr_issued_certificate_works_with_docker() {
    let mut gw = Gateway::start();
    let process = ProcessIdentity::of(&gw);
    let mut janitor = Janitor::new();
    let scratch = gw.scratch().to_owned();
    let out = scratch.join("csr-client");
    fs::create_dir_all(&out).expect("create the client directory");
    let openssl_req = |key: &std::path::Path, csr: &std::path::Path| {
        ok(Command::new("openssl")
            .args([
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-subj", "/CN=ignored/OU=admin", "-keyout"])
            .arg(key)
            .arg("-out")
            .arg(csr));
    };
    let csr = scratch.join("client.csr");
    openssl_req(&out.join("key.pem"), &csr);
    let key = read(&out.join("key.pem"));

    let mut cmd = dockgate();
    cmd.args([
        "pki", "client", "--name", "csr-user", "--role", "readonly", "--csr",
    ])
    .arg(&csr)
    .arg("--out")
    .arg(&out)
    .arg("--dir")
    .arg(gw.certs_dir());
    ok(&mut cmd);
    assert_eq!(
        read(&out.join("key.pem")),
        key,
        "pki client --csr touched key.pem"
    );
    let info = CertInfo::from_pem_file(&out.join("cert.pem"));
    assert_eq!(info.common_name.as_deref(), Some("csr-user"));
    assert_eq!(
        info.org_unit.as_deref(),
        Some("readonly"),
        "the CSR's subject leaked in"
    );
    let spki = run_with(
        Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(out.join("key.pem")),
        None,
        QUICK_CLI,
    );
    spki.assert_success();
    assert_eq!(
        info.public_key, spki.stdout,
        "the certificate is not for the CSR's key"
    );

    let client = ClientCerts {
        name: "csr-user".into(),
        role: "readonly".into(),
        dir: out.clone(),
    };
    docker_version(&gw, &client).assert_success();
    ok(gw.docker(&client).args(["ps", "-a", "-q"]));
    // The role is --role's: readonly may not create.
    let name = janitor.container(&unique("csr-denied"));
    let denied = run(gw
        .docker(&client)
        .args(["create", "--name", &name, test_image(), "true"]));
    assert!(
        !denied.status.success() && denied.stderr_str().contains("may not call ContainerCreate"),
        "readonly created a container: {}\n{}",
        denied.status,
        denied.stderr_str()
    );

    // A CSR whose key is not the key.pem already in OUTDIR is refused; nothing is replaced.
    let other_csr = scratch.join("other.csr");
    openssl_req(&scratch.join("other-key.pem"), &other_csr);
    let cert = read(&out.join("cert.pem"));
    let mut cmd = dockgate();
    cmd.args([
        "pki",
        "client",
        "--name",
        "csr-user-2",
        "--role",
        "readonly",
        "--csr",
    ])
    .arg(&other_csr)
    .arg("--out")
    .arg(&out)
    .arg("--dir")
    .arg(gw.certs_dir());
    let refused = run(&mut cmd);
    assert!(
        !refused.status.success() && refused.stderr_str().contains("key.pem"),
        "a CSR for another key was written over OUTDIR: {}\n{}",
        refused.status,
        refused.stderr_str()
    );
    assert_eq!(read(&out.join("cert.pem")), cert);
    assert_eq!(read(&out.join("key.pem")), key);
    docker_version(&gw, &client).assert_success();
    assert_not_restarted(&mut gw, &process);
}

const POLICY: &str = r#"
[roles.admin]
operations = ["*"]
unrouted = true

[roles.ops]
operations = ["SystemPing", "SystemPingHead", "SystemVersion", "ContainerList"]
"#;

#[test]
fn policy_reload_rejects_invalid_config_and_applies_valid_changes() {
    let mut gw = Gateway::start_with_config(POLICY);
    let process = ProcessIdentity::of(&gw);
    let file = config_file(&gw);
    assert_eq!(fs::read_to_string(&file).expect("read the config"), POLICY);
    let ops = gw.client("policy-ops", "ops");
    let ps = |gw: &Gateway| run_with(gw.docker(&ops).args(["ps", "-q"]), None, QUICK_CLI);
    ps(&gw).assert_success();

    for (what, broken) in [
        (
            "unparsable TOML",
            "[roles.ops\noperations = [\"SystemPing\"\n".to_owned(),
        ),
        (
            "an unknown key",
            POLICY.replace(
                "operations = [\"SystemPing\"",
                "operatons = [\"SystemPing\"",
            ),
        ),
    ] {
        let rejected = log_count(&gw, RELOAD_REJECTED);
        write_atomic(&file, broken.as_bytes());
        assert!(
            wait_log_count(&gw, RELOAD_REJECTED, rejected, SETTLE),
            "no rejected reload logged for {what}:\n{}",
            gw.log()
        );
        ps(&gw).assert_success();
        docker_version(&gw, &ops).assert_success();
    }

    let reloads = log_count(&gw, RELOADED);
    write_atomic(&file, POLICY.replace(", \"ContainerList\"", "").as_bytes());
    assert!(
        wait_log_count(&gw, RELOADED, reloads, SETTLE),
        "the valid config was not reloaded:\n{}",
        gw.log()
    );
    let denied = ps(&gw);
    assert!(
        !denied.status.success() && denied.stderr_str().contains("may not call ContainerList"),
        "ContainerList still allowed after it left the role: {}\n{}",
        denied.status,
        denied.stderr_str()
    );
    docker_version(&gw, &ops).assert_success();
    assert_not_restarted(&mut gw, &process);
}
