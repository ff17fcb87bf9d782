//! Client identities dockgate must refuse during the TLS handshake, each logged with the peer
//! address and a reason, while the listener keeps serving valid clients; and what a
//! certificate from another CA (`client_cas`) gets once it is in: no role it records itself,
//! and no objects of dockgate's own certificate of the same name.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{CertificateParams, IsCa, KeyIdMethod, KeyPair, SerialNumber};
use rustls::ClientConfig;
use serde_json::{json, Value};

use crate::support::gateway::{dockgate, Gateway};
use crate::support::lifecycle::{log_count, wait_log_count, RELOADED};
use crate::support::policy::inspect;
use crate::support::raw::{client_config, RawConn};
use crate::support::{ok, random_bytes, unique, Janitor, TempDir};

const PING: &[u8] = b"GET /_ping HTTP/1.1\r\nHost: docker\r\n\r\n";

// Words a refusal log line may use for each reason (compared lowercased). They cover rustls'
// own error texts and plain-English wording.
const NO_CERT: &[&str] = &[
    "no certificate",
    "sent no certificates",
    "no client certificate",
    "certificaterequired",
    "certificate required",
];
// A foreign CA whose subject matches ours (two `pki init` runs may name their CAs alike) is
// found by name and then fails on the signature.
const UNKNOWN_CA: &[&str] = &[
    "unknownissuer",
    "unknown issuer",
    "unknownca",
    "unknown ca",
    "badsignature",
    "bad signature",
];
const EXPIRED: &[&str] = &["expired"];
const NOT_FOR_CLIENTS: &[&str] = &[
    "invalidpurpose",
    "purpose",
    "extended key usage",
    "clientauth",
    "client auth",
    "eku",
];

fn is_tls_alert(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|tls| matches!(tls, rustls::Error::AlertReceived(_)))
}

/// Connects with `config` and requires a handshake-level refusal; with `reasons`, also a log
/// line naming this connection's address and one of them.
async fn assert_refused(gw: &Gateway, config: Arc<ClientConfig>, what: &str, reasons: &[&str]) {
    let (peer, connected) = RawConn::connect_from(gw.addr(), config).await;
    match connected {
        // Refused before the client finished its side (e.g. TLS 1.2).
        Err(_) => {}
        // Under TLS 1.3 the client finishes first; the server's alert comes with the first read.
        Ok(mut conn) => {
            let _ = conn.try_send(PING).await;
            match conn.try_read_some().await {
                Err(e) => assert!(
                    is_tls_alert(&e),
                    "{what}: expected a TLS alert from the gateway, got: {e}"
                ),
                Ok(bytes) => panic!(
                    "{what}: the handshake was not refused; the gateway sent {:?}",
                    String::from_utf8_lossy(&bytes)
                ),
            }
        }
    }
    if reasons.is_empty() {
        return;
    }
    let peer = peer.to_string();
    let line = gw.wait_for_log_line(Duration::from_secs(10), |line| {
        let lower = line.to_lowercase();
        line.contains(&peer) && reasons.iter().any(|r| lower.contains(r))
    });
    assert!(
        line.is_some(),
        "{what}: no log line names peer {peer} with a reason among {reasons:?}\n--- log ---\n{}",
        gw.log()
    );
}

/// A valid client still gets through: the listener survived whatever came before.
async fn assert_still_serving(gw: &mut Gateway) {
    assert!(gw.is_running(), "the gateway process exited");
    let mut conn = gw.raw(gw.admin()).await;
    let (head, body) = conn.request("GET", "/_ping", None).await;
    assert_eq!((head.status, body.as_slice()), (200, &b"OK"[..]));
}

fn anonymous(gw: &Gateway) -> Arc<ClientConfig> {
    client_config(&gw.certs_dir().join("ca.pem"), None)
}

/// A client certificate issued by a second, unrelated dockgate CA.
fn foreign_client(gw: &Gateway, scratch: &TempDir) -> Arc<ClientConfig> {
    let other_ca = scratch.join("other-ca");
    let out = scratch.join("intruder");
    ok(dockgate().args(["pki", "init", "--dir"]).arg(&other_ca));
    ok(dockgate()
        .args(["pki", "client", "--dir"])
        .arg(&other_ca)
        .args(["--name", "intruder", "--role", "admin", "--out"])
        .arg(&out));
    client_config(
        &gw.certs_dir().join("ca.pem"),
        Some((&out.join("cert.pem"), &out.join("key.pem"))),
    )
}

