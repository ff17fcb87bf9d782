//! Docker contexts for an issued client: the `docker context create` line and a file in
//! the format of `docker context export`, which `docker context import` reads back.
//!
//! The export is an uncompressed tar holding `meta.json` and `tls/docker/{ca,cert,key}.pem`,
//! the layout the Docker CLI's context store writes. It is one file, so a CI system can
//! keep it as one secret (base64 of the file) and a job unpacks it with
//! `base64 -d | docker context import NAME -`.

use std::path::{Path, PathBuf};

use super::error::PkiError;
use super::layout::DockerCertPath;

/// The TLS material and endpoint of one Docker context.
pub(crate) struct Context<'a> {
    pub name: &'a str,
    pub host: &'a str,
    pub description: String,
    pub ca_pem: &'a str,
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

/// Docker's context name rule: `^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$`, not "default".
pub(crate) fn check_name(name: &str) -> Result<(), PkiError> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok =
        bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'));
    if name.len() < 2 || !first_ok || !rest_ok || name == "default" {
        return Err(PkiError::InvalidContextName {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// `tcp://HOST:PORT` with a non-empty host and a numeric port.
pub(crate) fn check_host(host: &str) -> Result<(), PkiError> {
    let ok = host.strip_prefix("tcp://").is_some_and(|rest| {
        rest.rsplit_once(':').is_some_and(|(h, port)| {
            !h.is_empty() && !h.contains('/') && port.parse::<u16>().is_ok_and(|p| p != 0)
        })
    });
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidHost {
            host: host.to_owned(),
        })
    }
}

/// `docker context create NAME --docker 'host=…,ca=…,cert=…,key=…'`, shell-quoted.
pub(crate) fn create_command(name: &str, host: &str, cert_dir: &Path) -> String {
    let files = DockerCertPath::new(cert_dir);
    let file = |f: PathBuf| csv_field(&f.to_string_lossy());
    let spec = format!(
        "host={},ca={},cert={},key={}",
        csv_field(host),
        file(files.ca()),
        file(files.cert()),
        file(files.key())
    );
    format!(
        "docker context create {} --docker {}",
        shell_quote(name),
        shell_quote(&spec)
    )
}

/// Docker parses `--docker` as one CSV record: quote values holding `,` or `"`.
fn csv_field(value: &str) -> String {
    if value.contains([',', '"']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

fn shell_quote(value: &str) -> String {
    let plain = value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_.,+-=/:@".contains(&b));
    if plain && !value.is_empty() {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

impl Context<'_> {
    /// The `docker context export` tar for this context.
    pub(crate) fn export_tar(&self, mtime: u64) -> Vec<u8> {
        let meta = serde_json::json!({
            "Name": self.name,
            "Metadata": { "Description": self.description },
            "Endpoints": { "docker": { "Host": self.host, "SkipTLSVerify": false } },
        })
        .to_string();
        let mut tar = Vec::new();
        append(&mut tar, "meta.json", 0o644, Some(meta.as_bytes()), mtime);
        append(&mut tar, "tls", 0o700, None, mtime);
        append(&mut tar, "tls/docker", 0o700, None, mtime);
        // The context store keeps the files under DOCKER_CERT_PATH's names.
        for (name, body) in [
            (DockerCertPath::CA, self.ca_pem),
            (DockerCertPath::CERT, self.cert_pem),
            (DockerCertPath::KEY, self.key_pem),
        ] {
            let path = format!("tls/docker/{name}");
            append(&mut tar, &path, 0o600, Some(body.as_bytes()), mtime);
        }
        // End of archive: two zero blocks.
        tar.resize(tar.len() + 1024, 0);
        tar
    }
}

/// Appends one ustar entry: a regular file when `body` is given, else a directory.
/// Names here are short ASCII constants, well inside the 100-byte name field.
fn append(tar: &mut Vec<u8>, name: &str, mode: u32, body: Option<&[u8]>, mtime: u64) {
    let mut header = [0u8; 512];
    let put =
        |h: &mut [u8; 512], at: usize, bytes: &[u8]| h[at..at + bytes.len()].copy_from_slice(bytes);
    let octal = |value: u64, width: usize| format!("{value:0w$o}\0", w = width - 1);
    let size = body.map_or(0, |b| b.len() as u64);
    put(&mut header, 0, name.as_bytes());
    put(&mut header, 100, octal(u64::from(mode), 8).as_bytes());
    put(&mut header, 108, octal(0, 8).as_bytes());
    put(&mut header, 116, octal(0, 8).as_bytes());
    put(&mut header, 124, octal(size, 12).as_bytes());
    put(&mut header, 136, octal(mtime, 12).as_bytes());
    put(&mut header, 156, if body.is_some() { b"0" } else { b"5" });
    put(&mut header, 257, b"ustar\0");
    put(&mut header, 263, b"00");
    // Checksum: sum of all header bytes with the checksum field read as spaces.
    put(&mut header, 148, b"        ");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    put(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
    tar.extend_from_slice(&header);
    if let Some(body) = body {
        tar.extend_from_slice(body);
        let pad = (512 - body.len() % 512) % 512;
        tar.resize(tar.len() + pad, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn sample() -> Context<'static> {
        Context {
            name: "ci-gw",
            host: "tcp://gw.example:2376",
            description: "dockgate client ci (role ci)".into(),
            ca_pem: "CA\n",
            cert_pem: "CERT\n",
            key_pem: "KEY\n",
        }
    }

    #[test]
    fn names_and_hosts_follow_docker_rules() {
        assert!(check_name("ci-gw.prod+1").is_ok());
        for bad in ["", "x", "default", "-ci", "ci gw", "ci/gw"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_host("tcp://gw.example:2376").is_ok());
        assert!(check_host("tcp://[::1]:2376").is_ok());
        for bad in [
            "gw:2376",
            "tcp://gw",
            "tcp://:2376",
            "https://gw:2376",
            "tcp://gw:0",
        ] {
            assert!(check_host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_command_quotes_for_shell_and_csv() {
        let line = create_command("ci-gw", "tcp://gw:2376", Path::new("/certs/ci"));
        assert_eq!(
            line,
            "docker context create ci-gw --docker \
             host=tcp://gw:2376,ca=/certs/ci/ca.pem,cert=/certs/ci/cert.pem,key=/certs/ci/key.pem"
        );
        let line = create_command("ci-gw", "tcp://gw:2376", Path::new("/my certs/a,b"));
        assert!(
            line.ends_with("'host=tcp://gw:2376,ca=\"/my certs/a,b/ca.pem\",cert=\"/my certs/a,b/cert.pem\",key=\"/my certs/a,b/key.pem\"'"),
            "{line}"
        );
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn export_is_a_tar_that_tar_reads() {
        let dir = super::super::tests::tempdir("context-tar");
        let file = dir.join("ci-gw.dockercontext");
        std::fs::write(&file, sample().export_tar(1_700_000_000)).unwrap();
        let listing = Command::new("tar").arg("-tvf").arg(&file).output().unwrap();
        assert!(listing.status.success(), "{listing:?}");
        let text = String::from_utf8_lossy(&listing.stdout);
        for entry in ["meta.json", " tls", " tls/docker", "tls/docker/key.pem"] {
            assert!(
                text.lines().any(|l| l.ends_with(entry)),
                "{entry} missing in {text}"
            );
        }
        assert!(text.contains("-rw-------"), "{text}");
        let out = Command::new("tar")
            .arg("-xOf")
            .arg(&file)
            .arg("meta.json")
            .output()
            .unwrap();
        let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(meta["Endpoints"]["docker"]["Host"], "tcp://gw.example:2376");
        let key = Command::new("tar")
            .arg("-xOf")
            .arg(&file)
            .arg("tls/docker/key.pem")
            .output()
            .unwrap();
        assert_eq!(key.stdout, b"KEY\n");
    }
}
