//! The connection context: everything the gateway knows about one client
//! connection, built once by the accept loop after a verified handshake.
//!
//! Every layer of the request pipeline and every upgraded session of the
//! connection holds the same `Arc<Connection>`. Nothing here is optional:
//! a connection without a verified identity, a re-verification
//! registration or a cut token never gets this far, so no layer needs a
//! fallback for something that "cannot be missing". Sessions keep the
//! context (and so the registration) alive after the HTTP connection ends,
//! which keeps them re-verifiable on reload until they end themselves.

use std::net::SocketAddr;

use rustls::pki_types::CertificateDer;
use tokio_util::sync::CancellationToken;

use crate::drain::Drain;
use crate::limits::{Admitted, IdentitySlot};
use crate::proxy::framing::FramingCheck;
use crate::reload::Registration;
use crate::tls::Identity;

pub struct Connection {
    pub peer: SocketAddr,
    /// From the verified leaf certificate.
    pub identity: Identity,
    /// The owner label of objects this client creates.
    pub owner: String,
    /// Peer and certificate, rendered once for every audit line.
    pub audit_who: crate::audit::Who,
    /// The verified leaf, for self-renewal.
    pub leaf: CertificateDer<'static>,
    /// Request framing as seen below hyper; see `proxy::framing`.
    pub framing: FramingCheck,
    /// Cancelled when this connection's certificate is no longer accepted:
    /// the connection and its sessions end at once.
    pub cut: CancellationToken,
    /// The service-wide stop signal: finish, then close.
    pub drain: Drain,
    /// Keeps the connection in the set re-verified on reload.
    pub registration: Registration,
    /// Its place among all open connections, and among its owner's.
    pub place: Admitted,
    pub slot: IdentitySlot,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("identity", &self.identity)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}
