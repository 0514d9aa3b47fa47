//! The chunk scheduler of a lazy mount: demanded chunks first, then a background fill, every
//! chunk verified against the layer's chunk index before a reader sees a byte of it.
//!
//! Reads arrive from the FUSE server's threads ([`Fill::read`]). A read whose chunks are all
//! present is answered at once from the partial blob; any other read waits (bounded by the read
//! timeout) while `jobs` workers fetch the missing chunks with HTTP Range. Workers take demanded
//! chunk runs before fill runs, so a reader jumps the queue; a read that continues the previous
//! one doubles the run fetched ahead (up to [`MAX_WINDOW`] bytes), so a sequential reader is not
//! served one chunk at a time. A run is one Range request streamed through the registry
//! client, which hashes each chunk as it completes and compares it with its index entry; only
//! matching chunks are written (through the store's [`Ingest`], which journals them for a
//! resume) and marked present, one by one, so a reader waits for its chunk, not for the run.
//! A chunk that fails [`CHUNK_ATTEMPTS`] times answers its readers with `EIO` and is retried
//! later, never served.
//!
//! A blob without a chunk index (a model layer from another tool, issue 15) is one chunk whose
//! checksum is the blob's digest ([`ChunkIndex::whole`]): a worker streams all of it into the
//! ingest, the commit checks the whole-blob sha256, and only then are its readers answered.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fspack_chunkindex::ChunkIndex;
use fspack_registry::{Client, Reference};
use fspack_store::Ingest;

use crate::artifact::Descriptor;

mod fetch;

/// Tries per chunk (first fetch included) before its readers get `EIO`.
pub const CHUNK_ATTEMPTS: u32 = 3;
/// Largest run fetched ahead of a sequential reader, in bytes.
pub const MAX_WINDOW: u64 = 32 << 20;
/// Largest run one background-fill request covers, in bytes (one Range request). Runs are
/// streamed, so memory does not grow with them; 2 MiB runs spent a request's round trip and a
/// pause for hashing every 2 MiB per stream, and the capped whole-model read took 1.34× the
/// eager pull (issue 10). At 40 MB/s per connection an 8 MiB run takes 0.2 s, and with 16
/// streams finishing at staggered times a demanded chunk waits little for a free worker.
pub const FILL_RUN: u64 = 8 << 20;
/// Largest run one demand request covers, in bytes.
const DEMAND_RUN: u64 = 2 << 20;
/// How long a chunk that failed [`CHUNK_ATTEMPTS`] times is left out of the background fill.
const FAILED_PAUSE: Duration = Duration::from_secs(5);
/// Longest pause between two tries of a registry that does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The answer to one read: bytes, or an errno (`EIO`).
pub trait ReadReply: Send {
    /// Sends the bytes read.
    fn data(self: Box<Self>, bytes: &[u8]);
    /// Sends an error (a Linux errno).
    fn error(self: Box<Self>, errno: i32);
}

/// A read waiting for chunks.
struct Waiter {
    offset: u64,
    end: u64,
    chunks: Range<usize>,
    deadline: Instant,
    reply: Box<dyn ReadReply>,
}

/// What is known about one blob's chunks.
#[derive(Default)]
struct State {
    present: Vec<bool>,
    claimed: Vec<bool>,
    missing: usize,
    failures: HashMap<usize, u32>,
    paused_until: HashMap<usize, Instant>,
    waiters: Vec<Waiter>,
    next_fill: usize,
    seq_end: u64,
    window: u64,
    commit_started: bool,
}

/// One blob served lazily.
pub struct LazyBlob {
    /// The layer descriptor.
    pub desc: Descriptor,
    index: Arc<ChunkIndex>,
    /// The index's largest chunk in bytes: the unit of the sequential-read test, computed once
    /// because [`ChunkIndex::max_chunk_len`] walks every entry and reads are the hot path.
    chunk_len: u64,
    /// The partial file (the committed blob, once renamed). Replaced when a whole blob starts
    /// over after a failed digest: the old file, unlinked, still holds the damaged bytes.
    reader: Mutex<Arc<File>>,
    ingest: Mutex<Option<Arc<Ingest>>>,
    state: Mutex<State>,
    present_bytes: AtomicU64,
    committed: AtomicBool,
    /// No chunk index: served only once all of it is committed (see the module docs).
    whole: bool,
    /// Of a whole blob: the byte ranges a killed server left, fetched no more (the commit's
    /// whole-blob digest checks them).
    resume: Mutex<Vec<(u64, u64)>>,
    /// Of a whole blob: the store, to open its ingest again after a failed digest.
    store: Option<Arc<fspack_store::Store>>,
}

