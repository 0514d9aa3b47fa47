//! Lazy mounts (issue 10): a mount that is live once the small metadata image is verified,
//! whose data chunks are fetched, verified and stored on first read, and which ends as a plain
//! kernel mount of committed store blobs with no process left.
//!
//! How, on a kernel without fscache, ublk, nbd or fanotify pre-content events for EROFS (see
//! [`backend`]): a server process ([`server`]) exposes each missing blob as a file of a small
//! FUSE filesystem ([`fuse`]); those files are attached as read-only loop devices and mounted
//! like committed blobs. The server's scheduler ([`fill`]) fetches demanded chunks first and the
//! rest in the background; when a blob is complete it is committed exactly as an eager pull
//! commits it, its loop devices are switched to the store file (`LOOP_CHANGE_FD`), and when no
//! blob is left the server tags the reference, unmounts its FUSE filesystem and exits.

pub mod backend;
pub mod fill;
pub mod fuse;
pub mod server;
mod spawn;
pub mod status;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fspack_digest::Digest;
use fspack_registry::{Client, ClientOptions, Reference};
use fspack_store::{LazyRecord, Store};
use serde::Serialize;

use crate::artifact::*;
use crate::error::Result;
pub use crate::lazy_process::stop_server;
use crate::lazy_process::{fuse_dir, is_server};
use crate::mount::{MountPoint, MountSettings, Source};
use crate::plan::MountPlan;
use crate::pull::PullSettings;
use crate::report::Reporter;
use server::{RemoteSpec, ServeSpec};
use spawn::{abandon_server, start_server, state_dir};

/// How long a read waits for missing chunks before it answers `EIO`, unless
/// `FSPACK_LAZY_READ_TIMEOUT_MS` says otherwise (tests shorten it).
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of a lazy mount.
#[derive(Debug, Clone)]
pub struct LazySettings {
    /// Trust checks, and `jobs` as the number of fetch streams of the server.
    pub pull: PullSettings,
    /// Mount options (EROFS is always attached through loop devices when lazy).
    pub mount: MountSettings,
    /// The registry client's options, handed to the server.
    pub client: ClientOptions,
    /// The command that starts a server: the `fspack` binary and `lazy-serve`.
    pub server: Vec<OsString>,
}

/// What a lazy mount did.
#[derive(Debug, Clone, Serialize)]
pub struct LazyReport {
    /// The reference.
    pub reference: String,
    /// Manifest digest.
    pub manifest_digest: Digest,
    /// `erofs` or `squashfs`.
    pub format: String,
    /// Whether the mount is lazy (false: everything was in the store, or it fell back to an
    /// eager pull, see `notes`).
    pub lazy: bool,
    /// Blobs served lazily.
    pub lazy_blobs: usize,
    /// Bytes of those blobs.
    pub lazy_bytes: u64,
    /// Bytes fetched before the mount (metadata image, chunk indexes, or everything when eager).
    pub bytes_fetched: u64,
    /// The server's process id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_pid: Option<u32>,
    /// Wall time until the mount was live, in seconds.
    pub seconds: f64,
    /// The mount point.
    pub mounted_at: PathBuf,
    /// What the user should know (fallbacks, expanded layers).
    pub notes: Vec<String>,
    /// The signature and policy rules the manifest passed before the mount, one line each
    /// (issue 12); `[]` when none is configured, as in an eager mount's report.
    pub trust_checks: Vec<String>,
}

