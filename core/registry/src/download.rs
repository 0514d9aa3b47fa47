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

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use fspack_chunkindex::{ChunkIndex, PrefixHasher};
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderValue, RANGE};
use reqwest::{Method, Response, StatusCode, Url};

use crate::Progress;
use crate::client::Client;
use crate::digest::parse_digest;
use crate::error::{Failure, RegistryError};
use crate::redact::redact_url;
use crate::reference::Reference;
use crate::transport::{Attempts, Ctx, Req, unexpected};

/// Progress after which a failing range gets its full set of retries back (containers/image).
const PROGRESS_RESETS_RETRIES: u64 = 1 << 20;

/// Called with `(start, end)` (half-open) once those bytes are handed to the sink.
pub type RangeDone = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// Where the verified units of a blob go. Called from blocking threads, several at once, each
/// unit exactly once per successful fetch; an error fails the download. A unit's bytes start at
/// a [`UNIT_ALIGN`]-aligned address, so a sink may write them with `O_DIRECT`.
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

/// The units a blob is cut into: its chunk index's chunks, or fixed-size pieces.
#[derive(Clone)]
struct Units {
    end: u64,
    unit: u64,
    chunks: Option<Arc<ChunkIndex>>,
}

impl Units {
    fn count(&self) -> usize {
        match &self.chunks {
            Some(c) => c.chunk_count(),
            None => self.end.div_ceil(self.unit) as usize,
        }
    }

    fn range(&self, i: usize) -> (u64, u64) {
        match &self.chunks {
            Some(c) => {
                let r = c.chunk(i);
                (r.start, r.end)
            }
            None => {
                let a = i as u64 * self.unit;
                (a, self.end.min(a + self.unit))
            }
        }
    }

    /// The unit that holds byte `pos` (`pos < end`).
    fn at(&self, pos: u64) -> usize {
        match &self.chunks {
            Some(c) => c.chunks_covering(pos, pos + 1).start,
            None => (pos / self.unit) as usize,
        }
    }

    /// `[start, end)` ranges of whole units not fully covered by `done`, merged.
    fn missing(&self, done: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (a, b) in gaps(self.end, done) {
            let (first, last) = (self.at(a), self.at(b - 1));
            let (s, e) = (self.range(first).0, self.range(last).1);
            match out.last_mut() {
                Some(l) if l.1 >= s => l.1 = l.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    }

    /// Cuts `ranges` into pieces of about `piece` bytes, on unit boundaries.
    fn pieces(&self, ranges: &[(u64, u64)], piece: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for &(a, b) in ranges {
            let mut s = a;
            while s < b {
                let want = b.min(s.saturating_add(piece.max(1)));
                let e = if want >= b {
                    b
                } else {
                    self.range(self.at(want - 1)).1
                };
                out.push((s, e));
                s = e;
            }
        }
        out
    }
}

/// Why a range could not be completed.
enum RangeError {
    /// The server does not honour Range: switch to one stream.
    Ignored(String),
    Fatal(RegistryError),
}

impl From<RegistryError> for RangeError {
    fn from(e: RegistryError) -> Self {
        RangeError::Fatal(e)
    }
}

/// Why copying a body stopped early.
enum CopyError {
    /// The connection or body broke, or ended before the promised length: resume.
    Cut(String),
    /// Unit `.0` did not match its chunk digest: fetch it again.
    BadChunk(usize),
    Fatal(RegistryError),
}

/// One blob download in progress.
struct Job<'a> {
    client: &'a Client,
    r: &'a Reference,
    digest: &'a str,
    url: Url,
    size: u64,
    units: Units,
    sink: Arc<dyn BlobSink>,
    progress: Arc<dyn Progress>,
    on_done: Option<RangeDone>,
    chunk_attempts: u32,
    received: AtomicU64,
    refetched: AtomicU64,
}

impl Job<'_> {
    fn what(&self) -> String {
        format!("blob {} of {}", self.digest, self.r.repo_display())
    }

