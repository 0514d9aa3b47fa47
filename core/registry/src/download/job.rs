//! One blob download in progress ([`Job`]): a `Range` GET per piece, its body copied unit by
//! unit, each unit verified and handed to the sink, a cut resumed and a bad chunk fetched again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::header::{CONTENT_LENGTH, HeaderValue, RANGE};
use reqwest::{Method, Response, StatusCode, Url};

use super::units::Units;
use super::{BlobSink, PROGRESS_RESETS_RETRIES, RangeDone, content_range};
use crate::Progress;
use crate::client::Client;
use crate::error::{Failure, RegistryError};
use crate::redact::redact_url;
use crate::reference::Reference;
use crate::transport::{Attempts, Ctx, Req, unexpected};

/// Why a range could not be completed.
pub(super) enum RangeError {
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
pub(super) enum CopyError {
    /// The connection or body broke, or ended before the promised length: resume.
    Cut(String),
    /// Unit `.0` did not match its chunk digest: fetch it again.
    BadChunk(usize),
    Fatal(RegistryError),
}

/// One blob download in progress.
pub(super) struct Job<'a> {
    pub(super) client: &'a Client,
    pub(super) r: &'a Reference,
    pub(super) digest: &'a fspack_digest::Digest,
    pub(super) url: Url,
    pub(super) size: u64,
    pub(super) units: Units,
    pub(super) sink: Arc<dyn BlobSink>,
    pub(super) progress: Arc<dyn Progress>,
    pub(super) on_done: Option<RangeDone>,
    pub(super) chunk_attempts: u32,
    pub(super) received: AtomicU64,
    pub(super) refetched: AtomicU64,
}

impl Job<'_> {
    pub(super) fn what(&self) -> String {
        format!("blob {} of {}", self.digest, self.r.repo_display())
    }

    /// Fetches `[start, end)` (whole units). `whole` means the range is the entire blob, where a
    /// 200 is fine. A cut body is asked for again from its last whole unit, a bad chunk from its
    /// start, each within their limits (retries, [`Job::chunk_attempts`]).
    pub(super) async fn fetch(&self, start: u64, end: u64, whole: bool) -> Result<(), RangeError> {
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
            let Some(limit) = self.body_limit(&resp, pos, end, whole)? else {
                return Err(RangeError::Fatal(unexpected(&self.url, resp).await));
            };
            let whole_body = whole && resp.status() == StatusCode::OK;
            if whole_body && pos != 0 {
                tracing::warn!(url = %redact_url(&self.url), "server ignored Range on resume; starting the blob again");
                pos = 0;
                at_last_failure = 0;
                self.progress.reset(0);
            }
            match self.copy(resp, &mut pos, limit, whole_body).await {
                Ok(()) => {
                    // A short but valid 206: ask for the rest.
                    st = Attempts::default();
                }
                Err(CopyError::Fatal(e)) => return Err(RangeError::Fatal(e)),
                Err(CopyError::BadChunk(i)) => self.bad_chunk(i, &mut bad)?,
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

    /// Where the body of `resp`, the answer to a GET of `[pos, end)`, stops being ours: the end
    /// of its `Content-Range` for a 206, `end` for a 200 to a whole-blob GET. `None` for a
    /// status the caller turns into an error of its own. Errors: `Ignored` when the server did
    /// not honour the Range, `Fatal` for a size other than the descriptor's or a 404.
    fn body_limit(
        &self,
        resp: &Response,
        pos: u64,
        end: u64,
        whole: bool,
    ) -> Result<Option<u64>, RangeError> {
        let wrong_size = |actual: u64| {
            RangeError::Fatal(RegistryError::SizeMismatch {
                what: self.what(),
                expected: self.size,
                actual: actual.to_string(),
            })
        };
        match resp.status() {
            StatusCode::PARTIAL_CONTENT => {
                let Some((a, b, total)) = content_range(resp) else {
                    return Err(RangeError::Ignored(
                        "206 without a valid Content-Range".into(),
                    ));
                };
                if let Some(t) = total
                    && t != self.size
                {
                    return Err(wrong_size(t));
                }
                if a != pos || b >= end {
                    return Err(RangeError::Ignored(format!(
                        "asked for bytes {pos}-{}, got {a}-{b}",
                        end - 1
                    )));
                }
                Ok(Some(b + 1))
            }
            StatusCode::OK if whole => {
                if let Some(n) = resp
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    && n != self.size
                {
                    return Err(wrong_size(n));
                }
                Ok(Some(end))
            }
            StatusCode::OK => Err(RangeError::Ignored("200 to a ranged request".into())),
            StatusCode::NOT_FOUND => Err(RangeError::Fatal(RegistryError::NotFound {
                what: format!("blob {}", self.digest),
                reference: self.r.repo_display(),
            })),
            _ => Ok(None),
        }
    }

    /// Counts a failed verification of unit `i` (a chunk of the index); an error once it has
    /// failed [`Job::chunk_attempts`] times, else the caller fetches it again.
    fn bad_chunk(&self, i: usize, bad: &mut HashMap<usize, u32>) -> Result<(), RangeError> {
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
        Ok(())
    }

    /// Cuts the body at `*pos` onwards into units, verifies and hands over each; `*pos` always
    /// marks the end of what the sink has. Bytes past `limit` are an error unless the body is
    /// the whole blob (`whole_body`), whose tail past the fetched units is dropped.
    pub(super) async fn copy(
        &self,
        mut resp: Response,
        pos: &mut u64,
        limit: u64,
        whole_body: bool,
    ) -> Result<(), CopyError> {
        // One unit at a time, reused from unit to unit: the allocation is made once per range.
        let mut buf: Vec<u8> = Vec::new();
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
                buf.reserve(need.saturating_sub(buf.len()));
                let take = (need - buf.len()).min(data.len());
                buf.extend_from_slice(&data[..take]);
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
    pub(super) async fn hand_over(
        &self,
        i: usize,
        at: u64,
        unit: Vec<u8>,
    ) -> Result<Vec<u8>, CopyError> {
        let (sink, chunks) = (self.sink.clone(), self.units.chunks.clone());
        let n = unit.len() as u64;
        let res = tokio::task::spawn_blocking(move || {
            let mut unit = unit;
            let res = match &chunks {
                Some(c) if !c.verify(i, &unit) => Ok(false),
                _ => sink.write_at(at, &unit).map(|()| true),
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
