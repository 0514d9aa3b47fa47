//! Blob downloads, verified as they land: several `Range` GETs at once, each body cut into units
//! (the chunks of the blob's chunk index, or fixed-size pieces when it has none), each unit
//! checked against its chunk digest before it is handed to the caller's [`BlobSink`], and a cut
//! or a bad chunk resumed from the start of that unit. Range support is optional on the server
//! side (distribution-spec "SHOULD"), so a 200 or a `Content-Range` that does not start where we
//! asked is never spliced: we drop to one plain stream from offset 0.
//!
//! The whole-blob digest is the sink's business (the store's ingest hashes the in-order prefix
//! while later pieces still arrive); [`Client::download_blob`] is the plain-file form that does
//! it with a [`PrefixHasher`] and never reads the file back after the last byte.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use fspack_chunkindex::{ChunkIndex, PrefixHasher};
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::header::{CONTENT_RANGE, HeaderValue, RANGE};
use reqwest::{Method, Response, StatusCode};

use crate::Progress;
use crate::client::Client;
use crate::error::RegistryError;
use crate::redact::redact_url;
use crate::reference::Reference;
use crate::transport::{Ctx, Req, unexpected};
use fspack_digest::Digest;

mod job;
mod units;

use job::{Job, RangeError};
use units::Units;

/// Progress after which a failing range gets its full set of retries back (containers/image).
const PROGRESS_RESETS_RETRIES: u64 = 1 << 20;

/// Called with `(start, end)` (half-open) once those bytes are handed to the sink.
pub type RangeDone = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Where the verified units of a blob go. Called from blocking threads, several at once, each
/// unit exactly once per successful fetch; an error fails the download.
pub trait BlobSink: Send + Sync {
    /// Writes `bytes` (already verified against their chunk digest, when there is an index) at
    /// byte `offset` of the blob.
    fn write_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()>;
}

/// How a blob is fetched.
#[derive(Clone)]
pub struct DownloadOptions {
    /// Concurrent ranged GETs for one blob.
    pub range_parallelism: usize,
    /// Largest range per request in bytes (rounded to whole units). Small enough that the
    /// lanes move through the blob roughly in order, so the in-order prefix (and with it the
    /// whole-blob digest) keeps up with the download.
    pub max_range: u64,
    /// Smallest blob in bytes worth splitting into parallel ranges.
    pub min_split: u64,
    /// Unit size in bytes for a blob without a chunk index (what is resumed after a cut).
    pub unit: u64,
    /// The blob's verified chunk index: units are its chunks, each checked before it reaches
    /// the sink, and only `[0, index.data_size())` is fetched (the caller already holds the
    /// index bytes behind it).
    pub chunks: Option<Arc<ChunkIndex>>,
    /// Fetches of one chunk that may fail verification before the download fails with
    /// [`RegistryError::ChunkMismatch`].
    pub chunk_attempts: u32,
    /// Byte ranges `[start, end)` already present (from a journal); units they cover whole
    /// are not fetched again.
    pub done_ranges: Vec<(u64, u64)>,
    /// Told about each unit once the sink has it, for the caller's journal.
    pub on_range_done: Option<RangeDone>,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            range_parallelism: 4,
            max_range: 16 << 20,
            min_split: 8 << 20,
            unit: 1 << 20,
            chunks: None,
            chunk_attempts: 3,
            done_ranges: Vec::new(),
            on_range_done: None,
        }
    }
}

impl std::fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("range_parallelism", &self.range_parallelism)
            .field("max_range", &self.max_range)
            .field("unit", &self.unit)
            .field("chunks", &self.chunks.as_ref().map(|c| c.chunk_count()))
            .field("done_ranges", &self.done_ranges.len())
            .field("on_range_done", &self.on_range_done.is_some())
            .finish()
    }
}

/// What a download did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadStats {
    /// Body bytes received from the registry, including any fetched again.
    pub bytes_received: u64,
    /// Chunks that failed verification and were fetched again.
    pub chunks_refetched: u64,
}

