//! One blob from a registry into the store, verified chunk by chunk where the layer carries a
//! chunk index, resumed from every chunk a killed pull left behind.
//!
//! The rule kept here: no byte reaches the partial file before its chunk digest matched (when
//! there is an index), nothing is named by its digest in `blobs/` before the whole-blob sha256
//! matched and the data is durable, and a resumed pull trusts no journal line it has not checked
//! again (each claimed chunk is re-hashed; without an index the whole-blob digest decides).

use std::sync::Arc;

use bytes::Bytes;
use fspack_chunkindex::{
    ChunkIndex, ChunkIndexError, Embedded, IndexAt, MAX_INDEX_LEN, Standalone,
};
use fspack_registry::{BlobSink, Client, DownloadOptions, DownloadStats, Reference};
use fspack_store::{Ingest, Store};

use crate::artifact::{Descriptor, layer_title};
use crate::error::{EngineError, Result};
use crate::report::{Reporter, TransferProgress};

/// Fetches of the chunk index that may fail its digest before the pull gives up.
const INDEX_ATTEMPTS: u32 = 3;

/// The chunk index a layer descriptor announces (embedded in the blob's tail, or a standalone
/// blob named by digest as fspack pushes for ModelPack raw layers), if fspack can use it.
///
/// Returns `Ok(None)` for layers without one and for index formats fspack does not implement
/// (erofs-image-spec §2.2: treat as absent; the whole-blob digest still verifies everything).
/// Errors with [`EngineError::Integrity`] when the annotations are malformed (§3.4.6: the layer
/// is corrupt), naming the layer.
pub fn chunk_index_of(d: &Descriptor) -> Result<Option<IndexAt>> {
    match IndexAt::from_annotations(&d.annotations, d.size) {
        Ok(e) => Ok(e),
        Err(ChunkIndexError::Unsupported(why)) => {
            tracing::info!(digest = %d.digest, "ignoring the layer's chunk index: {why}");
            Ok(None)
        }
        Err(e) => Err(EngineError::Integrity(format!(
            "layer {} announces a chunk index that cannot be used: {e}",
            d.digest
        ))),
    }
}

/// Checks that a cached blob has the size its descriptor gives. A digest names one content of
/// one size, so when the sizes differ either the manifest is wrong, and it is refused, not
/// half-trusted, or the stored copy was damaged on disk after its commit (truncated, extended),
/// and it is removed so that this pull fetches it again. Hashing the stored copy tells which;
/// it is read only in this case.
///
/// Errors: [`EngineError::Integrity`] naming `what` (the reference) and the blob when the stored
/// copy is intact, so the manifest is wrong; store errors of reading or removing the blob.
pub fn check_cached_size(store: &Store, d: &Descriptor, what: &str) -> Result<()> {
    let path = store.blob_path(&d.digest);
    let Ok(m) = std::fs::metadata(&path) else {
        return Ok(());
    };
    if m.len() == d.size {
        return Ok(());
    }
    if store.discard_if_damaged(&d.digest)? {
        tracing::warn!(
            "the stored copy of blob {} was damaged ({} bytes on disk, {} in the manifest, and it no longer hashes to its digest); fetching it again",
            d.digest,
            m.len(),
            d.size
        );
        return Ok(());
    }
    // Another process may have fetched it again between the length read above and the lock.
    if std::fs::metadata(&path).is_ok_and(|now| now.len() == d.size) {
        return Ok(());
    }
    Err(EngineError::Integrity(format!(
        "{what}: the manifest gives blob {} a size of {} bytes, but the verified blob in the store has {} bytes; the manifest is wrong (a digest names one size)",
        d.digest,
        d.size,
        m.len()
    )))
}

/// An [`Ingest`] as the registry client's sink.
pub(crate) struct IngestSink(pub(crate) Arc<Ingest>);

impl BlobSink for IngestSink {
    fn write_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_at(offset, bytes)
    }
}

/// What fetching one blob did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fetched {
    /// The store had it already (or another process committed it while we waited).
    pub cached: bool,
    /// Whether it was verified per chunk.
    pub chunked: bool,
    /// Transfer counters.
    pub stats: DownloadStats,
}