/// A copy of the admin certificate (same subject and extended key usage), signed by the
/// gateway's own CA key, whose validity ended in 2021.
fn expired_client(gw: &Gateway, scratch: &TempDir) -> Arc<ClientConfig> {
    let certs = gw.certs_dir();
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
    };
    let ca_key = KeyPair::from_pem(&read(certs.join("ca-key.pem"))).expect("parse CA key");
    // ca-cert.pem is the signing CA alone; ca.pem is the trust bundle (the same single
    // certificate outside a CA rotation).
    let ca_cert = Some(certs.join("ca-cert.pem"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| certs.join("ca.pem"));
    let issuer = CertificateParams::from_ca_cert_pem(&read(ca_cert))
        .expect("parse CA certificate")
        .self_signed(&ca_key)
        .expect("rebuild the issuer");

    let mut params = CertificateParams::from_ca_cert_pem(&read(gw.admin().cert()))
        .expect("parse the admin certificate as a template");
    params.is_ca = IsCa::NoCa;
    params.key_identifier_method = KeyIdMethod::Sha256;
    params.serial_number = Some(SerialNumber::from_slice(&random_bytes(16)));
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let key = KeyPair::generate().expect("generate a client key");
    let cert = params
        .signed_by(&key, &issuer, &ca_key)
        .expect("sign the expired certificate");

    let cert_path = scratch.join("expired-cert.pem");
    let key_path = scratch.join("expired-key.pem");
    std::fs::write(&cert_path, cert.pem()).expect("write expired cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write expired key");
    client_config(&certs.join("ca.pem"), Some((&cert_path, &key_path)))
}

/// The gateway's own server certificate and key presented as a client identity.
fn server_cert_as_client(gw: &Gateway) -> Arc<ClientConfig> {
    let certs = gw.certs_dir();
    let pem = std::fs::read(certs.join("server-cert.pem")).expect("read server cert");
    let (_, parsed) = x509_parser::pem::parse_x509_pem(&pem).expect("server cert PEM");
    let cert = parsed.parse_x509().expect("server cert DER");
    let eku = cert
        .extended_key_usage()
        .expect("server cert extensions")
        .map(|e| e.value.clone());
    assert!(
        eku.as_ref().is_some_and(|e| !e.client_auth && !e.any),
        "precondition: the server certificate must not allow clientAuth, EKU is {eku:?}"
    );
    client_config(
        &certs.join("ca.pem"),
        Some((
            &certs.join("server-cert.pem"),
            &certs.join("server-key.pem"),
        )),
    )
}

#[tokio::test]
async fn no_client_certificate_is_refused() {
    let mut gw = Gateway::start();
    assert_refused(&gw, anonymous(&gw), "no client certificate", NO_CERT).await;
    assert_still_serving(&mut gw).await;
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let mut gw = Gateway::start();
    let scratch = TempDir::new("foreign-ca");
    let config = foreign_client(&gw, &scratch);
    assert_refused(&gw, config, "certificate from another CA", UNKNOWN_CA).await;
    assert_still_serving(&mut gw).await;
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let mut gw = Gateway::start();
    let scratch = TempDir::new("expired");
    let config = expired_client(&gw, &scratch);
    assert_refused(&gw, config, "expired certificate", EXPIRED).await;
    assert_still_serving(&mut gw).await;
}

#[tokio::test]
async fn server_certificate_used_as_client_is_refused() {
    let mut gw = Gateway::start();
    let config = server_cert_as_client(&gw);
    assert_refused(&gw, config, "server certificate as client", NOT_FOR_CLIENTS).await;
    assert_still_serving(&mut gw).await;
}

#[tokio::test]
async fn listener_survives_a_run_of_refusals() {
    let mut gw = Gateway::start();
    let scratch = TempDir::new("refusals");
    let cases = [
        (anonymous(&gw), "no client certificate", NO_CERT),
        (foreign_client(&gw, &scratch), "another CA", UNKNOWN_CA),
        (expired_client(&gw, &scratch), "expired", EXPIRED),
        (server_cert_as_client(&gw), "server cert", NOT_FOR_CLIENTS),
    ];
    // Refusals are logged in detail only for the first few in each interval (a flood must not
    // flood the log), so only the first round looks for its log lines.
    for round in 0..3 {
        for (config, what, reasons) in &cases {
            let reasons: &[&str] = if round == 0 { reasons } else { &[] };
            assert_refused(&gw, config.clone(), what, reasons).await;
        }
    }
    assert_still_serving(&mut gw).await;
    // And the real CLI as well.
    let version = ok(gw
        .docker(gw.admin())
        .args(["version", "--format", "{{.Server.APIVersion}}"]));
    assert!(version.trim().starts_with("1."), "{version}");
}

