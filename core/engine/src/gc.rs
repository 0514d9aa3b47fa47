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
    gc_with(store, fspack_store::DEFAULT_INGEST_TTL, true)
}

/// [`gc`], removing partial downloads untouched for longer than `partial_ttl` (zero: all that
/// no process is writing), for `gc --partial` (s10 fresh-eyes pass: a killed lazy mount's
/// preallocated partial files held 382 MiB for a day, with no way to free them sooner); with
/// `wait` false, failing at once while another process holds the store (`gc --no-wait`).
pub fn gc_with(store: &Store, partial_ttl: std::time::Duration, wait: bool) -> Result<Collected> {
    let released = crate::mounts::release_orphans(store)
        .context_with(|| "cannot release what unmounted fspack mounts left behind")?;
    let report = store
        .gc_waiting(&[], partial_ttl, wait)
        .context_with(|| "garbage collection failed")?;
    Ok(Collected { released, report })
}
