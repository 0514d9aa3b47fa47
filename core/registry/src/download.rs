//! Blob downloads into a caller-owned, preallocated file: several `Range` GETs at once for large
//! blobs, each written with `pwrite` at its offset and resumed from its last written byte after a
//! cut. Range support is optional on the server side (distribution-spec "SHOULD"), so a 200 or a
//! `Content-Range` that does not start where we asked is never spliced: we drop to one plain
//! stream from offset 0. The whole blob's digest is checked at the end; the caller commits.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt, stream};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, HeaderValue, RANGE};
use reqwest::{Method, Response, StatusCode, Url};

use crate::Progress;
use crate::client::Client;
use crate::digest::{Algorithm, Hasher, parse_digest};
use crate::error::{Failure, RegistryError};
use crate::redact::redact_url;
use crate::reference::Reference;
use crate::transport::{Attempts, Ctx, Req, unexpected};

/// Bytes gathered before one `pwrite`.
const WRITE_SIZE: usize = 1 << 20;
/// Progress after which a failing range gets its full set of retries back (containers/image).
const PROGRESS_RESETS_RETRIES: u64 = 1 << 20;

/// Called with `(start, end)` (half-open) once those bytes are written (not yet fsynced).
pub type RangeDone = Arc<dyn Fn(u64, u64) + Send + Sync>;

/// How a blob is fetched.
#[derive(Clone)]
pub struct DownloadOptions {
    /// Concurrent ranged GETs for a large blob.
    pub range_parallelism: usize,
    /// Smallest range worth its own request; blobs under twice this use one stream.
    pub min_range: u64,
    /// Largest range per request, so finished work can be journaled as it lands.
    pub max_range: u64,
    /// Byte ranges `[start, end)` already in the file (from a journal); they are not fetched
    /// again but are covered by the final digest check.
    pub done_ranges: Vec<(u64, u64)>,
    /// Told about each range once it is written, for the caller's journal.
    pub on_range_done: Option<RangeDone>,
}

impl Default for DownloadOptions {
    fn default() -> Self {
        DownloadOptions {
            range_parallelism: 4,
            min_range: 32 << 20,
            max_range: 256 << 20,
            done_ranges: Vec::new(),
            on_range_done: None,
        }
    }
}

impl std::fmt::Debug for DownloadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadOptions")
            .field("range_parallelism", &self.range_parallelism)
            .field("min_range", &self.min_range)
            .field("max_range", &self.max_range)
            .field("done_ranges", &self.done_ranges.len())
            .field("on_range_done", &self.on_range_done.is_some())
            .finish()
    }
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

/// Splits ranges into pieces of at most `piece` bytes.
pub(crate) fn split(ranges: &[(u64, u64)], piece: u64) -> Vec<(u64, u64)> {
    let piece = piece.max(1);
    let mut out = Vec::new();
    for &(a, b) in ranges {
        let mut s = a;
        while s < b {
            let e = b.min(s.saturating_add(piece));
            out.push((s, e));
            s = e;
        }
    }
    out
}

/// Parses `Content-Range: bytes a-b/total` into `(a, b, total)`; `total` is `None` for `*`.
fn content_range(resp: &Response) -> Option<(u64, u64, Option<u64>)> {
    let v = resp.headers().get(CONTENT_RANGE)?.to_str().ok()?;
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
    Fatal(RegistryError),
}

/// One blob download in progress.
struct Job<'a> {
    client: &'a Client,
    r: &'a Reference,
    digest: &'a str,
    url: Url,
    size: u64,
    file: Arc<File>,
    progress: Arc<dyn Progress>,
    on_done: Option<RangeDone>,
    journal_every: u64,
}

impl Job<'_> {
    fn what(&self) -> String {
        format!("blob {} of {}", self.digest, self.r.repo_display())
    }

    /// Fetches `[start, end)`. `whole` means the range is the entire blob, where a 200 is fine.
    async fn fetch(&self, start: u64, end: u64, whole: bool) -> Result<(), RangeError> {
        let ctx = Ctx {
            r: self.r,
            push: false,
        };
        let mut st = Attempts::default();
        let mut pos = start;
        let mut reported = start;
        let mut at_last_failure = start;
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
                        reported = 0;
                        at_last_failure = 0;
                        self.progress.reset(0);
                    }
                    self.size
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
            match self.copy(resp, &mut pos, limit, whole, &mut reported).await {
                Ok(()) => {
                    // A short but valid 206: ask for the rest.
                    st = Attempts::default();
                }
                Err(CopyError::Fatal(e)) => return Err(RangeError::Fatal(e)),
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
        if let Some(cb) = &self.on_done
            && reported < end
        {
            cb(reported, end);
        }
        Ok(())
    }

    /// Writes the body at `*pos` onwards, up to `limit`; `*pos` always marks what is on disk.
    async fn copy(
        &self,
        mut resp: Response,
        pos: &mut u64,
        limit: u64,
        full: bool,
        reported: &mut u64,
    ) -> Result<(), CopyError> {
        let mut buf = BytesMut::new();
        let mut buf_at = *pos;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    self.flush(&mut buf, &mut buf_at, pos, reported).await?;
                    return Err(CopyError::Cut(format!(
                        "body cut at byte {pos}: {}",
                        e.without_url()
                    )));
                }
            };
            let room = limit - (buf_at + buf.len() as u64);
            if chunk.len() as u64 > room {
                if full {
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
            buf.extend_from_slice(&chunk);
            if buf.len() >= WRITE_SIZE {
                self.flush(&mut buf, &mut buf_at, pos, reported).await?;
            }
        }
        self.flush(&mut buf, &mut buf_at, pos, reported).await?;
        if *pos < limit {
            return Err(CopyError::Cut(format!(
                "body ended at byte {pos}, expected {limit}"
            )));
        }
        Ok(())
    }

    async fn flush(
        &self,
        buf: &mut BytesMut,
        buf_at: &mut u64,
        pos: &mut u64,
        reported: &mut u64,
    ) -> Result<(), CopyError> {
        if buf.is_empty() {
            return Ok(());
        }
        let data: Bytes = buf.split().freeze();
        let (file, at, n) = (self.file.clone(), *buf_at, data.len() as u64);
        let res = tokio::task::spawn_blocking(move || file.write_all_at(&data, at)).await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
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
        }
        *buf_at += n;
        *pos = *buf_at;
        self.progress.bytes(n);
        if let Some(cb) = &self.on_done
            && *pos - *reported >= self.journal_every
        {
            cb(*reported, *pos);
            *reported = *pos;
        }
        Ok(())
    }
}