/// Mounts `r` on `point` lazily: the manifest, its signatures and policy, and the metadata
/// image are fetched and checked first; the data blobs are served on demand by a server process
/// started with `settings.server`.
///
/// Falls back to an eager pull and mount (with a note in the report) for fspack, EROFS and
/// SquashFS artifacts whose data blobs carry no chunk index (their chunks cannot be verified one
/// by one). Model artifacts (issue 15) are mounted lazily either way: their tar layers are
/// fetched first (their headers make the mapping), their raw layers are served chunk by chunk
/// where an index exists and once verified whole where none does. A reference whose blobs are
/// all in the store is mounted directly.
///
/// Errors: the errors of a pull (trust refusals, integrity, network) and of a mount; when the
/// server cannot start, [`EngineError::Io`](crate::error::EngineError::Io) with its last
/// words. On any error nothing stays mounted, no server runs, and the tag in the store is
/// untouched.
pub async fn mount_lazy(
    client: &Client,
    r: &Reference,
    store: Arc<Store>,
    point: MountPoint,
    settings: &LazySettings,
    reporter: Arc<dyn Reporter>,
) -> Result<LazyReport> {
    let started = Instant::now();
    let mut prepared = prepare(client, r, &store, settings).await;
    if let Ok(Prepared::Lazy { blobs, .. }) = &prepared
        && serving_elsewhere(&store, blobs).is_some()
    {
        // Another lazy mount's server holds these blobs' ingest locks until it commits them;
        // a server started now would block on them, silently. Wait in the open instead, then
        // look again: the blobs are then in the store (a plain mount) or free to serve.
        wait_for_other_servers(&store, blobs, &reporter).await;
        prepared = prepare(client, r, &store, settings).await;
    }
    let (fetched, lazy_blobs, upfront) = match prepared {
        Ok(Prepared::Lazy {
            fetched,
            blobs,
            upfront,
        }) => (*fetched, blobs, upfront),
        Ok(Prepared::Eager { why }) => {
            return eager(client, r, store, point, settings, reporter, started, why).await;
        }
        Err(e) => {
            point.discard();
            return Err(e);
        }
    };
    let format = MountPlan::from_manifest(&fetched.manifest, &r.to_string())?
        .format()
        .to_string();
    let mounting = Mounting {
        client,
        r,
        store: &store,
        settings,
        reporter: &reporter,
        fetched,
        upfront,
        format,
        started,
    };
    if lazy_blobs.is_empty() {
        // Every data blob is in the store already: a plain mount.
        return mounting.mount_present(point).await;
    }
    mounting.mount_served(point, lazy_blobs).await
}

/// What the steps of a lazy mount share once its manifest is trusted: where from, where to,
/// the manifest, the blobs needed before the mount, and the image format.
struct Mounting<'a> {
    client: &'a Client,
    r: &'a Reference,
    store: &'a Arc<Store>,
    settings: &'a LazySettings,
    reporter: &'a Arc<dyn Reporter>,
    fetched: crate::pull::Fetched,
    upfront: Vec<Descriptor>,
    format: String,
    started: Instant,
}

