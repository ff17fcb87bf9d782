//! End-to-end checks of a certs directory: chains verified by rustls' WebPKI verifiers
//! (the ones the gateway uses), CRLs, rotation, retirement, CSRs and file modes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, Error as TlsError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::revocation_list::CertificateRevocationList;

use super::*;

/// A directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn tempdir(tag: &str) -> TempDir {
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "dockgate-pki-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = fs::remove_dir_all(&path);
    fs::create_dir_all(&path).unwrap();
    TempDir(path)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(dir: &Path) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for ca in load_trust_bundle(dir).unwrap() {
        roots.add(ca).unwrap();
    }
    Arc::new(roots)
}

/// What the gateway does with a client certificate: chain to ca.pem, check EKU and CRLs.
fn verify_client(dir: &Path, cert_pem: &str) -> Result<(), TlsError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(roots(dir), provider())
        .with_crls(load_crls(dir).unwrap())
        .build()
        .unwrap();
    verifier
        .verify_client_cert(&der(cert_pem), &[], UnixTime::now())
        .map(|_| ())
}

/// What a Docker client does with the server certificate.
fn verify_server(dir: &Path, cert_pem: &str, name: &str) -> Result<(), TlsError> {
    let verifier = WebPkiServerVerifier::builder_with_provider(roots(dir), provider())
        .build()
        .unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    verifier
        .verify_server_cert(&der(cert_pem), &[], &name, &[], UnixTime::now())
        .map(|_| ())
}

fn is_cert_error(r: Result<(), TlsError>, want: CertificateError) -> bool {
    match r {
        Err(TlsError::InvalidCertificate(got)) => got == want,
        _ => false,
    }
}

fn is_purpose_error(r: &Result<(), TlsError>) -> bool {
    matches!(
        r,
        Err(TlsError::InvalidCertificate(
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
        ))
    )
}

fn fresh_ca(tag: &str, opts: &InitOptions) -> (TempDir, PathBuf) {
    let tmp = tempdir(tag);
    let dir = tmp.join("certs");
    init(&dir, opts).unwrap();
    (tmp, dir)
}

fn client(dir: &Path, name: &str, role: &str) -> IssuedClient {
    issue_client(dir, &ClientRequest::new(name, role)).unwrap()
}

fn crl_serials(dir: &Path) -> Vec<Vec<String>> {
    load_crls(dir)
        .unwrap()
        .iter()
        .map(|crl| {
            let (_, crl) = CertificateRevocationList::from_der(crl).unwrap();
            crl.iter_revoked_certificates()
                .map(|r| keys::serial_hex(r.raw_serial()))
                .collect()
        })
        .collect()
}

#[test]
fn init_writes_a_ca_directory() {
    let (_tmp, dir) = fresh_ca("init", &InitOptions::default());
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&dir.join("ca.pem")), 0o644);
    assert_eq!(
        fs::read_to_string(dir.join("ca.pem")).unwrap(),
        fs::read_to_string(dir.join("ca-cert.pem")).unwrap()
    );
    let index = load_index(&dir).unwrap();
    assert_eq!(index.cas.len(), 1);
    let ca = &index.cas[0];
    assert_eq!(ca.state, CaState::Signing);
    assert_eq!(ca.key_type, "ecdsa-p256");
    assert!(ca.subject.starts_with("dockgate CA "), "{}", ca.subject);
    assert_eq!(ca.serial.len(), 32);
    assert!(ca.not_after - ca.not_before >= time::Duration::days(3650));

    let bundle = load_trust_bundle(&dir).unwrap();
    let (_, cert) = X509Certificate::from_der(&bundle[0]).unwrap();
    let bc = cert.basic_constraints().unwrap().unwrap().value;
    assert!(bc.ca);
    assert_eq!(bc.path_len_constraint, Some(0));
    let ku = cert.key_usage().unwrap().unwrap().value;
    assert!(ku.key_cert_sign() && ku.crl_sign());
    assert_eq!(keys::fingerprint(&bundle[0]), ca.fingerprint);

    // One empty CRL, signed by the CA.
    let crls = load_crls(&dir).unwrap();
    assert_eq!(crls.len(), 1);
    let (_, crl) = CertificateRevocationList::from_der(&crls[0]).unwrap();
    assert!(crl.verify_signature(cert.public_key()).is_ok());
    assert_eq!(crl.iter_revoked_certificates().count(), 0);

    // Never overwrite a CA without --force.
    assert!(matches!(
        init(&dir, &InitOptions::default()),
        Err(PkiError::CaExists { .. })
    ));
    let forced = init(
        &dir,
        &InitOptions {
            force: true,
            ..InitOptions::default()
        },
    )
    .unwrap();
    assert_ne!(forced.serial, ca.serial);
}

