//! Hijacked streams: attach, exec start, BuildKit `/session` and `/grpc`.
//!
//! After both sides have switched protocols, the two upgraded connections
//! are spliced. Each direction is copied until its source reaches EOF, and
//! then only that direction's destination is shut down for writing:
//! - client → daemon carries stdin. The docker CLI signals stdin EOF with a
//!   TLS close_notify; that becomes `shutdown(SHUT_WR)` on the Unix socket,
//!   so the process in the container sees EOF while its output keeps coming.
//! - daemon → client carries output. When the daemon closes, the client gets
//!   a close_notify and the session is over.
//!
//! Bytes either side sent right behind its headers (stdin pipelined after
//! the request, output right behind the 101) are kept by hyper's upgrade
//! buffers and are the first bytes copied.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;

/// Copy buffer per direction; large enough for bulk stdin/stdout.
const BUFFER: usize = 64 * 1024;

/// Bytes carried by a finished session.
#[derive(Debug, Default, Clone, Copy)]
pub struct Transferred {
    /// Client to daemon (stdin, BuildKit requests).
    pub from_client: u64,
    /// Daemon to client (output, BuildKit responses).
    pub to_client: u64,
}

#[derive(Debug)]
pub enum SessionEnd {
    /// Both directions reached EOF.
    Closed(Transferred),
    /// One side failed or vanished mid-stream.
    Failed(std::io::Error),
    /// The gateway cut the session (revocation, shutdown).
    Cut,
}

/// Waits for both upgrades to complete, then splices them until the
/// session ends or `cut` is cancelled.
pub async fn splice(client: OnUpgrade, daemon: OnUpgrade, cut: CancellationToken) -> SessionEnd {
    let (client, daemon) = match tokio::try_join!(client, daemon) {
        Ok(pair) => pair,
        Err(e) => return SessionEnd::Failed(std::io::Error::other(e)),
    };
    let mut client = TokioIo::new(client);
    let mut daemon = TokioIo::new(daemon);
    let copy = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut daemon, BUFFER, BUFFER);
    tokio::select! {
        result = copy => match result {
            Ok((from_client, to_client)) => SessionEnd::Closed(Transferred { from_client, to_client }),
            Err(e) => SessionEnd::Failed(e),
        },
        () = cut.cancelled() => SessionEnd::Cut,
    }
}