impl Mounting<'_> {
    /// [`fetch_upfront`] of this mount; `tag_now` when no blob is left to serve.
    async fn fetch_upfront(&self, tag_now: bool) -> Result<u64> {
        fetch_upfront(
            self.client,
            self.r,
            self.store,
            &self.fetched,
            &self.upfront,
            tag_now,
            self.settings,
            self.reporter,
        )
        .await
    }

    /// Every data blob is in the store: fetches what is left up front and mounts from the store,
    /// with no server.
    async fn mount_present(self, point: MountPoint) -> Result<LazyReport> {
        let target = point.path().to_path_buf();
        let bytes_fetched = match self.fetch_upfront(true).await {
            Ok(n) => n,
            Err(e) => {
                point.discard();
                return Err(e);
            }
        };
        let notes = mount_blocking(
            self.store,
            self.r.to_string(),
            self.fetched.digest.clone(),
            point,
            &self.settings.mount,
            Source::Store,
        )
        .await?;
        Ok(self.report(&[], bytes_fetched, None, target, notes))
    }

    /// Serves the missing `blobs` from a server process and mounts them, then hands the mount
    /// over to the server; on any error the server is stopped and the mount point discarded.
    async fn mount_served(self, point: MountPoint, blobs: Vec<Descriptor>) -> Result<LazyReport> {
        let target = point.path().to_path_buf();
        let state_dir = state_dir(self.store, &target);
        let spec = self.serve_spec(&blobs, &target, &state_dir);
        // The server opens its blobs and fetches their chunk indexes while the metadata image
        // arrives: the two waits overlap.
        let server = {
            let (cmd, spec) = (self.settings.server.clone(), spec.clone());
            tokio::task::spawn_blocking(move || start_server(&cmd, &spec))
        };
        let got = self.fetch_upfront(false).await;
        let server = server.await.expect("no panic");
        let (child, stdin, bytes_fetched) = match (server, got) {
            (Ok((child, stdin)), Ok(n)) => (child, stdin, n),
            (Ok((child, stdin)), Err(e)) => {
                abandon_server(child, stdin, state_dir).await;
                point.discard();
                return Err(e);
            }
            (Err(e), _) => {
                point.discard();
                return Err(e);
            }
        };
        let lazy = LazyRecord {
            server_pid: child.id(),
            state_dir: state_dir.clone(),
        };
        let source = Source::Lazy {
            fuse_dir: fuse_dir(&state_dir),
            record: lazy.clone(),
        };
        let mounted = mount_blocking(
            self.store,
            self.r.to_string(),
            self.fetched.digest.clone(),
            point,
            &self.settings.mount,
            source,
        )
        .await;
        match mounted {
            Ok(notes) => {
                let mut stdin = stdin;
                // The server switches devices and tags only after this line: the record exists.
                let told = writeln!(stdin, "mounted").and_then(|()| stdin.flush());
                if let Err(e) = told {
                    tracing::warn!("could not tell the lazy server the mount is live: {e}");
                }
                drop(stdin);
                // Reaped by init once we exit; the server is not our child to wait for.
                std::mem::forget(child);
                let pid = Some(lazy.server_pid);
                Ok(self.report(&blobs, bytes_fetched, pid, target, notes))
            }
            Err(e) => {
                abandon_server(child, stdin, lazy.state_dir).await;
                Err(e)
            }
        }
    }

    /// What the server of this mount is told: the pinned reference, the `blobs` to serve, how
    /// many streams, and where its state goes.
    fn serve_spec(&self, blobs: &[Descriptor], target: &Path, state_dir: &Path) -> ServeSpec {
        let (r, fetched, settings) = (self.r, &self.fetched, self.settings);
        let mut pinned = r.clone();
        pinned.digest = Some(fetched.digest.clone());
        // The data blobs a resumed mount already holds: neither served nor fetched up front.
        let mut stored = std::collections::HashSet::new();
        let bytes_stored = fetched
            .manifest
            .layers
            .iter()
            .filter(|l| {
                !blobs
                    .iter()
                    .chain(&self.upfront)
                    .any(|b| b.digest == l.digest)
            })
            .filter(|l| stored.insert(l.digest.clone()) && self.store.has_blob(&l.digest))
            .map(|l| l.size)
            .sum();
        ServeSpec {
            store_root: self.store.root().to_path_buf(),
            reference: pinned.to_string(),
            tag: r.to_string(),
            manifest_digest: fetched.digest.clone(),
            manifest_size: fetched.bytes.len() as u64,
            blobs: blobs.to_vec(),
            bytes_stored,
            // As many streams as an eager pull opens (`jobs` blobs × `ranges` Range requests),
            // so a capped link fills as fast as an eager pull of the same artifact.
            jobs: settings.pull.jobs.max(1) * settings.pull.ranges.max(1),
            read_timeout_ms: read_timeout().as_millis() as u64,
            target: target.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            remote: RemoteSpec::from_options(&settings.client),
        }
    }

    /// The report of a mount that serves `blobs` (none: mounted from the store) through the
    /// server `server_pid`.
    fn report(
        self,
        blobs: &[Descriptor],
        bytes_fetched: u64,
        server_pid: Option<u32>,
        mounted_at: PathBuf,
        notes: Vec<String>,
    ) -> LazyReport {
        LazyReport {
            reference: self.r.to_string(),
            manifest_digest: self.fetched.digest,
            format: self.format,
            lazy: !blobs.is_empty(),
            lazy_blobs: blobs.len(),
            lazy_bytes: blobs.iter().map(|d| d.size).sum(),
            bytes_fetched,
            server_pid,
            seconds: self.started.elapsed().as_secs_f64(),
            mounted_at,
            notes,
            trust_checks: self.fetched.trust_checks,
        }
    }
}

