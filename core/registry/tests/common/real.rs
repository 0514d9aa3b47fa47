//! A real registry for integration tests: Debian's `docker-registry` (CNCF distribution 2.8)
//! started on 127.0.0.1 with a free port and a temporary storage directory, stopped on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `docker-registry serve`.
pub struct RealRegistry {
    child: Child,
    /// `127.0.0.1:<port>`.
    pub host: String,
    _dir: tempfile::TempDir,
}

/// The `docker-registry` binary on PATH, if any.
pub fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("docker-registry"))
        .find(|p| p.is_file())
}

impl RealRegistry {
    /// Starts the registry, or returns `None` (after printing why) when the binary is missing.
    pub fn start() -> Option<RealRegistry> {
        let Some(bin) = find_binary() else {
            eprintln!("skipping: docker-registry is not on PATH (apt-get install docker-registry)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let host = format!("127.0.0.1:{port}");
        let cfg = dir.path().join("config.yml");
        std::fs::write(
            &cfg,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry starts");
        let mut reg = RealRegistry {
            child,
            host,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&reg.host).is_err() {
            if Instant::now() > deadline || reg.child.try_wait().unwrap().is_some() {
                let log = std::fs::read_to_string(reg._dir.path().join("registry.log"))
                    .unwrap_or_default();
                panic!("docker-registry did not come up on {}: {log}", reg.host);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(reg)
    }
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