#[test]
fn client_certificate_verifies_with_role_and_client_eku() {
    let (tmp, dir) = fresh_ca("client", &InitOptions::default());
    let issued = client(&dir, "ci-runner-1", "ci");
    verify_client(&dir, &issued.cert_pem).unwrap();
    // A client certificate is no server certificate.
    assert!(is_purpose_error(&verify_server(
        &dir,
        &issued.cert_pem,
        "ci-runner-1"
    )));

    let d = der(&issued.cert_pem);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    let subject = cert.subject();
    let attr = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>| {
        it.next().unwrap().as_str().unwrap().to_owned()
    };
    assert_eq!(attr(&mut subject.iter_common_name()), "ci-runner-1");
    assert_eq!(attr(&mut subject.iter_organizational_unit()), "ci");
    assert_eq!(attr(&mut subject.iter_organization()), "dockgate");
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth && !eku.any && eku.other.is_empty());
    assert!(cert.key_usage().unwrap().unwrap().value.digital_signature());
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
    assert_eq!(cert.raw_serial().len(), 16);
    let lifetime =
        cert.validity().not_after.to_datetime() - cert.validity().not_before.to_datetime();
    assert_eq!(lifetime, time::Duration::days(90) + ca::BACKDATE);

    // DOCKER_CERT_PATH layout with an owner-only key.
    let out = tmp.join("out");
    issued.write_to(&out).unwrap();
    assert_eq!(mode(&out.join("key.pem")), 0o600);
    assert_eq!(mode(&out), 0o700);
    assert_eq!(
        fs::read_to_string(out.join("ca.pem")).unwrap(),
        issued.ca_pem
    );
    let key = keys::load_key(&out.join("key.pem")).unwrap();
    assert!(ops::cert_has_key(&issued.cert_pem, &key));

    let index = load_index(&dir).unwrap();
    assert_eq!(index.certs.len(), 1);
    let r = &index.certs[0];
    assert_eq!((r.kind, r.role.as_deref()), (CertKind::Client, Some("ci")));
    assert_eq!(r.issuer_serial, index.cas[0].serial);
    assert_eq!(r.fingerprint, keys::fingerprint(&d));
}

