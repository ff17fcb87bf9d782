//! `dockgate-test/busybox:latest`, imported from Debian's static busybox: no registry needed.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use super::dockerd::{apt_install, is_root, lock};
use super::{args, docker_direct, ok, run, TempDir};

pub const TEST_IMAGE: &str = "dockgate-test/busybox:latest";
const BUSYBOX: &str = "/bin/busybox";

/// The test image's reference, importing it into the test daemon on first use.
pub fn test_image() -> &'static str {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if image_exists() {
            return;
        }
        let _guard = lock("image.lock");
        if !image_exists() {
            import_image();
        }
    });
    TEST_IMAGE
}

fn image_exists() -> bool {
    run(&mut args(docker_direct(), ["image", "inspect", TEST_IMAGE]))
        .status
        .success()
}

fn import_image() {
    ensure_static_busybox();
    let work = TempDir::new("rootfs");
    let rootfs = work.join("rootfs");
    for dir in ["bin", "etc", "root", "tmp"] {
        fs::create_dir_all(rootfs.join(dir)).expect("create rootfs dir");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777))
        .expect("chmod rootfs/tmp");
    fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copy busybox into rootfs");
    let applets = ok(Command::new(BUSYBOX).arg("--list"));
    for applet in applets.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        symlink("busybox", rootfs.join("bin").join(applet))
            .unwrap_or_else(|e| panic!("symlink applet {applet}: {e}"));
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .expect("write etc/passwd");
    fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").expect("write etc/group");

    let tarball = work.join("rootfs.tar");
    ok(Command::new("tar")
        .arg("--numeric-owner")
        .arg("--owner=0")
        .arg("--group=0")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg("."));
    ok(docker_direct()
        .args(["import", "--change", r#"CMD ["sh"]"#])
        .arg(&tarball)
        .arg(TEST_IMAGE));
}

/// Debian's `busybox-static` provides a statically linked `/bin/busybox`; the dynamic `busybox`
/// package uses the same path, so the package is what gets checked.
fn ensure_static_busybox() {
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "busybox-static"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if status.trim() == "install ok installed" && Path::new(BUSYBOX).is_file() {
        return;
    }
    if !is_root() {
        panic!(
            "the test image needs Debian's busybox-static (/bin/busybox): install busybox-static \
             or run as root"
        );
    }
    apt_install("busybox-static");
}
