//! Durable, all-or-nothing file writes for the store's records, index and small blobs: the
//! workspace's one helper (`fspack_atomic`), with the store's error type.

use std::io::Write;
use std::path::Path;

use crate::error::{Result, StoreError};

/// Writes `bytes` to `path` through a temporary file: fsync, chmod to `mode`, rename, fsync the
/// directory.
pub(crate) fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic_via(path.parent().unwrap_or(Path::new(".")), path, bytes, mode)
}

/// [`write_atomic_mode`] with the temporary file in `tmp_dir`: for `blobs/`, where every name
/// must be a verified digest, even while (or after a `SIGKILL` in the middle of) a write.
pub(crate) fn write_atomic_via(tmp_dir: &Path, path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    fspack_atomic::write_with_tmp_in(
        tmp_dir,
        path,
        fspack_atomic::Options::durable_mode(mode),
        |f, tmp| f.write_all(bytes).map_err(|e| StoreError::io(tmp, e)),
        StoreError::io,
    )
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fspack_atomic::sync_dir(dir).map_err(|e| StoreError::io(dir, e))
}
