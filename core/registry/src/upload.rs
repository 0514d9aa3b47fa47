//! Blob uploads (distribution-spec "Pushing blobs"): a monolithic POST + one streamed PUT, or the
//! spec's chunked PATCHes with a hand-built `Content-Range` (no `bytes ` unit), strictly in order
//! (spec: out-of-order chunks get 416; Debian's docker-registry 2.8.2 silently appends them, so we
//! never rely on the registry to catch it). Sources are blocking readers run on the blocking pool
//! and fed through a small channel, so a blob is never held in memory.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fspack_digest::Digest;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};

use crate::Progress;
use crate::client::Client;
use crate::error::RegistryError;
use crate::ops::DOCKER_CONTENT_DIGEST;
use crate::reference::Reference;
use crate::transport::{Attempts, Ctx, Outcome, Req, ReqBody, error_detail, protocol, unexpected};

/// Bytes read from a source per channel message.
const READ_SIZE: usize = 256 << 10;
/// Messages buffered between the reader thread and the request body.
const CHANNEL_DEPTH: usize = 4;
/// The registry's minimum chunk size header (distribution-spec, "Pushing a blob in chunks").
const CHUNK_MIN_LENGTH: &str = "oci-chunk-min-length";

/// Where blob bytes come from: a size and a blocking reader that can start at any offset, so a
/// retry can restart or resume without buffering the blob.
pub trait BlobSource: Send + Sync {
    /// Total size in bytes.
    fn size(&self) -> u64;
    /// A reader positioned at `offset`.
    fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>>;
}

/// How a blob goes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UploadMode {
    /// POST, then one streamed PUT with `Content-Length`: the fastest, and the default.
    #[default]
    Monolithic,
    /// Sequential PATCHes of `chunk_size` bytes (raised to the registry's `OCI-Chunk-Min-Length`),
    /// for proxies or registries that cap request bodies; resumes from the registry's offset.
    Chunked {
        /// Bytes per PATCH.
        chunk_size: u64,
    },
}

/// An upload session opened before its blob's bytes are ready (the POST of distribution-spec
/// "Pushing blobs", whose `Location` the PUT or PATCHes then use). Opening it ahead takes one
/// round trip per blob off the upload's critical path (issue 14). A session nobody uses is
/// harmless: registries purge stale uploads (distribution: after 168 h by default).
#[derive(Debug, Clone)]
pub struct UploadSession {
    /// Where the bytes go (the POST's `Location`, resolved against the request URL).
    location: Url,
    /// The registry's `OCI-Chunk-Min-Length` in bytes, 0 when it sets none.
    min_chunk: u64,
}

/// A file on disk as a blob source.
#[derive(Debug, Clone)]
pub struct FileSource {
    path: PathBuf,
    size: u64,
}

impl UploadSession {
    /// Where the session takes the blob's bytes (the registry's `Location`).
    pub fn location(&self) -> &Url {
        &self.location
    }
}

impl FileSource {
    /// Opens `path` and records its current size.
    pub fn new(path: &Path) -> std::io::Result<Self> {
        let size = std::fs::metadata(path)?.len();
        Ok(FileSource {
            path: path.to_path_buf(),
            size,
        })
    }
}

impl BlobSource for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        use std::io::{Seek, SeekFrom};
        let mut f = std::fs::File::open(&self.path)?;
        f.seek(SeekFrom::Start(offset))?;
        Ok(Box::new(f))
    }
}

/// Bytes in memory as a blob source (configs, tests).
#[derive(Debug, Clone)]
pub struct BytesSource(pub Bytes);

impl BlobSource for BytesSource {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        let start = (offset as usize).min(self.0.len());
        Ok(Box::new(std::io::Cursor::new(self.0.slice(start..))))
    }
}

type SourceError = Arc<Mutex<Option<std::io::Error>>>;

