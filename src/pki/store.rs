//! File names of a certs directory and crash-safe writes.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::PkiError;

/// Mode of private keys and of anything that embeds one.
pub(crate) const SECRET: u32 = 0o600;
/// Mode of certificates, CRLs and the index.
pub(crate) const PUBLIC: u32 = 0o644;

/// The names inside a certs directory (see the module docs for what each holds).
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca-cert.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca-key.pem")
    }
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server-cert.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }
    pub fn index(&self) -> PathBuf {
        self.dir.join("index.toml")
    }
    pub fn cas(&self) -> PathBuf {
        self.dir.join("cas")
    }
    pub fn old_ca_cert(&self, serial: &str) -> PathBuf {
        self.cas().join(format!("{serial}-cert.pem"))
    }
    pub fn old_ca_key(&self, serial: &str) -> PathBuf {
        self.cas().join(format!("{serial}-key.pem"))
    }
    pub fn retired(&self) -> PathBuf {
        self.cas().join("retired")
    }
    pub fn retired_ca_cert(&self, serial: &str) -> PathBuf {
        self.retired().join(format!("{serial}-cert.pem"))
    }
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, PkiError> {
    fs::read(path).map_err(|e| PkiError::io("read", path, e))
}

pub(crate) fn read_string(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|e| PkiError::io("read", path, e))
}

/// Takes the certs directory's writer lock (`.lock`, held until the file
/// is dropped), so that a `pki` command, the gateway's self-renewals and a
/// CRL refresh timer never interleave their index updates.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, PkiError> {
    ensure_private_dir(dir)?;
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| PkiError::io("open", &path, e))?;
    file.lock().map_err(|e| PkiError::io("lock", &path, e))?;
    Ok(file)
}

/// Creates `dir` (and parents) owner-only when missing; leaves an existing one alone.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), PkiError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PkiError::io("create directory", dir, e))
}

/// Replaces `path` with `contents` so readers see the old or the new file, never a mix:
/// write a temporary file beside it with its final mode, fsync, rename, fsync the directory.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = write_new(&tmp, contents, mode)
        .and_then(|()| fs::rename(&tmp, path))
        .and_then(|()| File::open(&dir)?.sync_all());
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        PkiError::io("write", path, e)
    })
}

fn write_new(tmp: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    match fs::remove_file(tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(tmp)?;
    // The umask may have narrowed the mode; make it exact.
    f.set_permissions(fs::Permissions::from_mode(mode))?;
    f.write_all(contents)?;
    f.sync_all()
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<(), PkiError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(PkiError::io("remove", path, e)),
        _ => Ok(()),
    }
}

/// The PEM blocks labelled `label` in `text`, each from its BEGIN line to its END line.
pub(crate) fn pem_blocks<'a>(text: &'a str, label: &str) -> Vec<&'a str> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(b) = rest.find(&begin) {
        let Some(e) = rest[b..].find(&end) else { break };
        let stop = b + e + end.len();
        out.push(&rest[b..stop]);
        rest = &rest[stop..];
    }
    out
}

/// Joins PEM blocks with one newline after each.
pub(crate) fn join_pem<'a>(blocks: impl IntoIterator<Item = &'a str>) -> String {
    blocks.into_iter().fold(String::new(), |mut s, b| {
        s.push_str(b.trim_end());
        s.push('\n');
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_sets_exact_mode_and_replaces() {
        let dir = super::super::tests::tempdir("store");
        let p = dir.join("k.pem");
        write_atomic(&p, b"one", SECRET).unwrap();
        write_atomic(&p, b"two", SECRET).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        write_atomic(&p, b"three", PUBLIC).unwrap();
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn pem_blocks_split_and_join() {
        let text = "junk\n-----BEGIN X509 CRL-----\nAA\n-----END X509 CRL-----\n\
                    -----BEGIN CERTIFICATE-----\nBB\n-----END CERTIFICATE-----\n\
                    -----BEGIN X509 CRL-----\nCC\n-----END X509 CRL-----";
        let blocks = pem_blocks(text, "X509 CRL");
        assert_eq!(blocks.len(), 2);
        assert!(blocks[1].contains("CC"));
        assert_eq!(
            join_pem(blocks),
            "-----BEGIN X509 CRL-----\nAA\n-----END X509 CRL-----\n\
             -----BEGIN X509 CRL-----\nCC\n-----END X509 CRL-----\n"
        );
    }
}
