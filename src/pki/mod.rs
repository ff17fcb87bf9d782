//! dockgate's certificate authority: the CA, the gateway's server certificate, client
//! certificates with roles, revocation, renewal and CA rotation. It replaces the
//! hand-run `openssl` recipes of Docker's "Protect the Docker daemon socket" guide.
//!
//! # A certs directory
//!
//! | file | holds |
//! |---|---|
//! | `ca.pem` | the trust bundle: every CA trusted for client certificates, newest (signing) first. Docker clients get it as their `ca.pem` to verify the gateway. |
//! | `ca-cert.pem` | the signing CA's certificate alone |
//! | `ca-key.pem` | the signing CA's key, 0600. May be absent (kept offline): signing commands then take `--ca-key PATH`. |
//! | `server-cert.pem`, `server-key.pem` | the gateway's TLS pair (key 0600), replaced atomically, key first |
//! | `crl.pem` | one CRL per CA in `ca.pem`, same order, each signed by its CA; valid 7 days, re-signed on every revoke and by `refresh-crl` |
//! | `index.toml` | the record: `[[ca]]` entries (serial, subject, key type, validity, state `signing`/`trusted`/`retired`, last CRL number, fingerprint) and `[[cert]]` entries (name, role, kind, serial, issuer CA serial, validity, status `valid`/`revoked`, revoked_at, SHA-256 fingerprint of the DER) in issue order |
//! | `cas/<serial>-cert.pem`, `cas/<serial>-key.pem` | a CA replaced by `rotate-ca` but still trusted; the key is there only if `ca-key.pem` was when it was rotated |
//! | `cas/retired/<serial>-cert.pem` | a CA removed from trust by `retire-ca`, kept for the record; its key is deleted |
//!
//! `index.toml` is the source of truth: `ca.pem` and `crl.pem` are derived from it and
//! the CA certificates. Every file is replaced atomically (temporary file, fsync, rename),
//! private keys are created 0600, directories 0700. The names are spelled once, in
//! [`Layout`]. Every command is one `CertsDir` transaction (`certs_dir.rs`): it holds the
//! directory's `.lock` and writes primary files, then the index, then `crl.pem`, then
//! `ca.pem`; `refresh-crl` rewrites the derived files if a command was interrupted.
//!
//! CRLs are matched to CAs by issuer name and signature, so CA subjects must differ: the
//! default CN is `dockgate CA <date> <first 8 serial digits>`.
//!
//! # Profiles
//!
//! * CA: CA:true, pathlen 0, keyCertSign + cRLSign, 10 years by default.
//! * Server: EKU serverAuth, SANs (IP or DNS), CN = first SAN, 825 days by default.
//! * Client: CN = name, OU = role, O = dockgate, EKU clientAuth, digitalSignature,
//!   90 days by default.
//!
//! Leaves never outlive their CA, start 5 minutes in the past (clock skew) and carry a
//! random positive 16-byte serial.
//!
//! # Key types
//!
//! ECDSA P-256 (default) and Ed25519 keys are generated with ring. ring cannot generate
//! RSA keys, so `--key-type rsa-2048|rsa-4096` fails with instructions: make the key with
//! OpenSSL and pass it to `init`/`rotate-ca` with `--import-key` (ring signs with RSA keys
//! of 2048 to 8192 bits), or, for clients, send a CSR made with it (`--csr`).

mod ca;
mod certs_dir;
mod command;
mod context;
mod error;
mod index;
mod issue;
mod keys;
mod layout;
mod ops;
pub mod pem;
mod store;
mod swap;

#[cfg(test)]
pub(crate) mod tests;

pub use command::{run, PkiCommand};
pub use error::{PkiError, RenewalRefusal};
pub use index::{CaRecord, CaState, CertKind, CertRecord, CertStatus, Index};
pub use keys::{fingerprint, serial_hex, KeyType};
pub use layout::{DockerCertPath, Layout};
pub use ops::{
    init, issue_client, issue_server, load_crls, load_index, load_trust_bundle, refresh_crls,
    renew, retire_ca, retire_replaced, revoke, rotate_ca, sign_renewal, ClientRequest, CrlRefresh,
    InitOptions, IssuedClient, IssuedServer, RenewRequest, Renewed, RevokeTarget, ServerRequest,
    DEFAULT_CA_DAYS, DEFAULT_CLIENT_DAYS, DEFAULT_SERVER_DAYS, MAX_DAYS,
};
pub(crate) use store::write_atomic;
