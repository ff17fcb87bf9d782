//! Who issued a client certificate is decided by its signature: an external
//! CA that copies dockgate's CA name gets neither a recorded role nor
//! dockgate's owner labels. A resumed session's certificate is verified
//! again, and no session outlives the configuration that made it.

use std::fs;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use super::*;
use crate::pki::tests::tempdir;
use crate::pki::{self, ClientRequest, InitOptions, ServerRequest};
use crate::policy::ownership::owner_of;

/// A dockgate certs directory with no `crl.pem` (as a hand-made one has),
/// and an operator's `client_cas` bundle holding `external_root`.
fn gateway_dir(root: &Path, external_root: &rcgen::Certificate) -> TlsState {
    let dir = root.join("certs");
    pki::init(&dir, &InitOptions::default()).unwrap();
    pki::issue_server(&dir, &ServerRequest::new(vec!["localhost".into()])).unwrap();
    fs::remove_file(pki::Layout::new(&dir).crl()).unwrap();
    let bundle = root.join("external.pem");
    fs::write(&bundle, external_root.pem()).unwrap();
    load(&dir, &[bundle]).unwrap()
}

fn ca_params(dn: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
}

fn client_params(cn: &str, ou: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params
        .distinguished_name
        .push(DnType::OrganizationalUnitName, ou);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

#[test]
fn a_ca_named_like_dockgates_grants_no_role_and_its_own_owner() {
    let tmp = tempdir("tls-authority");
    let mut external_dn = DistinguishedName::new();
    external_dn.push(DnType::CommonName, "Corporate Root");
    let root_key = KeyPair::generate().unwrap();
    let root = ca_params(external_dn).self_signed(&root_key).unwrap();
    let state = gateway_dir(&tmp, &root);
    let dir = tmp.join("certs");

    // An intermediate under the operator's root that copies dockgate's CA
    // name exactly, with a key of its own.
    let own_ca = &pki::load_trust_bundle(&dir).unwrap()[0];
    let copied = CertificateParams::from_ca_cert_der(own_ca).unwrap();
    let impostor_key = KeyPair::generate().unwrap();
    let impostor = ca_params(copied.distinguished_name)
        .signed_by(&impostor_key, &root, &root_key)
        .unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = client_params("runner-7", "admin")
        .signed_by(&leaf_key, &impostor, &impostor_key)
        .unwrap();
    let chain = [leaf.der().clone(), impostor.der().clone()];

    // The preconditions of the hole: the names match byte for byte, and the
    // gateway accepts the chain.
    let (_, own) = x509_parser::parse_x509_certificate(own_ca).unwrap();
    let (_, forged) = x509_parser::parse_x509_certificate(leaf.der()).unwrap();
    assert_eq!(forged.issuer().as_raw(), own.subject().as_raw());
    state.still_accepts(&chain[0], &chain[1..]).unwrap();

    let id = state.identify(&chain).unwrap();
    assert_eq!(id.recorded_role, None);
    let (_, impostor_cert) = x509_parser::parse_x509_certificate(impostor.der()).unwrap();
    let key = pki::fingerprint(impostor_cert.public_key().raw)[..16].to_owned();
    assert_eq!(id.authority, Authority::External(key.clone()));
    assert_eq!(owner_of(&id), format!("ca={key},cn=runner-7"));

    // dockgate's own certificate for the same name keeps both.
    let issued = pki::issue_client(&dir, &ClientRequest::new("runner-7", "admin")).unwrap();
    let id = state.identify(&[der(&issued.cert_pem)]).unwrap();
    assert_eq!(id.recorded_role.as_deref(), Some("admin"));
    assert_eq!(id.authority, Authority::Dockgate);
    assert_eq!(owner_of(&id), "cn=runner-7");

    // Asked again, as on a reconnect: what is remembered for the real leaf
    // changes nothing for the forged one.
    let again = state.identify(&[der(&issued.cert_pem)]).unwrap();
    assert_eq!(again.authority, Authority::Dockgate);
    assert_eq!(state.identify(&chain).unwrap().recorded_role, None);
}

#[test]
fn an_external_leaf_is_owned_under_the_ca_that_signed_it() {
    let tmp = tempdir("tls-external");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "Corporate Root");
    let root_key = KeyPair::generate().unwrap();
    let root = ca_params(dn).self_signed(&root_key).unwrap();
    let state = gateway_dir(&tmp, &root);

    let leaf_key = KeyPair::generate().unwrap();
    let leaf = client_params("runner-7", "ci")
        .signed_by(&leaf_key, &root, &root_key)
        .unwrap();
    let id = state.identify(&[leaf.der().clone()]).unwrap();
    let (_, root_cert) = x509_parser::parse_x509_certificate(root.der()).unwrap();
    let key = pki::fingerprint(root_cert.public_key().raw)[..16].to_owned();
    assert_eq!(id.authority, Authority::External(key));
    assert_eq!(id.recorded_role, None);

    // A leaf no known CA signed has no identity at all.
    let stranger_key = KeyPair::generate().unwrap();
    let stranger = ca_params(DistinguishedName::new())
        .self_signed(&stranger_key)
        .unwrap();
    let orphan = client_params("runner-7", "admin")
        .signed_by(&leaf_key, &stranger, &stranger_key)
        .unwrap();
    assert_eq!(state.identify(&[orphan.der().clone()]), None);
}

