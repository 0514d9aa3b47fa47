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

/// Reads one source once on a blocking thread, computing in that one pass its chunk index and
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
/// The work starts when this is called, not when the future is first polled, so a caller can
/// hash ahead of what it awaits ([`crate::push`]). Dropping the future does not stop it.
pub(crate) fn hash(
    src: Arc<dyn BlobSource>,
    reporter: Arc<dyn Reporter>,
    bar: usize,
    mode: IndexMode,
    cache: Option<(DigestCache, CacheKey)>,
) -> impl Future<Output = Result<Hashed>> + 'static {
    let task = tokio::task::spawn_blocking(move || {
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
    });
    async move {
        task.await
            .expect("hash task does not panic")
            .map_err(source_error)
    }
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

/// One read of `src`: the digest of the layer it becomes (the source bytes, then its encoded
/// chunk index when `embed_index`) and that index, computed in the same pass either way.
fn digest_and_index(
    src: &dyn BlobSource,
    advance: &dyn Fn(u64),
    embed_index: bool,
) -> std::io::Result<(Digest, bytes::Bytes)> {
    use fspack_chunkindex::{ChunkIndexBuilder, DEFAULT_CHUNK_SIZE};
    let mut r = src.open_at(0)?;
    let mut h = Sha256::new();
    let mut chunks = ChunkIndexBuilder::new(DEFAULT_CHUNK_SIZE);
    let mut buf = vec![0u8; 1 << 20];
    let mut n_total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        chunks.update(&buf[..n]);
        n_total += n as u64;
        advance(n as u64);
    }
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
