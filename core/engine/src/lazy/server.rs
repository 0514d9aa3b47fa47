//! `fspack lazy-serve`: the process behind a lazy mount, from the first demanded chunk until the
//! loop devices read from the store and it unmounts its own FUSE filesystem and exits (issue 10).
//!
//! Started by [`super::mount_lazy`] with a pipe on stdin and stdout. It reads one JSON line (the
//! [`ServeSpec`], credentials included, so they never touch the disk), opens the partial blobs
//! (taking their ingest locks, re-verifying every chunk a killed server left), fetches the chunk
//! indexes, mounts the FUSE directory, and answers `ready` (or `error: …`) on stdout. Then it
//! fetches; the setup side writes `mounted` on stdin once the kernel mount is live. End of stdin
//! without `mounted` means the setup failed: the server unmounts FUSE and exits, keeping what it
//! fetched for a resume. SIGTERM (from `fspack umount`) does the same.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fspack_digest::Digest;
use fspack_registry::{Client, ClientOptions, Reference};
use fspack_store::Store;
use serde::{Deserialize, Serialize};

use super::fill::{Fill, LazyBlob};
use super::fuse::{BlobFs, file_name};
use super::status::{BlobStatus, LazyStatus, ServerState};
use crate::artifact::{Descriptor, MEDIA_MANIFEST};
use crate::error::{EngineError, Result};

/// Everything the server needs, sent as one JSON line on its stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServeSpec {
    /// Store root.
    pub store_root: PathBuf,
    /// The reference pinned to the manifest digest (`host/repo@sha256:…`).
    pub reference: String,
    /// The store name tagged once every blob is committed (as an eager pull tags).
    pub tag: String,
    /// Manifest digest (already in the store, untagged until the end).
    pub manifest_digest: Digest,
    /// Manifest size in bytes.
    pub manifest_size: u64,
    /// Blobs to serve: verified chunk by chunk where they have a chunk index, else as wholes.
    pub blobs: Vec<Descriptor>,
    /// Bytes of the artifact's other data blobs, already in the store when the mount was made
    /// (a resumed mount): counted as present, so `ls` shows the artifact's progress and total,
    /// not just the part this server fetches.
    #[serde(default)]
    pub bytes_stored: u64,
    /// Fetch workers (`--jobs`).
    pub jobs: usize,
    /// Longest wait of a read for missing chunks, in milliseconds.
    pub read_timeout_ms: u64,
    /// The mount point (to update its record at the end).
    pub target: PathBuf,
    /// The state directory (FUSE mount point `fuse/`, `status.json`).
    pub state_dir: PathBuf,
    /// How to reach the registry.
    pub remote: RemoteSpec,
}

/// The serializable part of [`ClientOptions`].
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct RemoteSpec {
    /// Plain HTTP to any registry.
    pub plain_http: bool,
    /// Accept any TLS certificate.
    pub insecure_tls: bool,
    /// User name.
    pub username: Option<String>,
    /// Password or token.
    pub password: Option<String>,
    /// Credentials file.
    pub auth_file: Option<PathBuf>,
    /// Credentials over plain HTTP to a non-loopback host allowed.
    pub plain_http_credentials: bool,
    /// User-Agent.
    pub user_agent: String,
}

impl std::fmt::Debug for RemoteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteSpec")
            .field("plain_http", &self.plain_http)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl RemoteSpec {
    /// The parts of `o` a server needs.
    pub fn from_options(o: &ClientOptions) -> RemoteSpec {
        RemoteSpec {
            plain_http: o.plain_http,
            insecure_tls: o.insecure_tls,
            username: o.username.clone(),
            password: o.password.clone(),
            auth_file: o.auth_file.clone(),
            plain_http_credentials: o.plain_http_credentials,
            user_agent: o.user_agent.clone(),
        }
    }

    fn options(&self) -> ClientOptions {
        ClientOptions {
            plain_http: self.plain_http,
            insecure_tls: self.insecure_tls,
            username: self.username.clone(),
            password: self.password.clone(),
            auth_file: self.auth_file.clone(),
            plain_http_credentials: self.plain_http_credentials,
            user_agent: self.user_agent.clone(),
            ..Default::default()
        }
    }
}

pub use crate::lazy_process::fuse_dir;

/// Runs a server: reads the spec from `input`, answers `ready` on `ready`, serves until done.
///
/// Errors before `ready` are also written to `ready` as `error: …` for the setup side to show.
pub async fn serve(
    mut input: Box<dyn BufRead + Send>,
    mut ready: Box<dyn Write + Send>,
) -> Result<()> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| EngineError::io(Path::new("<stdin>"), e))?;
    let spec: ServeSpec = serde_json::from_str(&line)
        .map_err(|e| EngineError::Usage(format!("lazy-serve: bad spec on stdin: {e}")))?;
    let started = match start(&spec).await {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(ready, "error: {e}");
            return Err(e);
        }
    };
    let _ = writeln!(ready, "ready");
    let _ = ready.flush();
    drop(ready);
    run(spec, started, input).await
}

