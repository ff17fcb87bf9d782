//! Live state, and reloading it without a restart.
//!
//! TLS material and policy each sit behind an [`ArcSwap`]: readers take a
//! cheap snapshot per handshake or per request, and a reload builds the new
//! state completely — every file read, parsed and validated — before
//! swapping it in. A reload that fails anywhere swaps nothing: the old state
//! keeps serving and the log says why.

use arc_swap::ArcSwap;

use crate::policy::Policy;
use crate::tls::TlsState;

#[derive(Debug)]
pub struct Live {
    pub tls: ArcSwap<TlsState>,
    pub policy: ArcSwap<Policy>,
}

impl Live {
    pub fn new(tls: TlsState, policy: Policy) -> Live {
        Live {
            tls: ArcSwap::from_pointee(tls),
            policy: ArcSwap::from_pointee(policy),
        }
    }
}