/// Mounts `digest` from `source` on `point` on a thread of its own (loop devices, the image
/// check and `mount(2)` block); returns the notes for the user.
async fn mount_blocking(
    store: &Arc<Store>,
    reference: String,
    digest: Digest,
    point: MountPoint,
    settings: &MountSettings,
    source: Source,
) -> Result<Vec<String>> {
    let (store, settings) = (store.clone(), settings.clone());
    tokio::task::spawn_blocking(move || {
        let mut notes = Vec::new();
        crate::mount::mount_from(
            &store, &reference, &digest, point, &settings, &mut notes, &source,
        )
        .map(|_| notes)
    })
    .await
    .expect("no panic")
}

enum Prepared {
    Lazy {
        fetched: Box<crate::pull::Fetched>,
        blobs: Vec<Descriptor>,
        upfront: Vec<Descriptor>,
    },
    Eager {
        why: String,
    },
}

/// Manifest, trust, the decision lazy or eager, and the blobs a lazy mount needs up front (the
/// EROFS metadata image); the manifest goes into the store untagged.
async fn prepare(
    client: &Client,
    r: &Reference,
    store: &Arc<Store>,
    settings: &LazySettings,
) -> Result<Prepared> {
    let (fetched, plan) = crate::pull::fetch_trusted(client, r, &settings.pull.trust).await?;
    let (upfront, lazy): (Vec<&Descriptor>, Vec<&Descriptor>) = match &plan {
        // A single image is its own data: served lazily like a data device.
        MountPlan::Erofs { primary, devices } if devices.is_empty() => {
            (Vec::new(), vec![&**primary])
        }
        MountPlan::Erofs { primary, devices } => (vec![&**primary], devices.iter().collect()),
        MountPlan::Squashfs { shards } => (Vec::new(), shards.iter().collect()),
        // Raw layers are mapped from the manifest alone and served lazily (chunk by chunk
        // with an index, else once verified whole); tar layers are fetched first, since their
        // headers make the mapping (issue 15).
        // An empty raw layer has nothing to serve (and makes no device): fetched up front.
        MountPlan::Model(m) => {
            let raw = |l: &&crate::modelpack::ModelLayer| {
                l.packing == crate::modelpack::Packing::Raw && l.desc.size > 0
            };
            (
                m.layers
                    .iter()
                    .filter(|l| !raw(l))
                    .map(|l| &l.desc)
                    .collect(),
                m.layers.iter().filter(raw).map(|l| &l.desc).collect(),
            )
        }
    };
    let model = matches!(plan, MountPlan::Model(_));
    let mut missing: Vec<Descriptor> = Vec::new();
    for d in lazy {
        crate::fetch::check_cached_size(store, d, &r.to_string())?;
        if store.has_blob(&d.digest) || missing.iter().any(|m| m.digest == d.digest) {
            continue;
        }
        if crate::fetch::chunk_index_of(d)?.is_none() && !model {
            return Ok(Prepared::Eager {
                why: format!(
                    "blob {} of {r} has no chunk index, so its chunks cannot be verified one by one; pulled in full instead of lazily",
                    d.digest
                ),
            });
        }
        missing.push(d.clone());
    }
    Ok(Prepared::Lazy {
        fetched: Box::new(fetched),
        blobs: missing,
        upfront: upfront.into_iter().cloned().collect(),
    })
}

/// Fetches what a lazy mount needs before it can mount (the EROFS metadata image), then stores
/// the config and the manifest (untagged, unless nothing is left to fetch lazily). Returns the
/// bytes received.
#[allow(clippy::too_many_arguments)]
async fn fetch_upfront(
    client: &Client,
    r: &Reference,
    store: &Arc<Store>,
    fetched: &crate::pull::Fetched,
    upfront: &[Descriptor],
    tag_now: bool,
    settings: &LazySettings,
    reporter: &Arc<dyn Reporter>,
) -> Result<u64> {
    let mut pinned = r.clone();
    pinned.digest = Some(fetched.digest.clone());
    let mut bytes_fetched = 0;
    for d in upfront {
        let got =
            crate::fetch::fetch_blob(client, &pinned, d, store, settings.pull.ranges, reporter)
                .await?;
        bytes_fetched += got.stats.bytes_received;
    }
    // Tagged now only when everything is here; else by the server once every blob arrived.
    crate::pull::store_manifest(store, r, fetched, tag_now)?;
    Ok(bytes_fetched)
}

