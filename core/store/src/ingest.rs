//! Partial downloads: a preallocated file written at any offset, a journal of the byte ranges
//! written so far, and a commit that verifies before anything becomes a blob.
//!
//! Files: `ingest/<hex>.data` (the content so far), `ingest/<hex>.ranges` (first line the expected
//! size, then one `start end` line per written range) and `locks/<hex>.lock` (an exclusive file
//! lock while a process works on the blob).
//!
//! Two ways to write. [`Ingest::write_at`] is the download path: each piece is written, writeback
//! started early (a background `fdatasync` every 32 MiB), its range journaled (no fsync: a journal entry
//! is a claim that a resumed pull re-verifies, per chunk where the blob has a chunk index, and
//! always through the whole-blob digest), and the whole-blob sha256 advanced over the in-order
//! prefix, so [`Ingest::commit_written`] needs neither a read-back nor a long fsync. The other
//! path, [`Ingest::file`] + [`Ingest::commit`] (local copies: import, push staging), journals
//! nothing and hashes at commit.
//!
//! A piece that continues the hashed prefix is hashed from the caller's buffer; pieces that
//! land ahead of the prefix are read back by the hasher moments later, from the page cache.
//! Every piece is written through the page cache. Writing the in-order pieces with `O_DIRECT`
//! (1 MiB writes, past the page cache) saved CPU but lost on the disk: the 2 GiB pull on this
//! machine's virtio disk took 6.9-10.1 s that way and 4.5-4.9 s buffered, where the kernel's
//! writeback sends large requests (issue 9; measured 2026-11-30, three interleaved runs each).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use std::sync::Mutex;

use fspack_chunkindex::PrefixHasher;
use fspack_digest::Digest;

use crate::error::{Result, StoreError};
use crate::{Store, digest_hex, sync_dir};

/// A blob being written. Dropping it keeps the partial data for a later resume.
///
/// When the blob is already committed (typically: another process committed it while this one
/// waited for the lock), no partial file is created: [`Ingest::is_committed`] says so, [`file`]
/// is the committed blob opened read-only, and [`commit`] returns its path.
///
/// [`file`]: Ingest::file
/// [`commit`]: Ingest::commit
#[derive(Debug)]
pub struct Ingest {
    digest: Digest,
    size: u64,
    data_path: PathBuf,
    journal_path: PathBuf,
    blob_path: PathBuf,
    file: File,
    committed: bool,
    hasher: PrefixHasher,
    journal: Mutex<Option<File>>,
    unsynced: std::sync::atomic::AtomicU64,
    syncing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Permission bits of the committed blob (the store's [`crate::Access`]).
    blob_mode: u32,
    _lock: File,
}

/// Bytes written between two background writebacks (see [`Ingest::write_at`]).
const WRITEBACK_EVERY: u64 = 32 << 20;

impl Ingest {
    pub(crate) fn open(store: &Store, digest: &Digest, size: u64) -> Result<Ingest> {
        let hex = digest_hex(digest)?;
        let lock = store.lock_file(
            &format!("{hex}.lock"),
            rustix::fs::FlockOperation::LockExclusive,
        )?;
        let dir = store.root().join("ingest");
        let data_path = dir.join(format!("{hex}.data"));
        let journal_path = dir.join(format!("{hex}.ranges"));
        let blob_path = store.blob_path(digest);
        if store.has_blob_sized(digest, size) {
            // Leftovers of an earlier attempt that lost the race are no longer needed.
            let _ = fs::remove_file(&data_path);
            let _ = fs::remove_file(&journal_path);
            let file = File::open(&blob_path).map_err(|e| StoreError::io(&blob_path, e))?;
            return Ok(Ingest {
                digest: digest.clone(),
                size,
                data_path,
                journal_path,
                blob_path,
                file,
                committed: true,
                hasher: PrefixHasher::new(size),
                journal: Mutex::new(None),
                unsynced: Default::default(),
                syncing: Default::default(),
                blob_mode: store.blob_mode(),
                _lock: lock,
            });
        }
        // A journal for another size (a different descriptor) cannot be trusted: start over.
        if read_journal(&journal_path)?.is_some_and(|(s, _)| s != size) {
            let _ = fs::remove_file(&journal_path);
            let _ = fs::remove_file(&data_path);
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&data_path)
            .map_err(|e| StoreError::io(&data_path, e))?;
        let len = file
            .metadata()
            .map_err(|e| StoreError::io(&data_path, e))?
            .len();
        if len != size {
            file.set_len(size)
                .map_err(|e| StoreError::io(&data_path, e))?;
        }
        // Reserve the space now: a full disk fails here, not halfway through the download.
        if size > 0 {
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::KEEP_SIZE, 0, size)
                .or_else(|e| {
                    if e == rustix::io::Errno::OPNOTSUPP {
                        Ok(())
                    } else {
                        Err(e)
                    }
                })
                .map_err(|e| StoreError::io(&data_path, e.into()))?;
        }
        if !journal_path.exists() {
            let mut j =
                File::create(&journal_path).map_err(|e| StoreError::io(&journal_path, e))?;
            writeln!(j, "{size}").map_err(|e| StoreError::io(&journal_path, e))?;
        }
        Ok(Ingest {
            digest: digest.clone(),
            size,
            data_path,
            journal_path,
            blob_path,
            file,
            committed: false,
            hasher: PrefixHasher::new(size),
            journal: Mutex::new(None),
            unsynced: Default::default(),
            syncing: Default::default(),
            blob_mode: store.blob_mode(),
            _lock: lock,
        })
    }

