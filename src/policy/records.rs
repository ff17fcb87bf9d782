//! Ownership records: who created each container and each image tag
//! through the gateway.
//!
//! Labels cannot decide ownership of these two kinds, because dockerd
//! copies them from data a client writes:
//! - a container inherits every label of its image that its create body
//!   does not set, so a container made outside the gateway from a
//!   `ci`-built image (a builder's RUN container, an operator's `docker run`
//!   on the socket) would carry `ci`'s owner label;
//! - an image inherits its base image's labels, and a Dockerfile, a BuildKit
//!   frontend or a registry can write any label.
//!
//! So dockgate keeps its own record: every container created through the
//! gateway is recorded by ID, and every tag a request through the gateway
//! creates (build `t`, tag, pull) by its normalized reference, with the
//! identity that created it, whatever its role. A confined identity owns a
//! container or tag only when the record names it; a container or tag made
//! outside the gateway is no confined identity's, and an administrator who
//! takes a tag over through the gateway takes it from its recorded owner.
//! Volumes and networks inherit nothing; dockgate alone labels those a
//! confined role creates, so their labels stay their record.
//!
//! The record is an append-only file of JSON lines, replayed at start and
//! compacted against what the daemon still holds. Writes are synced before
//! the request they record goes on: a record that cannot be written refuses
//! the request.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

use super::confine::Daemon;

/// Who owns a recorded container or tag.
pub trait Owners: Sync {
    fn container(&self, id: &str) -> Option<Arc<str>>;
    /// `reference` as [`super::reference::normalize`] gives it.
    fn tag(&self, reference: &str) -> Option<Arc<str>>;
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Entry {
    Container { id: String, owner: String },
    ForgetContainer { id: String },
    Tag { reference: String, owner: String },
    ForgetTag { reference: String },
}

#[derive(Debug, Default)]
struct State {
    containers: HashMap<String, Arc<str>>,
    tags: HashMap<String, Arc<str>>,
}

impl State {
    fn apply(&mut self, entry: Entry) {
        match entry {
            Entry::Container { id, owner } => {
                self.containers.insert(id, owner.into());
            }
            Entry::ForgetContainer { id } => {
                self.containers.remove(&id);
            }
            Entry::Tag { reference, owner } => {
                self.tags.insert(reference, owner.into());
            }
            Entry::ForgetTag { reference } => {
                self.tags.remove(&reference);
            }
        }
    }

    fn entries(&self) -> impl Iterator<Item = Entry> + '_ {
        let containers = self.containers.iter().map(|(id, owner)| Entry::Container {
            id: id.clone(),
            owner: owner.to_string(),
        });
        let tags = self.tags.iter().map(|(reference, owner)| Entry::Tag {
            reference: reference.clone(),
            owner: owner.to_string(),
        });
        containers.chain(tags)
    }
}

/// The records, and the file they persist in.
#[derive(Debug)]
pub struct Records {
    path: PathBuf,
    file: Mutex<File>,
    state: RwLock<State>,
}