/// An operator's CA (`client_cas`) whose intermediate copies the gateway CA's name byte for
/// byte, with a key of its own, issuing a leaf that records the admin role. The gateway accepts
/// the chain, but the role a certificate records is honoured only when one of dockgate's own
/// CA keys signed it (issue 8). Without `crl.pem`, nothing else stands in the way.
#[tokio::test]
async fn a_ca_copying_dockgates_name_grants_no_role() {
    let scratch = TempDir::new("copied-ca-name");
    let (root, root_key, bundle) = corporate_ca(&scratch);
    let mut gw = Gateway::start_with_config(&format!("client_cas = [{:?}]\n", bundle));

    let certs = gw.certs_dir();
    let reloads = log_count(&gw, RELOADED);
    std::fs::remove_file(certs.join("crl.pem")).expect("remove crl.pem");
    assert!(
        wait_log_count(&gw, RELOADED, reloads, Duration::from_secs(15)),
        "the gateway did not reload without crl.pem:\n{}",
        gw.log()
    );

    let ca_pem = std::fs::read_to_string(certs.join("ca-cert.pem")).expect("read ca-cert.pem");
    let mut copied = CertificateParams::from_ca_cert_pem(&ca_pem).expect("parse the gateway CA");
    copied.key_identifier_method = KeyIdMethod::Sha256;
    let impostor_key = KeyPair::generate().expect("impostor key");
    let impostor = copied
        .signed_by(&impostor_key, &root, &root_key)
        .expect("the impostor intermediate");
    let config = client_of(
        &gw,
        &scratch,
        "impostor",
        ("admin", "admin"),
        (&impostor, &impostor_key),
        Some(&impostor),
    );
    let mut conn = RawConn::connect(gw.addr(), config)
        .await
        .expect("the gateway accepts the operator CA's chain");
    let (head, body) = conn.request("GET", "/containers/json", None).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(
        head.status, 403,
        "a certificate under a CA that copies dockgate's name listed containers: {body}"
    );
    assert!(body.contains("has no role"), "{body}");
    assert_still_serving(&mut gw).await;
}

/// An operator's root CA, written as a `client_cas` bundle.
fn corporate_ca(scratch: &TempDir) -> (rcgen::Certificate, KeyPair, PathBuf) {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "Corporate Root");
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = KeyPair::generate().expect("root key");
    let root = params.self_signed(&key).expect("root CA");
    let bundle = scratch.join("corporate-ca.pem");
    std::fs::write(&bundle, root.pem()).expect("write the client_cas bundle");
    (root, key, bundle)
}

/// A client certificate (CN, OU) signed by `issuer`, presented with `intermediate` after it.
fn client_of(
    gw: &Gateway,
    scratch: &TempDir,
    file: &str,
    (cn, ou): (&str, &str),
    (issuer, issuer_key): (&rcgen::Certificate, &KeyPair),
    intermediate: Option<&rcgen::Certificate>,
) -> Arc<ClientConfig> {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationalUnitName, ou);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("leaf key");
    let leaf = params
        .signed_by(&key, issuer, issuer_key)
        .expect("the leaf");
    let chain = scratch.join(format!("{file}-chain.pem"));
    let key_path = scratch.join(format!("{file}-key.pem"));
    let rest = intermediate.map(|c| c.pem()).unwrap_or_default();
    std::fs::write(&chain, format!("{}{rest}", leaf.pem())).expect("write chain");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    client_config(&gw.certs_dir().join("ca.pem"), Some((&chain, &key_path)))
}