/// One read of a source on its way into a request body. When the body has sent it and drops it,
/// the buffer goes back to the reading thread: a fresh `vec![0; 256 KiB]` per read was a memset of
/// every byte pushed (3 % of a 2 GiB push's CPU, issue 14), since the allocator hands back
/// reused heap blocks that `calloc` has to zero.
struct Recycled {
    buf: Vec<u8>,
    len: usize,
    home: std::sync::mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Recycled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Recycled {
    fn drop(&mut self) {
        // The reader may have finished; then the buffer is simply freed.
        let _ = self.home.send(std::mem::take(&mut self.buf));
    }
}

/// A request body streaming `len` bytes of `source` from `offset`; a read failure is parked in
/// `failed` so the caller can report it as the source's fault, not the network's.
fn source_body(
    source: Arc<dyn BlobSource>,
    offset: u64,
    len: u64,
    progress: Arc<dyn Progress>,
    failed: SourceError,
) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        let (home, spare) = std::sync::mpsc::channel::<Vec<u8>>();
        let run = || -> std::io::Result<()> {
            let mut rd = source.open_at(offset)?;
            let mut left = len;
            while left > 0 {
                let mut buf = spare.try_recv().unwrap_or_else(|_| vec![0u8; READ_SIZE]);
                let want = READ_SIZE.min(left as usize);
                let n = loop {
                    match rd.read(&mut buf[..want]) {
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        r => break r?,
                    }
                };
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "source ended at byte {} of {}",
                            offset + len - left,
                            offset + len
                        ),
                    ));
                }
                left -= n as u64;
                let read = Recycled {
                    buf,
                    len: n,
                    home: home.clone(),
                };
                if tx.blocking_send(Ok(Bytes::from_owner(read))).is_err() {
                    return Ok(()); // the request was dropped
                }
            }
            Ok(())
        };
        if let Err(e) = run() {
            let note = std::io::Error::new(e.kind(), "blob source failed");
            *failed.lock().expect("source error lock") = Some(e);
            let _ = tx.blocking_send(Err(note));
        }
    });
    let stream = futures_util::stream::unfold((rx, progress), |(mut rx, progress)| async move {
        let item = rx.recv().await?;
        if let Ok(b) = &item {
            progress.bytes(b.len() as u64);
        }
        Some((item, (rx, progress)))
    });
    reqwest::Body::wrap_stream(stream)
}

/// A streamed body for one attempt, built when the request is sent.
fn stream_req_body(
    source: &Arc<dyn BlobSource>,
    offset: u64,
    len: u64,
    progress: &Arc<dyn Progress>,
    failed: &SourceError,
) -> ReqBody {
    if len == 0 {
        return ReqBody::Empty;
    }
    let (s, p, f) = (source.clone(), progress.clone(), failed.clone());
    ReqBody::Stream(Box::new(move || {
        source_body(s.clone(), offset, len, p.clone(), f.clone())
    }))
}

fn header(v: impl ToString) -> HeaderValue {
    HeaderValue::from_str(&v.to_string()).expect("numeric header values are valid")
}

/// The end (inclusive) from a `Range: 0-N` (or `bytes=0-N`) upload status header.
fn range_end(resp: &Response) -> Option<u64> {
    parse_range_end(resp.headers().get("range")?.to_str().ok()?)
}

/// The text form of [`range_end`]: `N` of `0-N`, `None` for anything else.
pub(crate) fn parse_range_end(v: &str) -> Option<u64> {
    let v = v.trim().trim_start_matches("bytes=");
    let (a, b) = v.split_once('-')?;
    if a.trim() != "0" {
        return None;
    }
    b.trim().parse().ok()
}

/// The offset a `Range: 0-N` reports. `0-0` is what distribution sends for an empty session as
/// well as for one byte, so it means `believed` when that is 0 or 1.
/// Saturates: `end` comes from the network, and the callers refuse anything past the blob's size.
pub(crate) fn next_offset(end: u64, believed: u64) -> u64 {
    if end == 0 && believed <= 1 {
        believed
    } else {
        end.saturating_add(1)
    }
}

fn location(base: &Url, resp: &Response) -> Option<Url> {
    let l = resp.headers().get(LOCATION)?.to_str().ok()?;
    base.join(l).ok()
}