/// Hashes `[0, size)` of the file and compares with `digest`.
fn verify_file(
    file: &File,
    size: u64,
    algo: Algorithm,
    digest: &str,
    what: String,
) -> Result<(), RegistryError> {
    let mut h = Hasher::new(algo);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < size {
        let n = (size - off).min(buf.len() as u64) as usize;
        file.read_exact_at(&mut buf[..n], off)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => RegistryError::SizeMismatch {
                    what: what.clone(),
                    expected: size,
                    actual: format!("a file of {off}+ bytes"),
                },
                _ => RegistryError::io(format!("read back {what}"), e),
            })?;
        h.update(&buf[..n]);
        off += n as u64;
    }
    let actual = h.finish();
    if actual != digest {
        return Err(RegistryError::DigestMismatch {
            what,
            expected: digest.into(),
            actual,
        });
    }
    Ok(())
}

impl Client {
    /// Downloads a blob of known `size` into `dest` (preallocated by the caller) and verifies
    /// its digest. Large blobs travel as parallel ranges; nothing is committed or renamed here.
    pub async fn download_blob(
        &self,
        r: &Reference,
        digest: &str,
        size: u64,
        dest: &File,
        opts: &DownloadOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<(), RegistryError> {
        let algo = parse_digest(digest)?;
        let what = format!("blob {digest} of {}", r.repo_display());
        let file =
            Arc::new(dest.try_clone().map_err(|e| {
                RegistryError::io(format!("duplicate the file handle for {what}"), e)
            })?);
        let job = Job {
            client: self,
            r,
            digest,
            url: self.repo_url(r, &format!("blobs/{digest}"))?,
            size,
            file: file.clone(),
            progress: progress.clone(),
            on_done: opts.on_range_done.clone(),
            journal_every: opts.max_range.max(1),
        };
        let todo = gaps(size, &opts.done_ranges);
        let remaining: u64 = todo.iter().map(|(a, b)| b - a).sum();
        let lanes = if size < opts.min_range.saturating_mul(2) || opts.range_parallelism <= 1 {
            1
        } else {
            opts.range_parallelism
        };
        let piece = if lanes == 1 {
            u64::MAX
        } else {
            remaining.div_ceil(lanes as u64).clamp(
                opts.min_range.max(1),
                opts.max_range.max(opts.min_range).max(1),
            )
        };
        let pieces = split(&todo, piece);
        tracing::debug!(%digest, size, lanes, pieces = pieces.len(), "downloading blob");
        let result = stream::iter(pieces.iter().copied())
            .map(|(a, b)| job.fetch(a, b, a == 0 && b == size))
            .buffer_unordered(lanes)
            .try_collect::<()>()
            .await;
        match result {
            Ok(()) => {}
            Err(RangeError::Fatal(e)) => return Err(e),
            Err(RangeError::Ignored(why)) => {
                tracing::warn!(url = %redact_url(&job.url), "{why}: the server does not honour Range; fetching the blob in one stream");
                progress.reset(0);
                job.fetch(0, size, true).await.map_err(|e| match e {
                    RangeError::Fatal(e) => e,
                    RangeError::Ignored(why) => RegistryError::Protocol {
                        url: redact_url(&job.url),
                        detail: why,
                    },
                })?;
            }
        }
        let digest = digest.to_string();
        tokio::task::spawn_blocking(move || verify_file(&file, size, algo, &digest, what))
            .await
            .map_err(|e| RegistryError::io("verify a blob", std::io::Error::other(e.to_string())))?
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
    fn split_caps_piece_size() {
        assert_eq!(split(&[(0, 10)], 4), vec![(0, 4), (4, 8), (8, 10)]);
        assert_eq!(split(&[(0, 3), (5, 6)], u64::MAX), vec![(0, 3), (5, 6)]);
    }
}
