//! Who issued a client certificate is decided by its signature: an external
//! CA that copies dockgate's CA name gets neither a recorded role nor
//! dockgate's owner labels.

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
