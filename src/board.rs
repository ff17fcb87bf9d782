//! The status board: what `/status` on the admin listener reports beyond
//! metrics — when the process started, the last reload and its result, and
//! the upgraded sessions open right now, by identity.
//!
//! Sessions register here for as long as they run (a guard removes them),
//! so the list is exact, not sampled.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::Serialize;

#[derive(Debug)]
pub struct Board {
    started: Instant,
    last_reload: Mutex<Option<Reload>>,
    next: AtomicU64,
    sessions: Arc<Mutex<BTreeMap<u64, Session>>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reload {
    /// RFC 3339.
    pub at: String,
    pub ok: bool,
    /// Why a reload was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One open upgraded session (attach, exec, a BuildKit session).
#[derive(Debug, Clone, Serialize)]
pub struct Session {
    pub cn: Option<String>,
    pub role: Option<String>,
    pub peer: SocketAddr,
    pub operation: Option<&'static str>,
    /// RFC 3339.
    pub since: String,
}

/// Keeps a session on the board until dropped.
pub struct Listed {
    id: u64,
    sessions: Arc<Mutex<BTreeMap<u64, Session>>>,
}

impl Drop for Listed {
    fn drop(&mut self) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(&self.id);
        }
    }
}

impl Default for Board {
    fn default() -> Board {
        Board {
            started: Instant::now(),
            last_reload: Mutex::new(None),
            next: AtomicU64::new(0),
            sessions: Arc::default(),
        }
    }
}

impl Board {
    pub fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    pub fn reloaded(&self, result: Result<(), String>) {
        if let Ok(mut last) = self.last_reload.lock() {
            *last = Some(Reload {
                at: rfc3339(SystemTime::now()),
                ok: result.is_ok(),
                error: result.err(),
            });
        }
    }

    pub fn last_reload(&self) -> Option<Reload> {
        self.last_reload.lock().ok()?.clone()
    }

    pub fn open(&self, session: Session) -> Listed {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.insert(id, session);
        }
        Listed {
            id,
            sessions: self.sessions.clone(),
        }
    }

    pub fn sessions(&self) -> Vec<Session> {
        self.sessions
            .lock()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }
}

pub fn rfc3339(at: SystemTime) -> String {
    time::OffsetDateTime::from(at)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_listed_while_they_run() {
        let board = Board::default();
        let session = |cn: &str| Session {
            cn: Some(cn.into()),
            role: Some("ci".into()),
            peer: "127.0.0.1:1".parse().unwrap(),
            operation: Some("ContainerAttach"),
            since: rfc3339(SystemTime::now()),
        };
        let a = board.open(session("a"));
        let _b = board.open(session("b"));
        assert_eq!(board.sessions().len(), 2);
        drop(a);
        let left = board.sessions();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].cn.as_deref(), Some("b"));
        board.reloaded(Err("bad cert".into()));
        assert!(!board.last_reload().unwrap().ok);
    }
}
