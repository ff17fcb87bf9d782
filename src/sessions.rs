//! Who holds each BuildKit session uuid named through the gateway.
//!
//! A BuildKit client opens a session with `POST /session` (an h2c
//! upgrade) whose `X-Docker-Expose-Session-Uuid` header names it, and
//! builds with `POST /build?version=2&session=<uuid>`. dockerd's session
//! manager (`buildkit/session/manager.go`) has no notion of an owner: any
//! build naming a uuid gets that client's files, secrets, SSH agent and
//! registry credentials, and `Manager.Get` *waits* for a uuid that is not
//! open yet, so a build may name a session before its victim opens it.
//!
//! So a uuid belongs to the first owner who names it through the gateway —
//! by opening a session with it or by building with it — for as long as the
//! connection that named it lives, and nobody else may use it meanwhile
//! (see [`crate::pipeline::sessions`]). Claims are checked and made under
//! one lock, so two owners can never both hold a uuid.
//!
//! A claim lives as long as its connection context: a `/session` upgrade
//! hijacks its connection, so after the upgrade the only holder of that
//! context is the splice carrying the session, and a claim ends with the
//! session. A build's claim lasts while its client keeps the connection,
//! which only keeps a random uuid from others a little longer. Dead claims
//! are pruned whenever a claim is made.

use std::collections::HashMap;
use std::sync::{Mutex, Weak};

/// One claim on a uuid: its owner, and the connection context that keeps
/// it alive.
#[derive(Debug)]
struct Claim {
    owner: String,
    holder: Weak<dyn Send + Sync>,
}

impl Claim {
    fn live(&self) -> bool {
        self.holder.strong_count() > 0
    }
}

#[derive(Debug, Default)]
pub struct Sessions {
    claims: Mutex<HashMap<String, Vec<Claim>>>,
}

impl Sessions {
    /// Claims `uuid` for `owner` while `holder` lives, unless another owner
    /// holds a live claim on it; returns whether the claim was made.
    pub fn claim(&self, uuid: &str, owner: &str, holder: Weak<dyn Send + Sync>) -> bool {
        let mut claims = self.lock();
        claims.retain(|_, list| {
            list.retain(Claim::live);
            !list.is_empty()
        });
        let list = claims.entry(uuid.to_owned()).or_default();
        if list.iter().any(|c| c.owner != owner) {
            return false;
        }
        list.push(Claim {
            owner: owner.to_owned(),
            holder,
        });
        true
    }

    /// Drops one claim `holder` made on `uuid` (a session the daemon did
    /// not open).
    pub fn release(&self, uuid: &str, holder: &Weak<dyn Send + Sync>) {
        let mut claims = self.lock();
        if let Some(list) = claims.get_mut(uuid) {
            if let Some(i) = list.iter().position(|c| c.holder.ptr_eq(holder)) {
                list.remove(i);
            }
            if list.is_empty() {
                claims.remove(uuid);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Claim>>> {
        // The map holds no invariant a panic elsewhere could break.
        self.claims
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn holder() -> Arc<()> {
        Arc::new(())
    }

    fn weak(h: &Arc<()>) -> Weak<dyn Send + Sync> {
        Arc::downgrade(h) as Weak<dyn Send + Sync>
    }

    #[test]
    fn a_uuid_is_its_first_owners_while_the_claim_lives() {
        let sessions = Sessions::default();
        let (session, build, other) = (holder(), holder(), holder());
        assert!(sessions.claim("s1", "cn=a", weak(&session)));
        // The owner's own build may name it; nobody else's may.
        assert!(sessions.claim("s1", "cn=a", weak(&build)));
        assert!(!sessions.claim("s1", "cn=b", weak(&other)));
        assert!(sessions.claim("s2", "cn=b", weak(&other)));
        drop(session);
        assert!(!sessions.claim("s1", "cn=b", weak(&other)));
        drop(build);
        assert!(sessions.claim("s1", "cn=b", weak(&other)));
    }

    #[test]
    fn a_released_claim_frees_the_uuid() {
        let sessions = Sessions::default();
        let (refused, other) = (holder(), holder());
        assert!(sessions.claim("s1", "cn=a", weak(&refused)));
        sessions.release("s1", &weak(&refused));
        assert!(sessions.claim("s1", "cn=b", weak(&other)));
    }

    #[test]
    fn dead_claims_are_pruned() {
        let sessions = Sessions::default();
        for _ in 0..3 {
            let gone = holder();
            assert!(sessions.claim("old", "cn=a", weak(&gone)));
        }
        let open = holder();
        assert!(sessions.claim("new", "cn=a", weak(&open)));
        let claims = sessions.lock();
        assert_eq!(claims.keys().collect::<Vec<_>>(), ["new"]);
    }
}