#[test]
fn server_certificate_names_its_sans_and_rotates() {
    let (_tmp, dir) = fresh_ca("server", &InitOptions::default());
    let req = ServerRequest::new(vec!["gateway.example".into(), "10.1.2.3".into()]);
    let first = issue_server(&dir, &req).unwrap();
    assert_eq!(mode(&first.key_path), 0o600);
    let pem = fs::read_to_string(&first.cert_path).unwrap();
    verify_server(&dir, &pem, "gateway.example").unwrap();
    verify_server(&dir, &pem, "10.1.2.3").unwrap();
    assert!(verify_server(&dir, &pem, "other.example").is_err());
    // A server certificate is no client certificate.
    assert!(is_purpose_error(&verify_client(&dir, &pem)));

    let d = der(&pem);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    let sans: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| match n {
            GeneralName::DNSName(d) => format!("dns:{d}"),
            GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(sans, ["dns:gateway.example", "ip:[10, 1, 2, 3]"]);
    assert_eq!(first.record.name, "gateway.example");

    // Re-running re-issues: new key, new serial, both recorded.
    let key_before = fs::read(&first.key_path).unwrap();
    let second = issue_server(&dir, &req).unwrap();
    assert_ne!(second.record.serial, first.record.serial);
    assert_ne!(fs::read(&second.key_path).unwrap(), key_before);
    assert_eq!(load_index(&dir).unwrap().certs.len(), 2);
}

#[test]
fn revoke_lists_the_serial_in_the_crl_and_the_verifier_refuses_it() {
    let (_tmp, dir) = fresh_ca("revoke", &InitOptions::default());
    let alice = client(&dir, "alice", "dev");
    let bob = client(&dir, "bob", "dev");
    let revoked = revoke(&dir, &RevokeTarget::Name("alice".into()), &[]).unwrap();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].serial, alice.record.serial);
    assert_eq!(crl_serials(&dir), vec![vec![alice.record.serial.clone()]]);
    assert!(is_cert_error(
        verify_client(&dir, &alice.cert_pem),
        CertificateError::Revoked
    ));
    verify_client(&dir, &bob.cert_pem).unwrap();

    let index = load_index(&dir).unwrap();
    assert_eq!(index.cas[0].crl_number, 2);
    let a = index.certs.iter().find(|c| c.name == "alice").unwrap();
    assert_eq!(a.status, CertStatus::Revoked);
    assert!(a.revoked_at.is_some());

    assert!(matches!(
        revoke(&dir, &RevokeTarget::Name("alice".into()), &[]),
        Err(PkiError::AlreadyRevoked { .. })
    ));
    assert!(matches!(
        revoke(&dir, &RevokeTarget::Name("carol".into()), &[]),
        Err(PkiError::NoSuchCertificate { .. })
    ));
    // By serial prefix.
    revoke(
        &dir,
        &RevokeTarget::Serial(bob.record.serial[..10].to_uppercase()),
        &[],
    )
    .unwrap();
    assert!(is_cert_error(
        verify_client(&dir, &bob.cert_pem),
        CertificateError::Revoked
    ));
    let mut listed = crl_serials(&dir).remove(0);
    listed.sort();
    let mut want = vec![alice.record.serial, bob.record.serial];
    want.sort();
    assert_eq!(listed, want);
}