    /// Whether the blob was already committed when this ingest got its lock; then there is
    /// nothing to write.
    pub fn is_committed(&self) -> bool {
        self.committed
    }

    /// The file to write into (with `pwrite`: `FileExt::write_all_at`).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Copies all of `src` into the file from offset 0, in 1 MiB pieces, telling `progress` the
    /// bytes of each piece (local copies: an import, a push to an `oci:` layout). Journals and
    /// hashes nothing: [`Ingest::commit`] verifies. Returns the bytes copied.
    ///
    /// Errors: the `io::Error` of a read or a write (the caller names the source).
    pub fn copy_from(
        &self,
        src: &mut dyn std::io::Read,
        progress: &mut dyn FnMut(u64),
    ) -> std::io::Result<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; 1 << 20];
        let mut off = 0u64;
        loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                return Ok(off);
            }
            self.file.write_all_at(&buf[..n], off)?;
            off += n as u64;
            progress(n as u64);
        }
    }

    /// The digest being ingested.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Byte ranges `[start, end)` already durably written by earlier attempts, merged and sorted.
    pub fn done_ranges(&self) -> Vec<(u64, u64)> {
        if self.committed {
            return vec![(0, self.size)];
        }
        let Ok(Some((_, mut ranges))) = read_journal(&self.journal_path) else {
            return Vec::new();
        };
        ranges.sort();
        let mut merged: Vec<(u64, u64)> = Vec::new();
        for (s, e) in ranges.into_iter().filter(|(s, e)| s < e && *e <= self.size) {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }

    /// The expected size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads `buf.len()` bytes of the partial (or committed) content at `offset`.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.read_exact_at(buf, offset)
    }

    /// Tells the whole-blob hasher that `[start, end)` is present from an earlier attempt (after
    /// the caller re-verified it, where it can); it is hashed from the file when its turn comes.
    pub fn keep_present(&self, start: u64, end: u64) {
        self.hasher.present(start, end);
    }

    /// Writes `bytes` at `offset`: `pwrite`, early writeback (so the fsync at commit is short),
    /// a journal line, and the whole-blob hash advanced over the in-order prefix. Safe to call
    /// from several threads at once for disjoint ranges.
    ///
    /// When `bytes` continue the hashed prefix they are hashed from the buffer, before the
    /// write: they are never read back.
    ///
    /// Errors: the `io::Error` of the write or the journal append (the data file's or journal's
    /// path is in the caller's context).
    pub fn write_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        if offset.saturating_add(bytes.len() as u64) > self.size {
            return Err(std::io::Error::other(format!(
                "write of {} bytes at {offset} passes the blob's {} bytes",
                bytes.len(),
                self.size
            )));
        }
        let read_at = |b: &mut [u8], o| self.read_at(b, o);
        let hashed = self.hasher.hash_next(offset, bytes, &read_at)?;
        self.file.write_all_at(bytes, offset)?;
        self.start_writeback(bytes.len() as u64);
        {
            let mut j = self.journal.lock().expect("not poisoned");
            if j.is_none() {
                *j = Some(OpenOptions::new().append(true).open(&self.journal_path)?);
            }
            let line = format!("{offset} {}\n", offset + bytes.len() as u64);
            j.as_mut().expect("opened").write_all(line.as_bytes())?;
        }
        if hashed {
            self.hasher.catch_up(&read_at)
        } else {
            self.hasher.written(offset, bytes, &read_at)
        }
    }

    /// Starts writeback in the background once [`WRITEBACK_EVERY`] bytes were written since the
    /// last one, so the fsync at commit waits only for the tail. An `fdatasync` on a thread of
    /// its own: the downloads never wait for it (`sync_file_range` would say the same thing more
    /// precisely, but no well-kept safe binding offers it).
    fn start_writeback(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let since = self.unsynced.fetch_add(n, Ordering::Relaxed) + n;
        if since < WRITEBACK_EVERY || self.syncing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.unsynced.store(0, Ordering::Relaxed);
        let Ok(file) = self.file.try_clone() else {
            self.syncing.store(false, Ordering::Release);
            return;
        };
        let flag = self.syncing.clone();
        std::thread::spawn(move || {
            let _ = file.sync_data();
            flag.store(false, Ordering::Release);
        });
    }

    /// Commits content written with [`Ingest::write_at`] (and ranges kept with
    /// [`Ingest::keep_present`]): the incrementally computed sha256 must equal the digest, then
    /// fsync, read-only, rename into `blobs/`, fsync of the directory.
    ///
    /// Errors: [`StoreError::SizeMismatch`] when some byte was never written (nothing is
    /// discarded: a later pull resumes), [`StoreError::DigestMismatch`] (the partial data is
    /// discarded), [`StoreError::Io`].
    pub fn commit_written(self) -> Result<PathBuf> {
        if self.committed {
            return Ok(self.blob_path.clone());
        }
        let digest = self
            .hasher
            .finish(&|b: &mut [u8], o| self.read_at(b, o))
            .map_err(|e| StoreError::io(&self.data_path, e))?;
        let Some(actual) = digest else {
            return Err(StoreError::SizeMismatch {
                digest: self.digest.to_string(),
                expected: self.size,
                actual: self.hasher.hashed_to(),
            });
        };
        if actual != self.digest.as_str() {
            self.discard();
            return Err(StoreError::DigestMismatch {
                digest: self.digest.to_string(),
                actual,
            });
        }
        self.commit_inner(false)
    }

    /// Verifies size and sha256, then moves the content into `blobs/` (fsync, rename, fsync dir,
    /// read-only). On a mismatch the partial data is deleted and nothing is committed.
    pub fn commit(self) -> Result<PathBuf> {
        self.commit_inner(true)
    }

    fn commit_inner(self, hash: bool) -> Result<PathBuf> {
        if self.committed {
            return Ok(self.blob_path.clone());
        }
        self.file
            .sync_all()
            .map_err(|e| StoreError::io(&self.data_path, e))?;
        let actual_size = self
            .file
            .metadata()
            .map_err(|e| StoreError::io(&self.data_path, e))?
            .len();
        if actual_size != self.size {
            self.discard();
            return Err(StoreError::SizeMismatch {
                digest: self.digest.to_string(),
                expected: self.size,
                actual: actual_size,
            });
        }
        if hash {
            self.verify_digest()?;
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&self.data_path, fs::Permissions::from_mode(self.blob_mode))
            .map_err(|e| StoreError::io(&self.data_path, e))?;
        fs::rename(&self.data_path, &self.blob_path)
            .map_err(|e| StoreError::io(&self.blob_path, e))?;
        sync_dir(self.blob_path.parent().expect("blob has a parent"))?;
        let _ = fs::remove_file(&self.journal_path);
        Ok(self.blob_path.clone())
    }

    /// Hashes the whole file; on a mismatch discards it.
    fn verify_digest(&self) -> Result<()> {
        let actual = crate::digest::sha256_of_file(&self.data_path)?;
        if actual != self.digest {
            self.discard();
            return Err(StoreError::DigestMismatch {
                digest: self.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Stops without committing, keeping the partial data for a later resume.
    pub fn abort(self) {}

    /// Deletes the partial data and its journal.
    pub fn discard(&self) {
        if self.committed {
            return;
        }
        let _ = fs::remove_file(&self.data_path);
        let _ = fs::remove_file(&self.journal_path);
    }
}

/// A journal's content: the expected size and the finished `[start, end)` ranges.
type Journal = (u64, Vec<(u64, u64)>);

/// Reads a journal: the size line and the finished ranges (a torn last line is ignored).
fn read_journal(path: &std::path::Path) -> Result<Option<Journal>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let mut lines = text.lines();
    let Some(size) = lines.next().and_then(|l| l.trim().parse().ok()) else {
        return Ok(None);
    };
    let ranges = lines
        .filter_map(|l| {
            let (a, b) = l.split_once(' ')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect();
    Ok(Some((size, ranges)))
}

/// The partial downloads in the store: (count, bytes of their data files).
pub(crate) fn partial_downloads(store: &Store) -> Result<(usize, u64)> {
    let dir = store.root().join("ingest");
    let mut out = (0, 0);
    for e in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
        let e = e.map_err(|e| StoreError::io(&dir, e))?;
        if e.file_name().to_string_lossy().ends_with(".data") {
            use std::os::unix::fs::MetadataExt;
            out.0 += 1;
            // Allocated bytes: a partial file is sparse past what has arrived.
            out.1 += e.metadata().map(|m| m.blocks() * 512).unwrap_or(0);
        }
    }
    Ok(out)
}

/// Removes partial downloads nobody is working on and nobody touched for `ttl`; returns
/// (count, bytes).
pub(crate) fn remove_abandoned(store: &Store, ttl: std::time::Duration) -> Result<(usize, u64)> {
    let dir = store.root().join("ingest");
    let mut n = 0;
    let mut bytes = 0;
    for e in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
        let e = e.map_err(|e| StoreError::io(&dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let age = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        if age < ttl {
            continue;
        }
        // What a killed writer of a small blob (`.HEX.tmp-RANDOM`) or of an expanded layer
        // (`stream-PID-N.tmp`) left: no lock guards them, but no live writer takes a day.
        let stray = (name.starts_with('.') && name.contains(".tmp-"))
            || (name.starts_with("stream-") && name.ends_with(".tmp"));
        if stray {
            bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = fs::remove_file(e.path());
            n += 1;
            continue;
        }
        let Some(hex) = name.strip_suffix(".data") else {
            continue;
        };
        let lock_path = store.root().join("locks").join(format!("{hex}.lock"));
        let Ok(lock) = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
        else {
            continue;
        };
        if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            continue; // in use by a running pull
        }
        bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = fs::remove_file(e.path());
        let _ = fs::remove_file(dir.join(format!("{hex}.ranges")));
        let _ = fs::remove_file(&lock_path);
        n += 1;
    }
    Ok((n, bytes))
}