impl LazyBlob {
    /// The blob's partial file, to write verified chunks into; an error once it is committed.
    fn open_ingest(&self) -> Result<Arc<Ingest>, String> {
        self.ingest
            .lock()
            .expect("not poisoned")
            .clone()
            .ok_or_else(|| "the blob is committed already".to_string())
    }

    /// A blob whose index is loaded and whose `present` byte ranges (whole chunks, re-verified
    /// after a resume) are already in the partial file.
    pub fn new(
        desc: Descriptor,
        index: Arc<ChunkIndex>,
        ingest: Ingest,
        present: &[(u64, u64)],
    ) -> std::io::Result<LazyBlob> {
        let reader = Mutex::new(Arc::new(ingest.file().try_clone()?));
        let n = index.chunk_count();
        let mut st = State {
            present: vec![false; n],
            claimed: vec![false; n],
            missing: n,
            ..Default::default()
        };
        let mut bytes = desc.size - index.data_size(); // the index itself is present
        for &(a, b) in present {
            for i in index.chunks_covering(a, b) {
                let r = index.chunk(i);
                if r.start >= a && r.end <= b && !st.present[i] {
                    st.present[i] = true;
                    st.missing -= 1;
                    bytes += r.end - r.start;
                }
            }
        }
        Ok(LazyBlob {
            desc,
            chunk_len: index.max_chunk_len().max(1),
            index,
            reader,
            ingest: Mutex::new(Some(Arc::new(ingest))),
            state: Mutex::new(st),
            present_bytes: AtomicU64::new(bytes),
            committed: AtomicBool::new(false),
            whole: false,
            resume: Mutex::new(Vec::new()),
            store: None,
        })
    }

    /// A blob without a chunk index, served once all of it arrived and its sha256 matched
    /// (issue 15). `present` are the byte ranges a killed server left: kept, not served; the
    /// commit's whole-blob digest decides.
    ///
    /// Errors: `InvalidInput` for an empty blob or a malformed digest, and the ingest file's.
    pub fn whole(
        desc: Descriptor,
        ingest: Ingest,
        present: &[(u64, u64)],
        store: Arc<fspack_store::Store>,
    ) -> std::io::Result<LazyBlob> {
        let hex = desc.digest.hex();
        let index = ChunkIndex::whole(desc.size, hex).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "blob {} of {} bytes cannot be served",
                    desc.digest, desc.size
                ),
            )
        })?;
        let mut blob = LazyBlob::new(desc, Arc::new(index), ingest, &[])?;
        blob.whole = true;
        blob.resume = Mutex::new(present.to_vec());
        blob.store = Some(store);
        Ok(blob)
    }

    /// Whether the blob has no chunk index and is served only once committed whole.
    pub fn is_whole(&self) -> bool {
        self.whole
    }

    /// Bytes present (verified) so far.
    pub fn present_bytes(&self) -> u64 {
        self.present_bytes.load(Ordering::Relaxed)
    }

    /// Whether the blob was committed to the store.
    pub fn is_committed(&self) -> bool {
        self.committed.load(Ordering::Acquire)
    }

    fn read_now(&self, offset: u64, end: u64, reply: Box<dyn ReadReply>) {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; (end - offset) as usize];
        let reader = self.reader.lock().expect("not poisoned").clone();
        match reader.read_exact_at(&mut buf, offset) {
            Ok(()) => reply.data(&buf),
            Err(e) => {
                tracing::error!(digest = %self.desc.digest, offset, "read of the partial blob failed: {e}");
                reply.error(EIO);
            }
        }
    }
}

/// Linux `EIO`.
pub const EIO: i32 = 5;

/// A run of chunks to fetch.
struct Job {
    blob: usize,
    chunks: Range<usize>,
}

/// Counters shown by `fspack ls` and the status file.
#[derive(Debug, Default)]
pub struct Counters {
    /// Body bytes received from the registry.
    pub bytes_received: AtomicU64,
    /// Chunks that failed verification and were fetched again.
    pub chunks_refetched: AtomicU64,
    /// Reads answered with `EIO`.
    pub reads_failed: AtomicU64,
    /// The chunk last given up on after failing verification on every try, as (blob, chunk,
    /// message); `None` once it arrives intact.
    pub failing: Mutex<Option<(usize, usize, String)>>,
    /// Why the last fetch failed, while every fetch fails (the registry unreachable, refusing
    /// or timing out); `None` once one succeeds. For `fspack ls`, so a user sees why reads
    /// fail without opening the server's log (s9 fresh-eyes pass).
    pub fetch_error: Mutex<Option<String>>,
}

