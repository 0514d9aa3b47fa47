//! Garbage collection: what no tag, no mount and no running pull needs goes.
//!
//! Roots are the manifests tagged in `index.json` and those of mount records (plus their blobs);
//! manifests and indexes are walked (config, layers, nested manifests). Every `Store` handle holds
//! a shared lock on `locks/gc.lock` and `gc` takes it exclusively, so it never runs while another
//! process may have committed a blob it has not tagged yet.

use std::fs;

use fspack_digest::Digest;

use crate::error::{Result, StoreError};
use crate::{Store, ingest};

/// How long `gc` leaves an untouched partial download for a later resume.
pub const DEFAULT_INGEST_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What `gc` removed.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    /// Blobs removed.
    pub removed_blobs: usize,
    /// Abandoned partial downloads removed.
    pub removed_ingests: usize,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Blobs kept.
    pub kept_blobs: usize,
    /// Partial downloads kept for a resume (in use, or touched within the last day).
    pub kept_ingests: usize,
    /// Bytes of those partial downloads.
    pub kept_ingest_bytes: u64,
    /// Scratch entries left in `tmp/` by a killed push (SquashFS shards), removed.
    pub removed_scratch: usize,
}

impl Store {
    /// Removes blobs that no tag and no mount record reaches, and partial downloads nobody has
    /// touched for a day (containerd's ingest expiry), so an interrupted pull can still resume.
    ///
    /// Waits while other processes hold this store open (each [`Store`] holds a shared lock that
    /// `gc` takes exclusively; a lazy mount's server holds it until its fill completes), and
    /// logs a warning when it has to. Do not call it while this process holds a second, separately
    /// opened `Store` of the same root: that would wait for itself. Clones are fine.
    pub fn gc(&self, keep_extra: &[String]) -> Result<GcReport> {
        self.gc_with(keep_extra, DEFAULT_INGEST_TTL)
    }

    /// [`Store::gc`], removing partial downloads untouched for longer than `ingest_ttl`.
    pub fn gc_with(
        &self,
        keep_extra: &[String],
        ingest_ttl: std::time::Duration,
    ) -> Result<GcReport> {
        self.gc_waiting(keep_extra, ingest_ttl, true)
    }

