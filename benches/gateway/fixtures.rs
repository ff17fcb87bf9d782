//! What the workloads need on the bench daemon: an image and two containers.
//!
//! The image is Debian's static busybox imported as a one-layer image (no registry). A
//! created container holds `/big` for archive downloads and takes the archive uploads; a
//! running `cat` with an open stdin serves exec streams and idle attach sessions. Everything is
//! made through the daemon's socket, never through a target under test.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::json;

use crate::anchors::{apt_install, run};
use crate::client::{self, call, call_expecting, request, Endpoint, Error, TarBody};

pub const IMAGE: &str = "dockgate-bench/busybox:latest";
const BULK: &str = "dockgate-bench-bulk";
const CAT: &str = "dockgate-bench-cat";

pub struct Fixtures {
    socket: Endpoint,
    /// The created container holding `/big`.
    pub bulk: String,
    /// The running `cat`.
    pub cat: String,
}

impl Fixtures {
    pub async fn create(socket: Endpoint, work: &Path, big: u64) -> Result<Fixtures, Error> {
        let mut conn = socket.connect().await?;
        let sender = &mut conn.sender;
        let inspect = request(
            Method::GET,
            &format!("/images/{IMAGE}/json"),
            client::empty(),
        );
        let found = [StatusCode::OK, StatusCode::NOT_FOUND];
        if call_expecting(sender, inspect, &found).await?.0 == StatusCode::NOT_FOUND {
            import_image(&socket, work).await?;
        }
        for name in [BULK, CAT] {
            remove(sender, name).await?;
        }
        let bulk = create(sender, BULK, json!({"Image": IMAGE, "Cmd": ["true"]})).await?;
        let tar = TarBody::new("big", big);
        let put = request(
            Method::PUT,
            &format!("/containers/{bulk}/archive?path=/"),
            tar.boxed(),
        );
        call(sender, put, StatusCode::OK).await?;
        let cat = create(
            sender,
            CAT,
            json!({"Image": IMAGE, "Cmd": ["cat"], "OpenStdin": true,
                   "HostConfig": {"NetworkMode": "none"}}),
        )
        .await?;
        let start = request(
            Method::POST,
            &format!("/containers/{cat}/start"),
            client::empty(),
        );
        call(sender, start, StatusCode::NO_CONTENT).await?;
        Ok(Fixtures { socket, bulk, cat })
    }

    /// Removes the containers (before the daemon stops: `cat` ignores SIGTERM as PID 1).
    pub async fn remove(self) -> Result<(), Error> {
        let mut conn = self.socket.connect().await?;
        for name in [BULK, CAT] {
            remove(&mut conn.sender, name).await?;
        }
        Ok(())
    }
}

/// Creates container `name` from `body`; returns its ID.
pub async fn create(
    sender: &mut hyper::client::conn::http1::SendRequest<client::ReqBody>,
    name: &str,
    body: serde_json::Value,
) -> Result<String, Error> {
    let req = client::json_request(
        Method::POST,
        &format!("/containers/create?name={name}"),
        &body,
    );
    let answer = call(sender, req, StatusCode::CREATED).await?;
    let created: serde_json::Value = serde_json::from_slice(&answer)?;
    created["Id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("container create answered without an Id: {created}").into())
}

/// Force-removes `name`; a container that does not exist is fine.
pub async fn remove(
    sender: &mut hyper::client::conn::http1::SendRequest<client::ReqBody>,
    name: &str,
) -> Result<(), Error> {
    let req = request(
        Method::DELETE,
        &format!("/containers/{name}?force=1&v=1"),
        client::empty(),
    );
    call_expecting(
        sender,
        req,
        &[StatusCode::NO_CONTENT, StatusCode::NOT_FOUND],
    )
    .await?;
    Ok(())
}

/// Imports a root filesystem of busybox applets as `IMAGE` (`POST /images/create?fromSrc=-`).
async fn import_image(socket: &Endpoint, work: &Path) -> Result<(), Error> {
    const BUSYBOX: &str = "/bin/busybox";
    let installed = run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "busybox-static"]))
        .unwrap_or_default();
    if installed.trim() != "install ok installed" {
        // Debian's dynamic busybox uses the same path: the package is what tells them apart.
        apt_install("busybox-static");
    }
    let rootfs = work.join("rootfs");
    for dir in ["bin", "etc", "root", "tmp"] {
        fs::create_dir_all(rootfs.join(dir))?;
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::copy(BUSYBOX, rootfs.join("bin/busybox"))?;
    for applet in run(Command::new(BUSYBOX).arg("--list"))?
        .lines()
        .map(str::trim)
    {
        if !applet.is_empty() && applet != "busybox" {
            symlink("busybox", rootfs.join("bin").join(applet))?;
        }
    }
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
    let tarball = work.join("rootfs.tar");
    run(Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg("."))?;
    let (repo, tag) = IMAGE.split_once(':').expect("IMAGE has a tag");
    let body = Full::new(Bytes::from(fs::read(&tarball)?)).boxed();
    let req = request(
        Method::POST,
        &format!("/images/create?fromSrc=-&repo={repo}&tag={tag}"),
        body,
    );
    let mut conn = socket.connect().await?;
    let answer = call(&mut conn.sender, req, StatusCode::OK).await?;
    if String::from_utf8_lossy(&answer).contains("\"error") {
        return Err(format!("image import failed: {}", String::from_utf8_lossy(&answer)).into());
    }
    Ok(())
}
