//! One read of a layer's source gives its digest and its chunk index (issue 9), and the bytes
//! as uploaded (the source, then the index when embedded). Shared by `push` and by `build`,
//! whose device tags name the layer a data blob becomes (issue 13), so that neither depends on
//! the other.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use fspack_digest::Digest;
use fspack_registry::BlobSource;
use sha2::{Digest as _, Sha256};

use crate::digest_cache::{CacheKey, Cached, DigestCache};
use crate::error::{EngineError, Result};
use crate::report::Reporter;

/// A layer's bytes followed by its chunk index: what fspack uploads for every layer
/// (erofs-image-spec §3.4.3, "embedded in the layer blob", raw variant).
struct IndexedSource {
    inner: Arc<dyn BlobSource>,
    index: bytes::Bytes,
}

impl BlobSource for IndexedSource {
    fn size(&self) -> u64 {
        self.inner.size() + self.index.len() as u64
    }
    fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        let data = self.inner.size();
        if offset >= data {
            let tail = self
                .index
                .slice((offset - data).min(self.index.len() as u64) as usize..);
            return Ok(Box::new(std::io::Cursor::new(tail)));
        }
        let tail = std::io::Cursor::new(self.index.clone());
        Ok(Box::new(self.inner.open_at(offset)?.chain(tail)))
    }
}

/// Size in bytes of a layer of `data` bytes once its chunk index is appended.
pub(crate) fn indexed_size(data: u64) -> u64 {
    use fspack_chunkindex::{ChunkIndex, DEFAULT_CHUNK_SIZE};
    data + ChunkIndex::encoded_len(ChunkIndex::chunks_for(data, DEFAULT_CHUNK_SIZE))
}

/// Where a layer's chunk index goes (issue 9, issue 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IndexMode {
    /// Appended to the blob (erofs-image-spec §3.4.3 "embedded"): fspack's own layers.
    Embedded,
    /// A blob of its own, named by the layer's `org.erofs.chunk-index.digest`: ModelPack raw
    /// layers, which must stay the file itself byte for byte.
    Standalone,
    /// No index: ModelPack layers of one chunk or less, which a per-chunk check cannot help.
    None,
}

/// The index mode of a ModelPack raw layer of `size` bytes: a standalone index when the layer
/// spans more than one chunk.
pub(crate) fn model_index_mode(size: u64) -> IndexMode {
    if size > fspack_chunkindex::DEFAULT_CHUNK_SIZE {
        IndexMode::Standalone
    } else {
        IndexMode::None
    }
}

/// Runs hashing jobs in the order they are submitted, on `workers` threads of its own.
///
/// A push used to hash up to `jobs + 1` layers at once; on two cores all of them then finished
/// together, about a second after the start for the 2 GiB model, and no upload could begin
/// before that (issue 14: the push was 0.81x the limit's throughput). In order, each layer's
/// hash uses both cores ([`digest_and_index`]) and the first upload starts after one layer's
/// hash, while later layers are hashed during earlier uploads.
#[derive(Clone)]
pub(crate) struct HashQueue {
    tx: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

impl HashQueue {
    /// A queue with one worker per two available cores (each hash takes two), at least one.
    /// The workers end once every clone of the queue is dropped and the jobs submitted are done.
    pub(crate) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::with_workers((cores / 2).max(1))
    }

