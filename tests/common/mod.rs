//! Harness for the end-to-end tests: the real `fspack` binary, a real registry on 127.0.0.1, and
//! the tree generator and snapshot shared with the format tests.
#![allow(dead_code)]

#[path = "../../core/image/tests/common/mod.rs"]
pub mod trees;

pub mod proxy;
pub mod token;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The fspack binary with a private store and no colour.
pub fn fspack(store: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("fspack").unwrap();
    cmd.env("FSPACK_STORE", store)
        .env("NO_COLOR", "1")
        .env("FSPACK_RETRY_BASE_MS", "1")
        .env_remove("SOURCE_DATE_EPOCH");
    cmd
}

/// Runs `cmd` (an `fspack … --json` command), fails the test with its stderr unless it
/// succeeds, and returns its JSON report.
pub fn run_json(cmd: &mut assert_cmd::Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A CNCF distribution registry (Debian's `docker-registry`) on a free loopback port, killed on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    cfg: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry, or returns None (after saying why) when the binary is missing.
    pub fn start() -> Option<Registry> {
        Self::start_with(None)
    }

    /// Starts a registry that requires basic auth for `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, password: &str) -> Option<Registry> {
        Self::start_with(Some((user, password)))
    }

    /// Starts a registry that trusts the bearer tokens of `issuer` (see [`token::TokenIssuer`]).
    pub fn start_with_tokens(issuer: &token::TokenIssuer) -> Option<Registry> {
        Self::start_configured(None, issuer.registry_auth())
    }

    fn start_with(auth: Option<(&str, &str)>) -> Option<Registry> {
        Self::start_configured(auth, String::new())
    }

    fn start_configured(auth: Option<(&str, &str)>, extra_auth: String) -> Option<Registry> {
        if !trees::have_tool("docker-registry") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut auth_cfg = extra_auth;
        if let Some((user, password)) = auth {
            if !trees::have_tool("htpasswd") {
                return None;
            }
            let file = dir.path().join("htpasswd");
            let st = Command::new("htpasswd")
                .args(["-Bbc"])
                .arg(&file)
                .args([user, password])
                .output()
                .unwrap();
            assert!(st.status.success());
            auth_cfg = format!(
                "auth:\n  htpasswd:\n    realm: fspack-test\n    path: {}\n",
                file.display()
            );
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth_cfg}",
                dir.path().join("storage").display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reg = Registry {
            child,
            addr,
            cfg,
            _dir: dir,
        };
        reg.wait_up();
        Some(reg)
    }

    /// Kills the registry process (its storage stays, for [`Registry::restart`]).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the registry again on the same address and storage.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.wait_up();
    }

    fn wait_up(&self) {
        let reg = self;
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&reg.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not start on {}",
                reg.addr
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Storage directory (to count what the registry holds).
    pub fn storage(&self) -> PathBuf {
        self._dir.path().join("storage")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Loop devices backed by files under `dir`, and mount points under `dir`: what a test that
/// works inside `dir` may have left behind.
pub fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/sys/block") {
        for e in entries.flatten() {
            let f = e.path().join("loop/backing_file");
            if let Ok(b) = std::fs::read_to_string(&f)
                && b.trim().starts_with(dir.to_str().unwrap())
            {
                out.push(format!(
                    "loop device {} -> {}",
                    e.file_name().to_string_lossy(),
                    b.trim()
                ));
            }
        }
    }
    for line in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
    {
        let mp = line.split(' ').nth(4).unwrap_or("");
        if mp.starts_with(dir.to_str().unwrap()) {
            out.push(format!("mount {mp}"));
        }
    }
    out
}
