//! `fspack push`: turn a directory or an image file into layers and send them side by side.
//!
//! Order of operations is what makes a failed push harmless: every blob's digest is computed
//! first (from the plan, reading the sources once), blobs the destination already has are
//! skipped, the rest go up several at a time, and only when every blob is confirmed is the
//! manifest written, with the tag in the same request. A push that fails midway never moves a tag.

mod layers;
mod send;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fspack_digest::Digest;
use fspack_registry::{BlobSource, BytesSource, Client, UploadMode};
use fspack_store::Store;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

pub(crate) use self::layers::PlanSource;
use self::layers::meta_layer;
pub use self::layers::{built_shards, layers_for, squashfs_media_type};
use self::send::{Destination, Ready, standalone_descriptor};
use crate::artifact::*;
use crate::build::ImageSettings;
use crate::digest_cache::DigestCache;
use crate::error::{EngineError, Result};
use crate::layer_hash::{HashQueue, IndexMode, hash, indexed_size, model_index_mode};
use crate::report::Reporter;
use crate::staged::{Layer, Prepared, Primary};
use crate::target::Target;

/// Settings of a push.
#[derive(Debug, Clone)]
pub struct PushSettings {
    /// How a directory becomes an image.
    pub image: ImageSettings,
    /// Blobs in flight at once.
    pub jobs: usize,
    /// Upload mode for each blob.
    pub upload: UploadMode,
    /// Manifest annotations from the user.
    pub annotations: Vec<(String, String)>,
    /// Store whose `tmp/` holds the compressed SquashFS shards of a directory push until they
    /// are sent; `None` uses the system temporary directory (tests, benchmarks). A push to an
    /// `oci:` layout stages inside that layout either way.
    pub staging_store: Option<PathBuf>,
    /// Push a directory as a CNCF ModelPack artifact, one raw layer per file
    /// ([`crate::modelpack_push`], issue 15).
    pub modelpack: bool,
}

/// What a push did.
#[derive(Debug, Clone, Serialize)]
pub struct PushReport {
    /// Where the artifact went.
    pub reference: String,
    /// Digest of the pushed manifest.
    pub manifest_digest: Digest,
    /// Image format.
    pub format: String,
    /// Per-layer outcome.
    pub layers: Vec<LayerReport>,
    /// Bytes uploaded.
    pub bytes_sent: u64,
    /// Bytes the destination already had.
    pub bytes_skipped: u64,
    /// Digest of the referrer manifest that holds the standalone chunk indexes of a ModelPack
    /// push (see `docs/format.md`); absent when no layer got one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_indexes: Option<Digest>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// What the user should know about the source that the artifact does not show (the empty
    /// directories a ModelPack push leaves out); `[]` when nothing.
    pub notes: Vec<String>,
}

/// Outcome for one layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// Layer title.
    pub title: String,
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Whether the destination already had it.
    pub skipped: bool,
    /// The layer descriptor's annotations (title, role, chunk index range and digest).
    pub annotations: BTreeMap<String, String>,
}