/// The eager path: pull everything, then mount.
#[allow(clippy::too_many_arguments)]
async fn eager(
    client: &Client,
    r: &Reference,
    store: Arc<Store>,
    point: MountPoint,
    settings: &LazySettings,
    reporter: Arc<dyn Reporter>,
    started: Instant,
    why: String,
) -> Result<LazyReport> {
    let pulled = crate::pull::pull(client, r, store.clone(), &settings.pull, reporter).await;
    let (report, _) = match pulled {
        Ok(p) => p,
        Err(e) => {
            point.discard();
            return Err(e);
        }
    };
    let target = point.path().to_path_buf();
    let mut notes = mount_blocking(
        &store,
        report.reference.clone(),
        report.manifest_digest.clone(),
        point,
        &settings.mount,
        Source::Store,
    )
    .await?;
    notes.insert(0, why);
    Ok(LazyReport {
        reference: report.reference,
        manifest_digest: report.manifest_digest,
        format: report.format,
        lazy: false,
        lazy_blobs: 0,
        lazy_bytes: 0,
        bytes_fetched: report.bytes_received,
        server_pid: None,
        seconds: started.elapsed().as_secs_f64(),
        mounted_at: target,
        notes,
        trust_checks: report.trust_checks,
    })
}

/// The read timeout: `FSPACK_LAZY_READ_TIMEOUT_MS` or [`DEFAULT_READ_TIMEOUT`].
fn read_timeout() -> Duration {
    std::env::var("FSPACK_LAZY_READ_TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_READ_TIMEOUT)
}

/// The mount point and server status of another lazy mount whose running server serves one of
/// `blobs`.
fn serving_elsewhere(store: &Store, blobs: &[Descriptor]) -> Option<(PathBuf, status::LazyStatus)> {
    let records = store.mount_records().ok()?;
    records.into_iter().find_map(|rec| {
        let lazy = rec.lazy.filter(|l| is_server(l.server_pid))?;
        let st = status_of(&lazy);
        let serves = st
            .blobs
            .iter()
            .any(|b| blobs.iter().any(|d| d.digest == b.digest));
        serves.then_some((rec.target, st))
    })
}

/// Waits, with a progress bar, until no other lazy server serves any of `blobs` (it completed,
/// or its mount was unmounted).
async fn wait_for_other_servers(store: &Store, blobs: &[Descriptor], reporter: &Arc<dyn Reporter>) {
    let mut bar: Option<(PathBuf, usize, u64)> = None;
    while let Some((target, st)) = serving_elsewhere(store, blobs) {
        match &mut bar {
            Some((t, id, seen)) if *t == target => {
                reporter.advance(*id, st.bytes_present.saturating_sub(*seen));
                *seen = (*seen).max(st.bytes_present);
            }
            _ => {
                if let Some((_, id, _)) = bar.take() {
                    reporter.finish(id);
                }
                // A log line, not a bar message: it must reach stderr in scripts too.
                tracing::warn!(
                    "the lazy mount at {} is fetching the same blobs; waiting for it to finish (this mount then reads them from the store)",
                    target.display()
                );
                let id = reporter.start_phase(&format!("{}", target.display()), st.bytes_total);
                reporter.advance(id, st.bytes_present);
                bar = Some((target, id, st.bytes_present));
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if let Some((_, id, _)) = bar {
        reporter.finish(id);
    }
}

/// What `fspack ls` shows of a lazy mount: the server's own status, or [`status::ServerState::Dead`]
/// when its process is gone.
pub fn status_of(lazy: &LazyRecord) -> status::LazyStatus {
    let alive = is_server(lazy.server_pid);
    match status::LazyStatus::read(&lazy.state_dir) {
        Some(mut s) => {
            if !alive {
                s.state = status::ServerState::Dead;
            }
            s
        }
        None => status::LazyStatus {
            state: if alive {
                status::ServerState::Filling
            } else {
                status::ServerState::Dead
            },
            pid: lazy.server_pid,
            blobs: Vec::new(),
            bytes_present: 0,
            bytes_total: 0,
            bytes_received: 0,
            chunks_refetched: 0,
            reads_failed: 0,
            error: None,
            failing: None,
            fetch_error: None,
        },
    }
}