/// The byte ranges of `[0, size)` not covered by `done`, in order.
pub(crate) fn gaps(size: u64, done: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut d: Vec<(u64, u64)> = done
        .iter()
        .map(|&(a, b)| (a.min(size), b.min(size)))
        .filter(|(a, b)| a < b)
        .collect();
    d.sort_unstable();
    let mut out = Vec::new();
    let mut pos = 0;
    for (a, b) in d {
        if a > pos {
            out.push((pos, a));
        }
        pos = pos.max(b);
    }
    if pos < size {
        out.push((pos, size));
    }
    out
}

/// Parses `Content-Range: bytes a-b/total` into `(a, b, total)`; `total` is `None` for `*`.
fn content_range(resp: &Response) -> Option<(u64, u64, Option<u64>)> {
    parse_content_range(resp.headers().get(CONTENT_RANGE)?.to_str().ok()?)
}

/// The text form of [`content_range`] (RFC 9110 §14.4). `None` for anything malformed,
/// including `a > b`; callers then treat the server as ignoring Range.
pub(crate) fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let v = v.trim().strip_prefix("bytes ")?;
    let (range, total) = v.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (a <= b).then_some((a, b, total))
}

/// A [`BlobSink`] over a plain file that also hashes the in-order prefix.
struct FileSink {
    file: File,
    hasher: PrefixHasher,
}

impl FileSink {
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, off)
    }
}

impl BlobSink for FileSink {
    fn write_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(bytes, offset)?;
        self.hasher
            .written(offset, bytes, &|b: &mut [u8], o| self.read_at(b, o))
    }
}

