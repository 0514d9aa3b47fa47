//! The fetching half of the lazy fill: one worker's job streamed with one HTTP Range request
//! through the registry client, each chunk verified against the chunk index before it is
//! written and marked present ([`ChunkSink`]); a blob without an index streamed whole and
//! committed before any reader is answered; and the commit of a complete blob, exactly as an
//! eager pull commits.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::*;

/// Counts one request's bytes into the fill's `bytes_received` as they are handed over, so the
/// status moves during a long run on a slow link (an 8 MiB run at 200 KB/s takes 40 s; it used
/// to be counted only at its end).
struct Received {
    fill: Arc<Fill>,
    /// Bytes of this request counted so far.
    counted: std::sync::atomic::AtomicU64,
}

impl Received {
    fn new(fill: &Arc<Fill>) -> Received {
        Received {
            fill: fill.clone(),
            counted: Default::default(),
        }
    }

    /// Counts what the request received beyond what progress already counted (`total` bytes of
    /// body in all).
    fn settle(&self, total: u64) {
        let rest = total.saturating_sub(self.counted.load(Ordering::Relaxed));
        self.fill
            .counters
            .bytes_received
            .fetch_add(rest, Ordering::Relaxed);
    }
}

impl fspack_registry::Progress for Received {
    fn bytes(&self, n: u64) {
        self.counted.fetch_add(n, Ordering::Relaxed);
        self.fill
            .counters
            .bytes_received
            .fetch_add(n, Ordering::Relaxed);
    }
}

