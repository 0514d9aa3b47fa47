//! Starting a lazy mount's server process and waiting for its `ready`, and ending one whose
//! mount did not happen: the process plumbing of [`super::mount_lazy`], kept apart so the use
//! case reads as its steps.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use fspack_store::Store;

use super::server::ServeSpec;
use crate::error::{EngineError, Result};
use crate::lazy_process::cleanup_state;

/// How long the setup waits for the server's `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// Ends a server whose mount did not happen: the end of its stdin without `mounted` makes it
/// unmount FUSE and exit (killed after 10 s if it does not); then its state goes. Partial blobs
/// stay for a resume.
pub(super) async fn abandon_server(mut child: Child, stdin: ChildStdin, state_dir: PathBuf) {
    drop(stdin);
    let _ = tokio::task::spawn_blocking(move || {
        wait_or_kill(&mut child, Duration::from_secs(10));
        cleanup_state(&state_dir);
    })
    .await;
}

/// `lazy/<16 hex of the target path's sha256>` under the store.
pub(super) fn state_dir(store: &Store, target: &Path) -> PathBuf {
    use sha2::Digest;
    use std::os::unix::ffi::OsStrExt;
    let h = sha2::Sha256::digest(target.as_os_str().as_bytes());
    store.root().join("lazy").join(hex::encode(&h[..8]))
}

/// Starts a server and waits for its `ready`.
pub(super) fn start_server(cmd: &[OsString], spec: &ServeSpec) -> Result<(Child, ChildStdin)> {
    use std::os::unix::process::CommandExt;
    // What a killed server of an earlier mount on this target left.
    cleanup_state(&spec.state_dir);
    std::fs::create_dir_all(&spec.state_dir).map_err(|e| EngineError::io(&spec.state_dir, e))?;
    let log_path = spec.state_dir.join("server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| EngineError::io(&log_path, e))?;
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| EngineError::Usage("no lazy server command".into()))?;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        // Its own process group: a Ctrl-C of the shell that ran `fspack mount` must not stop
        // the server of a mount that outlives the command.
        .process_group(0)
        .spawn()
        .map_err(|e| EngineError::io(Path::new(program), e))?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let line = serde_json::to_string(spec).expect("serializable");
    let answer = writeln!(stdin, "{line}")
        .and_then(|()| stdin.flush())
        .map_err(|e| EngineError::io(Path::new("lazy server stdin"), e))
        .and_then(|()| read_ready(stdout));
    match answer {
        Ok(()) => Ok((child, stdin)),
        Err(e) => {
            drop(stdin);
            wait_or_kill(&mut child, Duration::from_secs(5));
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            cleanup_state(&spec.state_dir);
            let last = log.lines().last().unwrap_or("").to_string();
            Err(match e {
                EngineError::Io { .. } if !last.is_empty() => EngineError::Io {
                    path: log_path,
                    source: std::io::Error::other(last),
                },
                e => e,
            })
        }
    }
}

/// Reads the server's first line: `ready`, or `error: …` (its setup failed).
fn read_ready(stdout: std::process::ChildStdout) -> Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let got = BufReader::new(stdout).read_line(&mut line).map(|_| line);
        let _ = tx.send(got);
    });
    let pipe = Path::new("lazy server stdout");
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(Ok(line)) if line.trim() == "ready" => Ok(()),
        Ok(Ok(line)) if line.starts_with("error: ") => Err(EngineError::Usage(format!(
            "the lazy server could not start: {}",
            line.trim_start_matches("error: ").trim()
        ))),
        Ok(Ok(line)) => Err(EngineError::io(
            pipe,
            std::io::Error::other(format!("the lazy server exited or said {:?}", line.trim())),
        )),
        Ok(Err(e)) => Err(EngineError::io(pipe, e)),
        Err(_) => Err(EngineError::io(
            pipe,
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer from the lazy server in {READY_TIMEOUT:?}"),
            ),
        )),
    }
}

fn wait_or_kill(child: &mut Child, grace: Duration) {
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