    /// A queue with `workers` threads (at least one).
    fn with_workers(workers: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..workers.max(1) {
            let rx = rx.clone();
            let worker = move || {
                loop {
                    // The lock is held only to take a job, so jobs start in submission order.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            };
            std::thread::Builder::new()
                .name(format!("fspack-hash-{i}"))
                .spawn(worker)
                .expect("a thread for hashing");
        }
        HashQueue { tx }
    }

    fn submit(&self, job: Job) {
        self.tx
            .send(job)
            .expect("the hash workers live while the queue does");
    }
}

/// Reads one source once on `queue`'s worker, computing in that one pass its chunk index and
/// the sha256 of the blob it becomes (source bytes, then the index when embedded), with progress
/// on `bar`. Returns the blob's digest, its source as uploaded, the index annotations and a
/// standalone index to upload beside it.
///
/// With [`IndexMode::Standalone`] or [`IndexMode::None`] the blob is the source alone: a
/// ModelPack layer must be the file itself, byte for byte, for modctl and every other reader
/// (issue 15).
///
/// With a `cache` and a `key`, a layer hashed before with the same key is not read: its digest
/// and chunk index come from the store's digest cache ([`crate::digest_cache`], issue 14), and a
/// layer hashed here is recorded there for the next push.
///
/// The job is queued when this is called, not when the future is first polled, so a caller can
/// hash ahead of what it awaits ([`crate::push`]); jobs run in the order of the calls. Dropping
/// the future does not stop it.
pub(crate) fn hash(
    queue: &HashQueue,
    src: Arc<dyn BlobSource>,
    reporter: Arc<dyn Reporter>,
    bar: usize,
    mode: IndexMode,
    cache: Option<(DigestCache, CacheKey)>,
) -> impl Future<Output = Result<Hashed>> + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel();
    queue.submit(Box::new(move || {
        let _ = tx.send(hash_cached(src, &*reporter, bar, mode, cache));
    }));
    async move {
        rx.await
            .expect("hash job does not panic")
            .map_err(source_error)
    }
}

/// The blocking work of [`hash`].
fn hash_cached(
    src: Arc<dyn BlobSource>,
    reporter: &dyn Reporter,
    bar: usize,
    mode: IndexMode,
    cache: Option<(DigestCache, CacheKey)>,
) -> std::io::Result<Hashed> {
    let _span = tracing::debug_span!("hash", bytes = src.size()).entered();
    tracing::debug!("hashing");
    let advance = |n| reporter.advance(bar, n);
    let Some((cache, key)) = cache else {
        return hash_blocking(src, &advance, mode);
    };
    // Entries written before standalone indexes existed hold no index: a miss.
    if let Some(hit) = cache
        .get(&key, src.size())
        .filter(|h| mode != IndexMode::Standalone || !h.index_hex.is_empty())
    {
        let index = hex::decode(&hit.index_hex).expect("checked by DigestCache::get");
        advance(src.size());
        return Ok(assemble(src, hit.digest, index.into(), mode));
    }
    let (digest, index) = digest_and_index(&*src, &advance, mode == IndexMode::Embedded)?;
    let entry = Cached {
        digest: digest.clone(),
        data_len: src.size(),
        index_hex: hex::encode(&index),
    };
    cache.put(&key, &entry);
    tracing::debug!(%digest, "hashed");
    Ok(assemble(src, digest, index, mode))
}

/// A hashed layer.
pub(crate) struct Hashed {
    /// The layer's digest.
    pub digest: Digest,
    /// Its bytes as uploaded (the source, then the index when embedded).
    pub blob: Arc<dyn BlobSource>,
    /// The index's descriptor annotations.
    pub annotations: BTreeMap<String, String>,
    /// A standalone index, uploaded as a blob of its own.
    pub standalone: Option<bytes::Bytes>,
}

/// The blocking work of [`hash`], calling `advance` with each piece's length. Also used by
/// `fspack build`, whose device tags name the layer a data blob becomes (issue 13).
pub(crate) fn hash_blocking(
    src: Arc<dyn BlobSource>,
    advance: &dyn Fn(u64),
    mode: IndexMode,
) -> std::io::Result<Hashed> {
    let (digest, index) = digest_and_index(&*src, advance, mode == IndexMode::Embedded)?;
    Ok(assemble(src, digest, index, mode))
}

/// A layer's bytes as uploaded (the source, then `index` when embedded), with its digest and
/// the index's descriptor annotations.
fn assemble(
    src: Arc<dyn BlobSource>,
    digest: Digest,
    index: bytes::Bytes,
    mode: IndexMode,
) -> Hashed {
    match mode {
        IndexMode::None => Hashed {
            digest,
            blob: src,
            annotations: BTreeMap::new(),
            standalone: None,
        },
        IndexMode::Standalone => Hashed {
            digest,
            blob: src,
            annotations: fspack_chunkindex::Standalone::annotations(&index),
            standalone: Some(index),
        },
        IndexMode::Embedded => {
            let annotations = fspack_chunkindex::Embedded::annotations(src.size(), &index);
            let blob: Arc<dyn BlobSource> = Arc::new(IndexedSource { inner: src, index });
            Hashed {
                digest,
                blob,
                annotations,
                standalone: None,
            }
        }
    }
}

/// Bytes per read of a source while hashing.
const HASH_BUFFER: usize = 1 << 20;

/// Buffers in flight between the reader and the chunk hasher: enough that neither waits for the
/// other on a short read, few enough to keep the memory at 4 MiB.
const HASH_BUFFERS: usize = 4;

/// One read of `src`: the digest of the layer it becomes (the source bytes, then its encoded
/// chunk index when `embed_index`) and that index, computed in the same pass either way.
///
/// A source of more than one chunk is hashed on two threads: this one reads and computes the
/// blob's sha256, a second one the chunks' sha256 over the same buffers, handed over once read.
/// Both are sequential by nature (SHA-256 chains its blocks), so two threads are as many as
/// one blob can use; the layer is ready in half the time (issue 14).
///
/// Errors: the source's read errors, and `Other` when it gives more or fewer bytes than its
/// planned size (it changed while read).
fn digest_and_index(
    src: &dyn BlobSource,
    advance: &dyn Fn(u64),
    embed_index: bool,
) -> std::io::Result<(Digest, bytes::Bytes)> {
    use fspack_chunkindex::{ChunkIndexBuilder, DEFAULT_CHUNK_SIZE};
    let mut r = src.open_at(0)?;
    let mut h = Sha256::new();
    let mut chunks = ChunkIndexBuilder::new(DEFAULT_CHUNK_SIZE);
    let n_total = if src.size() <= DEFAULT_CHUNK_SIZE {
        let mut buf = vec![0u8; HASH_BUFFER];
        let mut n_total = 0u64;
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break n_total;
            }
            h.update(&buf[..n]);
            chunks.update(&buf[..n]);
            n_total += n as u64;
            advance(n as u64);
        }
    } else {
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<(Vec<u8>, usize)>(HASH_BUFFERS);
        let (empty_tx, empty_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(HASH_BUFFERS);
        for _ in 0..HASH_BUFFERS {
            empty_tx
                .send(vec![0u8; HASH_BUFFER])
                .expect("room for every buffer");
        }
        std::thread::scope(|s| {
            let chunker = s.spawn(|| {
                for (buf, n) in full_rx {
                    chunks.update(&buf[..n]);
                    // Fails only once the reader has stopped, which needs no more buffers.
                    let _ = empty_tx.send(buf);
                }
            });
            let mut n_total = 0u64;
            let read = loop {
                let Ok(mut buf) = empty_rx.recv() else {
                    break Err(std::io::Error::other("the chunk hasher stopped"));
                };
                let n = match r.read(&mut buf) {
                    Ok(0) => break Ok(n_total),
                    Ok(n) => n,
                    Err(e) => break Err(e),
                };
                h.update(&buf[..n]);
                n_total += n as u64;
                advance(n as u64);
                if full_tx.send((buf, n)).is_err() {
                    break Err(std::io::Error::other("the chunk hasher stopped"));
                }
            };
            drop(full_tx);
            chunker.join().expect("the chunk hasher does not panic");
            read
        })?
    };
    if n_total != src.size() {
        return Err(std::io::Error::other(format!(
            "the source gave {n_total} bytes, {} were planned (did it change?)",
            src.size()
        )));
    }
    let index = bytes::Bytes::from(chunks.finish().encode());
    if embed_index {
        h.update(&index);
    }
    Ok((Digest::from_sha256(h.finalize().into()), index))
}

