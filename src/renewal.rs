//! Self-renewal of client certificates, on the gateway's own listener.
//!
//! A client holding a valid, unrevoked certificate POSTs a CSR to
//! [`RENEW_PATH`] and gets a fresh certificate for the same name and role,
//! never living longer than the one it presented. The private key never
//! leaves the client, and no administrator is involved, so CI runners can
//! live on short-lived certificates. Renewals are rate-limited per name and
//! audited like any other request.
//!
//! [`renew`] is the client half, behind `dockgate renew`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::{Deserialize, Serialize};

use crate::proxy::error::ErrorChain;

/// The dockgate-owned path; dockerd has no route under `/_dockgate`.
pub const RENEW_PATH: &str = "/_dockgate/renew";
/// Where the renewed client, connecting with its new certificate, retires
/// the one it replaced (body: that certificate's SHA-256 fingerprint).
pub const RETIRE_PATH: &str = "/_dockgate/renew/retire";
/// Operation name used in audit lines.
pub const OPERATION: &str = "DockgateRenew";
/// Operation name of a retirement in audit lines.
pub const RETIRE_OPERATION: &str = "DockgateRetire";
/// Largest CSR accepted.
const CSR_LIMIT: usize = 64 * 1024;
/// One renewal per certificate name per this interval.
const MIN_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize)]
pub struct Renewed {
    /// The new certificate, PEM.
    pub certificate: String,
    /// The trust bundle to verify the gateway with, PEM.
    pub ca: String,
}

/// Gateway side: signs renewals from one certs directory, one at a time.
#[derive(Debug)]
pub struct Renewer {
    certs: PathBuf,
    last: tokio::sync::Mutex<HashMap<String, Instant>>,
}

/// Why a renewal was refused, with its HTTP status.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl Renewer {
    pub fn new(certs: PathBuf) -> Renewer {
        Renewer {
            certs,
            last: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Signs a renewal for the holder of `leaf` (already verified by TLS).
    pub async fn renew(
        self: &Arc<Self>,
        name: &str,
        leaf: &[u8],
        csr: Bytes,
    ) -> Result<Renewed, Refusal> {
        let refuse = |status, message: String| Refusal { status, message };
        let csr = String::from_utf8(csr.to_vec())
            .map_err(|_| refuse(StatusCode::BAD_REQUEST, "the CSR is not PEM text".into()))?;
        // Holding the lock across signing keeps the rate limit exact; the
        // certs directory's own lock orders it with `pki` commands.
        let mut last = self.last.lock().await;
        if let Some(at) = last.get(name) {
            if at.elapsed() < MIN_INTERVAL {
                return Err(refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "dockgate: {name} renewed less than {}s ago",
                        MIN_INTERVAL.as_secs()
                    ),
                ));
            }
        }
        let certs = self.certs.clone();
        let leaf = leaf.to_vec();
        let issued = tokio::task::spawn_blocking(move || {
            crate::pki::sign_renewal(&certs, None, &leaf, &csr)
        })
        .await
        .map_err(|e| {
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("dockgate: renewal failed: {e}"),
            )
        })?
        .map_err(|e| match e {
            crate::pki::PkiError::RenewalRefused(r) => refuse(
                StatusCode::FORBIDDEN,
                format!("dockgate: renewal refused: {r}"),
            ),
            other => refuse(
                StatusCode::BAD_REQUEST,
                format!("dockgate: renewal failed: {other}"),
            ),
        })?;
        last.insert(name.to_owned(), Instant::now());
        Ok(Renewed {
            certificate: issued.cert_pem,
            ca: issued.ca_pem,
        })
    }
}

impl Renewer {
    /// Revokes the certificate the holder of `leaf` replaced by renewing.
    pub async fn retire(&self, leaf: &[u8], replaced: Bytes) -> Result<String, Refusal> {
        let refuse = |status, message: String| Refusal { status, message };
        let replaced = String::from_utf8(replaced.to_vec()).map_err(|_| {
            refuse(
                StatusCode::BAD_REQUEST,
                "dockgate: the body is not a fingerprint".into(),
            )
        })?;
        let certs = self.certs.clone();
        let leaf = leaf.to_vec();
        let retired = tokio::task::spawn_blocking(move || {
            crate::pki::retire_replaced(&certs, &leaf, &replaced)
        })
        .await
        .map_err(|e| {
            refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("dockgate: retiring failed: {e}"),
            )
        })?
        .map_err(|e| match e {
            crate::pki::PkiError::RenewalRefused(r) => refuse(
                StatusCode::FORBIDDEN,
                format!("dockgate: retiring refused: {r}"),
            ),
            other => refuse(
                StatusCode::BAD_REQUEST,
                format!("dockgate: retiring failed: {other}"),
            ),
        })?;
        Ok(retired.serial)
    }
}