/// Pushes `source` to `target`.
///
/// Each blob is hashed, asked for at the destination and, if missing, uploaded; up to `jobs`
/// uploads run at once while the next blobs are readied (see `LayerTask::run_all`). The
/// manifest (and with it the tag) goes last, after every blob is confirmed.
///
/// Errors: the planning's (a source that cannot be read or packed), the registry's or the
/// layout store's; on any error no manifest is written and no tag moves.
pub async fn push(
    source: &Path,
    target: &Target,
    settings: &PushSettings,
    client: Option<&Client>,
    reporter: Arc<dyn Reporter>,
) -> Result<PushReport> {
    let started = Instant::now();
    if let Target::Registry(r) = target
        && let Some(d) = &r.digest
    {
        // The built image decides its own digest; a digest in the reference would be ignored
        // (the tag moved, the report naming a digest nobody pushed: s10 fresh-eyes pass).
        return Err(EngineError::Usage(format!(
            "{} names a manifest digest ({d}), but a push makes a new manifest whose digest comes from its content\nhint: push to {}:{} and use the digest fspack prints",
            r,
            r.repo_display(),
            r.tag.as_deref().unwrap_or("latest")
        )));
    }
    let mut image = settings.image.clone();
    if let Target::Layout { path, .. } = target {
        // A layout inside the source would be packed into the next image, growing it with
        // every push (issue 11); refuse it as `build` refuses an output inside the source.
        image.walk.forbid_inside.push(path.clone());
    }
    // Declared first, so it is dropped last: an `oci:` layout's writer removes its work
    // directories only once the SquashFS scratch under them is gone. Opened after the source
    // is planned, so a refused source (a layout inside it) writes nothing.
    let dest_slot;
    let mut prepared = prepare(source, target, settings, image).await?;
    dest_slot = destination(target, client, settings.staging_store.as_deref())?;
    let dest = &dest_slot;
    let primary = prepared.primary.take();
    let (format, layout) = (prepared.format, prepared.layout);
    let (raw, total) = sizes(&prepared.layers, primary.as_ref(), settings.modelpack);
    let hash_bar = reporter.start_phase("hashing", raw);
    // The digest cache lives in the store fspack already owns; a store that cannot be opened
    // (another user's, read-only) only means every layer is hashed.
    let cache = settings
        .staging_store
        .as_deref()
        .and_then(|root| Store::open(root).ok())
        .map(|s| DigestCache::in_store(s.root()));
    reporter.plan_total(total + EMPTY_CONFIG_DATA.len() as u64);
    let task = LayerTask {
        dest,
        settings,
        reporter: &reporter,
        cache,
        bar: hash_bar,
        hashing: HashQueue::new(),
    };
    let (done, config) = task.run_all(source, &prepared.layers, primary).await?;
    reporter.finish(hash_bar);
    let descriptors: Vec<Descriptor> = done.iter().map(|p| p.descriptor.clone()).collect();

    let mut annotations: BTreeMap<String, String> = settings.annotations.iter().cloned().collect();
    annotations.insert(ANN_FORMAT.into(), format.into());
    annotations.insert(ANN_LAYOUT.into(), layout.into());
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        artifact_type: Some(artifact_type(settings).into()),
        config,
        layers: descriptors,
        subject: None,
        annotations,
    };
    let body = manifest_bytes(&manifest);
    let digest = dest.put_manifest(&body).await?;
    let chunk_indexes =
        send_index_referrer(dest, &done, &digest, &body, settings, &reporter).await?;
    let layers: Vec<LayerReport> = done.iter().map(Pushed::report).collect();
    Ok(PushReport {
        reference: target.to_string(),
        manifest_digest: digest,
        format: format.into(),
        bytes_skipped: layers.iter().filter(|l| l.skipped).map(|l| l.size).sum(),
        bytes_sent: layers.iter().filter(|l| !l.skipped).map(|l| l.size).sum(),
        layers,
        chunk_indexes,
        seconds: started.elapsed().as_secs_f64(),
        notes: std::mem::take(&mut prepared.notes),
    })
}

/// The destination `target` names, with what writing there needs: the store of an `oci:`
/// layout, or `client` for a registry.
///
/// Errors: [`EngineError::Usage`] for a registry target without a client; the store's when the
/// layout cannot be opened.
fn destination<'a>(
    target: &'a Target,
    client: Option<&'a Client>,
    own_store: Option<&Path>,
) -> Result<Destination<'a>> {
    let same = |a: &Path, b: &Path| {
        a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
    };
    let store = match target {
        // `oci:` naming fspack's own store (as `fspack images` and completion read it) stays
        // that store, with its locks and records, and is not opened twice.
        Target::Layout { path, .. } if own_store.is_some_and(|s| same(s, path)) => {
            Some(Arc::new(Store::open(path)?))
        }
        Target::Layout { path, .. } => Some(Arc::new(Store::open_shared(path)?)),
        Target::Registry(_) => None,
    };
    let client = match target {
        Target::Registry(_) => {
            Some(client.ok_or_else(|| EngineError::Usage("a registry client is required".into()))?)
        }
        Target::Layout { .. } => None,
    };
    Ok(Destination {
        target,
        client,
        store,
    })
}

/// Bytes of the `layers` and the `primary` as read (what the hashing bar counts) and as sent
/// (what the transfer total counts: with chunk indexes, see [`sent_size`]).
fn sizes(layers: &[Layer], primary: Option<&Primary>, modelpack: bool) -> (u64, u64) {
    let primary_size = match primary {
        Some(Primary::Bind(image)) => image.meta.len(),
        Some(Primary::Check { layer, .. }) => layer.source.size(),
        None => 0,
    };
    let raw: u64 = layers.iter().map(|l| l.source.size()).sum::<u64>() + primary_size;
    let total: u64 = layers
        .iter()
        .map(|l| sent_size(l.source.size(), modelpack))
        .sum::<u64>()
        + primary.map_or(0, |_| sent_size(primary_size, modelpack));
    (raw, total)
}