    /// Fetches `[start, end)` (whole units). `whole` means the range is the entire blob, where a
    /// 200 is fine.
    async fn fetch(&self, start: u64, end: u64, whole: bool) -> Result<(), RangeError> {
        let ctx = Ctx {
            r: self.r,
            push: false,
        };
        let mut st = Attempts::default();
        let mut pos = start;
        let mut at_last_failure = start;
        let mut bad: HashMap<usize, u32> = HashMap::new();
        while pos < end {
            let mut req = Req::new(Method::GET, self.url.clone());
            req.bulk = true;
            if !(whole && pos == 0) {
                let v = HeaderValue::from_str(&format!("bytes={}-{}", pos, end - 1))
                    .expect("numeric header");
                req.headers.insert(RANGE, v);
            }
            let resp = self.client.send_with(ctx, &req, &mut st).await?;
            let limit = match resp.status() {
                StatusCode::PARTIAL_CONTENT => {
                    let Some((a, b, total)) = content_range(&resp) else {
                        return Err(RangeError::Ignored(
                            "206 without a valid Content-Range".into(),
                        ));
                    };
                    if let Some(t) = total
                        && t != self.size
                    {
                        return Err(RangeError::Fatal(RegistryError::SizeMismatch {
                            what: self.what(),
                            expected: self.size,
                            actual: t.to_string(),
                        }));
                    }
                    if a != pos || b >= end {
                        return Err(RangeError::Ignored(format!(
                            "asked for bytes {pos}-{}, got {a}-{b}",
                            end - 1
                        )));
                    }
                    b + 1
                }
                StatusCode::OK if whole => {
                    if let Some(n) = resp
                        .headers()
                        .get(CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        && n != self.size
                    {
                        return Err(RangeError::Fatal(RegistryError::SizeMismatch {
                            what: self.what(),
                            expected: self.size,
                            actual: n.to_string(),
                        }));
                    }
                    if pos != 0 {
                        tracing::warn!(url = %redact_url(&self.url), "server ignored Range on resume; starting the blob again");
                        pos = 0;
                        at_last_failure = 0;
                        self.progress.reset(0);
                    }
                    end
                }
                StatusCode::OK => {
                    return Err(RangeError::Ignored("200 to a ranged request".into()));
                }
                StatusCode::NOT_FOUND => {
                    return Err(RangeError::Fatal(RegistryError::NotFound {
                        what: format!("blob {}", self.digest),
                        reference: self.r.repo_display(),
                    }));
                }
                _ => return Err(RangeError::Fatal(unexpected(&self.url, resp).await)),
            };
            let whole_body = whole && resp.status() == StatusCode::OK;
            match self.copy(resp, &mut pos, limit, whole_body).await {
                Ok(()) => {
                    // A short but valid 206: ask for the rest.
                    st = Attempts::default();
                }
                Err(CopyError::Fatal(e)) => return Err(RangeError::Fatal(e)),
                Err(CopyError::BadChunk(i)) => {
                    let n = bad.entry(i).or_insert(0);
                    *n += 1;
                    let (a, b) = self.units.range(i);
                    let chunks = self.units.chunks.as_ref().expect("only indexed units fail");
                    if *n >= self.chunk_attempts {
                        return Err(RangeError::Fatal(RegistryError::ChunkMismatch {
                            what: self.what(),
                            chunk: i,
                            start: a,
                            end: b,
                            expected: chunks.chunk_digest(i),
                            attempts: *n,
                            registry: self.r.registry.clone(),
                        }));
                    }
                    tracing::warn!(digest = %self.digest, chunk = i, start = a, end = b, "chunk failed verification; fetching it again");
                    self.refetched.fetch_add(1, Ordering::Relaxed);
                }
                Err(CopyError::Cut(why)) => {
                    if pos - at_last_failure >= PROGRESS_RESETS_RETRIES {
                        st = Attempts::default();
                    }
                    at_last_failure = pos;
                    let error = RegistryError::Network {
                        action: "GET".into(),
                        url: redact_url(&self.url),
                        attempts: st.retries + 1,
                        hint: None,
                        source: Box::new(Failure(why)),
                    };
                    self.client.pause(&mut st, None, false, error).await?;
                    tracing::debug!(pos, end, "resuming range");
                }
            }
        }
        Ok(())
    }

    /// Cuts the body at `*pos` onwards into units, verifies and hands over each; `*pos` always
    /// marks the end of what the sink has. Bytes past `limit` are an error unless the body is
    /// the whole blob (`whole_body`), whose tail past the fetched units is dropped.
    async fn copy(
        &self,
        mut resp: Response,
        pos: &mut u64,
        limit: u64,
        whole_body: bool,
    ) -> Result<(), CopyError> {
        let mut buf = UnitBuf::default();
        let mut received = 0u64;
        let body_len = if whole_body { self.size } else { limit - *pos };
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    return Err(CopyError::Cut(format!(
                        "body cut at byte {pos}: {}",
                        e.without_url()
                    )));
                }
            };
            received += chunk.len() as u64;
            self.received
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if received > body_len {
                if whole_body {
                    return Err(CopyError::Fatal(RegistryError::SizeMismatch {
                        what: self.what(),
                        expected: self.size,
                        actual: format!("at least {}", self.size + 1),
                    }));
                }
                return Err(CopyError::Fatal(RegistryError::Protocol {
                    url: redact_url(&self.url),
                    detail: format!("more bytes than the Content-Range promised (ends at {limit})"),
                }));
            }
            let room = limit.saturating_sub(*pos + buf.len() as u64) as usize;
            let mut data = &chunk[..chunk.len().min(room)];
            while !data.is_empty() {
                let i = self.units.at(*pos);
                let (_, e) = self.units.range(i);
                let need = (e - *pos) as usize;
                buf.reserve(need);
                let take = (need - buf.len()).min(data.len());
                buf.extend(&data[..take]);
                data = &data[take..];
                if buf.len() == need {
                    buf = self.hand_over(i, *pos, buf).await?;
                    *pos = e;
                }
            }
        }
        if *pos < limit {
            return Err(CopyError::Cut(format!(
                "body ended at byte {}, expected {limit}",
                *pos + buf.len() as u64
            )));
        }
        Ok(())
    }

    /// Verifies unit `i` (at `at`) and gives it to the sink, off the async threads. Returns the
    /// buffer, emptied, for the next unit.
    async fn hand_over(&self, i: usize, at: u64, unit: UnitBuf) -> Result<UnitBuf, CopyError> {
        let (sink, chunks) = (self.sink.clone(), self.units.chunks.clone());
        let n = unit.len() as u64;
        let res = tokio::task::spawn_blocking(move || {
            let mut unit = unit;
            let res = match &chunks {
                Some(c) if !c.verify(i, unit.bytes()) => Ok(false),
                _ => sink.write_at(at, unit.bytes()).map(|()| true),
            };
            unit.clear();
            (unit, res)
        })
        .await;
        let unit = match res {
            Ok((unit, Ok(true))) => unit,
            Ok((_, Ok(false))) => return Err(CopyError::BadChunk(i)),
            Ok((_, Err(e))) => {
                return Err(CopyError::Fatal(RegistryError::io(
                    format!("write {} at offset {at}", self.what()),
                    e,
                )));
            }
            Err(e) => {
                return Err(CopyError::Fatal(RegistryError::io(
                    format!("write {}", self.what()),
                    std::io::Error::other(e.to_string()),
                )));
            }
        };
        self.progress.bytes(n);
        if let Some(cb) = &self.on_done {
            cb(at, at + n);
        }
        Ok(unit)
    }
}