/// Reads the CSR body of a renewal request.
pub async fn read_csr<B>(body: B) -> Result<Bytes, Refusal>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    http_body_util::Limited::new(body, CSR_LIMIT)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| Refusal {
            status: StatusCode::BAD_REQUEST,
            message: format!("dockgate: cannot read the CSR: {e}"),
        })
}

// ---- Client side ----

#[derive(Debug)]
pub struct RenewError(String);

impl std::fmt::Display for RenewError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RenewError {}

fn err(context: &str, e: impl std::fmt::Display) -> RenewError {
    RenewError(format!("{context}: {e}"))
}

/// Parses a lifetime such as `7d`, `36h`, `90m`, `3600s` or `2w`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let unit_at = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} has no unit: use s, m, h, d or w, e.g. 7d"))?;
    let (number, unit) = s.split_at(unit_at);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} does not start with a number"))?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit {unit:?} (use s, m, h, d or w)"
            ))
        }
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// When the certificate in `cert_path` expires, if that is not within
/// `within` from now: then there is nothing to renew yet.
pub fn not_due(cert_path: &Path, within: Duration) -> Result<Option<String>, RenewError> {
    let files = crate::pki::DockerCertPath::new(cert_path);
    let chain = crate::pki::pem::certs(&files.cert()).map_err(|e| RenewError(e.to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| RenewError(format!("{} holds no certificate", files.cert().display())))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| err("cert.pem", e))?;
    let not_after = cert.validity().not_after;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| err("clock", e))?;
    let deadline = i64::try_from(now.saturating_add(within).as_secs()).unwrap_or(i64::MAX);
    Ok((not_after.timestamp() > deadline).then(|| not_after.to_string()))
}

/// Renews the certificate in `cert_path` (a DOCKER_CERT_PATH directory)
/// through the gateway at `host` (`tcp://HOST:PORT`), replacing `key.pem`,
/// `cert.pem` and `ca.pem` there as one set (see [`DockerCertPath::replace`]),
/// then, connecting with the new certificate, has the gateway revoke the
/// one it replaced.
///
/// [`DockerCertPath::replace`]: crate::pki::DockerCertPath::replace
/// How a renewal replaces the files it renewed.
#[derive(Debug, Clone, Copy)]
pub enum Save {
    /// A DOCKER_CERT_PATH directory: the files become links into a
    /// generation directory, switched by one rename (see `pki::swap`).
    Swap,
    /// A docker context's TLS directory, which docker reads as plain files
    /// only: a complete new directory is exchanged with the old one in one
    /// `renameat2(RENAME_EXCHANGE)`.
    Exchange,
}

/// The TLS directory and the gateway of docker context `name`, as `docker
/// context import` stores them: under `DOCKER_CONFIG` (else `~/.docker`),
/// `contexts/meta/<sha256 of the name>/meta.json` and
/// `contexts/tls/<sha256 of the name>/docker/`.
pub fn context_certs(name: &str) -> Result<(PathBuf, String), RenewError> {
    let config = match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".docker"))
            .ok_or_else(|| RenewError("neither DOCKER_CONFIG nor HOME is set".into()))?,
    };
    let id = crate::pki::fingerprint(name.as_bytes());
    let meta_path = config.join("contexts/meta").join(&id).join("meta.json");
    let meta: serde_json::Value = std::fs::read(&meta_path)
        .map_err(|e| {
            RenewError(format!(
                "no docker context {name:?} ({}): {e}",
                meta_path.display()
            ))
        })
        .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| err("context metadata", e)))?;
    let host = meta
        .pointer("/Endpoints/docker/Host")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| RenewError(format!("docker context {name:?} has no docker endpoint")))?;
    let tls = config.join("contexts/tls").join(&id).join("docker");
    if !tls.join("cert.pem").exists() {
        return Err(RenewError(format!(
            "docker context {name:?} holds no client certificate ({})",
            tls.display()
        )));
    }
    Ok((tls, host.to_owned()))
}