impl Fill {
    /// Fetches `job` as one streamed Range request: each chunk is verified against the index
    /// as it arrives, then written and marked present, so a reader waiting for it is answered
    /// before the rest of the run lands. A chunk that fails verification is fetched again alone
    /// (up to [`CHUNK_ATTEMPTS`] tries, then its readers get `EIO`); the run goes on after it.
    pub(super) async fn run(self: &Arc<Self>, job: &Job) -> Result<(), String> {
        let blob = &self.blobs[job.blob];
        if blob.whole {
            return self.run_whole(job.blob).await;
        }
        let opts = fspack_registry::DownloadOptions {
            chunks: Some(blob.index.clone()),
            // Retries of a bad chunk are counted here, per chunk and across runs.
            chunk_attempts: 1,
            ..Default::default()
        };
        let mut todo: Vec<Range<usize>> = vec![job.chunks.clone()];
        while let Some(run) = todo.pop() {
            if self.stopped() {
                return Err("stopping".into());
            }
            let (start, end) = (
                blob.index.chunk(run.start).start,
                blob.index.chunk(run.end - 1).end,
            );
            let sink = Arc::new(ChunkSink {
                fill: self.clone(),
                b: job.blob,
                ingest: blob.open_ingest()?,
            });
            let received = Arc::new(Received::new(self));
            let got = self
                .client
                .download_range(
                    &self.reference,
                    &blob.desc.digest,
                    blob.desc.size,
                    (start, end),
                    sink,
                    &opts,
                    received.clone(),
                )
                .await;
            match got {
                Ok(stats) => received.settle(stats.bytes_received),
                Err(fspack_registry::RegistryError::ChunkMismatch { chunk: i, .. }) => {
                    let r = blob.index.chunk(i);
                    // The body got as far as the end of the bad chunk.
                    received.settle(r.end - start);
                    // The chunks before `i` are present; `i` is tried again (or given up for
                    // now), and the rest of the run, still claimed, follows it.
                    let from = if self.chunk_failed(job.blob, i) {
                        i
                    } else {
                        i + 1
                    };
                    if from < run.end {
                        todo.push(from..run.end);
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// Streams whole blob `b` into its ingest (resuming from what a killed server left), then
    /// commits it, which checks its sha256; only a committed whole blob answers its readers.
    pub(super) async fn run_whole(self: &Arc<Self>, b: usize) -> Result<(), String> {
        let blob = &self.blobs[b];
        let ingest = blob.open_ingest()?;
        let opts = fspack_registry::DownloadOptions {
            done_ranges: blob.resume.lock().expect("not poisoned").clone(),
            ..Default::default()
        };
        let sink = Arc::new(crate::fetch::IngestSink(ingest));
        let received = Arc::new(Received::new(self));
        let got = self
            .client
            .download_to(
                &self.reference,
                &blob.desc.digest,
                blob.desc.size,
                sink,
                &opts,
                received.clone(),
            )
            .await
            .map_err(|e| e.to_string())?;
        received.settle(got.bytes_received);
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.commit(b))
            .await
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Counts a failed verification of chunk `i`; returns whether to fetch it again now.
    pub(super) fn chunk_failed(&self, b: usize, i: usize) -> bool {
        let blob = &self.blobs[b];
        let tries = {
            let mut st = blob.state.lock().expect("not poisoned");
            let n = st.failures.entry(i).or_insert(0);
            *n += 1;
            *n
        };
        let r = blob.index.chunk(i);
        if tries < CHUNK_ATTEMPTS {
            tracing::warn!(
                digest = %blob.desc.digest,
                chunk = i,
                "chunk {i} (bytes {}..{}) from {} failed verification (try {tries} of {CHUNK_ATTEMPTS}); fetching it again",
                r.start,
                r.end,
                self.reference.registry
            );
            self.counters
                .chunks_refetched
                .fetch_add(1, Ordering::Relaxed);
            return true;
        }
        let msg = format!(
            "chunk {i} (bytes {}..{}, {}) of blob {} from {} failed verification {CHUNK_ATTEMPTS} times; reads of it answer EIO",
            r.start,
            r.end,
            blob.index.chunk_digest(i),
            blob.desc.digest,
            self.reference.registry
        );
        // Only a chunk that failed every try is named as failing: a whole blob that failed
        // once is fetched again at once and has no chunk to clear it by.
        *self.counters.failing.lock().expect("not poisoned") = Some((b, i, msg.clone()));
        self.fail_chunk(b, i, &msg);
        false
    }

    /// Gives up on chunk `i` for now: its readers get `EIO`; the fill tries it again later.
    pub(super) fn fail_chunk(&self, b: usize, i: usize, msg: &str) {
        tracing::error!("{msg}");
        let blob = &self.blobs[b];
        let failed: Vec<Waiter> = {
            let mut st = blob.state.lock().expect("not poisoned");
            st.claimed[i] = false;
            st.failures.remove(&i);
            st.paused_until.insert(i, Instant::now() + FAILED_PAUSE);
            let (gone, keep) = std::mem::take(&mut st.waiters)
                .into_iter()
                .partition(|w| w.chunks.contains(&i));
            st.waiters = keep;
            gone
        };
        for w in failed {
            self.counters.reads_failed.fetch_add(1, Ordering::Relaxed);
            w.reply.error(EIO);
        }
    }

    /// Marks chunk `i` present and answers the reads it completes; returns whether it was the
    /// blob's last missing chunk (the caller then commits the blob).
    pub(super) fn mark_present(&self, b: usize, i: usize) -> bool {
        let blob = &self.blobs[b];
        let r = blob.index.chunk(i);
        let (ready, complete) = {
            let mut st = blob.state.lock().expect("not poisoned");
            st.claimed[i] = false;
            if st.present[i] {
                return false;
            }
            st.present[i] = true;
            st.missing -= 1;
            let mut failing = self.counters.failing.lock().expect("not poisoned");
            if matches!(*failing, Some((fb, fi, _)) if (fb, fi) == (b, i)) {
                *failing = None;
            }
            drop(failing);
            st.failures.remove(&i);
            st.paused_until.remove(&i);
            blob.present_bytes
                .fetch_add(r.end - r.start, Ordering::Relaxed);
            let state = &mut *st;
            let (ready, keep): (Vec<Waiter>, Vec<Waiter>) = std::mem::take(&mut state.waiters)
                .into_iter()
                .partition(|w| w.chunks.clone().all(|c| state.present[c]));
            state.waiters = keep;
            let complete = st.missing == 0 && !st.commit_started;
            if complete {
                st.commit_started = true;
            }
            (ready, complete)
        };
        for w in ready {
            blob.read_now(w.offset, w.end, w.reply);
        }
        complete
    }

    /// Commits blob `b`: the whole-blob sha256 (over the hash state the writes advanced, reading
    /// back only what arrived out of order), fsync, rename into `blobs/`, exactly as an eager pull
    /// commits. Runs on a thread of its own; the result goes to [`Fill::take_commits`].
    pub(super) fn commit(&self, b: usize) {
        let blob = &self.blobs[b];
        let Some(ingest) = blob.ingest.lock().expect("not poisoned").take() else {
            return;
        };
        let result = (|| {
            // Workers drop their handle right after the write they were doing; wait for them.
            let mut ingest = ingest;
            let mut tries = 0;
            let owned = loop {
                match Arc::try_unwrap(ingest) {
                    Ok(i) => break i,
                    Err(back) if tries < 1000 => {
                        ingest = back;
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => return Err("the blob is still being written".to_string()),
                }
            };
            owned.commit_written().map_err(|e| e.to_string())
        })();
        match &result {
            Ok(p) => {
                tracing::info!(digest = %blob.desc.digest, "every chunk present; committed as {}", p.display());
                if blob.whole {
                    // Verified only now: its readers are answered only now.
                    self.mark_present(b, 0);
                }
                blob.committed.store(true, Ordering::Release);
            }
            Err(e) => {
                tracing::error!(digest = %blob.desc.digest, "commit failed: {e}");
                if blob.whole {
                    // The damaged data is gone; a fresh ingest lets the fill fetch it again.
                    blob.resume.lock().expect("not poisoned").clear();
                    if let Some(store) = &blob.store {
                        let fresh = store
                            .ingest(&blob.desc.digest, blob.desc.size)
                            .map_err(|e| e.to_string())
                            .and_then(|i| {
                                let f = i.file().try_clone().map_err(|e| e.to_string())?;
                                Ok((i, f))
                            });
                        match fresh {
                            Ok((i, f)) => {
                                // Readers must not see the old, unlinked file's damaged bytes.
                                *blob.reader.lock().expect("not poisoned") = Arc::new(f);
                                *blob.ingest.lock().expect("not poisoned") = Some(Arc::new(i));
                            }
                            Err(e) => {
                                tracing::error!(digest = %blob.desc.digest, "cannot start over: {e}")
                            }
                        }
                    }
                    let msg = format!(
                        "blob {} from {} failed verification as a whole ({e}); reads waiting for it answer EIO, and it is fetched again",
                        blob.desc.digest, self.reference.registry
                    );
                    self.counters
                        .chunks_refetched
                        .fetch_add(1, Ordering::Relaxed);
                    self.fail_chunk(b, 0, &msg);
                }
            }
        }
        self.commits.lock().expect("not poisoned").push((b, result));
        self.progress.notify_waiters();
    }
}

/// Where [`Fill::run`]'s verified chunks go: the partial blob, then the scheduler, which
/// answers the reads they complete and commits the blob after its last chunk.
struct ChunkSink {
    fill: Arc<Fill>,
    b: usize,
    ingest: Arc<fspack_store::Ingest>,
}

impl fspack_registry::BlobSink for ChunkSink {
    fn write_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        let blob = &self.fill.blobs[self.b];
        let i = blob.index.chunks_covering(offset, offset + 1).start;
        if let Err(e) = self.ingest.write_at(offset, bytes) {
            let msg = format!(
                "cannot write chunk {i} of blob {} into the store: {e}",
                blob.desc.digest
            );
            self.fill.fail_chunk(self.b, i, &msg);
            return Err(e);
        }
        if self.fill.mark_present(self.b, i) {
            // The commit hashes and fsyncs: a thread of its own. It waits for this sink's
            // handle on the ingest, which goes when the run ends, moments after its last chunk.
            let me = self.fill.clone();
            let b = self.b;
            tokio::runtime::Handle::current().spawn_blocking(move || me.commit(b));
        }
        Ok(())
    }
}