#[test]
fn rotation_trusts_both_cas_and_retirement_drops_the_old_one() {
    let (_tmp, dir) = fresh_ca("rotate", &InitOptions::default());
    let old_client = client(&dir, "old", "ci");
    let doomed = client(&dir, "doomed", "ci");
    let old_ca = load_index(&dir).unwrap().signing_ca().clone();

    let new_ca = rotate_ca(&dir, &InitOptions::default()).unwrap();
    assert_ne!(new_ca.serial, old_ca.serial);
    assert_ne!(new_ca.subject, old_ca.subject);
    let bundle = load_trust_bundle(&dir).unwrap();
    assert_eq!(bundle.len(), 2);
    assert_eq!(
        keys::fingerprint(&bundle[0]),
        new_ca.fingerprint,
        "newest first"
    );
    assert_eq!(keys::fingerprint(&bundle[1]), old_ca.fingerprint);
    assert_eq!(load_crls(&dir).unwrap().len(), 2);
    assert!(dir.join(format!("cas/{}-cert.pem", old_ca.serial)).exists());
    assert_eq!(
        mode(&dir.join(format!("cas/{}-key.pem", old_ca.serial))),
        0o600
    );

    let new_client = client(&dir, "new", "ci");
    assert_eq!(new_client.record.issuer_serial, new_ca.serial);
    verify_client(&dir, &new_client.cert_pem).unwrap();
    verify_client(&dir, &old_client.cert_pem).unwrap();

    // Revoking an old-CA certificate re-signs the old CA's CRL with the key in cas/.
    revoke(&dir, &RevokeTarget::Name("doomed".into()), &[]).unwrap();
    assert!(is_cert_error(
        verify_client(&dir, &doomed.cert_pem),
        CertificateError::Revoked
    ));
    verify_client(&dir, &old_client.cert_pem).unwrap();
    verify_client(&dir, &new_client.cert_pem).unwrap();
    assert_eq!(
        crl_serials(&dir),
        vec![vec![], vec![doomed.record.serial.clone()]]
    );

    // Retiring is refused while the old CA has live certificates, and for the signing CA.
    assert!(matches!(
        retire_ca(&dir, None, false),
        Err(PkiError::RetireWouldStrand { .. })
    ));
    assert!(matches!(
        retire_ca(&dir, Some(&new_ca.serial), true),
        Err(PkiError::SigningCaNotRetirable { .. })
    ));
    let retired = retire_ca(&dir, Some(&old_ca.serial[..12]), true).unwrap();
    assert_eq!(retired.len(), 1);
    assert_eq!(retired[0].state, CaState::Retired);
    assert!(is_cert_error(
        verify_client(&dir, &old_client.cert_pem),
        CertificateError::UnknownIssuer
    ));
    verify_client(&dir, &new_client.cert_pem).unwrap();
    assert_eq!(load_trust_bundle(&dir).unwrap().len(), 1);
    assert_eq!(load_crls(&dir).unwrap().len(), 1);
    assert!(dir
        .join(format!("cas/retired/{}-cert.pem", old_ca.serial))
        .exists());
    assert!(!dir.join(format!("cas/{}-key.pem", old_ca.serial)).exists());
    assert!(!dir.join(format!("cas/{}-cert.pem", old_ca.serial)).exists());
    assert!(matches!(
        retire_ca(&dir, None, false),
        Err(PkiError::NothingToRetire)
    ));
    assert!(retire_ca(&dir, Some(&old_ca.serial), false)
        .unwrap()
        .is_empty());
}

#[test]
fn csr_signing_keeps_only_the_csr_public_key() {
    let (tmp, dir) = fresh_ca("csr", &InitOptions::default());
    let csr = include_str!("testdata/rsa-2048.csr");
    let mut req = ClientRequest::new("runner-7", "ci");
    req.csr_pem = Some(csr.to_owned());
    let issued = issue_client(&dir, &req).unwrap();
    assert!(issued.key_pem.is_none());
    let runner_key = keys::load_key(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/pki/testdata/rsa-2048-key.pem"
    )))
    .unwrap();
    assert!(ops::cert_has_key(&issued.cert_pem, &runner_key));
    verify_client(&dir, &issued.cert_pem).unwrap();
    // The CSR asked for CN=evil-admin, OU=admin and CA:TRUE; none of it is used.
    let d = der(&issued.cert_pem);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    let subject = cert.subject().to_string();
    assert!(
        subject.contains("CN=runner-7") && subject.contains("OU=ci"),
        "{subject}"
    );
    assert!(!subject.contains("admin"), "{subject}");
    assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
    assert!(cert
        .extensions()
        .iter()
        .all(|e| !matches!(e.parsed_extension(), ParsedExtension::NameConstraints(_))));

    // Only cert.pem and ca.pem are written; a key.pem already there must match.
    let out = tmp.join("runner");
    let written = issued.write_to(&out).unwrap();
    assert_eq!(written, [out.join("cert.pem"), out.join("ca.pem")]);
    assert!(!out.join("key.pem").exists());
    fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/pki/testdata/rsa-2048-key.pem"
        ),
        out.join("key.pem"),
    )
    .unwrap();
    issued.write_to(&out).unwrap();
    fs::write(
        out.join("key.pem"),
        KeyType::EcdsaP256.generate().unwrap().serialize_pem(),
    )
    .unwrap();
    assert!(matches!(
        issued.write_to(&out),
        Err(PkiError::OutputConflict { .. })
    ));
}

