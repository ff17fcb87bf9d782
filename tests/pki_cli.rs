//! `dockgate pki …` through the real binary: the files it leaves behind, read with x509-parser.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("dockgate-pki-cli-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Self(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn dockgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dockgate"))
        .arg("pki")
        .args(args)
        .output()
        .unwrap()
}

/// Runs a command that must succeed; returns its stdout.
fn ok(args: &[&str]) -> String {
    let out = dockgate(args);
    assert!(
        out.status.success(),
        "dockgate pki {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail; returns its stderr.
fn fails(args: &[&str]) -> String {
    let out = dockgate(args);
    assert!(
        !out.status.success(),
        "dockgate pki {args:?} should have failed"
    );
    String::from_utf8(out.stderr).unwrap()
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn crl_serials(path: &Path) -> Vec<Vec<String>> {
    CertificateRevocationListDer::pem_file_iter(path)
        .unwrap()
        .map(|crl| {
            let crl = crl.unwrap();
            let (_, crl) = CertificateRevocationList::from_der(&crl).unwrap();
            crl.iter_revoked_certificates()
                .map(|r| hex(r.raw_serial()))
                .collect()
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn serial_of(der: &[u8]) -> String {
    let (_, cert) = X509Certificate::from_der(der).unwrap();
    hex(cert.raw_serial())
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn help_is_written_for_people() {
    let top = ok(&["--help"]);
    for cmd in [
        "init",
        "server",
        "client",
        "list",
        "revoke",
        "renew",
        "rotate-ca",
        "retire-ca",
        "refresh-crl",
    ] {
        assert!(top.contains(cmd), "{cmd} missing from:\n{top}");
    }
    let client = ok(&["client", "--help"]);
    assert!(client.contains("DOCKER_CERT_PATH"), "{client}");
    assert!(client.contains("docker context import"), "{client}");
    let init = ok(&["init", "--help"]);
    assert!(
        init.contains("rsa-4096") && init.contains("--import-key"),
        "{init}"
    );
}

#[test]
fn lifecycle_through_the_binary() {
    let tmp = Scratch::new("lifecycle");
    let dir = tmp.0.join("certs");
    let d = dir.to_str().unwrap();

    // init
    let out = ok(&["init", "--dir", d]);
    assert!(out.contains("Created CA"), "{out}");
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    assert_eq!(certs(&dir.join("ca.pem")).len(), 1);
    assert_eq!(
        crl_serials(&dir.join("crl.pem")),
        vec![Vec::<String>::new()]
    );
    assert!(fails(&["init", "--dir", d]).contains("--force"));
    assert!(fails(&[
        "init",
        "--dir",
        &format!("{d}-rsa"),
        "--key-type",
        "rsa-4096"
    ])
    .contains("openssl genpkey"));
    let first_ca = certs(&dir.join("ca.pem")).remove(0);

    // server
    ok(&[
        "server",
        "--dir",
        d,
        "--san",
        "gateway.example",
        "--san",
        "192.0.2.7",
    ]);
    assert_eq!(mode(&dir.join("server-key.pem")), 0o600);
    let server = certs(&dir.join("server-cert.pem")).remove(0);
    let (_, cert) = X509Certificate::from_der(&server).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let sans = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert!(matches!(sans[0], GeneralName::DNSName("gateway.example")));
    assert!(matches!(sans[1], GeneralName::IPAddress([192, 0, 2, 7])));
    assert!(
        fails(&["server", "--dir", d, "--san", "tcp://gateway.example:2376"]).contains("not a URL")
    );

    // client, with a docker context
    let out_dir = tmp.0.join("ci");
    let o = out_dir.to_str().unwrap();
    let out = ok(&[
        "client",
        "--dir",
        d,
        "--name",
        "ci-runner",
        "--role",
        "ci",
        "--out",
        o,
        "--context",
        "gw",
        "--host",
        "tcp://gateway.example:2376",
    ]);
    assert!(
        out.contains("docker context create gw --docker host=tcp://gateway.example:2376,ca="),
        "{out}"
    );
    assert!(out.contains("docker context import gw -"), "{out}");
    assert_eq!(mode(&out_dir.join("key.pem")), 0o600);
    assert_eq!(mode(&out_dir.join("gw.dockercontext")), 0o600);
    assert_eq!(
        fs::read(out_dir.join("ca.pem")).unwrap(),
        fs::read(dir.join("ca.pem")).unwrap()
    );
    let ci = certs(&out_dir.join("cert.pem")).remove(0);
    let (_, cert) = X509Certificate::from_der(&ci).unwrap();
    let ou: Vec<_> = cert
        .subject()
        .iter_organizational_unit()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(ou, ["ci"]);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let ci_serial = serial_of(&ci);

    // list: the 90-day client is flagged with a 100-day window, not with the default 14.
    let listing = ok(&["list", "--dir", d]);
    assert!(
        listing.contains("ci-runner") && listing.contains("gateway.example"),
        "{listing}"
    );
    assert!(!listing.contains("EXPIRES in"), "{listing}");
    let listing = ok(&["list", "--dir", d, "--warn-days", "100"]);
    assert!(
        listing.contains("expire within 100 days: ci-runner"),
        "{listing}"
    );

    // revoke
    let out = ok(&["revoke", "--dir", d, "--name", "ci-runner"]);
    assert!(out.contains(&ci_serial), "{out}");
    assert_eq!(
        crl_serials(&dir.join("crl.pem")),
        vec![vec![ci_serial.clone()]]
    );
    assert!(fails(&["revoke", "--dir", d, "--serial", "ffff"]).contains("no certificate"));
    let listing = ok(&["list", "--dir", d]);
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with("ci-runner") && l.ends_with("revoked")),
        "{listing}"
    );

    // rotate-ca: both CAs trusted, newest first; new clients come from the new CA.
    ok(&["rotate-ca", "--dir", d]);
    let bundle = certs(&dir.join("ca.pem"));
    assert_eq!(bundle.len(), 2);
    assert_eq!(bundle[1], first_ca);
    assert_eq!(certs(&dir.join("ca-cert.pem"))[0], bundle[0]);
    assert_eq!(
        crl_serials(&dir.join("crl.pem")),
        vec![vec![], vec![ci_serial.clone()]]
    );
    let dev_dir = tmp.0.join("dev");
    ok(&[
        "client",
        "--dir",
        d,
        "--name",
        "dev",
        "--role",
        "developer",
        "--out",
        dev_dir.to_str().unwrap(),
    ]);
    let dev = certs(&dev_dir.join("cert.pem")).remove(0);
    let (_, dev_cert) = X509Certificate::from_der(&dev).unwrap();
    let (_, new_ca) = X509Certificate::from_der(&bundle[0]).unwrap();
    assert_eq!(dev_cert.issuer(), new_ca.subject());
    assert_eq!(certs(&dev_dir.join("ca.pem")).len(), 2);

    // retire-ca: the live server certificate from the old CA blocks it until re-issued.
    assert!(fails(&["retire-ca", "--dir", d]).contains("gateway.example"));
    ok(&["server", "--dir", d, "--san", "gateway.example"]);
    let out = ok(&["retire-ca", "--dir", d]);
    assert!(out.contains("Retired CA"), "{out}");
    let bundle_after = certs(&dir.join("ca.pem"));
    assert_eq!(bundle_after, vec![bundle[0].clone()]);
    assert_eq!(crl_serials(&dir.join("crl.pem")).len(), 1);
    assert!(fails(&["retire-ca", "--dir", d]).contains("nothing to retire"));

    let index = fs::read_to_string(dir.join("index.toml")).unwrap();
    assert!(index.contains("state = \"retired\""), "{index}");
    assert!(index.contains("status = \"revoked\""), "{index}");
}

#[test]
fn csr_and_renew_through_the_binary() {
    let tmp = Scratch::new("csr");
    let dir = tmp.0.join("certs");
    let d = dir.to_str().unwrap();
    ok(&["init", "--dir", d, "--key-type", "ed25519"]);
    let csr = concat!(env!("CARGO_MANIFEST_DIR"), "/src/pki/testdata/rsa-2048.csr");
    let out_dir = tmp.0.join("runner");
    ok(&[
        "client",
        "--dir",
        d,
        "--name",
        "runner",
        "--role",
        "ci",
        "--csr",
        csr,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(!out_dir.join("key.pem").exists());
    let cert = certs(&out_dir.join("cert.pem")).remove(0);
    let (_, parsed) = X509Certificate::from_der(&cert).unwrap();
    assert_eq!(parsed.public_key().parsed().unwrap().key_size(), 2048);
    assert!(fails(&[
        "client",
        "--dir",
        d,
        "--name",
        "x",
        "--role",
        "ci",
        "--csr",
        csr,
        "--out",
        "o",
        "--context",
        "c",
        "--host",
        "tcp://h:1"
    ])
    .contains("cannot be used with"));

    // renew --csr without --out prints the certificate.
    let printed = ok(&["renew", "--dir", d, "--name", "runner", "--csr", csr]);
    assert!(
        printed.starts_with("-----BEGIN CERTIFICATE-----"),
        "{printed}"
    );
    let renewed = CertificateDer::from_pem_slice(printed.as_bytes()).unwrap();
    assert_ne!(serial_of(&renewed), serial_of(&cert));
    let out = ok(&[
        "renew",
        "--dir",
        d,
        "--name",
        "runner",
        "--out",
        out_dir.to_str().unwrap(),
        "--revoke-old",
    ]);
    assert_eq!(
        out.matches("Revoked the replaced certificate").count(),
        2,
        "{out}"
    );
    assert_eq!(mode(&out_dir.join("key.pem")), 0o600);
    assert_eq!(crl_serials(&dir.join("crl.pem"))[0].len(), 2);
}
