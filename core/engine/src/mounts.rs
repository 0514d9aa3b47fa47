//! `fspack umount` and `ls`, and the release of mounts unmounted behind fspack's back: what the
//! store's mount records say, for eager and lazy mounts alike. Apart from [`crate::mount`],
//! which makes mounts, so that each file holds one job.

use std::path::{Path, PathBuf};

use fspack_store::{MountRecord, Store};
use serde::Serialize;

use crate::error::{EngineError, Result};
use crate::mount::{release, remove_created};

/// The error for an `umount` of `target` that no fspack mount holds; `store` is `None` when there
/// is no store yet. A mistyped path is named as missing, absolute as `ls` shows mount points
/// (s12 fresh-eyes pass: "doesnotexist is not mounted by fspack").
pub fn not_mounted(target: &Path, store: Option<&Store>) -> EngineError {
    let shown = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    let exists = target.exists();
    let what = if exists {
        "is not mounted by fspack"
    } else {
        "does not exist"
    };
    let why = match store {
        None => " (there is no fspack store yet)".to_string(),
        Some(s) if !exists => format!(" (`{} ls` lists fspack's mounts)", s.command()),
        Some(_) => String::new(),
    };
    EngineError::NotFound(format!("{} {what}{why}", shown.display()))
}

/// Unmounts `target` and everything fspack stacked under it; also cleans up a mount whose record
/// was lost (a crash between mount and record) when its source lies in the store. Returns
/// whether `target` was still mounted: `false` when only the leftovers of a mount undone by
/// umount(8) were released and its record forgotten.
pub fn umount(store: &Store, target: &Path) -> Result<bool> {
    let target = std::fs::canonicalize(target).unwrap_or_else(|_| target.to_path_buf());
    let record = store
        .mount_records()?
        .into_iter()
        .find(|r| r.target == target);
    let mounted = fspack_mount::mountinfo()?
        .into_iter()
        .any(|m| m.mount_point == target);
    match (&record, mounted) {
        (None, false) => return Err(not_mounted(&target, Some(store))),
        (None, true) => {
            let entry = fspack_mount::mountinfo()?
                .into_iter()
                .rev()
                .find(|m| m.mount_point == target);
            let here = std::fs::canonicalize(store.root()).unwrap_or(store.root().to_path_buf());
            if let Some(other) = entry.as_ref().and_then(|m| store_of_source(&m.source))
                && other != here
            {
                return Err(EngineError::Usage(format!(
                    "{} was mounted from another store, {}\nhint: run `{} umount {}`",
                    target.display(),
                    other.display(),
                    fspack_store::command_for(&other),
                    fspack_store::shell_word(&target)
                )));
            }
            let ours = entry.as_ref().is_some_and(|m| {
                m.source.starts_with(store.root())
                    || m.source.starts_with("/dev/loop")
                    || m.fstype == "overlay"
            });
            if !ours {
                return Err(EngineError::Usage(format!(
                    "{} is a mount fspack did not make; use umount(8)",
                    target.display()
                )));
            }
        }
        _ => {}
    }
    if mounted {
        refuse_nested(store, &target)?;
        unmount_settled(&target)?;
    }
    if let Some(rec) = record {
        for l in rec.lower_mounts.iter().rev() {
            if fspack_mount::mountinfo()?
                .iter()
                .any(|m| &m.mount_point == l)
            {
                fspack_mount::unmount(l, true)?;
            }
        }
        // A lazy mount's server goes after the mount: its loop devices no longer read from it.
        if let Some(lazy) = &rec.lazy {
            crate::lazy_process::stop_server(lazy);
        }
        store.remove_mount_record(&target)?;
        remove_created(&rec.created_dirs);
    }
    Ok(mounted)
}