struct Started {
    store: Arc<Store>,
    fill: Arc<Fill>,
    session: fuser::BackgroundSession,
    fuse_dir: PathBuf,
}

async fn start(spec: &ServeSpec) -> Result<Started> {
    let store = Arc::new(Store::open(&spec.store_root)?);
    let client = Client::new(spec.remote.options())?;
    let r: Reference = spec.reference.parse().map_err(|e| {
        EngineError::Usage(format!("lazy-serve: reference {}: {e}", spec.reference))
    })?;
    // Every blob's lock, index and resume check side by side: the mount waits for all of them.
    let opened = spec.blobs.iter().map(|d| open_blob(&store, &client, &r, d));
    let blobs = futures_util::future::try_join_all(opened).await?;
    let timeout = Duration::from_millis(spec.read_timeout_ms);
    let fill = Arc::new(Fill::new(blobs, client, r, timeout));
    let fuse_dir = fuse_dir(&spec.state_dir);
    std::fs::create_dir_all(&fuse_dir).map_err(|e| EngineError::io(&fuse_dir, e))?;
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("fspack-lazy".into()),
        fuser::MountOption::Subtype("fspack".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    config.n_threads = Some(2);
    let session = fuser::spawn_mount(BlobFs::new(fill.clone()), &fuse_dir, &config)
        .map_err(|e| EngineError::io(&fuse_dir, e))?;
    Ok(Started {
        store,
        fill,
        session,
        fuse_dir,
    })
}

/// Takes blob `d`'s ingest lock, loads its chunk index (from the partial file, the store, or
/// the registry, checked against the manifest's digest) and re-verifies the chunks a killed
/// server left. A blob without an index (a model layer from another tool) is served whole, once
/// verified ([`LazyBlob::whole`]).
async fn open_blob(
    store: &Arc<Store>,
    client: &Client,
    r: &Reference,
    d: &Descriptor,
) -> Result<LazyBlob> {
    let at = crate::fetch::chunk_index_of(d)?;
    let ingest = Arc::new(crate::fetch::open_ingest(store, d).await?);
    let mut stats = Default::default();
    let (index, present) =
        crate::fetch::resume(client, r, d, at.as_ref(), store, &ingest, &mut stats).await?;
    let ingest = Arc::try_unwrap(ingest)
        .map_err(|_| EngineError::Integrity(format!("blob {} is still being written", d.digest)))?;
    let blob = match index {
        Some(index) => LazyBlob::new(d.clone(), index, ingest, &present),
        None => LazyBlob::whole(d.clone(), ingest, &present, store.clone()),
    };
    blob.map_err(|e| EngineError::io(&store.root().join("ingest"), e))
}

/// How often fill progress alone rewrites `status.json`, which `fspack ls` reads.
const STATUS_INTERVAL: Duration = Duration::from_millis(250);

/// How often the server looks whether its mount point is still mounted.
const MOUNT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Whether `target` is a mount point in this mount namespace; `true` when mountinfo cannot be
/// read, so a transient failure never stops a fill.
fn is_mounted(target: &Path) -> bool {
    fspack_mount::mountinfo().map_or(true, |m| m.iter().any(|e| e.mount_point == target))
}

/// What the setup side said on stdin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setup {
    Pending,
    Mounted,
    Aborted,
}

