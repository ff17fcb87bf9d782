//! A certs directory being changed: the only way `dockgate pki` writes one.
//!
//! A running gateway reloads whenever a file it serves changes, so it may read the
//! directory between any two writes of a command, and an operator may interrupt a command
//! between them. Every command is therefore a transaction, [`CertsDir`]: it locks the
//! directory, loads the index, changes an in-memory view, and commits in one order,
//! whatever the command:
//!
//! 1. primary files, in the order they were staged (a key before its certificate; the
//!    certificates of CAs where the new index will look for them);
//! 2. `index.toml`, the source of truth;
//! 3. `crl.pem`, derived from the index and the CA certificates;
//! 4. `ca.pem`, derived likewise, after the CRLs: a CA in `ca.pem` without its CRL makes
//!    the gateway refuse that CA's clients, never accept a revoked one;
//! 5. removals (a retired CA's files), once nothing written refers to them.
//!
//! A command interrupted after step 2 leaves what `refresh-crl` repairs. Everything a
//! commit writes is computed, and checked against the index, before its first write, so
//! a transaction that fails, in its command or while committing, writes nothing. Each
//! write is atomic ([`store::write_atomic`]). The `.lock` file is held from [`CertsDir::open`]
//! until the transaction is committed or dropped, so `pki` commands, the gateway's
//! self-renewals and a CRL refresh timer never interleave.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::ca;
use super::error::PkiError;
use super::index::Index;
use super::layout::Layout;
use super::store::{self, PUBLIC, SECRET};

/// A locked certs directory and the change being made to it.
pub(crate) struct CertsDir {
    layout: Layout,
    /// The index as the transaction will commit it.
    pub index: Index,
    /// Primary files, in staging order.
    primary: Vec<Write>,
    /// `Some` when `crl.pem` is rewritten: the freshly signed CRLs (CA serial, PEM).
    crls: Option<Vec<(String, String)>>,
    bundle: bool,
    /// Serials of CAs whose files leave `cas/` for `cas/retired/`.
    retired: Vec<String>,
    _lock: File,
}

/// A locked directory about to receive a new CA (`init`).
pub(crate) struct Vacant {
    layout: Layout,
    lock: File,
}

/// One file replaced atomically.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    path: PathBuf,
    contents: Vec<u8>,
    mode: u32,
}

/// One step of a commit.
#[derive(Debug)]
pub(crate) enum Step {
    Write(Write),
    Move { from: PathBuf, to: PathBuf },
    Remove(PathBuf),
}

impl CertsDir {
    /// Locks `dir` (created 0700 when missing) and loads its index.
    pub fn open(dir: &Path) -> Result<Self, PkiError> {
        let layout = Layout::new(dir);
        let lock = lock(&layout)?;
        let index = Index::load(&layout)?;
        Ok(Vacant { layout, lock }.begin(index))
    }

    /// Locks `dir` for a new CA; refuses a directory that holds one unless `force`.
    pub fn create(dir: &Path, force: bool) -> Result<Vacant, PkiError> {
        let layout = Layout::new(dir);
        let lock = lock(&layout)?;
        let existing = [
            layout.index(),
            layout.ca_cert(),
            layout.ca_key(),
            layout.bundle(),
        ];
        if !force && existing.iter().any(|p| p.exists()) {
            return Err(PkiError::CaExists {
                dir: dir.to_owned(),
            });
        }
        Ok(Vacant { layout, lock })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// A file as this transaction would leave it: staged, else on disk.
    pub fn read(&self, path: &Path) -> Result<Cow<'_, [u8]>, PkiError> {
        match self.primary.iter().rev().find(|w| w.path == path) {
            Some(w) => Ok(Cow::Borrowed(&w.contents)),
            None => store::read(path).map(Cow::Owned),
        }
    }