impl Records {
    /// Opens (creating) the record file at `path` and replays it.
    pub fn open(path: &Path) -> io::Result<Records> {
        let mut state = State::default();
        match File::open(path) {
            Ok(file) => {
                for (n, line) in BufReader::new(file).lines().enumerate() {
                    let line = line?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let entry = serde_json::from_str(&line).map_err(|e| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{} line {}: {e}", path.display(), n + 1),
                        )
                    })?;
                    state.apply(entry);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        Ok(Records {
            path: path.to_owned(),
            file: Mutex::new(append(path)?),
            state: RwLock::new(state),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn record_container(&self, id: &str, owner: &str) -> io::Result<()> {
        self.write(Entry::Container {
            id: id.to_owned(),
            owner: owner.to_owned(),
        })
    }

    pub fn forget_container(&self, id: &str) -> io::Result<()> {
        if self.container(id).is_none() {
            return Ok(());
        }
        self.write(Entry::ForgetContainer { id: id.to_owned() })
    }

    /// Records `reference` (normalized) as `owner`'s tag.
    pub fn record_tag(&self, reference: &str, owner: &str) -> io::Result<()> {
        if self.tag(reference).as_deref() == Some(owner) {
            return Ok(());
        }
        self.write(Entry::Tag {
            reference: reference.to_owned(),
            owner: owner.to_owned(),
        })
    }

    pub fn forget_tag(&self, reference: &str) -> io::Result<()> {
        if self.tag(reference).is_none() {
            return Ok(());
        }
        self.write(Entry::ForgetTag {
            reference: reference.to_owned(),
        })
    }

    /// Drops what the daemon no longer holds, and rewrites the file with
    /// only what is left.
    pub fn compact(&self, containers: &HashSet<String>, tags: &HashSet<String>) -> io::Result<()> {
        let mut file = self.file.lock().map_err(|_| poisoned())?;
        let mut state = self.state.write().map_err(|_| poisoned())?;
        state.containers.retain(|id, _| containers.contains(id));
        state.tags.retain(|reference, _| tags.contains(reference));
        let mut text = String::new();
        for entry in state.entries() {
            text.push_str(&serde_json::to_string(&entry).map_err(io::Error::other)?);
            text.push('\n');
        }
        crate::pki::write_atomic(&self.path, text.as_bytes(), 0o600)
            .map_err(|e| io::Error::other(e.to_string()))?;
        *file = append(&self.path)?;
        Ok(())
    }

    /// Appends and syncs `entry`, then applies it.
    fn write(&self, entry: Entry) -> io::Result<()> {
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        line.push(b'\n');
        let mut file = self.file.lock().map_err(|_| poisoned())?;
        file.write_all(&line)?;
        file.sync_data()?;
        self.state.write().map_err(|_| poisoned())?.apply(entry);
        Ok(())
    }
}

impl Owners for Records {
    fn container(&self, id: &str) -> Option<Arc<str>> {
        self.state.read().ok()?.containers.get(id).cloned()
    }

    fn tag(&self, reference: &str) -> Option<Arc<str>> {
        self.state.read().ok()?.tags.get(reference).cloned()
    }
}

const RECONCILE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Drops the records of containers and tags the daemon no longer holds
/// (removed outside the gateway, `--rm`, pruned), so that a name reused
/// later is not claimed by an old record. Runs beside serving at start;
/// with the daemon unreachable, the records stay as they are.
pub async fn reconcile<D: Daemon>(records: Arc<Records>, daemon: D) {
    let listed = async {
        let containers = daemon.get_json("/containers/json?all=1").await?;
        let images = daemon.get_json("/images/json").await?;
        Ok::<_, String>((containers, images))
    };
    let listed = tokio::time::timeout(RECONCILE_TIMEOUT, listed)
        .await
        .unwrap_or_else(|_| Err("timed out".into()));
    let (containers, images) = match listed {
        Ok((Some(containers), Some(images))) => (containers, images),
        Ok(_) => return,
        Err(e) => {
            tracing::warn!(error = %e, "ownership records not reconciled: the daemon did not answer");
            return;
        }
    };
    let ids = |list: &serde_json::Value, key: &str| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item.get(key))
            .flat_map(|v| match v {
                serde_json::Value::String(s) => vec![s.clone()],
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect(),
                _ => Vec::new(),
            })
            .collect()
    };
    let containers: HashSet<String> = ids(&containers, "Id").into_iter().collect();
    let tags: HashSet<String> = ids(&images, "RepoTags")
        .iter()
        .filter_map(|t| super::reference::normalize(t))
        .collect();
    match records.compact(&containers, &tags) {
        Ok(()) => tracing::info!(
            containers = containers.len(),
            tags = tags.len(),
            "ownership records reconciled with the daemon"
        ),
        Err(e) => tracing::error!(error = %e, "ownership records not compacted"),
    }
}

fn append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn poisoned() -> io::Error {
    io::Error::other("ownership records lock poisoned")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("dockgate-records-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("owners.jsonl")
    }

    #[test]
    fn records_survive_a_restart_and_forgetting() {
        let path = temp("replay");
        let records = Records::open(&path).unwrap();
        records.record_container("c1", "cn=ci").unwrap();
        records.record_container("c2", "cn=ci").unwrap();
        records.forget_container("c1").unwrap();
        records
            .record_tag("docker.io/library/app:1", "cn=ci")
            .unwrap();
        records
            .record_tag("docker.io/library/app:1", "cn=admin")
            .unwrap();
        drop(records);
        let records = Records::open(&path).unwrap();
        assert_eq!(records.container("c1"), None);
        assert_eq!(records.container("c2").as_deref(), Some("cn=ci"));
        assert_eq!(
            records.tag("docker.io/library/app:1").as_deref(),
            Some("cn=admin")
        );
    }

    #[test]
    fn compaction_keeps_only_what_the_daemon_holds() {
        let path = temp("compact");
        let records = Records::open(&path).unwrap();
        records.record_container("gone", "cn=ci").unwrap();
        records.record_container("kept", "cn=ci").unwrap();
        records
            .record_tag("docker.io/library/a:1", "cn=ci")
            .unwrap();
        let containers = HashSet::from(["kept".to_owned()]);
        records.compact(&containers, &HashSet::new()).unwrap();
        records.record_container("new", "cn=ci").unwrap();
        drop(records);
        let records = Records::open(&path).unwrap();
        assert_eq!(records.container("gone"), None);
        assert_eq!(records.tag("docker.io/library/a:1"), None);
        assert!(records.container("kept").is_some());
        assert!(records.container("new").is_some());
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines, 2);
    }

    #[test]
    fn a_damaged_record_is_an_error_not_an_empty_record() {
        let path = temp("damaged");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{\"op\":\"container\",\"id\":\"c1\"\n").unwrap();
        assert!(Records::open(&path).is_err());
    }
}