/// One layer once sent.
struct Pushed {
    /// Its place in the manifest's layers; `None` for the config.
    index: Option<usize>,
    /// Its descriptor, digest and chunk index annotations included.
    descriptor: Descriptor,
    /// Whether the destination already had it.
    skipped: bool,
    /// The descriptor of its standalone chunk index, when it got one (ModelPack, issue 15).
    chunk_index: Option<Descriptor>,
}

impl Pushed {
    fn report(&self) -> LayerReport {
        let d = &self.descriptor;
        LayerReport {
            title: d.annotations.get(ANN_TITLE).cloned().unwrap_or_default(),
            digest: d.digest.clone(),
            size: d.size,
            skipped: self.skipped,
            annotations: d.annotations.clone(),
        }
    }
}

/// What every layer's task shares: where to send, how, and where hashing reports progress.
struct LayerTask<'a> {
    dest: &'a Destination<'a>,
    settings: &'a PushSettings,
    reporter: &'a Arc<dyn Reporter>,
    cache: Option<DigestCache>,
    /// The hashing phase's bar.
    bar: usize,
    /// Where layers are hashed, one after another in manifest order.
    hashing: HashQueue,
}

impl LayerTask<'_> {
    /// Sends the `layers`, `jobs` at a time, then the `primary` of a chunked EROFS image, which
    /// names the devices' digests (issue 13), and the config blob; returns the layers in
    /// manifest order and the config's descriptor.
    ///
    /// Each blob is readied ahead of its upload slot: hashed, asked for (`HEAD`) and given an
    /// open upload session (`POST`) while up to `jobs` other blobs upload, so a slot that frees
    /// starts sending bytes at once (issue 14). Measured on the capped profile before this:
    /// hashing inside each upload task cost 0.05-0.1 s per 32 MiB blob, and the two round trips
    /// 40-80 ms each per round. The primary and the config need only the layers' digests, so
    /// they are readied as soon as the last layer is hashed and go up during the last round.
    async fn run_all(
        &self,
        source: &Path,
        layers: &[Layer],
        primary: Option<Primary>,
    ) -> Result<(Vec<Pushed>, Descriptor)> {
        let jobs = self.settings.jobs.max(1);
        let hashed: Mutex<Vec<Descriptor>> = Mutex::default();
        // The upload stream takes from this one only when a slot frees; one more than `jobs`
        // keeps a blob being readied meanwhile, even with `--jobs 1`.
        let layers_ready = stream::iter(layers.iter().enumerate())
            .map(|(i, l)| self.ready(Some(i), l))
            .buffered(jobs + 1)
            .inspect_ok(|q| lock(&hashed).push(q.descriptor.clone()));
        // `chain` polls the tail only once every layer is readied, in manifest order.
        let tail = stream::once(self.ready_tail(source, layers.len(), primary, &hashed))
            .map_ok(|q| stream::iter(q.into_iter().map(Ok)))
            .try_flatten();
        let mut done: Vec<Pushed> = layers_ready
            .chain(tail)
            .map_ok(|q| self.send(q))
            .try_buffer_unordered(jobs)
            .try_collect()
            .await?;
        done.sort_by_key(|p| p.index.unwrap_or(usize::MAX));
        let config = done.pop().filter(|p| p.index.is_none());
        let config = config.expect("the tail readies the config").descriptor;
        Ok((done, config))
    }

    /// Readies the blobs that wait for every layer's digest: the `primary`, which becomes layer
    /// `index`, and the config. `hashed` holds the layers' descriptors in manifest order.
    async fn ready_tail(
        &self,
        source: &Path,
        index: usize,
        primary: Option<Primary>,
        hashed: &Mutex<Vec<Descriptor>>,
    ) -> Result<Vec<Queued>> {
        let mut queued = Vec::new();
        if let Some(primary) = primary {
            // The device digests are known only now; the primary names them (issue 13).
            let digests: Vec<Digest> = lock(hashed).iter().map(|d| d.digest.clone()).collect();
            let layer = bind_primary(primary, &digests)?;
            let q = self.ready(Some(index), &layer).await?;
            lock(hashed).push(q.descriptor.clone());
            queued.push(q);
        }
        let (blob, descriptor) = config_blob(source, self.settings, &lock(hashed));
        let ready = self.dest.prepare(&descriptor, self.reporter).await?;
        queued.push(Queued {
            index: None,
            descriptor,
            blob,
            standalone: None,
            ready,
        });
        Ok(queued)
    }

    /// Hashes layer `l` (or finds its digest in the cache) with its chunk index, then readies
    /// the destination for it ([`Destination::prepare`]). The hash is queued at once, before the
    /// future is polled ([`hash`]), so a `buffered` stream hashes ahead, in manifest order.
    fn ready(
        &self,
        index: Option<usize>,
        l: &Layer,
    ) -> impl Future<Output = Result<Queued>> + use<'_> {
        let cached = self.cache.clone().zip(l.cache_key.clone());
        let mode = match self.settings.modelpack {
            true => model_index_mode(l.source.size()),
            false => IndexMode::Embedded,
        };
        let hashing = hash(
            &self.hashing,
            l.source.clone(),
            self.reporter.clone(),
            self.bar,
            mode,
            cached,
        );
        let (media_type, annotations) = (l.media_type.clone(), l.annotations.clone());
        let modelpack = self.settings.modelpack;
        async move {
            let hashed = hashing
                .await
                .map_err(|e| changed_during_push(e, modelpack))?;
            let mut d = descriptor(&media_type, &hashed.digest, hashed.blob.size(), annotations);
            d.annotations.extend(hashed.annotations);
            let ready = self.dest.prepare(&d, self.reporter).await?;
            Ok(Queued {
                index,
                descriptor: d,
                blob: hashed.blob,
                standalone: hashed.standalone,
                ready,
            })
        }
    }

    /// Sends the readied blob `q`, then its standalone chunk index if it got one.
    async fn send(&self, q: Queued) -> Result<Pushed> {
        let (settings, reporter) = (self.settings, self.reporter);
        let d = q.descriptor;
        let skipped = self
            .dest
            .upload(&q.blob, &d, q.ready, settings, reporter)
            .await
            .map_err(|e| changed_during_push(e, settings.modelpack))?;
        let chunk_index = match q.standalone {
            Some(bytes) => {
                let ix = standalone_descriptor(&d, &bytes);
                let src: Arc<dyn BlobSource> = Arc::new(BytesSource(bytes));
                self.dest.send(&src, &ix, settings, reporter).await?;
                Some(ix)
            }
            None => None,
        };
        Ok(Pushed {
            index: q.index,
            descriptor: d,
            skipped,
            chunk_index,
        })
    }
}