    pub fn read_string(&self, path: &Path) -> Result<String, PkiError> {
        String::from_utf8(self.read(path)?.into_owned()).map_err(|e| {
            PkiError::io(
                "read",
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }

    /// Whether `path` exists once this transaction is committed (removals aside).
    pub fn exists(&self, path: &Path) -> bool {
        self.primary.iter().any(|w| w.path == path) || path.exists()
    }

    /// Stages a private key, or anything that embeds one (0600).
    pub fn put_secret(&mut self, path: PathBuf, contents: impl Into<Vec<u8>>) {
        self.put(path, contents.into(), SECRET);
    }

    /// Stages a certificate (0644).
    pub fn put_public(&mut self, path: PathBuf, contents: impl Into<Vec<u8>>) {
        self.put(path, contents.into(), PUBLIC);
    }

    fn put(&mut self, path: PathBuf, contents: Vec<u8>, mode: u32) {
        self.primary.push(Write {
            path,
            contents,
            mode,
        });
    }

    /// Rewrites `crl.pem` from the index: `fresh` (CA serial, PEM) for the CAs just
    /// re-signed, the current CRL for every other trusted CA.
    pub fn rewrite_crls(&mut self, fresh: Vec<(String, String)>) {
        self.crls.get_or_insert_with(Vec::new).extend(fresh);
    }

    /// Rewrites `ca.pem` from the index.
    pub fn rewrite_bundle(&mut self) {
        self.bundle = true;
    }

    /// Moves a retired CA's certificate to `cas/retired/` and deletes its key.
    pub fn archive_ca(&mut self, serial: &str) {
        self.retired.push(serial.to_owned());
    }

    /// Everything the commit will do, in order, computed without writing.
    pub fn plan(&self) -> Result<Vec<Step>, PkiError> {
        let derived = |path: PathBuf, text: String| {
            Step::Write(Write {
                path,
                contents: text.into_bytes(),
                mode: PUBLIC,
            })
        };
        let mut steps: Vec<Step> = self.primary.iter().cloned().map(Step::Write).collect();
        steps.push(derived(
            self.layout.index(),
            self.index.to_toml(&self.layout)?,
        ));
        if let Some(fresh) = &self.crls {
            steps.push(derived(self.layout.crl(), ca::render_crls(self, fresh)?));
        }
        if self.bundle {
            steps.push(derived(self.layout.bundle(), ca::render_bundle(self)?));
        }
        for serial in &self.retired {
            steps.push(Step::Move {
                from: self.layout.old_ca_cert(serial),
                to: self.layout.retired_ca_cert(serial),
            });
            steps.push(Step::Remove(self.layout.old_ca_key(serial)));
        }
        Ok(steps)
    }

    /// Writes the transaction in the fixed order, then releases the lock.
    pub fn commit(self) -> Result<Index, PkiError> {
        for step in self.plan()? {
            apply(step)?;
        }
        Ok(self.index)
    }
}

impl Vacant {
    /// Starts the transaction that makes the CA `index` records.
    pub fn begin(self, index: Index) -> CertsDir {
        CertsDir {
            layout: self.layout,
            index,
            primary: Vec::new(),
            crls: None,
            bundle: false,
            retired: Vec::new(),
            _lock: self.lock,
        }
    }
}

fn apply(step: Step) -> Result<(), PkiError> {
    match step {
        Step::Write(Write {
            path,
            contents,
            mode,
        }) => {
            if let Some(parent) = path.parent() {
                store::ensure_private_dir(parent)?;
            }
            store::write_atomic(&path, &contents, mode)
        }
        Step::Move { from, to } => {
            if let Some(parent) = to.parent() {
                store::ensure_private_dir(parent)?;
            }
            std::fs::rename(&from, &to).map_err(|e| PkiError::io("move", &from, e))
        }
        Step::Remove(path) => store::remove_if_exists(&path),
    }
}

/// Takes the directory's writer lock (`.lock`), held until the file is dropped.
fn lock(layout: &Layout) -> Result<File, PkiError> {
    store::ensure_private_dir(layout.dir())?;
    let path = layout.lock();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(SECRET)
        .open(&path)
        .map_err(|e| PkiError::io("open", &path, e))?;
    file.lock().map_err(|e| PkiError::io("lock", &path, e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::pki::index::CaState;
    use crate::pki::pem;
    use crate::pki::tests::tempdir;
    use crate::pki::{init, revoke, rotate_ca, InitOptions, PkiError, RevokeTarget};

    /// Every file under `dir` with its mode and contents.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
        let mut out = BTreeMap::new();
        let mut todo = vec![dir.to_owned()];
        while let Some(d) = todo.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                let meta = std::fs::metadata(&path).unwrap();
                if meta.is_dir() {
                    todo.push(path);
                } else {
                    let mode = meta.permissions().mode() & 0o777;
                    out.insert(path.clone(), (mode, std::fs::read(&path).unwrap()));
                }
            }
        }
        out
    }

    fn rotated(tag: &str) -> (crate::pki::tests::TempDir, PathBuf) {
        let tmp = tempdir(tag);
        let dir = tmp.join("certs");
        init(&dir, &InitOptions::default()).unwrap();
        rotate_ca(&dir, &InitOptions::default()).unwrap();
        (tmp, dir)
    }

    fn target(step: &Step) -> &Path {
        match step {
            Step::Write(Write { path, .. }) | Step::Remove(path) => path,
            Step::Move { to, .. } => to,
        }
    }

    #[test]
    fn commit_order_is_primary_index_crl_bundle_then_removals() {
        let (_tmp, dir) = rotated("order");
        let mut d = CertsDir::open(&dir).unwrap();
        let l = d.layout().clone();
        let old = d.index.trusted_cas()[1].serial.clone();
        // Staged in the opposite order on purpose: the commit order does not depend on it.
        d.rewrite_bundle();
        d.archive_ca(&old);
        d.rewrite_crls(Vec::new());
        d.index.ca_mut(&old).unwrap().state = CaState::Retired;
        d.put_secret(l.server_key(), "key");
        d.put_public(l.server_cert(), "cert");
        let plan = d.plan().unwrap();
        let order: Vec<&Path> = plan.iter().map(target).collect();
        let (retired, old_key) = (l.retired_ca_cert(&old), l.old_ca_key(&old));
        assert_eq!(
            order,
            [
                l.server_key().as_path(),
                &l.server_cert(),
                &l.index(),
                &l.crl(),
                &l.bundle(),
                &retired,
                &old_key,
            ]
        );
        let modes: Vec<u32> = plan
            .iter()
            .filter_map(|s| match s {
                Step::Write(w) => Some(w.mode),
                _ => None,
            })
            .collect();
        assert_eq!(modes, [SECRET, PUBLIC, PUBLIC, PUBLIC, PUBLIC]);
    }

    #[test]
    fn every_commit_writes_the_index_and_only_what_was_staged() {
        let (_tmp, dir) = rotated("index-only");
        let d = CertsDir::open(&dir).unwrap();
        let plan = d.plan().unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(target(&plan[0]), d.layout().index());
    }

    #[test]
    fn the_view_reads_staged_files_before_disk() {
        let (_tmp, dir) = rotated("view");
        let mut d = CertsDir::open(&dir).unwrap();
        let l = d.layout().clone();
        assert!(!d.exists(&l.server_cert()));
        d.put_public(l.server_cert(), "one");
        d.put_public(l.server_cert(), "two");
        assert!(d.exists(&l.server_cert()));
        assert_eq!(&*d.read(&l.server_cert()).unwrap(), b"two");
        assert_eq!(
            d.read_string(&l.bundle()).unwrap(),
            std::fs::read_to_string(l.bundle()).unwrap()
        );
    }

    #[test]
    fn the_lock_is_held_until_commit_or_drop() {
        let (_tmp, dir) = rotated("lock");
        let probe = || {
            File::options()
                .write(true)
                .open(dir.join(".lock"))
                .unwrap()
                .try_lock()
        };
        let d = CertsDir::open(&dir).unwrap();
        assert!(probe().is_err(), "open holds the lock");
        d.commit().unwrap();
        assert!(probe().is_ok(), "commit releases it");
        let d = CertsDir::open(&dir).unwrap();
        assert!(probe().is_err());
        drop(d);
        assert!(probe().is_ok(), "dropping releases it");
    }

    #[test]
    fn a_failed_transaction_writes_nothing() {
        let (_tmp, dir) = rotated("fail");
        let l = Layout::new(&dir);
        // Refused in the command: the CA key that must re-sign is missing.
        crate::pki::issue_client(&dir, &crate::pki::ClientRequest::new("a", "ci")).unwrap();
        let key = std::fs::read(l.ca_key()).unwrap();
        std::fs::remove_file(l.ca_key()).unwrap();
        let before = snapshot(&dir);
        let err = revoke(&dir, &RevokeTarget::Name("a".into()), &[]).unwrap_err();
        assert!(matches!(err, PkiError::CaKeyMissing { .. }), "{err}");
        assert_eq!(snapshot(&dir), before);
        std::fs::write(l.ca_key(), key).unwrap();

        // Refused while committing, after primary files were staged: crl.pem lacks the
        // older CA's CRL and nothing may re-sign it.
        let crls = std::fs::read_to_string(l.crl()).unwrap();
        std::fs::write(l.crl(), pem::blocks(&crls, "X509 CRL")[0]).unwrap();
        let before = snapshot(&dir);
        let mut d = CertsDir::open(&dir).unwrap();
        d.put_secret(l.server_key(), "key");
        d.put_public(l.server_cert(), "cert");
        d.index.certs.clear();
        d.rewrite_crls(Vec::new());
        let err = d.commit().unwrap_err();
        assert!(matches!(err, PkiError::CrlMissing { .. }), "{err}");
        assert_eq!(snapshot(&dir), before);
    }
}
