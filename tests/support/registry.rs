//! A real image registry for push and pull tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on a loopback port, storing under a temporary directory. dockerd speaks
//! plain HTTP to registries on 127.0.0.0/8 by default.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::dockerd::{apt_install, is_root};
use super::TempDir;

const BINARY: &str = "/usr/bin/docker-registry";
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Registry {
    child: Child,
    port: u16,
    /// Holds the config, the log and the stored images; removed on drop.
    _dir: TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        if !Path::new(BINARY).exists() {
            assert!(
                is_root(),
                "{BINARY} is missing; install Debian's docker-registry package (or run as root)"
            );
            apt_install("docker-registry");
        }
        let dir = TempDir::new("registry");
        let config = dir.join("config.yml");
        let log_path = dir.join("registry.log");
        // A port picked by the kernel can be taken again before the registry binds it: retry.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("bind 127.0.0.1:0")
                .port();
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                    dir.join("data").display()
                ),
            )
            .expect("write registry config");
            let log = File::create(&log_path).expect("create registry log");
            let mut child = Command::new(BINARY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            match wait_ready(&mut child, port) {
                Ok(()) => {
                    return Registry {
                        child,
                        port,
                        _dir: dir,
                    }
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    if attempt < 3 && log.contains("address already in use") {
                        continue;
                    }
                    panic!("docker-registry did not start: {why}\n--- its log ---\n{log}");
                }
            }
        }
    }

    /// `127.0.0.1:PORT`, the registry part of its image names.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The repositories the registry holds (`/v2/_catalog`).
    pub fn catalog(&self) -> Vec<String> {
        let catalog = self.get("/v2/_catalog").expect("registry catalog");
        strings(&catalog["repositories"])
    }

    /// The tags of `repository` (`/v2/<name>/tags/list`); none when it does not exist.
    pub fn tags(&self, repository: &str) -> Vec<String> {
        self.get(&format!("/v2/{repository}/tags/list"))
            .map(|v| strings(&v["tags"]))
            .unwrap_or_default()
    }

    fn get(&self, path: &str) -> Option<Value> {
        get(self.port, path)
    }
}

fn wait_ready(child: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("it exited with {status}"));
        }
        if get(port, "/v2/").is_some() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("no answer on /v2/ within {START_TIMEOUT:?}"));
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A GET over plain HTTP/1.0: the JSON body of a 200, else `None`.
fn get(port: u16, path: &str) -> Option<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .ok()?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).ok()?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