/// An error reading a layer's sources: the image crate's own error when the plan reader wrapped
/// one (a file that changed, naming its path), else the I/O error. Never a usage error: the user
/// did nothing wrong when a disk fails (issue 13).
pub(crate) fn source_error(e: std::io::Error) -> EngineError {
    let path = PathBuf::from("the image sources");
    if !e.get_ref().is_some_and(|i| i.is::<fspack_image::Error>()) {
        return EngineError::Io { path, source: e };
    }
    match e.into_inner().map(|i| i.downcast::<fspack_image::Error>()) {
        Some(Ok(image)) => EngineError::Image(*image),
        Some(Err(other)) => EngineError::Io {
            path,
            source: std::io::Error::other(other),
        },
        None => EngineError::Io {
            path,
            source: std::io::Error::other("unknown read error"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fspack_chunkindex::{ChunkIndexBuilder, DEFAULT_CHUNK_SIZE};
    use std::sync::Mutex;

    /// Hands out its bytes in reads of 7, 300 001 and 1 MiB + 3 bytes in turn, so buffers and
    /// chunks never line up; fails with `fail_at` once that many bytes were read.
    struct Ragged {
        data: Vec<u8>,
        fail_at: Option<usize>,
    }

    impl BlobSource for Ragged {
        fn size(&self) -> u64 {
            self.data.len() as u64
        }
        fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
            struct R {
                data: Vec<u8>,
                pos: usize,
                turn: usize,
                fail_at: Option<usize>,
            }
            impl Read for R {
                fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                    if self.fail_at.is_some_and(|f| self.pos >= f) {
                        return Err(std::io::Error::other("disk fault"));
                    }
                    let want = [7, 300_001, (1 << 20) + 3][self.turn % 3];
                    self.turn += 1;
                    let n = want.min(buf.len()).min(self.data.len() - self.pos);
                    buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
                    self.pos += n;
                    Ok(n)
                }
            }
            Ok(Box::new(R {
                data: self.data.clone(),
                pos: offset as usize,
                turn: 0,
                fail_at: self.fail_at,
            }))
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn digest_and_index_on_two_threads_equals_one_pass() {
        for len in [0, 1000, DEFAULT_CHUNK_SIZE as usize, 3 * (1 << 20) + 12_345] {
            let bytes = data(len);
            let src = Ragged {
                data: bytes.clone(),
                fail_at: None,
            };
            let counted = Mutex::new(0u64);
            let (digest, index) =
                digest_and_index(&src, &|n| *counted.lock().unwrap() += n, true).unwrap();
            let mut b = ChunkIndexBuilder::new(DEFAULT_CHUNK_SIZE);
            b.update(&bytes);
            let want_index = b.finish().encode();
            assert_eq!(&index[..], &want_index[..], "index of {len} bytes");
            let mut h = Sha256::new();
            h.update(&bytes);
            h.update(&want_index);
            assert_eq!(
                digest,
                Digest::from_sha256(h.finalize().into()),
                "{len} bytes"
            );
            assert_eq!(*counted.lock().unwrap(), len as u64);
        }
    }

    #[test]
    fn digest_and_index_returns_a_read_error_midway() {
        let src = Ragged {
            data: data(5 << 20),
            fail_at: Some(2 << 20),
        };
        let e = digest_and_index(&src, &|_| {}, true).unwrap_err();
        assert!(e.to_string().contains("disk fault"), "{e}");
    }

    #[test]
    fn hash_queue_runs_jobs_one_after_another_in_submission_order() {
        let queue = HashQueue::with_workers(1);
        let finished = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..6u64 {
            let (finished, tx) = (finished.clone(), tx.clone());
            // Earlier jobs take longer: run side by side, they would finish in reverse.
            queue.submit(Box::new(move || {
                std::thread::sleep(std::time::Duration::from_millis(10 * (6 - i)));
                finished.lock().unwrap().push(i);
                tx.send(()).unwrap();
            }));
        }
        for _ in 0..6 {
            rx.recv().unwrap();
        }
        assert_eq!(*finished.lock().unwrap(), vec![0, 1, 2, 3, 4, 5]);
    }
}