/// The scheduler shared by the FUSE threads and the fetch workers.
pub struct Fill {
    /// The blobs, in FUSE inode order.
    pub blobs: Vec<LazyBlob>,
    client: Client,
    reference: Reference,
    demand: Mutex<VecDeque<Job>>,
    wake: tokio::sync::Notify,
    read_timeout: Duration,
    stop: AtomicBool,
    /// Transfer and failure counters.
    pub counters: Counters,
    /// Woken whenever a blob is committed (or the fill stops).
    pub progress: tokio::sync::Notify,
    commits: Mutex<Vec<(usize, Result<std::path::PathBuf, String>)>>,
    /// Since when every fetch failed (the registry is unreachable); `None` while fetches work.
    offline_since: Mutex<Option<Instant>>,
    /// The kernel mount is live. Until then there is no background fill: the mount waits for
    /// what it reads (the metadata walk, tail blocks of model files), and a worker busy with a
    /// fill run (or a whole blob, which takes a worker until all of it arrived, issue 15) would
    /// make it wait behind that.
    live: AtomicBool,
}

impl Fill {
    /// A scheduler for `blobs` of `reference` (pinned by digest); reads wait at most
    /// `read_timeout` for missing chunks.
    pub fn new(
        blobs: Vec<LazyBlob>,
        client: Client,
        reference: Reference,
        read_timeout: Duration,
    ) -> Fill {
        Fill {
            blobs,
            client,
            reference,
            demand: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            read_timeout,
            stop: AtomicBool::new(false),
            counters: Counters::default(),
            progress: tokio::sync::Notify::new(),
            commits: Mutex::new(Vec::new()),
            offline_since: Mutex::new(None),
            live: AtomicBool::new(false),
        }
    }

    /// Says the kernel mount is live: the background fill may start.
    pub fn set_live(&self) {
        self.live.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }

    /// Answers a read of `size` bytes at `offset` of blob `b`: now when its chunks are present,
    /// else once workers fetched and verified them, or with `EIO` after the read timeout or
    /// when a chunk keeps failing verification.
    pub fn read(&self, b: usize, offset: u64, size: u32, reply: Box<dyn ReadReply>) {
        let blob = &self.blobs[b];
        let end = (offset + u64::from(size)).min(blob.desc.size);
        if offset >= end {
            return reply.data(&[]);
        }
        if blob.is_committed() {
            return blob.read_now(offset, end, reply);
        }
        let chunks = blob.index.chunks_covering(offset, end);
        let mut st = blob.state.lock().expect("not poisoned");
        if chunks.clone().all(|i| st.present[i]) {
            drop(st);
            return blob.read_now(offset, end, reply);
        }
        // The registry has been unreachable for longer than a read may wait: fail at once.
        // The kernel retries a failed page on its own (readahead, then the page alone), and
        // every retry waiting the full timeout again would hold a reader for minutes.
        let offline = *self.offline_since.lock().expect("not poisoned");
        if offline.is_some_and(|t| t.elapsed() >= self.read_timeout) {
            drop(st);
            self.counters.reads_failed.fetch_add(1, Ordering::Relaxed);
            return reply.error(EIO);
        }
        // A read near where the last one ended continues a sequential stream: fetch further
        // ahead each time, so the stream soon runs at the speed of large Range requests.
        let chunk = blob.chunk_len;
        let sequential =
            st.seq_end > 0 && offset + 2 * chunk >= st.seq_end && offset <= st.seq_end + 2 * chunk;
        st.window = if sequential {
            (st.window * 2).clamp(chunk, MAX_WINDOW)
        } else {
            0
        };
        st.seq_end = if sequential { st.seq_end.max(end) } else { end };
        let ahead = blob.index.chunks_covering(offset, end + st.window);
        st.waiters.push(Waiter {
            offset,
            end,
            chunks: chunks.clone(),
            deadline: Instant::now() + self.read_timeout,
            reply,
        });
        drop(st);
        self.demand.lock().expect("not poisoned").push_back(Job {
            blob: b,
            chunks: chunks.start..ahead.end.max(chunks.end),
        });
        self.wake.notify_waiters();
    }