impl Client {
    /// Downloads `[0, size)` of a blob (or `[0, index.data_size())` when `opts.chunks` is set)
    /// into `sink`, verifying each chunk against the index as it lands.
    ///
    /// Large blobs travel as up to `opts.range_parallelism` concurrent Range GETs of at most
    /// `opts.max_range` bytes, dispatched in blob order. Errors: [`RegistryError::ChunkMismatch`]
    /// when a chunk fails verification `opts.chunk_attempts` times, `SizeMismatch` when the
    /// registry reports another size, `NotFound`, `Network` after retries, `Io` from the sink.
    /// The whole-blob digest is not checked here: that is the sink's job.
    pub async fn download_to(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        sink: Arc<dyn BlobSink>,
        opts: &DownloadOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<DownloadStats, RegistryError> {
        let job = self.job(r, digest, size, sink, opts, progress.clone())?;
        let (units, end) = (job.units.clone(), job.units.end);
        let todo = units.missing(&opts.done_ranges);
        let remaining: u64 = todo.iter().map(|(a, b)| b - a).sum();
        let lanes = if end < opts.min_split || opts.range_parallelism <= 1 {
            1
        } else {
            opts.range_parallelism
        };
        let piece = if lanes == 1 {
            u64::MAX
        } else {
            remaining
                .div_ceil(lanes as u64)
                .clamp(units.unit.min(opts.max_range), opts.max_range.max(1))
        };
        let pieces = units.pieces(&todo, piece);
        tracing::debug!(%digest, size, lanes, pieces = pieces.len(), units = units.count(), "downloading blob");
        let result = stream::iter(pieces.iter().copied())
            .map(|(a, b)| job.fetch(a, b, a == 0 && b == size))
            .buffered(lanes)
            .try_collect::<()>()
            .await;
        match result {
            Ok(()) => {}
            Err(RangeError::Fatal(e)) => return Err(e),
            Err(RangeError::Ignored(why)) => {
                tracing::warn!(url = %redact_url(&job.url), "{why}: the server does not honour Range; fetching the blob in one stream");
                progress.reset(0);
                job.fetch(0, end, true).await.map_err(|e| match e {
                    RangeError::Fatal(e) => e,
                    RangeError::Ignored(why) => RegistryError::Protocol {
                        url: redact_url(&job.url),
                        detail: why,
                    },
                })?;
            }
        }
        Ok(DownloadStats {
            bytes_received: job.received.load(Ordering::Relaxed),
            chunks_refetched: job.refetched.load(Ordering::Relaxed),
        })
    }

    /// Downloads bytes `[start, end)` of a blob into `sink` as one Range request, resumed from
    /// the last whole unit after a cut, each unit verified against `opts.chunks` before the sink
    /// gets it (a lazy mount's fill: readers waiting for a chunk are answered as soon as it
    /// lands, not when the whole range has). `start` and `end` must be unit boundaries (chunk
    /// boundaries, with an index) within the fetched part of the blob; `opts.done_ranges` and
    /// the split options do not apply.
    ///
    /// Errors: as [`Client::download_to`]; a registry that ignores Range is a `Protocol` error
    /// here (the caller wanted a part, not the blob).
    #[allow(clippy::too_many_arguments)]
    pub async fn download_range(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        (start, end): (u64, u64),
        sink: Arc<dyn BlobSink>,
        opts: &DownloadOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<DownloadStats, RegistryError> {
        let job = self.job(r, digest, size, sink, opts, progress)?;
        let units = &job.units;
        if start >= end
            || end > units.end
            || units.range(units.at(start)).0 != start
            || units.range(units.at(end - 1)).1 != end
        {
            return Err(RegistryError::Config(format!(
                "bytes {start}..{end} of blob {digest} are not whole units of its {} bytes",
                units.end
            )));
        }
        job.fetch(start, end, false).await.map_err(|e| match e {
            RangeError::Fatal(e) => e,
            RangeError::Ignored(why) => RegistryError::Protocol {
                url: redact_url(&job.url),
                detail: format!("bytes {start}..{end} of blob {digest}: {why}"),
            },
        })?;
        Ok(DownloadStats {
            bytes_received: job.received.load(Ordering::Relaxed),
            chunks_refetched: job.refetched.load(Ordering::Relaxed),
        })
    }

    /// The download of one blob: its units (chunks of `opts.chunks`, or `opts.unit` pieces of
    /// the blob) and where they go. Errors: `Config` for a malformed digest, `SizeMismatch`
    /// for an index over more than `size` bytes.
    fn job<'a>(
        &'a self,
        r: &'a Reference,
        digest: &'a Digest,
        size: u64,
        sink: Arc<dyn BlobSink>,
        opts: &DownloadOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<Job<'a>, RegistryError> {
        let end = opts.chunks.as_ref().map_or(size, |c| c.data_size());
        if end > size {
            return Err(RegistryError::SizeMismatch {
                what: format!("chunk index of blob {digest}"),
                expected: size,
                actual: format!("an index over {end} bytes"),
            });
        }
        Ok(Job {
            client: self,
            r,
            digest,
            url: self.repo_url(r, &format!("blobs/{digest}"))?,
            size,
            units: Units {
                end,
                unit: opts.unit.max(1),
                chunks: opts.chunks.clone(),
            },
            sink,
            progress,
            on_done: opts.on_range_done.clone(),
            chunk_attempts: opts.chunk_attempts.max(1),
            received: AtomicU64::new(0),
            refetched: AtomicU64::new(0),
        })
    }

    /// Downloads a blob of known `size` into `dest` (sized by the caller) and verifies its
    /// sha256 as it lands (the in-order prefix is hashed while later ranges still arrive; the
    /// ranges in `opts.done_ranges` are read back once). Nothing is committed or renamed here.
    ///
    /// Errors: those of [`Client::download_to`], plus `DigestMismatch` when the blob's sha256
    /// differs from `digest`.
    pub async fn download_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        size: u64,
        dest: &File,
        opts: &DownloadOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<DownloadStats, RegistryError> {
        let what = format!("blob {digest} of {}", r.repo_display());
        let file = dest
            .try_clone()
            .map_err(|e| RegistryError::io(format!("duplicate the file handle for {what}"), e))?;
        let sink = Arc::new(FileSink {
            file,
            hasher: PrefixHasher::new(size),
        });
        let mut opts = opts.clone();
        opts.chunks = None;
        // Only whole units count as present; the rest is fetched (and hashed) again.
        let units = Units {
            end: size,
            unit: opts.unit.max(1),
            chunks: None,
        };
        for (a, b) in gaps(size, &units.missing(&opts.done_ranges)) {
            sink.hasher.present(a, b);
        }
        let stats = self
            .download_to(r, digest, size, sink.clone(), &opts, progress)
            .await?;
        let actual = tokio::task::spawn_blocking(move || {
            sink.hasher
                .finish(&|b: &mut [u8], o| sink.read_at(b, o))
                .map_err(|e| RegistryError::io(format!("read back {what}"), e))
        })
        .await
        .map_err(|e| RegistryError::io("verify a blob", std::io::Error::other(e.to_string())))??
        .unwrap_or_default();
        if actual != digest.as_str() {
            return Err(RegistryError::DigestMismatch {
                what: format!("blob {digest} of {}", r.repo_display()),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(stats)
    }

    /// Fetches bytes `[start, end)` of a blob into memory, for small pieces such as a chunk
    /// index (at most `max` bytes; more is refused before anything is read).
    ///
    /// Errors: `Config` when the range is empty or over `max`, `Protocol` when the registry
    /// answers with another range, a 200, or a body of the wrong length, plus `NotFound`,
    /// `Network` and `Auth` as for any request.
    pub async fn get_blob_range(
        &self,
        r: &Reference,
        digest: &Digest,
        start: u64,
        end: u64,
        max: u64,
    ) -> Result<Bytes, RegistryError> {
        if start >= end || end - start > max {
            return Err(RegistryError::Config(format!(
                "refusing to fetch bytes {start}..{end} of blob {digest} into memory (at most {max} bytes)"
            )));
        }
        let url = self.repo_url(r, &format!("blobs/{digest}"))?;
        let ctx = Ctx { r, push: false };
        let mut req = Req::new(Method::GET, url.clone());
        req.headers.insert(
            RANGE,
            HeaderValue::from_str(&format!("bytes={start}-{}", end - 1)).expect("numeric header"),
        );
        let resp = self.send(ctx, &req).await?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    what: format!("blob {digest}"),
                    reference: r.repo_display(),
                });
            }
            StatusCode::OK => {
                return Err(RegistryError::Protocol {
                    url: redact_url(&url),
                    detail: format!(
                        "the registry ignored Range for bytes {start}-{} of blob {digest}",
                        end - 1
                    ),
                });
            }
            _ => return Err(unexpected(&url, resp).await),
        }
        if content_range(&resp).map(|(a, b, _)| (a, b + 1)) != Some((start, end)) {
            return Err(RegistryError::Protocol {
                url: redact_url(&url),
                detail: format!("asked for bytes {start}-{}, got another range", end - 1),
            });
        }
        let body = crate::transport::read_capped(resp, (end - start) as usize + 1)
            .await
            .map_err(|_| RegistryError::Protocol {
                url: redact_url(&url),
                detail: format!("body of bytes {start}-{} was cut or too long", end - 1),
            })?;
        if body.len() as u64 != end - start {
            return Err(RegistryError::Protocol {
                url: redact_url(&url),
                detail: format!("asked for {} bytes, got {}", end - start, body.len()),
            });
        }
        Ok(Bytes::from(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_complement_done_ranges() {
        assert_eq!(gaps(10, &[]), vec![(0, 10)]);
        assert_eq!(gaps(10, &[(0, 10)]), vec![]);
        assert_eq!(gaps(10, &[(2, 4), (3, 6), (8, 20)]), vec![(0, 2), (6, 8)]);
        assert_eq!(gaps(10, &[(5, 5), (7, 3)]), vec![(0, 10)]);
        assert_eq!(gaps(0, &[]), vec![]);
    }

    #[test]
    fn missing_units_are_whole_and_pieces_cut_on_unit_boundaries() {
        let u = Units {
            end: 10,
            unit: 4,
            chunks: None,
        }; // [0,4) [4,8) [8,10)
        // A partly present unit is fetched whole.
        assert_eq!(u.missing(&[(0, 5)]), vec![(4, 10)]);
        assert_eq!(u.missing(&[(0, 4), (8, 10)]), vec![(4, 8)]);
        assert_eq!(u.missing(&[(1, 3)]), vec![(0, 10)]);
        assert_eq!(u.missing(&[(0, 10)]), vec![]);
        assert_eq!(u.pieces(&[(0, 10)], 5), vec![(0, 8), (8, 10)]);
        assert_eq!(u.pieces(&[(0, 10)], 4), vec![(0, 4), (4, 8), (8, 10)]);
        assert_eq!(u.pieces(&[(4, 10)], u64::MAX), vec![(4, 10)]);
    }
}
