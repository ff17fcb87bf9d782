//! Limits that keep one client from taking the gateway down for everyone.
//!
//! - **Connections**: at most `limits.connections` open client connections
//!   in total (refused right after accept, before any TLS work), and at
//!   most `limits.connections_per_identity` for one owner (answered with a
//!   Docker-style 429 after the handshake). A connection's slot is held by
//!   its context, which its upgraded sessions share, so a session counts
//!   until it ends and no limit ever cuts an established stream.
//! - **Inspection memory**: bodies read whole for inspection share one
//!   budget of `limits.inspect_memory` bytes. A request that would exceed
//!   it is refused with 503 at once, instead of queueing attackers' bodies.
//!   Each body also has `limits.body_read_timeout` to arrive.
//! - **Request rate**: a token bucket per owner, a pipeline layer:
//!   [`crate::pipeline::rate`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Limits;

/// Open connections, in total and by owner.
#[derive(Debug)]
pub struct ConnectionLimits {
    total: Arc<Semaphore>,
    per_identity: usize,
    by_owner: Arc<Mutex<HashMap<String, usize>>>,
}

/// A place among the open connections; released when dropped.
#[derive(Debug)]
pub struct Admitted {
    _place: OwnedSemaphorePermit,
}

/// One owner's connection slot; released when dropped.
#[derive(Debug)]
pub struct IdentitySlot {
    owner: String,
    by_owner: Arc<Mutex<HashMap<String, usize>>>,
}

impl ConnectionLimits {
    pub fn new(limits: &Limits) -> ConnectionLimits {
        ConnectionLimits {
            total: Arc::new(Semaphore::new(limits.connections)),
            per_identity: limits.connections_per_identity,
            by_owner: Arc::default(),
        }
    }

    /// A place for a newly accepted connection, unless all are taken.
    pub fn admit(&self) -> Option<Admitted> {
        self.total
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|_place| Admitted { _place })
    }

    /// A slot for one more connection of `owner`, unless it has them all.
    pub fn identity(&self, owner: &str) -> Option<IdentitySlot> {
        let mut by_owner = self.by_owner.lock().ok()?;
        let open = by_owner.entry(owner.to_owned()).or_insert(0);
        if *open >= self.per_identity {
            return None;
        }
        *open += 1;
        Some(IdentitySlot {
            owner: owner.to_owned(),
            by_owner: self.by_owner.clone(),
        })
    }

    pub fn per_identity(&self) -> usize {
        self.per_identity
    }
}

impl Drop for IdentitySlot {
    fn drop(&mut self) {
        if let Ok(mut by_owner) = self.by_owner.lock() {
            if let Some(open) = by_owner.get_mut(&self.owner) {
                *open -= 1;
                if *open == 0 {
                    by_owner.remove(&self.owner);
                }
            }
        }
    }
}

/// The memory all bodies held for inspection may use together.
#[derive(Debug, Clone)]
pub struct InspectBudget(Arc<Semaphore>);

/// Bytes of the budget held while a body is read and inspected.
#[derive(Debug)]
pub struct Reserved {
    _bytes: OwnedSemaphorePermit,
}

impl InspectBudget {
    pub fn new(bytes: usize) -> InspectBudget {
        InspectBudget(Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))))
    }

    /// Reserves `bytes`, unless the budget does not have them now.
    pub fn reserve(&self, bytes: usize) -> Option<Reserved> {
        let bytes = u32::try_from(bytes).ok()?;
        self.0
            .clone()
            .try_acquire_many_owned(bytes)
            .ok()
            .map(|_bytes| Reserved { _bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_identity: usize) -> Limits {
        Limits {
            connections: total,
            connections_per_identity: per_identity,
            ..Limits::default()
        }
    }

    #[test]
    fn identities_are_counted_apart_and_slots_come_back() {
        let limits = ConnectionLimits::new(&limits(10, 2));
        let a1 = limits.identity("cn=a").unwrap();
        let _a2 = limits.identity("cn=a").unwrap();
        assert!(limits.identity("cn=a").is_none());
        let _b = limits.identity("cn=b").unwrap();
        drop(a1);
        assert!(limits.identity("cn=a").is_some());
    }

    #[test]
    fn total_connections_are_capped() {
        let limits = ConnectionLimits::new(&limits(2, 2));
        let first = limits.admit().unwrap();
        let _second = limits.admit().unwrap();
        assert!(limits.admit().is_none());
        drop(first);
        assert!(limits.admit().is_some());
    }

    #[test]
    fn the_inspection_budget_is_shared() {
        let budget = InspectBudget::new(100);
        let held = budget.reserve(60).unwrap();
        assert!(budget.reserve(60).is_none());
        let _small = budget.reserve(40).unwrap();
        drop(held);
        assert!(budget.reserve(60).is_some());
    }
}