/// Fetches blob `d` of `r` into `store` and commits it, or finds it there.
///
/// Errors: [`EngineError::Integrity`] for a malformed index or a cached blob of another size,
/// the registry's `ChunkMismatch`, `DigestMismatch`, `Network`, … and the store's errors.
pub async fn fetch_blob(
    client: &Client,
    r: &Reference,
    d: &Descriptor,
    store: &Arc<Store>,
    ranges: usize,
    reporter: &Arc<dyn Reporter>,
) -> Result<Fetched> {
    let embedded = chunk_index_of(d)?;
    check_cached_size(store, d, &r.to_string())?;
    if store.has_blob(&d.digest) {
        reporter.skipped(d.size);
        return Ok(Fetched {
            cached: true,
            ..Default::default()
        });
    }
    let ingest = open_ingest(store, d).await?;
    if ingest.is_committed() {
        // Another pull committed it while we waited for the lock.
        reporter.skipped(d.size);
        return Ok(Fetched {
            cached: true,
            ..Default::default()
        });
    }
    let ingest = Arc::new(ingest);
    let mut stats = DownloadStats::default();
    let (index, present) =
        resume(client, r, d, embedded.as_ref(), store, &ingest, &mut stats).await?;
    let chunked = index.is_some();
    let title = layer_title(d);
    let id = reporter.start(&title, d.size);
    reporter.advance(id, present.iter().map(|(a, b)| b - a).sum());
    let opts = DownloadOptions {
        range_parallelism: ranges,
        chunks: index,
        done_ranges: present,
        ..Default::default()
    };
    let progress = Arc::new(TransferProgress {
        reporter: reporter.clone(),
        id,
    });
    let sink = Arc::new(IngestSink(ingest.clone()));
    let got = client
        .download_to(r, &d.digest, d.size, sink, &opts, progress)
        .await?;
    stats.bytes_received += got.bytes_received;
    stats.chunks_refetched += got.chunks_refetched;
    let ingest = Arc::try_unwrap(ingest)
        .map_err(|_| EngineError::Integrity(format!("blob {} is still being written", d.digest)))?;
    tokio::task::spawn_blocking(move || ingest.commit_written())
        .await
        .expect("no panic")?;
    reporter.finish(id);
    Ok(Fetched {
        cached: false,
        chunked,
        stats,
    })
}

/// Takes blob `d`'s ingest (its file lock, the partial file and journal), waiting for another
/// process that holds the lock off the async threads.
///
/// Errors: the store's, naming the blob.
pub(crate) async fn open_ingest(store: &Arc<Store>, d: &Descriptor) -> Result<Ingest> {
    let (store, digest, size) = (store.clone(), d.digest.clone(), d.size);
    Ok(
        tokio::task::spawn_blocking(move || store.ingest(&digest, size))
            .await
            .expect("no panic")?,
    )
}

/// What a blob being ingested starts from: its chunk index when `at` announces one (see
/// [`load_index`] and [`load_standalone`]), and the byte ranges an earlier, killed attempt left
/// that are kept after checking them again (see [`still_present`]). Shared by eager pulls and
/// the lazy server, so both resume by the same rule.
///
/// Errors: those of [`load_index`] and [`load_standalone`].
pub(crate) async fn resume(
    client: &Client,
    r: &Reference,
    d: &Descriptor,
    at: Option<&IndexAt>,
    store: &Arc<Store>,
    ingest: &Arc<Ingest>,
    stats: &mut DownloadStats,
) -> Result<(Option<Arc<ChunkIndex>>, Vec<(u64, u64)>)> {
    let index = match at {
        Some(IndexAt::Embedded(e)) => Some(load_index(client, r, d, e, ingest, stats).await?),
        Some(IndexAt::Standalone(s)) => load_standalone(client, r, d, s, store, stats).await?,
        None => None,
    };
    let present = {
        let (ingest, index) = (ingest.clone(), index.clone());
        tokio::task::spawn_blocking(move || still_present(&ingest, index.as_deref()))
            .await
            .expect("no panic")
    };
    Ok((index, present))
}

/// Gets the chunk index of a blob being ingested: from the partial file when a killed pull
/// already wrote it, else with one Range GET; checked against the digest the manifest gives,
/// written into the partial blob (it is the blob's tail) and parsed.
async fn load_index(
    client: &Client,
    r: &Reference,
    d: &Descriptor,
    e: &Embedded,
    ingest: &Arc<Ingest>,
    stats: &mut DownloadStats,
) -> Result<Arc<ChunkIndex>> {
    let len = e.range.end - e.range.start;
    let have = ingest
        .done_ranges()
        .iter()
        .any(|&(a, b)| a <= e.range.start && e.range.end <= b);
    if have {
        let mut buf = vec![0u8; len as usize];
        if ingest.read_at(&mut buf, e.range.start).is_ok()
            && let Ok(ix) = e.open(&buf)
        {
            ingest.keep_present(e.range.start, e.range.end);
            return Ok(Arc::new(ix));
        }
    }
    let mut last = None;
    for attempt in 1..=INDEX_ATTEMPTS {
        let bytes: Bytes = client
            .get_blob_range(r, &d.digest, e.range.start, e.range.end, MAX_INDEX_LEN)
            .await?;
        stats.bytes_received += bytes.len() as u64;
        match e.open(&bytes) {
            Ok(ix) => {
                let (ingest, at) = (ingest.clone(), e.range.start);
                tokio::task::spawn_blocking(move || ingest.write_at(at, &bytes))
                    .await
                    .expect("no panic")
                    .map_err(|err| {
                        EngineError::io(
                            &std::path::PathBuf::from(format!("ingest of {}", d.digest)),
                            err,
                        )
                    })?;
                return Ok(Arc::new(ix));
            }
            Err(err) => {
                tracing::warn!(digest = %d.digest, attempt, "chunk index failed verification: {err}");
                if attempt < INDEX_ATTEMPTS {
                    stats.chunks_refetched += 1;
                }
                last = Some(err);
            }
        }
    }
    Err(EngineError::Integrity(format!(
        "the chunk index of blob {} from {} failed verification {INDEX_ATTEMPTS} times: {}",
        d.digest,
        r.registry,
        last.expect("at least one attempt")
    )))
}