    /// [`Store::gc_with`]; with `wait` false, fails at once instead of waiting while other
    /// processes hold the store (`gc --no-wait`, for scripts and timers: a lazy mount holds it
    /// for as long as its fill takes; s10 fresh-eyes pass).
    ///
    /// Errors: [`StoreError::Io`] of kind `WouldBlock` on `locks/gc.lock` when the store is in
    /// use and `wait` is false; otherwise as [`Store::gc`].
    pub fn gc_waiting(
        &self,
        keep_extra: &[String],
        ingest_ttl: std::time::Duration,
        wait: bool,
    ) -> Result<GcReport> {
        // Trade our own shared lock for the exclusive one, and take the shared one back after.
        let _ = self.gc_guard.lock().expect("not poisoned").take();
        // A lazy mount's server holds the store until its fill completes, which can take as
        // long as the download: say what gc waits for instead of hanging silently (s9 pass).
        let exclusive = match self.lock_file(
            "gc.lock",
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            Ok(f) => f,
            Err(_) if !wait => {
                let path = self.root.join("locks").join("gc.lock");
                *self.gc_guard.lock().expect("not poisoned") =
                    Some(self.lock_file("gc.lock", rustix::fs::FlockOperation::LockShared)?);
                return Err(StoreError::io(
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::WouldBlock,
                        "the store is in use by another fspack process (a pull, a push, or a lazy mount still filling: `fspack ls` shows its progress); gc --no-wait does not wait for it",
                    ),
                ));
            }
            Err(_) => {
                tracing::warn!(
                    "waiting for the other fspack processes using the store {} to finish (a pull, a push, or a lazy mount still filling: `fspack ls` shows its progress)",
                    self.root.display()
                );
                self.lock_file("gc.lock", rustix::fs::FlockOperation::LockExclusive)?
            }
        };
        let result = self.gc_locked(keep_extra, ingest_ttl);
        drop(exclusive);
        *self.gc_guard.lock().expect("not poisoned") =
            Some(self.lock_file("gc.lock", rustix::fs::FlockOperation::LockShared)?);
        result
    }

    fn gc_locked(
        &self,
        keep_extra: &[String],
        ingest_ttl: std::time::Duration,
    ) -> Result<GcReport> {
        let mut keep: std::collections::HashSet<String> = keep_extra.iter().cloned().collect();
        let mut roots: Vec<String> = self
            .tags()?
            .into_iter()
            .map(|(_, d)| d.digest.to_string())
            .collect();
        for rec in self.mount_records_strict()? {
            roots.push(rec.manifest_digest.to_string());
            keep.extend(rec.blobs.iter().map(Digest::to_string));
        }
        // Pulls under way or interrupted within the TTL keep their manifests' blobs for the
        // resume (Store::note_pull); older notes go, and their blobs with them.
        let pulls = self.root.join("pulls");
        if let Ok(entries) = fs::read_dir(&pulls) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let fresh = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age < ingest_ttl);
                match Digest::sha256_from_hex(&name) {
                    Ok(d) if fresh => roots.push(d.to_string()),
                    _ => {
                        let _ = fs::remove_file(e.path());
                    }
                }
            }
        }
        // Walk manifests and indexes from the roots. Digests stay text here: whatever a stored
        // manifest names is kept, and only what parses as a digest is read.
        while let Some(text) = roots.pop() {
            if !keep.insert(text.clone()) {
                continue;
            }
            let Ok(d) = Digest::parse(&text) else {
                continue;
            };
            if !self.has_blob(&d) {
                continue;
            }
            let Ok(bytes) = self.read_blob(&d, 4 << 20) else {
                continue;
            };
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                let digests = |key: &str| -> Vec<String> {
                    v.get(key)
                        .and_then(|a| a.as_array())
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x["digest"].as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                if let Some(c) = v["config"]["digest"].as_str() {
                    keep.insert(c.to_string());
                }
                keep.extend(digests("layers"));
                // A layer's standalone chunk index (a ModelPack raw layer's, issue 15) is a blob
                // the manifest names only in an annotation; for an embedded index the digest
                // names no stored blob and keeping it costs nothing.
                if let Some(layers) = v["layers"].as_array() {
                    keep.extend(layers.iter().filter_map(|l| {
                        l["annotations"][fspack_chunkindex::ANN_DIGEST]
                            .as_str()
                            .map(String::from)
                    }));
                }
                roots.extend(digests("manifests"));
            }
        }
        let mut report = GcReport::default();
        let dir = self.root.join("blobs/sha256");
        for e in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let e = e.map_err(|e| StoreError::io(&dir, e))?;
            let digest = format!("sha256:{}", e.file_name().to_string_lossy());
            if keep.contains(&digest) {
                report.kept_blobs += 1;
                continue;
            }
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            fs::remove_file(e.path()).map_err(|err| StoreError::io(&e.path(), err))?;
            report.removed_blobs += 1;
            report.freed_bytes += size;
        }
        // gc holds the store's lock exclusively, so no process of this store is running: what
        // `tmp/` holds (shards a push compressed before it was killed) belongs to nobody.
        let scratch = self.root.join("tmp");
        if let Ok(entries) = fs::read_dir(&scratch) {
            for e in entries.flatten() {
                let path = e.path();
                let bytes = tree_bytes(&path);
                let gone = match e.file_type() {
                    Ok(t) if t.is_dir() => fs::remove_dir_all(&path),
                    _ => fs::remove_file(&path),
                };
                gone.map_err(|err| StoreError::io(&path, err))?;
                report.removed_scratch += 1;
                report.freed_bytes += bytes;
            }
        }
        let (n, bytes) = ingest::remove_abandoned(self, ingest_ttl)?;
        report.removed_ingests = n;
        report.freed_bytes += bytes;
        (report.kept_ingests, report.kept_ingest_bytes) = ingest::partial_downloads(self)?;
        // A blob's lock file outlives the blob (s8 fidelity pass, P5: 6 stale locks after a gc
        // removed 11 blobs). Nothing else has the store open now, so a lock of a digest with no
        // blob and no partial download guards nothing.
        let locks = self.root.join("locks");
        if let Ok(entries) = fs::read_dir(&locks) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(hex) = name.strip_suffix(".lock") else {
                    continue;
                };
                // A mount point's lock is held only while a command mounts there, and no such
                // command has the store open now.
                if hex
                    .strip_prefix(crate::MOUNT_LOCK_PREFIX)
                    .is_some_and(|h| Digest::sha256_from_hex(h).is_ok())
                {
                    let _ = fs::remove_file(e.path());
                    continue;
                }
                // Only names fspack writes (lowercase hex): anything else is not ours to remove.
                let is_digest = Digest::sha256_from_hex(hex).is_ok();
                if is_digest
                    && !dir.join(hex).exists()
                    && !self
                        .root
                        .join("ingest")
                        .join(format!("{hex}.data"))
                        .exists()
                {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
        Ok(report)
    }
}

/// Bytes held by the file, or by the files under the directory, at `path` (0 where unreadable).
fn tree_bytes(path: &std::path::Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::read_dir(path)
            .map(|d| d.flatten().map(|e| tree_bytes(&e.path())).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}