/// The same common name under another CA is another owner: an operator's CA mapped to `ci`
/// by name does not reach the objects of dockgate's own certificate of that name (issue 8).
#[tokio::test]
async fn a_name_from_another_ca_owns_nothing_of_dockgates_name() {
    let scratch = TempDir::new("owner-authority");
    let (root, root_key, bundle) = corporate_ca(&scratch);
    let config = format!(
        "client_cas = [{bundle:?}]\n\n[[identity.map]]\nrole = \"ci\"\ncommon_name = \"runner-7\"\n"
    );
    let gw = Gateway::start_with_config(&config);
    let mut janitor = Janitor::new();
    let ours = janitor.volume(&unique("runner7-own"));
    let theirs = janitor.volume(&unique("runner7-external"));

    let own = gw.client("runner-7", "ci");
    let mut own = gw.raw(&own).await;
    let external = client_of(
        &gw,
        &scratch,
        "runner-7",
        ("runner-7", "ci"),
        (&root, &root_key),
        None,
    );
    let mut external = RawConn::connect(gw.addr(), external)
        .await
        .expect("the gateway accepts the operator CA's certificate");

    let (head, body) = own
        .request("POST", "/volumes/create", Some(&json!({ "Name": ours })))
        .await;
    assert_eq!(head.status, 201, "{}", String::from_utf8_lossy(&body));
    let (head, body) = external
        .request("POST", "/volumes/create", Some(&json!({ "Name": theirs })))
        .await;
    assert_eq!(head.status, 201, "{}", String::from_utf8_lossy(&body));

    // What the daemon holds: the labels name the authority unless it is dockgate's own.
    let label = |name: &str| {
        inspect("volume", name).expect("the volume exists")["Labels"]["dockgate.owner"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(label(&ours), "cn=runner-7");
    let theirs_owner = label(&theirs);
    assert!(
        theirs_owner.starts_with("ca=") && theirs_owner.ends_with(",cn=runner-7"),
        "owner label of the external runner-7's volume: {theirs_owner:?}"
    );

    for (conn, visible, hidden) in [(&mut own, &ours, &theirs), (&mut external, &theirs, &ours)] {
        let (head, body) = conn.request("GET", "/volumes", None).await;
        assert_eq!(head.status, 200);
        let list: Value = serde_json::from_slice(&body).expect("volume list");
        let names: Vec<&str> = list["Volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["Name"].as_str())
            .collect();
        assert!(names.contains(&visible.as_str()), "{names:?}");
        assert!(
            !names.contains(&hidden.as_str()),
            "the other runner-7's volume is listed: {names:?}"
        );
        let (head, _) = conn
            .request("GET", &format!("/volumes/{hidden}"), None)
            .await;
        assert_eq!(
            head.status, 404,
            "the other runner-7's volume {hidden} answered"
        );
    }
}

/// A client that reconnects resumes its TLS session (no certificate exchange) and is served as
/// the same identity. Once its certificate is revoked (and the gateway reloaded), offering that
/// session gets it nothing: the session does not outlive the configuration that made it, and a
/// resumed chain is verified again.
#[tokio::test]
async fn sessions_resume_until_the_certificate_is_revoked() {
    let mut gw = Gateway::start();
    let client = gw.client("resumer", "admin");
    let config = client_config(&client.ca(), Some((&client.cert(), &client.key())));

    let mut first = RawConn::connect(gw.addr(), config.clone())
        .await
        .expect("the first handshake");
    let (head, _) = first.request("GET", "/_ping", None).await;
    assert_eq!(head.status, 200);
    assert_eq!(first.handshake_kind(), Some(rustls::HandshakeKind::Full));
    drop(first);

    let mut resumed = RawConn::connect(gw.addr(), config.clone())
        .await
        .expect("the resumed handshake");
    let (head, body) = resumed.request("GET", "/containers/json", None).await;
    assert_eq!(head.status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        resumed.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed),
        "the gateway did not resume the client's session"
    );
    drop(resumed);

    let reloads = log_count(&gw, RELOADED);
    ok(dockgate()
        .args(["pki", "revoke", "--name", "resumer", "--dir"])
        .arg(gw.certs_dir()));
    assert!(
        wait_log_count(&gw, RELOADED, reloads, Duration::from_secs(15)),
        "the gateway did not reload the CRL:\n{}",
        gw.log()
    );
    let (peer, connected) = RawConn::connect_from(gw.addr(), config).await;
    if let Ok(mut conn) = connected {
        let _ = conn.try_send(PING).await;
        // A TLS alert or the end of the stream: no answer either way.
        if let Ok(bytes) = conn.try_read_some().await {
            assert!(
                bytes.is_empty(),
                "a revoked certificate's session was served: {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    let peer = peer.to_string();
    let line = gw.wait_for_log_line(Duration::from_secs(10), |line| {
        line.contains(&peer) && line.to_lowercase().contains("revoked")
    });
    assert!(
        line.is_some(),
        "no refusal of {peer} naming revocation\n--- log ---\n{}",
        gw.log()
    );
    assert_still_serving(&mut gw).await;
}
