//! Replacing the files of a `DOCKER_CERT_PATH` (`key.pem`, `cert.pem`,
//! `ca.pem`) as one.
//!
//! Renaming each file into place is atomic per file only: `dockgate renew`
//! wrote `key.pem` before `cert.pem`, and a crash between the two left a
//! key that does not match its certificate, a client that can no longer
//! connect, and so no way to renew (issue 8). Readers must instead see the
//! old set or the new set, never a mix, at every instant, crash or not.
//!
//! So the files live in a generation directory, and the names readers open
//! are symlinks through one more symlink that picks the generation — the
//! layout Kubernetes uses for its volumes:
//!
//! ```text
//! cert.pem -> .dockgate-live/cert.pem     (likewise key.pem, ca.pem)
//! .dockgate-live -> .dockgate-gen-<stamp>
//! .dockgate-gen-<stamp>/{cert,key,ca}.pem
//! ```
//!
//! A replacement writes a new generation, then renames a new
//! `.dockgate-live` over the old one: one atomic rename switches every file.
//! A directory of plain files (as `pki client --out` writes it) is first
//! moved to that layout with its files unchanged — each name keeps its
//! content while it becomes a symlink — and only then switched. Leftover
//! generations (of a replacement that crashed) are removed by the next one.
//! All symlinks are relative, so the directory can be moved or copied
//! (`cp -rL`, `docker context create` reads through them).
//!
//! A reader that opens the files one by one across a switch can still pair
//! an old certificate with a new key; that is a reader's race, which a
//! retry settles, whereas a crash left the directory itself broken.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::PkiError;
use super::layout::DockerCertPath;
use super::store;

/// The symlink that picks the live generation.
pub(crate) const LIVE: &str = ".dockgate-live";
/// How generation directories are named.
const GENERATION: &str = ".dockgate-gen-";

/// One step of a replacement. The directory reads consistently after every
/// step, so a crash between any two leaves a usable set.
#[derive(Debug)]
enum Step {
    /// Creates an (owner-only) generation directory.
    CreateDir(PathBuf),
    /// Writes a file of a generation not yet live.
    Write(PathBuf, Vec<u8>, u32),
    /// Points `link` at `target`: a symlink made beside it, renamed over it.
    Link { link: PathBuf, target: PathBuf },
    /// Makes the directory's entries durable.
    Sync(PathBuf),
    /// Removes a generation no name leads to.
    RemoveDir(PathBuf),
}

impl DockerCertPath {
    /// Replaces the client's certificate and CA bundle, and its key when
    /// given, as one set. Without a new key the current `key.pem`, if any,
    /// is carried into the new set unchanged.
    pub fn replace(
        &self,
        key_pem: Option<&str>,
        cert_pem: &str,
        ca_pem: &str,
    ) -> Result<(), PkiError> {
        let kept;
        let key = match key_pem {
            Some(key) => Some(key.as_bytes()),
            None => match fs::read(self.key()) {
                Ok(bytes) => {
                    kept = bytes;
                    Some(kept.as_slice())
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(PkiError::io("read", self.key(), e)),
            },
        };
        let mut files = vec![
            (Self::CERT, cert_pem.as_bytes(), store::PUBLIC),
            (Self::CA, ca_pem.as_bytes(), store::PUBLIC),
        ];
        if let Some(key) = key {
            files.insert(0, (Self::KEY, key, store::SECRET));
        }
        replace(self.dir(), &files)
    }
}

/// Replaces the files of `dir` named in `files` (name, contents, mode) as
/// one set.
fn replace(dir: &Path, files: &[(&str, &[u8], u32)]) -> Result<(), PkiError> {
    for step in plan(dir, files)? {
        apply(&step)?;
    }
    Ok(())
}

fn plan(dir: &Path, files: &[(&str, &[u8], u32)]) -> Result<Vec<Step>, PkiError> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let generation = |n: u8| format!("{GENERATION}{stamp}-{}-{n}", std::process::id());
    let through_live = |name: &str| Path::new(LIVE).join(name);
    let mut steps = Vec::new();
    let mut linked = Vec::new();