/// `e` as the source file that changed during the push, when a changed file caused it, whether
/// found while hashing or while sending; any other error as it is. A ModelPack push names the
/// file as its own ([`EngineError::ChangedDuringPush`]), an image push as the image crate's
/// `FileChanged`.
fn changed_during_push(e: EngineError, modelpack: bool) -> EngineError {
    match changed_source(&e) {
        Some((path, what)) if modelpack => EngineError::ChangedDuringPush { path, what },
        Some((path, what)) => EngineError::Image(fspack_image::Error::FileChanged { path, what }),
        None => e,
    }
}

/// The source file and what changed, when `e` is, or wraps, the plan reader's
/// `fspack_image::Error::FileChanged`: directly (the hash's error), in the destination's I/O
/// error, or, for a registry, in the upload's network error. An `io::Error`'s own `source`
/// skips the error it wraps, so the walk steps into it instead.
fn changed_source(e: &EngineError) -> Option<(PathBuf, String)> {
    if let EngineError::Image(fspack_image::Error::FileChanged { path, what }) = e {
        return Some((path.clone(), what.clone()));
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(fspack_image::Error::FileChanged { path, what }) = err.downcast_ref() {
            return Some((path.clone(), what.clone()));
        }
        cur = match err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner),
            None => err.source(),
        };
    }
    None
}

/// A blob whose digest is known and whose destination is ready for its bytes.
struct Queued {
    /// Its place in the manifest's layers; `None` for the config.
    index: Option<usize>,
    descriptor: Descriptor,
    /// Its bytes as uploaded.
    blob: Arc<dyn BlobSource>,
    /// A standalone chunk index, sent after it (ModelPack, issue 15).
    standalone: Option<bytes::Bytes>,
    ready: Ready,
}

/// The list of readied descriptors, which no holder leaves half-written.
fn lock(m: &Mutex<Vec<Descriptor>>) -> std::sync::MutexGuard<'_, Vec<Descriptor>> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends the referrer that keeps the standalone chunk indexes of `done` reachable, with the
/// empty config it names, once the manifest `body` (digest `digest`) is written; returns its
/// digest, or `None` when no layer got a standalone index.
async fn send_index_referrer(
    dest: &Destination<'_>,
    done: &[Pushed],
    digest: &Digest,
    body: &[u8],
    settings: &PushSettings,
    reporter: &Arc<dyn Reporter>,
) -> Result<Option<Digest>> {
    let pairs: Vec<(Descriptor, Descriptor)> = done
        .iter()
        .filter_map(|p| p.chunk_index.clone().map(|ix| (p.descriptor.clone(), ix)))
        .collect();
    if pairs.is_empty() {
        return Ok(None);
    }
    let subject = descriptor(MEDIA_MANIFEST, digest, body.len() as u64, BTreeMap::new());
    let empty: Arc<dyn BlobSource> =
        Arc::new(BytesSource(bytes::Bytes::from_static(EMPTY_CONFIG_DATA)));
    dest.send(&empty, &empty_config(), settings, reporter)
        .await?;
    Ok(Some(dest.push_index_referrer(subject, pairs).await?))
}

