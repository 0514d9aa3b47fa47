//! All-or-nothing file writes: a reader of the path sees the old file or the new one, never
//! half, and a failure (or a panic) leaves no temporary file behind. The one helper for the
//! image writers, the store's records and index, the Docker config file and the engine's caches,
//! so the fsync rule is written once. Built on `tempfile`'s `NamedTempFile::persist` (a unique
//! file in the target's directory, renamed over the target).
//!
//! This crate knows nothing of images, registries or the store: it writes bytes to a path.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// How a write is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The file's mode bits. `None` creates it as `File::create` would (0666 less the umask);
    /// a mode is set on the temporary file before anything is written, so secrets are never
    /// readable by others, not even half-written.
    pub mode: Option<u32>,
    /// Whether the write must survive a crash: the data is fsynced before the rename and the
    /// directory after it (a rename is only durable once its directory is). Caches and status
    /// files a reader can do without skip both.
    pub durable: bool,
}

impl Options {
    /// A durable write with the default mode.
    pub const DURABLE: Options = Options {
        mode: None,
        durable: true,
    };

    /// A durable write with the mode `mode`.
    pub const fn durable_mode(mode: u32) -> Options {
        Options {
            mode: Some(mode),
            durable: true,
        }
    }

    /// A write that need not survive a crash (a cache: losing it costs time only).
    pub const CACHE: Options = Options {
        mode: None,
        durable: false,
    };
}

/// Temporary paths of this process's writes under way, for [`remove_pending`]; `closing` once
/// that has run, so a path registered afterwards is removed at once.
struct PendingList {
    closing: bool,
    paths: Vec<PathBuf>,
}

static PENDING: std::sync::Mutex<PendingList> = std::sync::Mutex::new(PendingList {
    closing: false,
    paths: Vec::new(),
});

fn pending() -> std::sync::MutexGuard<'static, PendingList> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

fn remove_path(p: &Path) {
    let _ = std::fs::remove_file(p).or_else(|_| std::fs::remove_dir_all(p));
}

/// A temporary file or directory of a write under way, listed for [`remove_pending`] until it is
/// dropped. `Drop` removes nothing: the write that made the path owns it; this only says where
/// it is for a process that must exit without running `Drop` (a signal).
#[derive(Debug)]
pub struct Pending(PathBuf);

impl Pending {
    /// Lists `path`; after [`remove_pending`] has run, removes it instead.
    pub fn new(path: &Path) -> Pending {
        let mut list = pending();
        if list.closing {
            remove_path(path);
        } else {
            list.paths.push(path.to_path_buf());
        }
        Pending(path.to_path_buf())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let mut list = pending();
        if let Some(i) = list.paths.iter().rposition(|p| *p == self.0) {
            list.paths.swap_remove(i);
        }
    }
}

/// Removes every listed temporary path (files, and directories with what they hold) and returns
/// how many there were; for a process about to exit on `SIGINT` or `SIGTERM`, where no `Drop`
/// runs (`fspack build` and `push`; s8 fidelity pass: an interrupted build left 0.4 GB). Paths
/// listed later are removed when listed. Waits for a [`finishing`] step under way.
pub fn remove_pending() -> usize {
    let mut list = pending();
    list.closing = true;
    let paths = std::mem::take(&mut list.paths);
    for p in &paths {
        remove_path(p);
    }
    paths.len()
}

/// Runs `step` with [`remove_pending`] held off: for the renames that put a finished write in
/// place, which must not be cut in half (an image swapped in while the blobs it needs are
/// removed). `step` must not create or drop a [`Pending`].
pub fn finishing<T>(step: impl FnOnce() -> T) -> T {
    let _held = pending();
    step()
}

/// Writes `path` all or nothing: `fill` writes the content into a temporary file in the same
/// directory (it is given the file and the temporary path, for its error messages), which then
/// replaces `path`. `io_err` turns an I/O failure on a path into the caller's error type.
///
/// Errors: `fill`'s error, or `io_err(path, e)` for a failure to create, sync, chmod or rename
/// (naming the temporary file or the target, whichever failed).
pub fn write_with<T, E>(
    path: &Path,
    opts: Options,
    fill: impl FnOnce(&mut File, &Path) -> Result<T, E>,
    io_err: impl Fn(&Path, io::Error) -> E,
) -> Result<T, E> {
    write_with_tmp_in(&parent(path), path, opts, fill, io_err)
}