    /// Commits the blobs that are complete already: committed by another process meanwhile, or
    /// with every chunk kept from a killed server. Call once, before the workers start.
    pub fn commit_ready(self: &Arc<Self>) {
        for (b, blob) in self.blobs.iter().enumerate() {
            let complete = {
                let mut st = blob.state.lock().expect("not poisoned");
                let complete = st.missing == 0 && !st.commit_started;
                st.commit_started |= complete;
                complete
            };
            if complete {
                let me = self.clone();
                tokio::task::spawn_blocking(move || me.commit(b));
            }
        }
    }

    /// Whether every blob is committed.
    pub fn all_committed(&self) -> bool {
        self.blobs.iter().all(LazyBlob::is_committed)
    }

    /// Stops the workers and answers every waiting read with `EIO`.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake.notify_waiters();
        for blob in &self.blobs {
            let waiters = std::mem::take(&mut blob.state.lock().expect("not poisoned").waiters);
            for w in waiters {
                w.reply.error(EIO);
            }
        }
        self.progress.notify_waiters();
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Commit results not yet taken: `(blob, path in the store or the error)`.
    pub fn take_commits(&self) -> Vec<(usize, Result<std::path::PathBuf, String>)> {
        std::mem::take(&mut *self.commits.lock().expect("not poisoned"))
    }

    /// Answers with `EIO` the reads that waited longer than the read timeout (the registry is
    /// unreachable or slow); their chunks stay queued, so the fill goes on when it is back.
    pub fn expire_waiters(&self) {
        let now = Instant::now();
        for blob in &self.blobs {
            let expired: Vec<Waiter> = {
                let mut st = blob.state.lock().expect("not poisoned");
                // A whole blob being downloaded: its readers wait for the end of it (issue 15).
                if blob.whole && st.claimed[0] {
                    continue;
                }
                let (gone, keep) = std::mem::take(&mut st.waiters)
                    .into_iter()
                    .partition(|w| w.deadline <= now);
                st.waiters = keep;
                gone
            };
            if !expired.is_empty() {
                // A read waited the whole timeout: the reads the kernel retries next (the page
                // alone after a failed readahead) must fail at once, not wait again. Counting the
                // outage from the first failed fetch alone is not enough: that fetch fails only
                // after the client's retries, seconds after the read began, so the retry waited
                // a second timeout (report item 6: 60 s, not 30).
                let cut = now.checked_sub(self.read_timeout).unwrap_or(now);
                let mut offline = self.offline_since.lock().expect("not poisoned");
                *offline = Some(offline.map_or(cut, |t| t.min(cut)));
                // A registry that accepts connections and then says nothing (a hung process)
                // fails no fetch for minutes, until the client's stall timeouts run out; the
                // expired read already tells, so `ls` says so now (s10 fresh-eyes pass).
                self.counters
                    .fetch_error
                    .lock()
                    .expect("not poisoned")
                    .get_or_insert_with(|| {
                        format!(
                            "no data arrived for {} s while a read waited (the registry is not answering); reads of missing data fail with EIO until it does",
                            self.read_timeout.as_secs()
                        )
                    });
            }
            for w in expired {
                tracing::error!(
                    digest = %blob.desc.digest,
                    "read of bytes {}..{} waited {:?} for the registry; answering EIO",
                    w.offset,
                    w.end,
                    self.read_timeout
                );
                self.counters.reads_failed.fetch_add(1, Ordering::Relaxed);
                w.reply.error(EIO);
            }
        }
    }