/// Gets the standalone chunk index of blob `d`: from the store when an earlier pull kept it,
/// else the blob the annotation names, from the same repository; checked against that digest
/// (which the manifest gives) and kept in the store for `verify` and the next pull.
///
/// Returns `Ok(None)` when the registry does not have the index blob (an artifact copied by a
/// tool that does not follow referrers): the whole-blob digest then verifies the layer, as for
/// any layer without an index.
///
/// Errors: [`EngineError::Integrity`] when the index fails its digest or does not cover the
/// blob [`INDEX_ATTEMPTS`] times, the registry's other errors, and the store's.
async fn load_standalone(
    client: &Client,
    r: &Reference,
    d: &Descriptor,
    s: &Standalone,
    store: &Arc<Store>,
    stats: &mut DownloadStats,
) -> Result<Option<Arc<ChunkIndex>>> {
    if store.has_blob(&s.digest)
        && let Ok(bytes) = store.read_blob(&s.digest, MAX_INDEX_LEN)
        && let Ok(ix) = s.open(&bytes)
    {
        return Ok(Some(Arc::new(ix)));
    }
    let mut last = None;
    for attempt in 1..=INDEX_ATTEMPTS {
        let got = client
            .get_blob_bytes(r, &s.digest, MAX_INDEX_LEN as usize)
            .await;
        let bytes = match got {
            Ok(b) => b,
            Err(fspack_registry::RegistryError::NotFound { .. }) => {
                tracing::warn!(digest = %d.digest, index = %s.digest,
                    "the registry lacks the layer's chunk index; verifying the whole blob instead");
                return Ok(None);
            }
            Err(e @ fspack_registry::RegistryError::DigestMismatch { .. }) => {
                tracing::warn!(digest = %d.digest, attempt, "chunk index failed verification: {e}");
                if attempt < INDEX_ATTEMPTS {
                    stats.chunks_refetched += 1;
                }
                last = Some(e.to_string());
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        stats.bytes_received += bytes.len() as u64;
        match s.open(&bytes) {
            Ok(ix) => {
                store.put_blob_bytes(&bytes)?;
                return Ok(Some(Arc::new(ix)));
            }
            Err(err) => {
                // The digest matched, so the bytes are what the manifest names: no retry helps.
                return Err(EngineError::Integrity(format!(
                    "the chunk index {} of blob {} from {} cannot be used: {err}",
                    s.digest, d.digest, r.registry
                )));
            }
        }
    }
    Err(EngineError::Integrity(format!(
        "the chunk index {} of blob {} from {} failed verification {INDEX_ATTEMPTS} times: {}",
        s.digest,
        d.digest,
        r.registry,
        last.expect("at least one attempt")
    )))
}

/// The byte ranges an earlier attempt left that can be kept: with an index, each chunk the
/// journal claims is hashed again and kept only if it matches (so a torn write or a disk that
/// lost data after a crash costs a refetch, never a wrong byte); without one, the journal's
/// ranges, which the whole-blob digest checks at commit. Kept ranges go to the ingest's hasher.
fn still_present(ingest: &Ingest, index: Option<&ChunkIndex>) -> Vec<(u64, u64)> {
    let claimed = ingest.done_ranges();
    let Some(ix) = index else {
        for &(a, b) in &claimed {
            ingest.keep_present(a, b);
        }
        return claimed;
    };
    let mut kept: Vec<(u64, u64)> = Vec::new();
    let mut buf = Vec::new();
    for &(a, b) in &claimed {
        for i in ix.chunks_covering(a, b) {
            let r = ix.chunk(i);
            if r.start < a || r.end > b {
                continue; // only partly written
            }
            buf.resize((r.end - r.start) as usize, 0);
            if ingest.read_at(&mut buf, r.start).is_ok() && ix.verify(i, &buf) {
                ingest.keep_present(r.start, r.end);
                match kept.last_mut() {
                    Some(l) if l.1 == r.start => l.1 = r.end,
                    _ => kept.push((r.start, r.end)),
                }
            }
        }
    }
    // The index itself (the blob's tail) was handled by `load_index`.
    kept
}