/// [`write_with`] with the temporary file in `tmp_dir` (on the same file system as `path`)
/// instead of beside the target: for a directory whose every entry must be a finished file,
/// such as a content store's blob directory, where each name is a digest already verified. A
/// killed writer (no `Drop` runs on `SIGKILL`) leaves its temporary file in `tmp_dir`, named
/// `.NAME.tmp-RANDOM`, for the owner of `tmp_dir` to clean up.
///
/// Errors: those of [`write_with`].
pub fn write_with_tmp_in<T, E>(
    tmp_dir: &Path,
    path: &Path,
    opts: Options,
    fill: impl FnOnce(&mut File, &Path) -> Result<T, E>,
    io_err: impl Fn(&Path, io::Error) -> E,
) -> Result<T, E> {
    let dir = parent(path);
    // `.NAME.tmp-RANDOM`: hidden, and recognisable as ours by a reader that cleans up after a
    // killed writer (the store does, for its `oci-layout` marker).
    let prefix = format!(
        ".{}.tmp-",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    // tempfile creates 0600 by default; 0666 here leaves the umask to decide, as File::create.
    builder.permissions(Permissions::from_mode(opts.mode.unwrap_or(0o666)));
    let mut tmp = builder
        .tempfile_in(tmp_dir)
        .map_err(|e| io_err(tmp_dir, create_error(e)))?;
    let tmp_path = tmp.path().to_path_buf();
    let _listed = Pending::new(&tmp_path);
    let value = fill(tmp.as_file_mut(), &tmp_path)?;
    if opts.durable {
        tmp.as_file().sync_all().map_err(|e| io_err(&tmp_path, e))?;
    }
    if let Some(mode) = opts.mode {
        // The creation mode passed through the umask; the caller asked for exactly this one.
        tmp.as_file()
            .set_permissions(Permissions::from_mode(mode))
            .map_err(|e| io_err(&tmp_path, e))?;
    }
    tmp.persist(path).map_err(|e| io_err(path, e.error))?;
    if opts.durable {
        sync_dir(&dir).map_err(|e| io_err(&dir, e))?;
    }
    Ok(value)
}

/// Says what failed when no file could be created in a directory. tempfile's error names the
/// random file name it tried, which the user never asked for (`/proc: No such file or directory
/// at path "/proc/.x.tmp-q5wUtS"` for `-o /proc/x`); the OS error alone, on the directory,
/// reads as if the directory were missing.
fn create_error(e: io::Error) -> io::Error {
    // tempfile keeps the OS error only inside its private path error, whose `source()` skips
    // it; its text is "<os error> at path <name>", so the cause is the text before the name.
    let text = e.to_string();
    let cause = text
        .rsplit_once(" at path ")
        .map_or(text.as_str(), |(c, _)| c);
    io::Error::new(
        e.kind(),
        format!("cannot create a new file in this directory: {cause}"),
    )
}

/// Writes `bytes` to `path` all or nothing (see [`write_with`]).
///
/// Errors: the I/O error, with the path it happened on.
pub fn write(path: &Path, bytes: &[u8], opts: Options) -> Result<(), (PathBuf, io::Error)> {
    write_with(
        path,
        opts,
        |f, _| f.write_all(bytes).map_err(|e| (path.to_path_buf(), e)),
        |p, e| (p.to_path_buf(), e),
    )
}

/// Makes a rename in `dir` durable: fsync of the directory (a rename is only on disk once its
/// directory is).
///
/// Errors: the I/O error of opening or syncing `dir`.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory a path lives in (`.` for a bare file name).
fn parent(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_the_file_with_the_mode_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.json");
        std::fs::write(&p, b"old").unwrap();
        write(&p, b"new", Options::durable_mode(0o600)).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        write(&p, b"newer", Options::durable_mode(0o444)).unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o444);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_directory_that_takes_no_new_files_is_named_without_the_temporary_name() {
        // procfs refuses new files (ENOENT), as `fspack build -o /proc/x` met it.
        let (path, err) = write(Path::new("/proc/fspack-test"), b"x", Options::CACHE).unwrap_err();
        assert_eq!(path, Path::new("/proc"));
        let text = err.to_string();
        assert!(
            text.starts_with("cannot create a new file in this directory: ")
                && !text.contains(".tmp-"),
            "{text}"
        );
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn the_default_mode_is_what_file_create_gives() {
        let dir = tempfile::tempdir().unwrap();
        let (ours, theirs) = (dir.path().join("a"), dir.path().join("b"));
        write(&ours, b"x", Options::CACHE).unwrap();
        File::create(&theirs).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&ours), mode(&theirs));
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"old").unwrap();
        let r: Result<(), String> = write_with(
            &p,
            Options::DURABLE,
            |f, _| {
                f.write_all(b"half").unwrap();
                Err("stopped".to_string())
            },
            |_, e| e.to_string(),
        );
        assert_eq!(r.unwrap_err(), "stopped");
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
