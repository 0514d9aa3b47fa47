//! A lazy mount's server process seen from outside it: whether it still runs, how to stop it,
//! and how to clear its state directory. It sits apart from `lazy`, which mounts through
//! `mount`, so that `mount` can release a stale lazy mount without the two modules importing
//! each other (issue 16: no module cycle).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fspack_store::LazyRecord;

/// The FUSE mount point in a server's state directory: `fuse/`, as
/// [`LazyRecord::state_dir`] documents.
pub fn fuse_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("fuse")
}

/// Unmounts a state directory's FUSE mount if it is still there (its server was killed) and
/// removes the directory.
pub(crate) fn cleanup_state(state_dir: &Path) {
    let fuse = fuse_dir(state_dir);
    let mounted = fspack_mount::mountinfo()
        .map(|m| m.iter().any(|e| e.mount_point == fuse))
        .unwrap_or(false);
    if mounted && let Err(e) = fspack_mount::unmount(&fuse, true) {
        tracing::warn!("cannot unmount {}: {e}", fuse.display());
    }
    if state_dir.exists()
        && let Err(e) = std::fs::remove_dir_all(state_dir)
    {
        tracing::warn!("cannot remove {}: {e}", state_dir.display());
    }
}

/// Whether `pid` is a running `fspack lazy-serve` (not a reused pid of something else).
pub(crate) fn is_server(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"lazy-serve"))
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|t| t.trim_start().starts_with('Z'))
        })
}

/// Stops a lazy mount's server (SIGTERM, then SIGKILL after `grace`), unmounts its FUSE
/// directory and removes its state. Used by `umount` once the mount itself is gone, and for
/// mounts unmounted behind fspack's back. Partial blobs stay for the next lazy mount to resume.
pub fn stop_server(lazy: &LazyRecord) {
    if is_server(lazy.server_pid)
        && let Some(pid) = rustix::process::Pid::from_raw(lazy.server_pid as i32)
    {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while is_server(lazy.server_pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if is_server(lazy.server_pid) {
            tracing::warn!(
                pid = lazy.server_pid,
                "lazy server ignored SIGTERM; killing it"
            );
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    cleanup_state(&lazy.state_dir);
}