/// Alignment in bytes of the units handed to a [`BlobSink`]: the page size, what `O_DIRECT`
/// asks of a buffer's address on every Linux file system.
pub const UNIT_ALIGN: usize = 4096;

/// One unit being collected from a body, at a [`UNIT_ALIGN`]-aligned address (so the store can
/// write it with `O_DIRECT`), reused from unit to unit of a range: the allocation is made once,
/// not per MiB.
#[derive(Default)]
struct UnitBuf {
    v: Vec<u8>,
    /// Bytes skipped at the start of `v` to reach the alignment.
    pad: usize,
}

impl UnitBuf {
    fn len(&self) -> usize {
        self.v.len() - self.pad
    }

    fn bytes(&self) -> &[u8] {
        &self.v[self.pad..]
    }

    fn clear(&mut self) {
        self.v.truncate(self.pad);
    }

    /// Makes room for a unit of `need` bytes without moving it later.
    fn reserve(&mut self, need: usize) {
        if self.v.capacity() > 0 && self.v.capacity() >= self.pad + need {
            return;
        }
        let mut v = Vec::with_capacity(need + UNIT_ALIGN);
        let pad = (UNIT_ALIGN - v.as_ptr() as usize % UNIT_ALIGN) % UNIT_ALIGN;
        v.resize(pad, 0);
        v.extend_from_slice(self.bytes());
        (self.v, self.pad) = (v, pad);
    }

    fn extend(&mut self, data: &[u8]) {
        self.v.extend_from_slice(data);
    }
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
        digest: &str,
        size: u64,
        sink: Arc<dyn BlobSink>,
        opts: &DownloadOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<DownloadStats, RegistryError> {
        parse_digest(digest)?;
        let end = opts.chunks.as_ref().map_or(size, |c| c.data_size());
        if end > size {
            return Err(RegistryError::SizeMismatch {
                what: format!("chunk index of blob {digest}"),
                expected: size,
                actual: format!("an index over {end} bytes"),
            });
        }
        let units = Units {
            end,
            unit: opts.unit.max(1),
            chunks: opts.chunks.clone(),
        };
        let job = Job {
            client: self,
            r,
            digest,
            url: self.repo_url(r, &format!("blobs/{digest}"))?,
            size,
            units: units.clone(),
            sink,
            progress: progress.clone(),
            on_done: opts.on_range_done.clone(),
            chunk_attempts: opts.chunk_attempts.max(1),
            received: AtomicU64::new(0),
            refetched: AtomicU64::new(0),
        };
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

    /// Downloads a blob of known `size` into `dest` (sized by the caller) and verifies its
    /// sha256 as it lands (the in-order prefix is hashed while later ranges still arrive; the
    /// ranges in `opts.done_ranges` are read back once). Nothing is committed or renamed here.
    ///
    /// Errors: those of [`Client::download_to`], plus `DigestMismatch` when the blob's sha256
    /// differs from `digest`.
    pub async fn download_blob(
        &self,
        r: &Reference,
        digest: &str,
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
        if actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("blob {digest} of {}", r.repo_display()),
                expected: digest.into(),
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
        digest: &str,
        start: u64,
        end: u64,
        max: u64,
    ) -> Result<Bytes, RegistryError> {
        parse_digest(digest)?;
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