impl Client {
    /// Uploads a blob the registry does not have yet (check with [`Client::blob_exists`] first):
    /// opens an upload session, then sends the bytes into it ([`Client::push_blob_to`]).
    ///
    /// Errors: those of [`Client::open_upload`] and [`Client::push_blob_to`].
    pub async fn push_blob(
        &self,
        r: &Reference,
        digest: &Digest,
        source: Arc<dyn BlobSource>,
        mode: UploadMode,
        progress: Arc<dyn Progress>,
    ) -> Result<(), RegistryError> {
        let session = self.open_upload(r).await?;
        self.push_blob_to(session, r, digest, source, mode, progress)
            .await
    }

    /// Sends a blob's bytes into `session`, opened by [`Client::open_upload`] for the same
    /// repository, and closes it with the blob's `digest`. A failed attempt that leaves the
    /// session in an unknown state opens a new one for the retry.
    ///
    /// Errors: [`RegistryError::DigestMismatch`] when the registry computes another digest or
    /// names another in `Docker-Content-Digest`; a read error of `source` as an I/O error naming
    /// the blob; the transport's errors once retries are spent.
    pub async fn push_blob_to(
        &self,
        session: UploadSession,
        r: &Reference,
        digest: &Digest,
        source: Arc<dyn BlobSource>,
        mode: UploadMode,
        progress: Arc<dyn Progress>,
    ) -> Result<(), RegistryError> {
        tracing::debug!(reference = %r, %digest, size = source.size(), ?mode, "uploading blob");
        match mode {
            UploadMode::Monolithic => {
                self.push_monolithic(session, r, digest, source, progress)
                    .await
            }
            UploadMode::Chunked { chunk_size } => {
                self.push_chunked(session, r, digest, source, chunk_size, progress)
                    .await
            }
        }
    }