    /// One fetch worker: runs until every blob is present or the fill is stopped.
    pub async fn worker(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        loop {
            if self.stopped() {
                return;
            }
            let Some(job) = self.next_job() else {
                if self
                    .blobs
                    .iter()
                    .all(|b| b.state.lock().expect("not poisoned").missing == 0)
                {
                    return;
                }
                let _ =
                    tokio::time::timeout(Duration::from_millis(200), self.wake.notified()).await;
                continue;
            };
            match Self::run(&self, &job).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    *self.offline_since.lock().expect("not poisoned") = None;
                    *self.counters.fetch_error.lock().expect("not poisoned") = None;
                }
                Err(e) => {
                    self.offline_since
                        .lock()
                        .expect("not poisoned")
                        .get_or_insert_with(Instant::now);
                    *self.counters.fetch_error.lock().expect("not poisoned") = Some(e.clone());
                    tracing::warn!(
                        digest = %self.blobs[job.blob].desc.digest,
                        "fetching chunks {}..{} failed, trying again in {backoff:?}: {e}",
                        job.chunks.start,
                        job.chunks.end
                    );
                    self.unclaim(&job);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.progress.notified(), if self.stopped() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// The next run to fetch: demanded chunks first, then the lowest missing chunks of the
    /// first blob that has any.
    fn next_job(&self) -> Option<Job> {
        {
            let mut q = self.demand.lock().expect("not poisoned");
            while let Some(d) = q.front_mut() {
                let blob = &self.blobs[d.blob];
                let mut st = blob.state.lock().expect("not poisoned");
                let first = d.chunks.clone().find(|&i| !st.present[i] && !st.claimed[i]);
                let Some(first) = first else {
                    drop(st);
                    q.pop_front();
                    continue;
                };
                let run = claim_run(&blob.index, &mut st, first, d.chunks.end, DEMAND_RUN, false);
                d.chunks.start = run.end;
                return Some(Job {
                    blob: d.blob,
                    chunks: run,
                });
            }
        }
        let now = Instant::now();
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        for (b, blob) in self.blobs.iter().enumerate() {
            let mut st = blob.state.lock().expect("not poisoned");
            if st.missing == 0 {
                continue;
            }
            let n = st.present.len();
            let start = st.next_fill;
            let first = (start..n).chain(0..start).find(|&i| {
                !st.present[i]
                    && !st.claimed[i]
                    && st.paused_until.get(&i).is_none_or(|t| *t <= now)
            });
            if let Some(first) = first {
                let run = claim_run(&blob.index, &mut st, first, n, FILL_RUN, true);
                st.next_fill = run.end;
                return Some(Job {
                    blob: b,
                    chunks: run,
                });
            }
        }
        None
    }

    fn unclaim(&self, job: &Job) {
        let mut st = self.blobs[job.blob].state.lock().expect("not poisoned");
        for i in job.chunks.clone() {
            st.claimed[i] = false;
        }
        drop(st);
        self.wake.notify_waiters();
    }
}

/// Claims the run of missing, unclaimed chunks starting at `first` (below `limit`, at most
/// `max_bytes` long, never past a claimed or present chunk).
fn claim_run(
    index: &ChunkIndex,
    st: &mut State,
    first: usize,
    limit: usize,
    max_bytes: u64,
    skip_paused: bool,
) -> Range<usize> {
    let start = index.chunk(first).start;
    let now = Instant::now();
    let mut end = first;
    while end < limit
        && !st.present[end]
        && !st.claimed[end]
        && index.chunk(end).end - start <= max_bytes.max(index.chunk(first).end - start)
        && (!skip_paused || end == first || st.paused_until.get(&end).is_none_or(|t| *t <= now))
    {
        st.claimed[end] = true;
        end += 1;
    }
    first..end
}

#[cfg(test)]
mod tests {
    use super::*;
    use fspack_chunkindex::ChunkIndexBuilder;

    /// An index of `n` chunks of 1 MiB, and a state with nothing present or claimed.
    fn setup(n: usize) -> (ChunkIndex, State) {
        let mut b = ChunkIndexBuilder::new(1 << 20);
        b.update(&vec![7u8; n << 20]);
        let st = State {
            present: vec![false; n],
            claimed: vec![false; n],
            missing: n,
            ..Default::default()
        };
        (b.finish(), st)
    }

    #[test]
    fn a_run_stops_at_present_or_claimed_chunks_the_limit_and_the_size_cap() {
        let (ix, mut st) = setup(10);
        st.present[4] = true;
        assert_eq!(claim_run(&ix, &mut st, 1, 10, 16 << 20, true), 1..4);
        assert!(st.claimed[1..4].iter().all(|&c| c) && !st.claimed[0]);
        // Claimed chunks are not handed out twice.
        assert_eq!(claim_run(&ix, &mut st, 1, 10, 16 << 20, true), 1..1);
        assert_eq!(claim_run(&ix, &mut st, 5, 7, 16 << 20, true), 5..7);
        assert_eq!(claim_run(&ix, &mut st, 7, 10, 2 << 20, true), 7..9);
    }

    #[test]
    fn the_fill_skips_paused_chunks_past_the_first_but_a_demand_takes_them() {
        let (ix, mut st) = setup(4);
        st.paused_until
            .insert(2, Instant::now() + Duration::from_secs(60));
        let (ix2, mut st2) = (ix.clone(), st.clone_for_test());
        assert_eq!(claim_run(&ix, &mut st, 0, 4, 16 << 20, true), 0..2);
        assert_eq!(claim_run(&ix2, &mut st2, 0, 4, 16 << 20, false), 0..4);
    }

    impl State {
        fn clone_for_test(&self) -> State {
            State {
                present: self.present.clone(),
                claimed: self.claimed.clone(),
                missing: self.missing,
                paused_until: self.paused_until.clone(),
                ..Default::default()
            }
        }
    }
}