/// Bytes sent for a layer whose source has `n` bytes: with its embedded chunk index for
/// fspack's own layers; for a ModelPack layer the file, plus its standalone index blob when it
/// gets one.
fn sent_size(n: u64, modelpack: bool) -> u64 {
    if !modelpack || model_index_mode(n) == IndexMode::Standalone {
        indexed_size(n)
    } else {
        n
    }
}

/// Where SquashFS shards are compressed before they are pushed.
enum Staging {
    /// A directory that exists.
    Dir(PathBuf),
    /// A store's root, opened (created) on use.
    Store(PathBuf),
}

/// Plans `source` into layers on a blocking thread: a ModelPack directory file by file, else
/// an image (SquashFS shards staged in the layout of an `oci:` target, or in the store).
async fn prepare(
    source: &Path,
    target: &Target,
    settings: &PushSettings,
    image: ImageSettings,
) -> Result<Prepared> {
    let src = source.to_path_buf();
    // SquashFS shards are compressed beside where their blobs go: in the layout's `ingest/`
    // (the destination holds it open), or in the store's `tmp/`.
    let staging = match target {
        Target::Layout { path, .. } => Some(Staging::Dir(path.join("ingest"))),
        Target::Registry(_) => settings.staging_store.clone().map(Staging::Store),
    };
    let modelpack = settings.modelpack;
    tokio::task::spawn_blocking(move || {
        if modelpack {
            return crate::modelpack_push::layers(&src, &image);
        }
        let squashfs = image.format == crate::build::ImageFormat::Squashfs && src.is_dir();
        let scratch = match staging {
            Some(Staging::Dir(d)) => Some(d),
            // Only a SquashFS build needs the store (and only then must it open).
            Some(Staging::Store(root)) if squashfs => Some(Store::open(&root)?.root().join("tmp")),
            _ => None,
        };
        layers_for(&src, &image, scratch.as_deref())
    })
    .await
    .expect("planning does not panic")
}

/// The EROFS primary layer once its devices' `digests` are known (issue 13): a planned image
/// gets them written into its device table; an image file from `fspack build` must already
/// name them, or this fails naming the device that differs.
fn bind_primary(primary: Primary, digests: &[Digest]) -> Result<Layer> {
    Ok(match primary {
        Primary::Bind(mut image) => {
            image.bind_devices(digests)?;
            let title = image.meta.name.clone();
            // Metadata only: hashing it costs what keying it would.
            meta_layer(&title, Arc::new(PlanSource(image.meta)), None)
        }
        Primary::Check { path, layer } => {
            let dir = crate::build::blob_dir(&path);
            let pairs: Vec<(PathBuf, Digest)> = digests
                .iter()
                .enumerate()
                .map(|(i, d)| (dir.join(format!("blob-{i:04}")), d.clone()))
                .collect();
            fspack_image::erofs::check_devices(&path, &pairs)?;
            layer
        }
    })
}

/// The config blob: a ModelPack config, which lists the layer digests and so is made once they
/// are known, else the empty config of fspack's own artifacts.
fn config_blob(
    source: &Path,
    settings: &PushSettings,
    descriptors: &[Descriptor],
) -> (Arc<dyn BlobSource>, Descriptor) {
    if settings.modelpack {
        let bytes = crate::modelpack_push::config(source, descriptors);
        let d = descriptor(
            crate::modelpack::MEDIA_MODELPACK_CONFIG,
            &sha256_digest(&bytes),
            bytes.len() as u64,
            BTreeMap::new(),
        );
        let blob: Arc<dyn BlobSource> = Arc::new(BytesSource(bytes::Bytes::from(bytes)));
        (blob, d)
    } else {
        let blob: Arc<dyn BlobSource> =
            Arc::new(BytesSource(bytes::Bytes::from_static(EMPTY_CONFIG_DATA)));
        (blob, empty_config())
    }
}

/// The manifest's `artifactType`: ModelPack's, or fspack's own.
fn artifact_type(settings: &PushSettings) -> &'static str {
    match settings.modelpack {
        true => crate::modelpack::ARTIFACT_MODELPACK,
        false => ARTIFACT_TYPE,
    }
}
