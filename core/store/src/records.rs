//! Mount records: what fspack mounted where, so `umount` can release everything (also after a
//! crash) and `gc` keeps what is mounted.

use std::path::{Path, PathBuf};

use fspack_digest::Digest;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Result, StoreError};

/// One mount made by fspack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRecord {
    /// The mount point (canonical path).
    pub target: PathBuf,
    /// The reference the user named.
    pub reference: String,
    /// The manifest digest the mount was made from.
    pub manifest_digest: Digest,
    /// `erofs` or `squashfs`.
    pub format: String,
    /// Blob digests in use.
    pub blobs: Vec<Digest>,
    /// Loop devices attached for the mount (they detach by themselves on unmount: autoclear).
    pub loop_devices: Vec<PathBuf>,
    /// Lower mounts stacked under an overlay (SquashFS shards), lowest first.
    pub lower_mounts: Vec<PathBuf>,
    /// Seconds since the epoch when mounted.
    pub created: u64,
    /// Directories fspack created for the mount point (as `mount --mkdir` does), innermost
    /// first; `umount` removes them again when they are empty (issue 11).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created_dirs: Vec<PathBuf>,
    /// Set while the mount is lazy (issue 10): some of its loop devices read from a FUSE server
    /// that fetches chunks on demand. Cleared by that server once every blob is committed and
    /// the devices point into the store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lazy: Option<LazyRecord>,
}

/// The server behind a lazy mount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LazyRecord {
    /// Process id of the `fspack lazy-serve` process.
    pub server_pid: u32,
    /// Its directory under the store: the FUSE mount point (`fuse/`), `status.json` and
    /// `server.log`.
    pub state_dir: PathBuf,
}

/// The name a mount point goes by in the store: the hex sha256 of its path, so one file per
/// mount point whatever its name (its record, its note of created directories, its lock).
pub(crate) fn target_key(target: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    hex::encode(Sha256::digest(target.as_os_str().as_bytes()))
}

/// `mounts/<sha256 of the target path>.json`: one file per mount point, whatever its name.
fn record_path(root: &Path, target: &Path) -> PathBuf {
    root.join("mounts")
        .join(format!("{}.json", target_key(target)))
}

pub(crate) fn write(root: &Path, rec: &MountRecord) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(rec).expect("record serialises");
    // Records name what was mounted from where: private, like the rest of the store.
    crate::write_atomic_mode(&record_path(root, &rec.target), &bytes, 0o600)?;
    // The record carries the created directories from now on.
    remove_file_if_present(&pending_dirs_path(root, &rec.target))
}

/// `mounts/<sha256 of the target path>.dirs`: the directories fspack created for a mount point
/// whose mount is not recorded yet, so a run killed before its record (kill -9 during a pull)
/// leaves a trace the next run on the same point adopts, and its `umount` removes them.
pub(crate) fn pending_dirs_path(root: &Path, target: &Path) -> PathBuf {
    record_path(root, target).with_extension("dirs")
}

pub(crate) fn write_pending_dirs(root: &Path, target: &Path, dirs: &[PathBuf]) -> Result<PathBuf> {
    let p = pending_dirs_path(root, target);
    let bytes = serde_json::to_vec(dirs).expect("paths serialise");
    crate::write_atomic_mode(&p, &bytes, 0o600)?;
    Ok(p)
}

/// The directories a killed run created for `target` (innermost first), or none. A marker that
/// does not parse is treated as none: the worst outcome is an empty directory left in place.
pub(crate) fn read_pending_dirs(root: &Path, target: &Path) -> Vec<PathBuf> {
    std::fs::read(pending_dirs_path(root, target))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub(crate) fn remove_file_if_present(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(p, e)),
    }
}

/// Every readable mount record, sorted by target. A record that cannot be parsed fails the
/// call when `strict` (gc: the blobs it names must not be collected); otherwise it is skipped
/// with a warning, so one damaged file does not stop `ls`, `mount` and `umount` of every other
/// mount point (s10 fresh-eyes pass).
pub(crate) fn read_all(root: &Path, strict: bool) -> Result<Vec<MountRecord>> {
    let dir = root.join("mounts");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
        let e = e.map_err(|e| StoreError::io(&dir, e))?;
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let bytes = std::fs::read(&p).map_err(|e| StoreError::io(&p, e))?;
        match serde_json::from_slice::<MountRecord>(&bytes) {
            Ok(rec) => out.push(rec),
            Err(e) if strict => {
                return Err(StoreError::Corrupt {
                    path: p.clone(),
                    why: format!(
                        "{e}\nhint: if the mount it recorded is still there (see /proc/self/mountinfo), unmount it with umount(8); then remove {}",
                        p.display()
                    ),
                });
            }
            Err(e) => tracing::warn!(
                "ignoring the damaged mount record {} ({e}): its mount is not listed, and gc stops until the file is removed",
                p.display()
            ),
        }
    }
    out.sort_by(|a, b| a.target.cmp(&b.target));
    Ok(out)
}

pub(crate) fn remove(root: &Path, target: &Path) -> Result<()> {
    let p = record_path(root, target);
    match std::fs::remove_file(&p) {
        Ok(()) => crate::sync_dir(&root.join("mounts")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(&p, e)),
    }
}