#[test]
fn offline_ca_key_is_taken_from_ca_key_flags() {
    let (tmp, dir) = fresh_ca("offline", &InitOptions::default());
    let offline = tmp.join("offline-ca-key.pem");
    fs::rename(dir.join("ca-key.pem"), &offline).unwrap();
    let err = issue_client(&dir, &ClientRequest::new("a", "ci")).unwrap_err();
    assert!(matches!(err, PkiError::CaKeyMissing { .. }), "{err}");
    assert!(err.to_string().contains("ca-key.pem"), "{err}");
    assert!(err.to_string().contains("--ca-key"), "{err}");

    let wrong = tmp.join("wrong.pem");
    fs::write(
        &wrong,
        KeyType::EcdsaP256.generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let mut req = ClientRequest::new("a", "ci");
    req.ca_keys = vec![wrong.clone()];
    assert!(matches!(
        issue_client(&dir, &req),
        Err(PkiError::CaKeyMismatch { .. })
    ));
    req.ca_keys = vec![wrong, offline.clone()];
    let issued = issue_client(&dir, &req).unwrap();
    verify_client(&dir, &issued.cert_pem).unwrap();

    // Revocation needs the key too; without it nothing changes.
    let before = fs::read(dir.join("crl.pem")).unwrap();
    let err = revoke(&dir, &RevokeTarget::Name("a".into()), &[]).unwrap_err();
    assert!(matches!(err, PkiError::CaKeyMissing { .. }), "{err}");
    assert_eq!(fs::read(dir.join("crl.pem")).unwrap(), before);
    assert_eq!(load_index(&dir).unwrap().certs[0].status, CertStatus::Valid);
    revoke(&dir, &RevokeTarget::Name("a".into()), &[offline]).unwrap();
    assert!(is_cert_error(
        verify_client(&dir, &issued.cert_pem),
        CertificateError::Revoked
    ));
}

#[test]
fn renew_reissues_same_identity_and_can_revoke_the_old_one() {
    let (_tmp, dir) = fresh_ca("renew", &InitOptions::default());
    let first = client(&dir, "deployer", "deploy");
    let req = RenewRequest {
        name: "deployer".into(),
        days: 30,
        key_type: KeyType::Ed25519,
        csr_pem: None,
        ca_keys: Vec::new(),
        revoke_old: false,
    };
    let second = renew(&dir, &req).unwrap();
    assert!(second.revoked.is_empty());
    let r = &second.issued.record;
    assert_eq!(
        (r.name.as_str(), r.role.as_deref()),
        ("deployer", Some("deploy"))
    );
    assert_ne!(r.serial, first.record.serial);
    assert_ne!(second.issued.key_pem, first.key_pem);
    verify_client(&dir, &first.cert_pem).unwrap();
    verify_client(&dir, &second.issued.cert_pem).unwrap();

    let third = renew(
        &dir,
        &RenewRequest {
            revoke_old: true,
            ..req.clone()
        },
    )
    .unwrap();
    assert_eq!(third.revoked.len(), 2);
    assert!(is_cert_error(
        verify_client(&dir, &first.cert_pem),
        CertificateError::Revoked
    ));
    assert!(is_cert_error(
        verify_client(&dir, &second.issued.cert_pem),
        CertificateError::Revoked
    ));
    verify_client(&dir, &third.issued.cert_pem).unwrap();

    issue_server(&dir, &ServerRequest::new(vec!["gw".into()])).unwrap();
    assert!(matches!(
        renew(
            &dir,
            &RenewRequest {
                name: "gw".into(),
                ..req.clone()
            }
        ),
        Err(PkiError::NotAClient { .. })
    ));
    assert!(matches!(
        renew(
            &dir,
            &RenewRequest {
                name: "nobody".into(),
                ..req
            }
        ),
        Err(PkiError::NoSuchCertificate { .. })
    ));
}

#[test]
fn self_renewal_keeps_identity_and_never_widens_lifetime() {
    let (_tmp, dir) = fresh_ca("self-renew", &InitOptions::default());
    let mut req = ClientRequest::new("runner", "ci");
    req.days = 7;
    let current = issue_client(&dir, &req).unwrap();
    let runner_key = KeyType::EcdsaP256.generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&runner_key)
        .unwrap()
        .pem()
        .unwrap();
    let fresh = sign_renewal(&dir, None, &der(&current.cert_pem), &csr).unwrap();
    assert_eq!(fresh.record.name, "runner");
    assert_eq!(fresh.record.role.as_deref(), Some("ci"));
    assert!(ops::cert_has_key(&fresh.cert_pem, &runner_key));
    let span = |r: &CertRecord| r.not_after - r.not_before;
    assert!(span(&fresh.record) <= span(&current.record));
    assert!(span(&fresh.record) >= span(&current.record) - time::Duration::seconds(1));
    verify_client(&dir, &fresh.cert_pem).unwrap();

    revoke(
        &dir,
        &RevokeTarget::Serial(current.record.serial.clone()),
        &[],
    )
    .unwrap();
    let refused = |leaf: &[u8]| match sign_renewal(&dir, None, leaf, &csr) {
        Err(PkiError::RenewalRefused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(refused(&der(&current.cert_pem)), RenewalRefusal::Revoked);
    let server = issue_server(&dir, &ServerRequest::new(vec!["gw".into()])).unwrap();
    let server_der = der(&fs::read_to_string(server.cert_path).unwrap());
    assert_eq!(refused(&server_der), RenewalRefusal::NotAClient);
    assert_eq!(
        refused(b"not a certificate"),
        RenewalRefusal::UnknownCertificate
    );
    assert!(matches!(
        sign_renewal(&dir, None, &der(&fresh.cert_pem), "garbage"),
        Err(PkiError::InvalidCsr { .. })
    ));
}

/// A renewed client retires only its own earlier certificate: never another name's, another
/// role's, nor a newer one.
#[test]
fn only_the_replaced_certificate_can_be_retired() {
    let (_tmp, dir) = fresh_ca("retire", &InitOptions::default());
    let issue =
        |name: &str, role: &str| issue_client(&dir, &ClientRequest::new(name, role)).unwrap();
    let old = issue("runner", "ci");
    let other = issue("other", "ci");
    let admin = issue("runner", "admin");
    let key = KeyType::EcdsaP256.generate().unwrap();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let new = sign_renewal(&dir, None, &der(&old.cert_pem), &csr).unwrap();
    let fingerprint = |pem: &str| keys::fingerprint(&der(pem));
    let refused = |leaf: &str, target: &str| match retire_replaced(&dir, &der(leaf), target) {
        Err(PkiError::RenewalRefused(r)) => r,
        other => panic!("expected a refusal, got {other:?}"),
    };
    for target in [&other, &admin] {
        assert_eq!(
            refused(&new.cert_pem, &fingerprint(&target.cert_pem)),
            RenewalRefusal::NotReplaced
        );
    }
    // The old certificate may not retire the new one.
    assert_eq!(
        refused(&old.cert_pem, &fingerprint(&new.cert_pem)),
        RenewalRefusal::NotReplaced
    );
    let retired = retire_replaced(&dir, &der(&new.cert_pem), &fingerprint(&old.cert_pem)).unwrap();
    assert_eq!(retired.serial, old.record.serial);
    let index = load_index(&dir).unwrap();
    let status = |serial: &str| {
        index
            .certs
            .iter()
            .find(|c| c.serial == serial)
            .unwrap()
            .status
    };
    assert_eq!(status(&old.record.serial), CertStatus::Revoked);
    for still in [&other, &admin] {
        assert_eq!(status(&still.record.serial), CertStatus::Valid);
    }
    assert_eq!(status(&new.record.serial), CertStatus::Valid);
    // Again: nothing changes.
    assert!(retire_replaced(&dir, &der(&new.cert_pem), &fingerprint(&old.cert_pem)).is_ok());
    // A revoked certificate retires nothing.
    assert_eq!(
        refused(&old.cert_pem, &fingerprint(&new.cert_pem)),
        RenewalRefusal::Revoked
    );
}

#[test]
fn imported_rsa_and_generated_ed25519_cas_work() {
    let rsa_key = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/pki/testdata/rsa-2048-key.pem"
    ));
    let (_tmp, dir) = fresh_ca(
        "rsa",
        &InitOptions {
            import_key: Some(rsa_key),
            cn: Some("Example RSA CA".into()),
            ..InitOptions::default()
        },
    );
    let index = load_index(&dir).unwrap();
    assert_eq!(index.cas[0].key_type, "rsa-2048");
    assert_eq!(index.cas[0].subject, "Example RSA CA");
    let issued = client(&dir, "a", "ci");
    verify_client(&dir, &issued.cert_pem).unwrap();
    revoke(&dir, &RevokeTarget::Name("a".into()), &[]).unwrap();
    assert!(is_cert_error(
        verify_client(&dir, &issued.cert_pem),
        CertificateError::Revoked
    ));

    let (_tmp2, dir) = fresh_ca(
        "ed25519",
        &InitOptions {
            key_type: KeyType::Ed25519,
            ..InitOptions::default()
        },
    );
    assert_eq!(load_index(&dir).unwrap().cas[0].key_type, "ed25519");
    let issued = client(&dir, "b", "ci");
    verify_client(&dir, &issued.cert_pem).unwrap();

    let tmp3 = tempdir("rsa-gen");
    let err = init(
        &tmp3.join("certs"),
        &InitOptions {
            key_type: KeyType::Rsa2048,
            ..InitOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, PkiError::KeyGenerationUnsupported { .. }),
        "{err}"
    );
    assert!(!tmp3.join("certs/ca.pem").exists());
}