    /// Opens an upload session in the repository of `r` (distribution-spec "Pushing blobs",
    /// `POST /v2/<name>/blobs/uploads/`), ready for [`Client::push_blob_to`].
    ///
    /// Errors: [`RegistryError::NotFound`] when the registry answers 404 for the repository; a
    /// protocol error for a 202 without `Location`; the transport's errors once retries are spent.
    pub async fn open_upload(&self, r: &Reference) -> Result<UploadSession, RegistryError> {
        let url = self.repo_url(r, "blobs/uploads/")?;
        let mut req = Req::new(Method::POST, url.clone());
        req.headers.insert(CONTENT_LENGTH, header(0));
        let resp = self.send(Ctx { r, push: true }, &req).await?;
        match resp.status() {
            StatusCode::ACCEPTED => {}
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::NotFound {
                    what: "repository".into(),
                    reference: r.repo_display(),
                });
            }
            _ => return Err(unexpected(&url, resp).await),
        }
        let loc = location(&url, &resp)
            .ok_or_else(|| protocol(&url, "202 to an upload POST without a Location".into()))?;
        let min = resp
            .headers()
            .get(CHUNK_MIN_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Ok(UploadSession {
            location: loc,
            min_chunk: min,
        })
    }

    /// Judges the answer to the PUT that closes an upload.
    async fn finish_upload(
        &self,
        r: &Reference,
        digest: &Digest,
        url: &Url,
        resp: Response,
    ) -> Result<(), RegistryError> {
        match resp.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => {
                if let Some(claimed) = resp
                    .headers()
                    .get(DOCKER_CONTENT_DIGEST)
                    .and_then(|v| v.to_str().ok())
                    && claimed != digest.as_str()
                {
                    return Err(RegistryError::DigestMismatch {
                        what: format!("blob stored in {}", r.repo_display()),
                        expected: digest.to_string(),
                        actual: claimed.into(),
                    });
                }
                tracing::debug!(reference = %r, %digest, "blob uploaded");
                Ok(())
            }
            StatusCode::BAD_REQUEST => {
                let detail = error_detail(resp).await;
                if detail.contains("DIGEST_INVALID") || detail.contains("SIZE_INVALID") {
                    Err(RegistryError::DigestMismatch {
                        what: format!("content uploaded for blob {digest} to {}", r.repo_display()),
                        expected: digest.to_string(),
                        actual: format!("something else (the registry answered {detail})"),
                    })
                } else {
                    Err(protocol(url, detail))
                }
            }
            StatusCode::PAYLOAD_TOO_LARGE => {
                let detail = error_detail(resp).await;
                Err(protocol(
                    url,
                    format!(
                        "{detail} (the registry or a proxy caps request bodies; upload in chunks with --chunk-size)"
                    ),
                ))
            }
            _ => Err(unexpected(url, resp).await),
        }
    }

    fn take_source_error(failed: &SourceError, digest: &Digest) -> Result<(), RegistryError> {
        match failed.lock().expect("source error lock").take() {
            Some(e) => Err(RegistryError::io(
                format!("read the content of blob {digest}"),
                e,
            )),
            None => Ok(()),
        }
    }

    async fn push_monolithic(
        &self,
        session: UploadSession,
        r: &Reference,
        digest: &Digest,
        source: Arc<dyn BlobSource>,
        progress: Arc<dyn Progress>,
    ) -> Result<(), RegistryError> {
        let size = source.size();
        let ctx = Ctx { r, push: true };
        let mut st = Attempts::default();
        let mut session = Some(session);
        loop {
            // A failed PUT leaves the session in an unknown state: each retry opens a new one.
            let (loc, given) = match session.take() {
                Some(s) => (s.location, true),
                None => (self.open_upload(r).await?.location, false),
            };
            let mut url = loc.clone();
            url.query_pairs_mut().append_pair("digest", digest.as_str());
            let failed: SourceError = Arc::default();
            let req = bytes_request(Method::PUT, &url, &source, 0, size, &progress, &failed);
            let outcome = self.attempt(ctx, &req, &mut st).await;
            Self::take_source_error(&failed, digest)?;
            match outcome {
                // A session opened ahead may have expired while it waited for its turn
                // (distribution-spec: 404 BLOB_UPLOAD_UNKNOWN); a fresh one is not a retry.
                Outcome::Done(resp) if given && resp.status() == StatusCode::NOT_FOUND => {
                    tracing::debug!(%digest, "upload session gone before its PUT; opening another");
                    progress.reset(0);
                }
                Outcome::Done(resp) => return self.finish_upload(r, digest, &url, resp).await,
                Outcome::Fatal(e) => return Err(e),
                Outcome::Retry { wait, free, error } => {
                    self.pause(&mut st, wait, free, error).await?;
                    progress.reset(0);
                }
            }
        }
    }

    /// Asks an upload session how far it got: `Some((location, offset))`, or `None` if it is gone.
    async fn upload_status(
        &self,
        r: &Reference,
        loc: &Url,
        believed: u64,
    ) -> Result<Option<(Url, u64)>, RegistryError> {
        let resp = self
            .send(Ctx { r, push: true }, &Req::new(Method::GET, loc.clone()))
            .await?;
        match resp.status() {
            StatusCode::NO_CONTENT | StatusCode::OK => {
                let next = range_end(&resp).map_or(0, |end| next_offset(end, believed));
                Ok(Some((
                    location(loc, &resp).unwrap_or_else(|| loc.clone()),
                    next,
                )))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(unexpected(loc, resp).await),
        }
    }

    async fn push_chunked(
        &self,
        session: UploadSession,
        r: &Reference,
        digest: &Digest,
        source: Arc<dyn BlobSource>,
        chunk_size: u64,
        progress: Arc<dyn Progress>,
    ) -> Result<(), RegistryError> {
        let size = source.size();
        let ctx = Ctx { r, push: true };
        let (mut loc, min) = (session.location, session.min_chunk);
        let chunk = chunk_size.max(min).max(1);
        let mut offset = 0u64;
        let mut st = Attempts::default();
        while offset < size {
            let len = chunk.min(size - offset);
            let failed: SourceError = Arc::default();
            let req = chunk_request(&loc, &source, offset, len, &progress, &failed);
            let outcome = self.attempt(ctx, &req, &mut st).await;
            Self::take_source_error(&failed, digest)?;
            let (wait, free, error) = match outcome {
                Outcome::Done(resp) if resp.status() == StatusCode::ACCEPTED => {
                    let expected = offset + len;
                    let next = range_end(&resp).map_or(expected, |end| next_offset(end, expected));
                    if next > size {
                        return Err(protocol(
                            &loc,
                            format!(
                                "the upload reports {next} bytes received of a {size}-byte blob"
                            ),
                        ));
                    }
                    if next != expected {
                        tracing::warn!(
                            expected,
                            next,
                            "registry kept a different amount of the chunk; continuing from its offset"
                        );
                        progress.reset(next);
                    }
                    if let Some(l) = location(&loc, &resp) {
                        loc = l;
                    }
                    offset = next;
                    // Progress was made: a later failure starts with a full set of retries.
                    st = Attempts::default();
                    continue;
                }
                Outcome::Done(resp) if resp.status() == StatusCode::NOT_FOUND => {
                    let e = protocol(&loc, "the upload session disappeared (404)".into());
                    drop(resp);
                    (None, false, e)
                }
                Outcome::Done(resp) if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE => {
                    let e = protocol(
                        &loc,
                        format!(
                            "chunk at offset {offset} refused: {}",
                            error_detail(resp).await
                        ),
                    );
                    (None, false, e)
                }
                Outcome::Done(resp) => return Err(unexpected(&loc, resp).await),
                Outcome::Fatal(e) => return Err(e),
                Outcome::Retry { wait, free, error } => (wait, free, error),
            };
            self.pause(&mut st, wait, free, error).await?;
            // Ask the registry where it is before sending more (distribution-spec "Resuming").
            match self.upload_status(r, &loc, offset).await? {
                Some((l, next)) if next <= size => {
                    loc = l;
                    offset = next;
                }
                Some((_, next)) => {
                    return Err(protocol(
                        &loc,
                        format!("the upload reports {next} bytes received of a {size}-byte blob"),
                    ));
                }
                None => {
                    tracing::warn!("upload session lost; starting the blob again");
                    loc = self.open_upload(r).await?.location;
                    offset = 0;
                }
            }
            progress.reset(offset);
        }
        let mut url = loc.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let mut req = Req::new(Method::PUT, url.clone());
        req.headers.insert(CONTENT_LENGTH, header(0));
        let resp = self.send(ctx, &req).await?;
        self.finish_upload(r, digest, &url, resp).await
    }
}

