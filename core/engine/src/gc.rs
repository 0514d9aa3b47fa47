//! `gc`: release what mounts unmounted behind fspack's back left (loop devices, records, shard
//! images), then collect the store, so their blobs go too.

use std::path::PathBuf;

use fspack_store::{GcReport, Store};

use crate::error::{Result, ResultExt};

/// What `gc` did.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    /// Mount points whose leftovers were released (unmounted with umount(8), not fspack).
    pub released: Vec<PathBuf>,
    /// What the store's collection removed.
    pub report: GcReport,
}

/// Releases orphaned mounts, then collects blobs no tag, mount or ingest in progress keeps.
///
/// Errors: "cannot release what unmounted fspack mounts left behind" or "garbage collection
/// failed" over the store's or the mount crate's error.
pub fn gc(store: &Store) -> Result<Collected> {
    let released = crate::mounts::release_orphans(store)
        .context_with(|| "cannot release what unmounted fspack mounts left behind")?;
    let report = store.gc(&[]).context_with(|| "garbage collection failed")?;
    Ok(Collected { released, report })
}