#[test]
fn tampered_directory_is_reported_not_trusted() {
    let (_tmp, dir) = fresh_ca("tamper", &InitOptions::default());
    let (tmp2, other) = fresh_ca("tamper-other", &InitOptions::default());
    fs::copy(other.join("ca-cert.pem"), dir.join("ca-cert.pem")).unwrap();
    let err = issue_client(&dir, &ClientRequest::new("a", "ci")).unwrap_err();
    assert!(matches!(err, PkiError::IndexInconsistent { .. }), "{err}");
    drop(tmp2);

    // A CRL set missing a trusted CA's CRL is refused rather than silently dropped.
    let (_tmp3, dir) = fresh_ca("crl-missing", &InitOptions::default());
    rotate_ca(&dir, &InitOptions::default()).unwrap();
    let crls = fs::read_to_string(dir.join("crl.pem")).unwrap();
    let first = pem::blocks(&crls, "X509 CRL")[0].to_owned();
    fs::write(dir.join("crl.pem"), first).unwrap();
    let old = load_index(&dir).unwrap().trusted_cas()[1].serial.clone();
    fs::remove_file(dir.join(format!("cas/{old}-key.pem"))).unwrap();
    let err = refresh_crls(&dir, &[]).unwrap_err();
    assert!(matches!(err, PkiError::CrlMissing { .. }), "{err}");
    assert!(err.to_string().contains(&old), "{err}");
}

#[test]
fn refresh_resigns_every_available_crl() {
    let (_tmp, dir) = fresh_ca("refresh", &InitOptions::default());
    rotate_ca(&dir, &InitOptions::default()).unwrap();
    let before: Vec<_> = load_index(&dir)
        .unwrap()
        .cas
        .iter()
        .map(|c| c.crl_number)
        .collect();
    let report = refresh_crls(&dir, &[]).unwrap();
    assert_eq!(report.len(), 2);
    assert!(report.iter().all(|r| r.resigned));
    let after: Vec<_> = load_index(&dir)
        .unwrap()
        .cas
        .iter()
        .map(|c| c.crl_number)
        .collect();
    assert_eq!(after, before.iter().map(|n| n + 1).collect::<Vec<_>>());
    assert_eq!(load_crls(&dir).unwrap().len(), 2);
}