/// A request of `method` to `url` whose body is the `len` bytes of `source` at `offset`; a
/// read error of the source lands in `failed`.
fn bytes_request(
    method: Method,
    url: &Url,
    source: &Arc<dyn BlobSource>,
    offset: u64,
    len: u64,
    progress: &Arc<dyn Progress>,
    failed: &SourceError,
) -> Req {
    let mut req = Req::new(method, url.clone());
    req.bulk = true;
    req.headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    req.headers.insert(CONTENT_LENGTH, header(len));
    req.body = stream_req_body(source, offset, len, progress, failed);
    req
}

/// The PATCH request that sends the `len` bytes of `source` at `offset` to the upload session
/// at `loc`; a read error of the source lands in `failed`.
fn chunk_request(
    loc: &Url,
    source: &Arc<dyn BlobSource>,
    offset: u64,
    len: u64,
    progress: &Arc<dyn Progress>,
    failed: &SourceError,
) -> Req {
    let mut req = bytes_request(Method::PATCH, loc, source, offset, len, progress, failed);
    // distribution-spec: `Content-Range: <start>-<end>`, inclusive, without a unit.
    req.headers.insert(
        CONTENT_RANGE,
        header(format!("{}-{}", offset, offset + len - 1)),
    );
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_zero_is_ambiguous() {
        assert_eq!(next_offset(0, 0), 0);
        assert_eq!(next_offset(0, 1), 1);
        assert_eq!(next_offset(0, 5), 1);
        assert_eq!(next_offset(9, 10), 10);
    }

    #[test]
    fn bytes_source_reads_from_offset() {
        let s = BytesSource(Bytes::from_static(b"hello"));
        let mut out = String::new();
        s.open_at(2).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "llo");
        assert_eq!(s.size(), 5);
        let mut out = String::new();
        s.open_at(9).unwrap().read_to_string(&mut out).unwrap();
        assert_eq!(out, "");
    }
}