/// Writes `key`, `cert` and `ca` into a new directory beside the context's
/// TLS directory's parent, then exchanges the two directories atomically:
/// docker sees the old set or the new one, never a mix.
fn exchange(dir: &Path, key: &str, cert: &str, ca: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let files = crate::pki::DockerCertPath::new(dir);
    let parent = dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| std::io::Error::other("the context's TLS directory has no parent"))?;
    let name = dir
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = parent.join(format!(".dockgate-renew-{name}"));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    for (file, contents, mode) in [
        (files.key(), key, 0o600),
        (files.cert(), cert, 0o644),
        (files.ca(), ca, 0o644),
    ] {
        let name = file.file_name().unwrap_or_default();
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(staging.join(name))?;
        std::io::Write::write_all(&mut out, contents.as_bytes())?;
        out.sync_all()?;
    }
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        &staging,
        rustix::fs::CWD,
        dir,
        rustix::fs::RenameFlags::EXCHANGE,
    )?;
    std::fs::remove_dir_all(&staging)
}

pub async fn renew(cert_path: &Path, host: &str, save: Save) -> Result<String, RenewError> {
    let files = crate::pki::DockerCertPath::new(cert_path);
    let old = crate::pki::pem::certs(&files.cert())
        .map_err(|e| RenewError(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| RenewError(format!("{} holds no certificate", files.cert().display())))?;
    let new_key = rcgen::KeyPair::generate().map_err(|e| err("key generation", e))?;
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&new_key)
        .and_then(|r| r.pem())
        .map_err(|e| err("CSR", e))?;
    let body = post(cert_path, host, RENEW_PATH, "application/pkcs10", csr).await?;
    let renewed: Renewed = serde_json::from_slice(&body).map_err(|e| err("response", e))?;
    // Key, certificate and CA bundle are replaced as one set: a crash
    // never leaves a key beside a certificate it does not match.
    let key = new_key.serialize_pem();
    match save {
        Save::Swap => files
            .replace(Some(&key), &renewed.certificate, &renewed.ca)
            .map_err(|e| err("cannot save the renewed certificate", e))?,
        Save::Exchange => exchange(cert_path, &key, &renewed.certificate, &renewed.ca)
            .map_err(|e| err("cannot save the renewed certificate", e))?,
    }
    // Only now that the new set is in place: a renewal whose answer got
    // lost leaves the old certificate working.
    post(
        cert_path,
        host,
        RETIRE_PATH,
        "text/plain",
        crate::pki::fingerprint(&old),
    )
    .await
    .map_err(|e| {
        RenewError(format!(
            "renewed, but the replaced certificate was not revoked (it stays valid until it expires): {e}"
        ))
    })?;
    Ok(renewed.certificate)
}

/// POSTs `body` to `path` on the gateway at `host`, authenticating with
/// the certificate in `cert_path`; the answer's body when it is a success.
async fn post(
    cert_path: &Path,
    host: &str,
    path: &str,
    content_type: &'static str,
    body: String,
) -> Result<Bytes, RenewError> {
    use crate::pki::pem;
    use rustls::pki_types::ServerName;

    let authority = host
        .strip_prefix("tcp://")
        .ok_or_else(|| RenewError(format!("host {host:?} is not tcp://HOST:PORT")))?
        .trim_end_matches('/');
    let (server, _) = authority
        .rsplit_once(':')
        .ok_or_else(|| RenewError(format!("host {host:?} has no port")))?;
    let server = server.trim_start_matches('[').trim_end_matches(']');
    let files = crate::pki::DockerCertPath::new(cert_path);
    let load = |e: pem::PemError| RenewError(e.to_string());
    let mut roots = rustls::RootCertStore::empty();
    for ca in pem::certs(&files.ca()).map_err(load)? {
        roots.add(ca).map_err(|e| err("ca.pem", e))?;
    }
    let chain = pem::certs(&files.cert()).map_err(load)?;
    let key = pem::key(&files.key()).map_err(load)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS", e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| err("client certificate", e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];

    let tcp = tokio::net::TcpStream::connect(authority)
        .await
        .map_err(|e| err(&format!("cannot connect to {authority}"), e))?;
    let name = ServerName::try_from(server.to_owned()).map_err(|e| err("server name", e))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| err("TLS handshake", e))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| err("HTTP", ErrorChain(&e)))?;
    tokio::spawn(connection);
    let request = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| err("request", e))?;
    // With TLS 1.3 the gateway refuses a certificate after the client's
    // side of the handshake is done, so a refusal surfaces here.
    let response: Response<_> = sender
        .send_request(request)
        .await
        .map_err(|e| err("the gateway refused the request", ErrorChain(&e)))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| err("HTTP", e))?
        .to_bytes();
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        return Err(RenewError(format!("{status}: {message}")));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_name_their_unit() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("36h"), Ok(Duration::from_secs(36 * 3600)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        for bad in ["", "7", "d", "7x", "-1d", "1.5d", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