/// The root of the fspack store whose blob `source` is (a file-backed mount's source, or the
/// backing file of a loop device), if it is one: `<root>/blobs/sha256/<hex>` with the store's
/// `index.json` beside `blobs/`.
fn store_of_source(source: &Path) -> Option<PathBuf> {
    let file = match source.starts_with("/dev/") {
        true => fspack_mount::loop_devices()
            .ok()?
            .into_iter()
            .find_map(|(dev, backing)| (dev == source).then_some(backing))?,
        false => source.to_path_buf(),
    };
    let sha = file.parent()?;
    let blobs = sha.parent()?;
    let root = blobs.parent()?;
    let shaped = sha.file_name()? == "sha256" && blobs.file_name()? == "blobs";
    (shaped && root.join("index.json").is_file()).then(|| root.to_path_buf())
}

/// Fails when something is mounted below `target` (report item 11): the kernel would answer
/// EBUSY, which reads as "files in use". Names each nested mount, deepest first, with the command
/// that releases it (`fspack umount` for fspack's own, `umount` for others).
///
/// Errors: [`EngineError::Usage`] naming the nested mount points; the mount table's.
fn refuse_nested(store: &Store, target: &Path) -> Result<()> {
    let mut nested: Vec<PathBuf> = fspack_mount::mountinfo()?
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p != target && p.starts_with(target))
        .collect();
    if nested.is_empty() {
        return Ok(());
    }
    nested.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    nested.dedup();
    let ours = store.mount_records()?;
    let steps: Vec<String> = nested
        .iter()
        .map(|p| {
            if ours.iter().any(|r| &r.target == p) {
                format!(
                    "`{} umount {}`",
                    store.command(),
                    fspack_store::shell_word(p)
                )
            } else {
                format!("`umount {}`", fspack_store::shell_word(p))
            }
        })
        .collect();
    Err(EngineError::Usage(format!(
        "{} {} mounted under {}; run {} first",
        nested
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        if nested.len() == 1 { "is" } else { "are" },
        target.display(),
        steps.join(", then ")
    )))
}

/// Unmounts, giving the kernel a moment when it answers EBUSY: reads that just failed or just
/// finished can hold the superblock briefly (seen under load). A mount really in use by a
/// process still fails, with the kernel's hint.
fn unmount_settled(target: &Path) -> Result<()> {
    let mut tries = 0;
    loop {
        match fspack_mount::unmount(target, false) {
            Err(e) if e.errno() == Some(EBUSY) && tries < 10 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50 * tries));
            }
            other => return Ok(other?),
        }
    }
}

/// Linux `EBUSY` ("Device or resource busy").
const EBUSY: i32 = 16;

/// One line of `fspack ls`.
#[derive(Debug, Clone, Serialize)]
pub struct MountStatus {
    /// The record.
    #[serde(flatten)]
    pub record: MountRecord,
    /// Whether the mount point is still mounted.
    pub mounted: bool,
    /// For a lazy mount: its server's state and bytes present (issue 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lazy_status: Option<crate::lazy::status::LazyStatus>,
}

/// Lists recorded mounts with whether each is still live.
pub fn list(store: &Store) -> Result<Vec<MountStatus>> {
    let live = fspack_mount::mountinfo()?;
    Ok(store
        .mount_records()?
        .into_iter()
        .map(|record| {
            let mounted = live.iter().any(|m| m.mount_point == record.target);
            let lazy_status = record.lazy.as_ref().map(crate::lazy::status_of);
            MountStatus {
                record,
                mounted,
                lazy_status,
            }
        })
        .collect())
}

/// Releases what mounts unmounted behind fspack's back (a plain `umount(8)`) left: lower shard
/// mounts still attached under the store (kernels that cannot stack detached mounts), the
/// directories fspack created, and the records. Returns the released mount points.
///
/// Loop devices need no step of their own: they are autoclear, and go once their last mount
/// does. Records whose target is still mounted are kept.
pub fn release_orphans(store: &Store) -> Result<Vec<PathBuf>> {
    let live = fspack_mount::mountinfo()?;
    let mut released = Vec::new();
    for rec in store.mount_records()? {
        if live.iter().any(|m| m.mount_point == rec.target) {
            continue;
        }
        release(store, &rec)?;
        remove_created(&rec.created_dirs);
        released.push(rec.target);
    }
    Ok(released)
}
