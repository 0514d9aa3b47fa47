//! In-place repair of a committed blob that no longer matches its digest (a disk fault, a crash,
//! a stray `dd`), so that mounts already using the blob's inode see the repaired bytes too.
//!
//! A repair writes only bytes its caller has verified (chunks checked against the blob's chunk
//! index, or a whole copy checked against the digest), under the blob's ingest lock so no pull
//! works on the same digest meanwhile, and ends with a full re-hash and an fsync: the blob is
//! named by its digest again only because it hashes to it again.

use std::fs::{File, OpenOptions};

use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use fspack_digest::Digest;

use crate::error::{Result, StoreError};
use crate::{Store, digest_hex};

/// A committed blob opened for repair. Dropping it without [`BlobRepair::finish`] leaves the
/// blob as it is (possibly still corrupt; `fspack verify` says so).
#[derive(Debug)]
pub struct BlobRepair {
    digest: Digest,
    path: PathBuf,
    file: File,
    _lock: File,
}

impl BlobRepair {
    pub(crate) fn open(store: &Store, digest: &Digest) -> Result<BlobRepair> {
        let hex = digest_hex(digest)?;
        let lock = store.lock_file(
            &format!("{hex}.lock"),
            rustix::fs::FlockOperation::LockExclusive,
        )?;
        let path = store.blob_path(digest);
        // Blobs are 0444; root may write them anyway, anyone else gets EACCES here, named.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(BlobRepair {
            digest: digest.clone(),
            path,
            file,
            _lock: lock,
        })
    }

    /// The blob file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Sets the blob's length in bytes (the size its manifest gives, for a blob truncated or
    /// extended on disk) before it is written whole.
    pub fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }

    /// Writes verified `bytes` at `offset` of the blob.
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(bytes, offset)
    }

    /// Hashes the whole blob again; on a match, makes it durable. Errors with
    /// [`StoreError::CorruptBlob`] when it still does not hash to its digest.
    pub fn finish(self) -> Result<()> {
        let actual = crate::digest::sha256_of_file(&self.path)?;
        if actual != self.digest {
            return Err(StoreError::CorruptBlob {
                digest: self.digest.to_string(),
                actual: actual.to_string(),
                path: self.path.clone(),
            });
        }
        self.file
            .sync_all()
            .map_err(|e| StoreError::io(&self.path, e))
    }
}