/// A client that presents `issued` and keeps its sessions for resumption.
fn resuming_client(dir: &Path, issued: &pki::IssuedClient) -> Arc<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    for ca in pki::load_trust_bundle(dir).unwrap() {
        roots.add(ca).unwrap();
    }
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(
        issued.key_pem.as_deref().unwrap().as_bytes(),
    )
    .unwrap();
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(provider::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(vec![der(&issued.cert_pem)], key)
            .unwrap();
    Arc::new(config)
}

/// One handshake in memory, with the tickets the server sends after it;
/// the server side if it completed.
fn handshake(
    client: &Arc<rustls::ClientConfig>,
    state: &TlsState,
) -> Result<ServerConnection, rustls::Error> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut client = rustls::ClientConnection::new(client.clone(), name)?;
    let mut server = ServerConnection::new(state.config.clone())?;
    let mut wire = Vec::new();
    loop {
        wire.clear();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        let sent = !wire.is_empty();
        if sent {
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets()?;
        }
        wire.clear();
        while server.wants_write() {
            server.write_tls(&mut wire).unwrap();
        }
        let answered = !wire.is_empty();
        if answered {
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets()?;
        }
        if !sent && !answered {
            return Ok(server);
        }
    }
}

#[test]
fn a_resumed_session_is_verified_again() {
    let tmp = tempdir("tls-resumed");
    let dir = tmp.join("certs");
    pki::init(&dir, &InitOptions::default()).unwrap();
    pki::issue_server(&dir, &ServerRequest::new(vec!["localhost".into()])).unwrap();
    let issued = pki::issue_client(&dir, &ClientRequest::new("laptop", "admin")).unwrap();
    let state = load(&dir, &[]).unwrap();
    let client = resuming_client(&dir, &issued);
    let now = UnixTime::now();

    let full = handshake(&client, &state).unwrap();
    assert_eq!(full.handshake_kind(), Some(HandshakeKind::Full));
    assert_eq!(
        state.session_chain(&full, now).unwrap()[0],
        der(&issued.cert_pem)
    );

    let resumed = handshake(&client, &state).unwrap();
    assert_eq!(resumed.handshake_kind(), Some(HandshakeKind::Resumed));
    assert_eq!(
        state.session_chain(&resumed, now).unwrap()[0],
        der(&issued.cert_pem)
    );
    // The verifier did not run for this session: the chain is checked at
    // the time of the resumption, so an expired certificate is refused.
    let leaf_der = der(&issued.cert_pem);
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
    let after_expiry = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        leaf.validity().not_after.timestamp() as u64 + 1,
    ));
    assert!(matches!(
        state.session_chain(&resumed, after_expiry),
        Err(rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. }
        ))
    ));

    // Revoked, and reloaded: the session from before the reload does not
    // resume, and the full handshake refuses the certificate.
    pki::revoke(&dir, &pki::RevokeTarget::Name("laptop".into()), &[]).unwrap();
    let reloaded = load(&dir, &[]).unwrap();
    assert!(matches!(
        handshake(&client, &reloaded),
        Err(rustls::Error::InvalidCertificate(CertificateError::Revoked))
            | Err(rustls::Error::AlertReceived(_))
    ));
}