    let migrated = fs::read_link(dir.join(LIVE)).is_ok()
        && files
            .iter()
            .all(|(name, ..)| fs::read_link(dir.join(name)).ok() == Some(through_live(name)));
    let mut current = Vec::new();
    if !migrated {
        for (name, ..) in files {
            let path = dir.join(name);
            match fs::read(&path) {
                Ok(bytes) => {
                    let mode = fs::metadata(&path)
                        .map_err(|e| PkiError::io("read", &path, e))?
                        .permissions()
                        .mode()
                        & 0o777;
                    current.push((*name, bytes, mode));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(PkiError::io("read", &path, e)),
            }
        }
    }
    let migrating = !current.is_empty();
    if migrating {
        // Today's files, unchanged, in a generation of their own; then each
        // name becomes a symlink to the very same content.
        let old = dir.join(generation(0));
        steps.push(Step::CreateDir(old.clone()));
        for (name, bytes, mode) in current {
            steps.push(Step::Write(old.join(name), bytes, mode));
            linked.push(name);
        }
        steps.push(Step::Sync(old));
        steps.push(Step::Link {
            link: dir.join(LIVE),
            target: PathBuf::from(generation(0)),
        });
        for name in &linked {
            steps.push(Step::Link {
                link: dir.join(name),
                target: through_live(name),
            });
        }
        steps.push(Step::Sync(dir.to_owned()));
    } else if migrated {
        linked.extend(files.iter().map(|(name, ..)| *name));
    }

    let new = dir.join(generation(1));
    steps.push(Step::CreateDir(new.clone()));
    for (name, contents, mode) in files {
        steps.push(Step::Write(new.join(name), contents.to_vec(), *mode));
    }
    steps.push(Step::Sync(new));
    steps.push(Step::Link {
        link: dir.join(LIVE),
        target: PathBuf::from(generation(1)),
    });
    // Names that did not exist before appear only now, each leading into
    // the new set already.
    for (name, ..) in files.iter().filter(|(name, ..)| !linked.contains(name)) {
        steps.push(Step::Link {
            link: dir.join(name),
            target: through_live(name),
        });
    }
    steps.push(Step::Sync(dir.to_owned()));

    let mut stale = vec![];
    if migrating {
        stale.push(dir.join(generation(0)));
    }
    for entry in fs::read_dir(dir).map_err(|e| PkiError::io("read directory", dir, e))? {
        let entry = entry.map_err(|e| PkiError::io("read directory", dir, e))?;
        if entry.file_name().to_string_lossy().starts_with(GENERATION) {
            stale.push(entry.path());
        }
    }
    steps.extend(stale.into_iter().map(Step::RemoveDir));
    Ok(steps)
}

fn apply(step: &Step) -> Result<(), PkiError> {
    match step {
        Step::CreateDir(path) => store::ensure_private_dir(path),
        Step::Write(path, contents, mode) => {
            store::write_new(path, contents, *mode).map_err(|e| PkiError::io("write", path, e))
        }
        Step::Link { link, target } => {
            let dir = link.parent().unwrap_or(Path::new("."));
            let name = link.file_name().unwrap_or_default().to_string_lossy();
            let tmp = dir.join(format!(".{name}.link{}", std::process::id()));
            let made = match fs::remove_file(&tmp) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => symlink(target, &tmp).and_then(|()| fs::rename(&tmp, link)),
            };
            made.map_err(|e| {
                let _ = fs::remove_file(&tmp);
                PkiError::io("link", link, e)
            })
        }
        Step::Sync(dir) => fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| PkiError::io("sync", dir, e)),
        Step::RemoveDir(path) => {
            fs::remove_dir_all(path).map_err(|e| PkiError::io("remove", path, e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::tests::tempdir;

    /// A key and a certificate for it, as PEM.
    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (key.serialize_pem(), cert.pem())
    }

    /// What a Docker client would load from `dir`, and whether key and
    /// certificate belong together.
    fn loaded(dir: &Path) -> (String, String, String, bool) {
        let read = |name: &str| {
            fs::read_to_string(dir.join(name))
                .unwrap_or_else(|e| panic!("{name} cannot be read: {e}"))
        };
        let (key, cert, ca) = (read("key.pem"), read("cert.pem"), read("ca.pem"));
        let key_pair = rcgen::KeyPair::from_pem(&key).unwrap();
        let der = crate::pki::pem::certs_in(cert.as_bytes(), Path::new("cert.pem")).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
        let matches = crate::pki::keys::key_matches_spki(&key_pair, parsed.public_key().raw);
        (key, cert, ca, matches)
    }

    fn files<'a>(key: &'a str, cert: &'a str, ca: &'a str) -> [(&'static str, &'a [u8], u32); 3] {
        [
            ("key.pem", key.as_bytes(), store::SECRET),
            ("cert.pem", cert.as_bytes(), store::SECRET),
            ("ca.pem", ca.as_bytes(), store::SECRET),
        ]
    }

    /// A crash after any step of a replacement leaves the old set or the
    /// new set, each matching, and the next replacement completes.
    #[test]
    fn a_crash_at_any_step_leaves_a_matching_set() {
        let (old_key, old_cert) = pair();
        let (new_key, new_cert) = pair();
        let (next_key, next_cert) = pair();
        for migrated in [false, true] {
            let mut k = 0;
            loop {
                let dir = tempdir("swap");
                if migrated {
                    replace(&dir, &files(&old_key, &old_cert, "old ca")).unwrap();
                } else {
                    // As `pki client --out` leaves it: plain files.
                    for (name, contents, mode) in files(&old_key, &old_cert, "old ca") {
                        store::write_atomic(&dir.join(name), contents, mode).unwrap();
                    }
                }
                let steps = plan(&dir, &files(&new_key, &new_cert, "new ca")).unwrap();
                let crashed = k < steps.len();
                for step in steps.iter().take(k) {
                    apply(step).unwrap();
                    let (key, _, ca, matches) = loaded(&dir);
                    assert!(
                        matches,
                        "mismatched pair after {step:?} (migrated: {migrated})"
                    );
                    let old = key == old_key && ca == "old ca";
                    let new = key == new_key && ca == "new ca";
                    assert!(old || new, "a mixed set after {step:?}");
                }
                if !crashed {
                    let (key, cert, ca, _) = loaded(&dir);
                    assert_eq!(
                        (key, cert, ca.as_str()),
                        (new_key.clone(), new_cert.clone(), "new ca")
                    );
                    let names: Vec<String> = fs::read_dir(&*dir)
                        .unwrap()
                        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                        .filter(|n| n.starts_with(GENERATION))
                        .collect();
                    assert_eq!(names.len(), 1, "stale generations: {names:?}");
                    break;
                }
                replace(&dir, &files(&next_key, &next_cert, "next ca")).unwrap();
                let (key, cert, ca, matches) = loaded(&dir);
                assert!(matches);
                assert_eq!(
                    (key, cert, ca.as_str()),
                    (next_key.clone(), next_cert.clone(), "next ca")
                );
                k += 1;
            }
        }
    }

    #[test]
    fn without_a_new_key_the_key_is_carried_over() {
        let dir = tempdir("swap-csr");
        let files = DockerCertPath::new(&dir);
        // A fresh directory: the set appears at once.
        let (key, cert) = pair();
        files.replace(Some(&key), &cert, "ca").unwrap();
        // A certificate for a CSR: same key, new certificate.
        let key_pair = rcgen::KeyPair::from_pem(&key).unwrap();
        let renewed = rcgen::CertificateParams::new(vec!["client".into()])
            .unwrap()
            .self_signed(&key_pair)
            .unwrap()
            .pem();
        files.replace(None, &renewed, "ca 2").unwrap();
        let (now_key, now_cert, ca, matches) = loaded(&dir);
        assert!(matches);
        assert_eq!((now_key, now_cert, ca.as_str()), (key, renewed, "ca 2"));
    }

    #[test]
    fn files_keep_their_modes_and_the_links_are_relative() {
        let dir = tempdir("swap-modes");
        let (key, cert) = pair();
        replace(&dir, &files(&key, &cert, "ca")).unwrap();
        let mode = fs::metadata(dir.join("key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, store::SECRET);
        assert_eq!(
            fs::read_link(dir.join("key.pem")).unwrap(),
            Path::new(LIVE).join("key.pem")
        );
        assert!(fs::read_link(dir.join(LIVE)).unwrap().is_relative());
    }
}