async fn run(spec: ServeSpec, s: Started, mut input: Box<dyn BufRead + Send>) -> Result<()> {
    let (setup_tx, mut setup_rx) = tokio::sync::watch::channel(Setup::Pending);
    std::thread::spawn(move || {
        let mut mounted = false;
        let mut line = String::new();
        while input.read_line(&mut line).is_ok_and(|n| n > 0) {
            mounted |= line.trim() == "mounted";
            if mounted {
                let _ = setup_tx.send(Setup::Mounted);
            }
            line.clear();
        }
        if !mounted {
            let _ = setup_tx.send(Setup::Aborted);
        }
    });
    s.fill.commit_ready();
    for _ in 0..spec.jobs.max(1) {
        tokio::spawn(s.fill.clone().worker());
    }
    let expiry = {
        let fill = s.fill.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                fill.expire_waiters();
            }
        })
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| EngineError::io(Path::new("SIGTERM handler"), e))?;
    let mut error: Option<String> = None;
    // `None` until the first write; then when and at which setup stage it was written.
    let mut written: Option<(Instant, Setup)> = None;
    let mut mount_checked = Instant::now();
    // The setup closes its end once mounted, which drops the sender: from then on `changed()`
    // is ready at once, and selecting on it would spin this loop on a core.
    let mut setup_open = true;
    let outcome = loop {
        let mut committed = false;
        for (b, result) in s.fill.take_commits() {
            committed = true;
            if let Err(e) = result {
                error = Some(format!("blob {}: {e}", s.fill.blobs[b].desc.digest));
            }
        }
        let setup = *setup_rx.borrow();
        if setup == Setup::Mounted {
            s.fill.set_live();
        }
        // Progress wakes this loop for every chunk (hundreds a second on a fast link); the
        // status is for `fspack ls`, so progress alone rewrites it a few times a second, and
        // only a commit or a setup step at once.
        let due = match written {
            None => true,
            Some((at, seen)) => committed || seen != setup || at.elapsed() >= STATUS_INTERVAL,
        };
        if due {
            write_status(&spec, &s.fill, ServerState::Filling, error.as_deref());
            written = Some((Instant::now(), setup));
        }
        if setup == Setup::Aborted {
            break ServerState::Stopped;
        }
        if setup == Setup::Mounted && mount_checked.elapsed() >= MOUNT_CHECK_INTERVAL {
            mount_checked = Instant::now();
            if !is_mounted(&spec.target) {
                // A plain umount(8): nothing reads through this server any more, so fetching
                // on would only spend the link. The partial blobs stay for a resume, and the
                // record for `fspack ls` and `gc` to report and release.
                tracing::warn!(
                    "{} was unmounted without fspack; stopping the fill",
                    spec.target.display()
                );
                break ServerState::Stopped;
            }
        }
        if setup == Setup::Mounted && s.fill.all_committed() {
            break ServerState::Complete;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = s.fill.progress.notified() => {}
            changed = setup_rx.changed(), if setup_open => setup_open = changed.is_ok(),
            _ = term.recv() => break ServerState::Stopped,
        }
    };
    expiry.abort();
    if outcome == ServerState::Complete {
        complete(&spec, &s)?;
    }
    s.fill.stop();
    write_status(&spec, &s.fill, outcome, error.as_deref());
    unmount_fuse(s.session, &s.fuse_dir);
    if outcome == ServerState::Complete {
        let _ = std::fs::remove_dir_all(&spec.state_dir);
    }
    Ok(())
}

/// Every blob is committed: point the loop devices at the store, tag the reference, and make
/// the mount record that of a plain mount.
fn complete(spec: &ServeSpec, s: &Started) -> Result<()> {
    let fuse = std::fs::canonicalize(&s.fuse_dir).unwrap_or_else(|_| s.fuse_dir.clone());
    let loops = fspack_mount::loop_devices()?;
    for blob in &s.fill.blobs {
        let served = fuse.join(file_name(&blob.desc.digest));
        let stored = s.store.blob_path(&blob.desc.digest);
        for (dev, backing) in loops.iter().filter(|(_, b)| *b == served) {
            fspack_mount::change_backing_file(dev, &stored)?;
            tracing::info!(device = %dev.display(), "switched from {} to {}", backing.display(), stored.display());
        }
    }
    s.store.tag(
        &spec.tag,
        &spec.manifest_digest,
        MEDIA_MANIFEST,
        spec.manifest_size,
    )?;
    if let Some(mut rec) = s
        .store
        .mount_records()?
        .into_iter()
        .find(|r| r.target == spec.target)
    {
        rec.lazy = None;
        s.store.record_mount(&rec)?;
    }
    tracing::info!(reference = %spec.tag, "lazy mount complete: every blob is in the store");
    Ok(())
}

fn unmount_fuse(session: fuser::BackgroundSession, dir: &Path) {
    if let Err(e) = session.umount_and_join() {
        tracing::info!(
            "FUSE unmount of {} deferred ({e}); detaching",
            dir.display()
        );
        let _ = fspack_mount::unmount(dir, true);
    }
}

fn write_status(spec: &ServeSpec, fill: &Fill, state: ServerState, error: Option<&str>) {
    use std::sync::atomic::Ordering::Relaxed;
    let blobs: Vec<BlobStatus> = fill
        .blobs
        .iter()
        .map(|b| BlobStatus {
            digest: b.desc.digest.clone(),
            size: b.desc.size,
            present: b.present_bytes(),
            committed: b.is_committed(),
        })
        .collect();
    let status = LazyStatus {
        state,
        pid: std::process::id(),
        bytes_present: spec.bytes_stored + blobs.iter().map(|b| b.present).sum::<u64>(),
        bytes_total: spec.bytes_stored + blobs.iter().map(|b| b.size).sum::<u64>(),
        blobs,
        bytes_received: fill.counters.bytes_received.load(Relaxed),
        chunks_refetched: fill.counters.chunks_refetched.load(Relaxed),
        reads_failed: fill.counters.reads_failed.load(Relaxed),
        error: error.map(str::to_string),
        failing: (fill.counters.failing.lock())
            .expect("not poisoned")
            .as_ref()
            .map(|(_, _, msg)| msg.clone()),
        fetch_error: fill
            .counters
            .fetch_error
            .lock()
            .expect("not poisoned")
            .clone(),
    };
    if let Err(e) = status.write(&spec.state_dir) {
        tracing::warn!(
            "cannot write the status in {}: {e}",
            spec.state_dir.display()
        );
    }
}
