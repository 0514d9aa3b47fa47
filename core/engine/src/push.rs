//! `fspack push`: turn a directory or an image file into layers and send them side by side.
//!
//! Order of operations is what makes a failed push harmless: every blob's digest is computed
//! first (from the plan, reading the sources once), blobs the destination already has are
//! skipped, the rest go up several at a time, and only when every blob is confirmed is the
//! manifest written, with the tag in the same request. A push that fails midway never moves a tag.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use fspack_image::BlobPlan;
use fspack_image::detect::{self, Format};
use fspack_image::erofs::Layout;
use fspack_registry::{BlobSource, BytesSource, Client, FileSource, UploadMode};
use fspack_store::Store;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use crate::artifact::*;
use crate::build::{ImageFormat, ImageSettings, plan_erofs};
use crate::digest_cache::{CacheKey, DigestCache};
use crate::error::{EngineError, Result};
use crate::layer_hash::{IndexMode, hash, indexed_size, model_index_mode};
use crate::report::{Reporter, TransferProgress};
use crate::staged::{Layer, Prepared, Primary, Scratch};
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
    pub manifest_digest: String,
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
    pub chunk_indexes: Option<String>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// Outcome for one layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    /// Layer title.
    pub title: String,
    /// Digest.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether the destination already had it.
    pub skipped: bool,
    /// The layer descriptor's annotations (title, role, chunk index range and digest).
    pub annotations: BTreeMap<String, String>,
}

/// A [`BlobPlan`] as an upload source.
struct PlanSource(BlobPlan);

impl BlobSource for PlanSource {
    fn size(&self) -> u64 {
        self.0.len()
    }
    fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.0.reader_at(offset)))
    }
}

/// The layer of an EROFS primary image (the whole image, or the metadata of a chunked one).
fn meta_layer(title: &str, source: Arc<dyn BlobSource>, cache_key: Option<CacheKey>) -> Layer {
    Layer {
        media_type: MEDIA_EROFS.into(),
        annotations: titled(title),
        source,
        cache_key,
    }
}

fn titled(title: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(ANN_TITLE.to_string(), title.to_string())])
}

/// Turns `source` (a directory or an image file) into layers in manifest order. SquashFS shards
/// of a directory are compressed into `staging` (a store root; `None`: the system temporary
/// directory).
pub fn layers_for(
    source: &Path,
    settings: &ImageSettings,
    staging: Option<&Path>,
) -> Result<Prepared> {
    let meta = std::fs::metadata(source).map_err(|e| EngineError::io(source, e))?;
    if meta.is_dir() && settings.format == ImageFormat::Squashfs {
        return squashfs_layers(source, settings, staging);
    }
    if meta.is_dir() {
        let image = plan_erofs(source, settings)?;
        let chunked = settings.erofs.layout == Layout::Chunked;
        let mut layers = Vec::new();
        for blob in image.blobs.iter().cloned() {
            let mut annotations = titled(&blob.name);
            annotations.insert(ANN_EROFS_ROLE.into(), "device".into());
            layers.push(Layer {
                media_type: MEDIA_DEVICE.into(),
                annotations,
                cache_key: CacheKey::for_plan(&blob, true),
                source: Arc::new(PlanSource(blob)),
            });
        }
        if chunked && !layers.is_empty() {
            return Ok(Prepared {
                layers,
                primary: Some(Primary::Bind(Box::new(image))),
                format: "erofs",
                layout: "chunked",
                _scratch: None,
            });
        }
        let title = image.meta.name.clone();
        let key = CacheKey::for_plan(&image.meta, true);
        layers.push(meta_layer(&title, Arc::new(PlanSource(image.meta)), key));
        let layout = if chunked { "chunked" } else { "single" };
        return Ok(Prepared {
            layers,
            primary: None,
            format: "erofs",
            layout,
            _scratch: None,
        });
    }
    let file = std::fs::File::open(source).map_err(|e| EngineError::io(source, e))?;
    let format = detect::detect_reader(file)
        .map_err(|e| EngineError::io(source, e))?
        .ok_or_else(|| {
            EngineError::Usage(format!(
                "{} is neither a directory nor an EROFS or SquashFS image (no magic bytes found)",
                source.display()
            ))
        })?;
    let title = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let media_type = match format {
        Format::Erofs => MEDIA_EROFS.to_string(),
        Format::Squashfs => squashfs_media_type(&squashfs_compressor(source)?),
    };
    let src = FileSource::new(source).map_err(|e| EngineError::io(source, e))?;
    let image = Layer {
        media_type,
        annotations: titled(&title),
        source: Arc::new(src),
        cache_key: CacheKey::for_file(source, true),
    };
    if format == Format::Erofs {
        let devices = erofs_extra_devices(source)?;
        if devices > 0 {
            // A chunked build: its data blobs sit in OUT.d/ and go first, as device layers.
            let dir = crate::build::blob_dir(source);
            let mut layers = Vec::new();
            for i in 0..devices {
                let name = format!("blob-{i:04}");
                let path = dir.join(&name);
                let blob = FileSource::new(&path).map_err(|_| {
                    EngineError::NotFound(format!(
                        "{} is a chunked EROFS image with {devices} data blobs, but {} is missing; push the directory or rebuild",
                        source.display(),
                        path.display()
                    ))
                })?;
                let mut annotations = titled(&name);
                annotations.insert(ANN_EROFS_ROLE.into(), "device".into());
                layers.push(Layer {
                    media_type: MEDIA_DEVICE.into(),
                    annotations,
                    source: Arc::new(blob),
                    cache_key: CacheKey::for_file(&path, true),
                });
            }
            return Ok(Prepared {
                layers,
                primary: Some(Primary::Check {
                    path: source.to_path_buf(),
                    layer: image,
                }),
                format: "erofs",
                layout: "chunked",
                _scratch: None,
            });
        }
    }
    Ok(Prepared {
        layers: vec![image],
        primary: None,
        format: format.name(),
        layout: "single",
        _scratch: None,
    })
}

/// Compresses the SquashFS shards of a directory into scratch space and lists them as layers.
///
/// SquashFS data is compressed, so unlike EROFS it cannot be streamed from the sources: a
/// shard's size, and with it its descriptor, is known only once it is written. The shards are
/// staged under the store (`STORE/tmp/`), on the disk fspack already owns, never in `$TMPDIR`,
/// which is RAM on many systems (issue 13); the free space is checked before compressing
/// anything, against the tree's data size (an upper bound: SquashFS stores a block that does not
/// shrink uncompressed) plus 1/64 for metadata. The scratch directory is removed when the
/// push ends, whatever the outcome.
fn squashfs_layers(
    source: &Path,
    settings: &ImageSettings,
    staging: Option<&Path>,
) -> Result<Prepared> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let (tree, acl_note) = crate::build::walk_for_squashfs(source, &settings.walk, settings)?;
    if let Some(note) = acl_note {
        tracing::warn!("{note}");
    }
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = match staging {
        Some(root) => Store::open(root)?.root().join("tmp"),
        None => std::env::temp_dir(),
    };
    std::fs::create_dir_all(&base).map_err(|e| EngineError::io(&base, e))?;
    let need = tree.data_bytes() + tree.data_bytes() / 64 + (1 << 20);
    let free = free_bytes(&base)?;
    if free < need {
        return Err(EngineError::Io {
            path: base.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "compressing the SquashFS shards needs up to {need} bytes here, {free} are free\nhint: free space, or point --store at a larger disk"
                ),
            ),
        });
    }
    let dir = base.join(format!("fspack-push-{}-{n}", std::process::id()));
    let scratch = Scratch(dir.clone());
    let report = crate::build::write_shards(&tree, &settings.sized_for(&tree), &dir)?;
    for note in &report.notes {
        tracing::warn!("{note}");
    }
    let media_type = squashfs_media_type(settings.squashfs.compression.name());
    let layers = report
        .blobs
        .iter()
        .map(|p| {
            let source = FileSource::new(p).map_err(|e| EngineError::io(p, e))?;
            let title = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Shards are compressed anew into scratch space on every push: new inodes, no key.
            Ok(Layer {
                media_type: media_type.clone(),
                annotations: titled(&title),
                source: Arc::new(source),
                cache_key: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let layout = if layers.len() > 1 {
        "sharded"
    } else {
        "single"
    };
    Ok(Prepared {
        layers,
        primary: None,
        format: "squashfs",
        layout,
        _scratch: Some(scratch),
    })
}

/// Bytes an unprivileged writer may still use on the filesystem holding `dir` (`statvfs`).
fn free_bytes(dir: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(dir).map_err(|e| EngineError::io(dir, e.into()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// The compressor a SquashFS image declares in its superblock (`id` at byte 20).
fn squashfs_compressor(path: &Path) -> Result<String> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut id = [0u8; 2];
    f.read_exact_at(&mut id, 20)
        .map_err(|e| EngineError::io(path, e))?;
    Ok(match u16::from_le_bytes(id) {
        1 => "gzip",
        2 => "lzma",
        3 => "lzo",
        4 => "xz",
        5 => "lz4",
        6 => "zstd",
        other => {
            return Err(EngineError::Usage(format!(
                "{}: unknown SquashFS compressor id {other}",
                path.display()
            )));
        }
    }
    .to_string())
}

/// Layer media type of a SquashFS image compressed with `compressor` (stacker's spelling).
pub fn squashfs_media_type(compressor: &str) -> String {
    format!("{MEDIA_SQUASHFS_PREFIX}+{compressor}")
}

/// Number of extra devices an EROFS image declares in its superblock.
fn erofs_extra_devices(path: &Path) -> Result<u16> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let mut sb = [0u8; 128];
    f.read_exact_at(&mut sb, 1024)
        .map_err(|e| EngineError::io(path, e))?;
    Ok(u16::from_le_bytes([sb[86], sb[87]]))
}

/// Pushes `source` to `target`.
///
/// Each layer is one task: hash it, ask whether the destination has it, upload it if not. Up to
/// `jobs` tasks run at once, so hashing one blob overlaps uploading others; the manifest (and with
/// it the tag) goes last, after every blob is confirmed.
pub async fn push(
    source: &Path,
    target: &Target,
    settings: &PushSettings,
    client: Option<&Client>,
    reporter: Arc<dyn Reporter>,
) -> Result<PushReport> {
    let started = Instant::now();
    let mut image = settings.image.clone();
    if let Target::Layout { path, .. } = target {
        // A layout inside the source would be packed into the next image, growing it with
        // every push (issue 11); refuse it as `build` refuses an output inside the source.
        image.walk.forbid_inside.push(path.clone());
    }
    let mut prepared = prepare(source, target, settings, image).await?;
    let primary = prepared.primary.take();
    let (layers, format, layout) = (&prepared.layers, prepared.format, prepared.layout);
    let store = match target {
        Target::Layout { path, .. } => Some(Arc::new(Store::open_shared(path)?)),
        Target::Registry(_) => None,
    };
    let client = match target {
        Target::Registry(_) => {
            Some(client.ok_or_else(|| EngineError::Usage("a registry client is required".into()))?)
        }
        Target::Layout { .. } => None,
    };
    let primary_size = match &primary {
        Some(Primary::Bind(image)) => image.meta.len(),
        Some(Primary::Check { layer, .. }) => layer.source.size(),
        None => 0,
    };
    let raw: u64 = layers.iter().map(|l| l.source.size()).sum::<u64>() + primary_size;
    let total: u64 = layers
        .iter()
        .map(|l| sent_size(l.source.size(), settings.modelpack))
        .sum::<u64>()
        + primary
            .as_ref()
            .map_or(0, |_| sent_size(primary_size, settings.modelpack));
    let hash_bar = reporter.start_phase("hashing", raw);
    // The digest cache lives in the store fspack already owns; a store that cannot be opened
    // (another user's, read-only) only means every layer is hashed.
    let cache = settings
        .staging_store
        .as_deref()
        .and_then(|root| Store::open(root).ok())
        .map(|s| DigestCache::in_store(s.root()));
    reporter.plan_total(total + EMPTY_CONFIG_DATA.len() as u64);
    let one = |i: usize, l: &Layer| {
        let (reporter, store) = (reporter.clone(), store.clone());
        let src = l.source.clone();
        let mut d = descriptor(&l.media_type, "", 0, l.annotations.clone());
        let cached = cache.clone().zip(l.cache_key.clone());
        let mode = match settings.modelpack {
            true => model_index_mode(src.size()),
            false => IndexMode::Embedded,
        };
        async move {
            let hashed = hash(src, reporter.clone(), hash_bar, mode, cached).await?;
            d.digest = hashed.digest;
            d.size = hashed.blob.size();
            d.annotations.extend(hashed.annotations);
            let skipped = send(
                target,
                client,
                store.as_deref(),
                &hashed.blob,
                &d,
                settings,
                &reporter,
            )
            .await?;
            let index = match hashed.standalone {
                Some(bytes) => {
                    let ix = standalone_descriptor(&d, &bytes);
                    let src: Arc<dyn BlobSource> = Arc::new(BytesSource(bytes));
                    send(
                        target,
                        client,
                        store.as_deref(),
                        &src,
                        &ix,
                        settings,
                        &reporter,
                    )
                    .await?;
                    Some(ix)
                }
                None => None,
            };
            Ok::<_, EngineError>((i, d, skipped, index))
        }
    };
    let work = layers.iter().enumerate().map(|(i, l)| one(i, l));
    let mut done: Vec<(usize, Descriptor, bool, Option<Descriptor>)> = stream::iter(work)
        .buffer_unordered(settings.jobs.max(1))
        .try_collect()
        .await?;
    done.sort_by_key(|(i, ..)| *i);
    if let Some(primary) = primary {
        // The device digests are known only now; the primary names them (issue 13).
        let digests: Vec<String> = done.iter().map(|(_, d, ..)| d.digest.clone()).collect();
        let layer = bind_primary(primary, &digests)?;
        done.push(one(done.len(), &layer).await?);
    }
    reporter.finish(hash_bar);
    let descriptors: Vec<Descriptor> = done.iter().map(|(_, d, ..)| d.clone()).collect();
    let (config, artifact_type) = config_blob(source, settings, &descriptors);
    send(
        target,
        client,
        store.as_deref(),
        &config.0,
        &config.1,
        settings,
        &reporter,
    )
    .await?;

    let mut annotations: BTreeMap<String, String> = settings.annotations.iter().cloned().collect();
    annotations.insert(ANN_FORMAT.into(), format.into());
    annotations.insert(ANN_LAYOUT.into(), layout.into());
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        artifact_type: Some(artifact_type.into()),
        config: config.1.clone(),
        layers: descriptors,
        subject: None,
        annotations,
    };
    let body = manifest_bytes(&manifest);
    let digest = put_manifest(target, client, store.as_deref(), &body).await?;
    let pairs: Vec<(Descriptor, Descriptor)> = done
        .iter()
        .filter_map(|(_, d, _, ix)| ix.clone().map(|ix| (d.clone(), ix)))
        .collect();
    let chunk_indexes = if pairs.is_empty() {
        None
    } else {
        let subject = descriptor(MEDIA_MANIFEST, &digest, body.len() as u64, BTreeMap::new());
        let empty: Arc<dyn BlobSource> =
            Arc::new(BytesSource(bytes::Bytes::from_static(EMPTY_CONFIG_DATA)));
        send(
            target,
            client,
            store.as_deref(),
            &empty,
            &empty_config(),
            settings,
            &reporter,
        )
        .await?;
        Some(push_index_referrer(target, client, store.as_deref(), subject, pairs).await?)
    };
    let layers: Vec<LayerReport> = done
        .iter()
        .map(|(_, d, skipped, _)| LayerReport {
            title: d.annotations.get(ANN_TITLE).cloned().unwrap_or_default(),
            digest: d.digest.clone(),
            size: d.size,
            skipped: *skipped,
            annotations: d.annotations.clone(),
        })
        .collect();
    Ok(PushReport {
        reference: target.to_string(),
        manifest_digest: digest,
        format: format.into(),
        bytes_skipped: layers.iter().filter(|l| l.skipped).map(|l| l.size).sum(),
        bytes_sent: layers.iter().filter(|l| !l.skipped).map(|l| l.size).sum(),
        layers,
        chunk_indexes,
        seconds: started.elapsed().as_secs_f64(),
    })
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

/// Plans `source` into layers on a blocking thread: a ModelPack directory file by file, else
/// an image (SquashFS shards staged in the layout of an `oci:` target, or in the store).
async fn prepare(
    source: &Path,
    target: &Target,
    settings: &PushSettings,
    image: ImageSettings,
) -> Result<Prepared> {
    let src = source.to_path_buf();
    let staging = match target {
        Target::Layout { path, .. } => Some(path.clone()),
        Target::Registry(_) => settings.staging_store.clone(),
    };
    let modelpack = settings.modelpack;
    tokio::task::spawn_blocking(move || {
        if modelpack {
            crate::modelpack_push::layers(&src, &image)
        } else {
            layers_for(&src, &image, staging.as_deref())
        }
    })
    .await
    .expect("planning does not panic")
}

/// The EROFS primary layer once its devices' `digests` are known (issue 13): a planned image
/// gets them written into its device table; an image file from `fspack build` must already
/// name them, or this fails naming the device that differs.
fn bind_primary(primary: Primary, digests: &[String]) -> Result<Layer> {
    Ok(match primary {
        Primary::Bind(mut image) => {
            image.bind_devices(digests)?;
            let title = image.meta.name.clone();
            // Metadata only: hashing it costs what keying it would.
            meta_layer(&title, Arc::new(PlanSource(image.meta)), None)
        }
        Primary::Check { path, layer } => {
            let dir = crate::build::blob_dir(&path);
            let pairs: Vec<(PathBuf, String)> = digests
                .iter()
                .enumerate()
                .map(|(i, d)| (dir.join(format!("blob-{i:04}")), d.clone()))
                .collect();
            fspack_image::erofs::check_devices(&path, &pairs)?;
            layer
        }
    })
}

/// The config blob and the artifact type: a ModelPack config, which lists the layer digests and
/// so is made once they are known, else the empty config of fspack's own artifacts.
fn config_blob(
    source: &Path,
    settings: &PushSettings,
    descriptors: &[Descriptor],
) -> ((Arc<dyn BlobSource>, Descriptor), &'static str) {
    if settings.modelpack {
        let bytes = crate::modelpack_push::config(source, descriptors);
        let d = descriptor(
            crate::modelpack::MEDIA_MODELPACK_CONFIG,
            &sha256_digest(&bytes),
            bytes.len() as u64,
            BTreeMap::new(),
        );
        let blob: Arc<dyn BlobSource> = Arc::new(BytesSource(bytes::Bytes::from(bytes)));
        ((blob, d), crate::modelpack::ARTIFACT_MODELPACK)
    } else {
        let blob: Arc<dyn BlobSource> =
            Arc::new(BytesSource(bytes::Bytes::from_static(EMPTY_CONFIG_DATA)));
        ((blob, empty_config()), ARTIFACT_TYPE)
    }
}

/// Writes the manifest `body` last, with the tag in the same request (or, for an `oci:` layout,
/// as a blob then the tag); returns its digest.
async fn put_manifest(
    target: &Target,
    client: Option<&Client>,
    store: Option<&Store>,
    body: &[u8],
) -> Result<String> {
    Ok(match target {
        Target::Registry(r) => {
            let tag = r.tag.clone().unwrap_or_else(|| sha256_digest(body));
            client
                .expect("set for registries")
                .push_manifest(r, &tag, MEDIA_MANIFEST, body.to_vec())
                .await?
        }
        Target::Layout { tag, .. } => {
            let store = store.expect("set for layouts");
            let digest = store.put_blob_bytes(body)?;
            store.tag(tag, &digest, MEDIA_MANIFEST, body.len() as u64)?;
            digest
        }
    })
}

/// Descriptor of the standalone chunk index `bytes` of layer `target` (erofs-image-spec §3.4.3:
/// a layer of type `application/vnd.erofs.chunk-index.v1` naming its target's digest).
fn standalone_descriptor(target: &Descriptor, bytes: &[u8]) -> Descriptor {
    let mut annotations = BTreeMap::from([(
        fspack_chunkindex::ANN_TARGET.to_string(),
        target.digest.clone(),
    )]);
    if let Some(title) = target.annotations.get(ANN_TITLE) {
        annotations.insert(ANN_TITLE.into(), format!("{title}.chunk-index"));
    }
    descriptor(
        fspack_chunkindex::MEDIA_TYPE,
        &sha256_digest(bytes),
        bytes.len() as u64,
        annotations,
    )
}

/// Pushes the OCI 1.1 referrer that keeps the standalone chunk indexes of a ModelPack push
/// reachable (registry garbage collection keeps blobs a manifest names; `oras cp -r` copies
/// referrers with their subject): `subject` is the model manifest, and the layers are each
/// indexed layer followed by its index, the order erofs-image-spec §3.4.3 gives a standalone
/// index. Pushed by digest and, on a registry without the referrers API, listed under the
/// referrers tag of the model manifest ([`crate::referrers`]). Returns its digest.
///
/// The model manifest itself names each index by digest (`org.erofs.chunk-index.digest` on the
/// layer), so a pull never needs this manifest, and its layers stay the files alone, which is
/// all modctl can read (issue 15).
///
/// The caller has sent the empty config. Errors: the registry's or the store's.
async fn push_index_referrer(
    target: &Target,
    client: Option<&Client>,
    store: Option<&Store>,
    subject: Descriptor,
    pairs: Vec<(Descriptor, Descriptor)>,
) -> Result<String> {
    let layers = pairs.into_iter().flat_map(|(d, ix)| [d, ix]).collect();
    let subject_digest = subject.digest.clone();
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MEDIA_MANIFEST.into()),
        artifact_type: Some(fspack_chunkindex::MEDIA_TYPE.into()),
        config: empty_config(),
        layers,
        subject: Some(subject),
        annotations: BTreeMap::new(),
    };
    let body = manifest_bytes(&manifest);
    let digest = sha256_digest(&body);
    match target {
        Target::Registry(r) => {
            let client = client.expect("set for registries");
            let mut listed =
                descriptor(MEDIA_MANIFEST, &digest, body.len() as u64, BTreeMap::new());
            listed.artifact_type = manifest.artifact_type.clone();
            if !client
                .push_referrer(r, &digest, MEDIA_MANIFEST, body)
                .await?
            {
                crate::referrers::add_to_referrers_tag(client, r, &subject_digest, listed).await?;
            }
        }
        Target::Layout { .. } => {
            store.expect("set for layouts").put_blob_bytes(&body)?;
        }
    }
    Ok(digest)
}

/// Sends one blob unless the destination has it; returns whether it was skipped.
async fn send(
    target: &Target,
    client: Option<&Client>,
    store: Option<&Store>,
    src: &Arc<dyn BlobSource>,
    d: &Descriptor,
    settings: &PushSettings,
    reporter: &Arc<dyn Reporter>,
) -> Result<bool> {
    let name = d
        .annotations
        .get(ANN_TITLE)
        .cloned()
        .unwrap_or_else(|| "config".into());
    match target {
        Target::Registry(r) => {
            let client = client.expect("set for registries");
            if client.blob_exists(r, &d.digest).await? == Some(d.size) {
                reporter.skipped(d.size);
                return Ok(true);
            }
            let id = reporter.start(&name, d.size);
            let progress = Arc::new(TransferProgress {
                reporter: reporter.clone(),
                id,
            });
            client
                .push_blob(r, &d.digest, src.clone(), settings.upload, progress)
                .await?;
            reporter.finish(id);
            Ok(false)
        }
        Target::Layout { path, .. } => {
            let store = store.expect("set for layouts");
            if store.has_blob_sized(&d.digest, d.size) {
                reporter.skipped(d.size);
                return Ok(true);
            }
            let ingest = store.ingest(&d.digest, d.size)?;
            if store.has_blob_sized(&d.digest, d.size) {
                reporter.skipped(d.size);
                return Ok(true);
            }
            let (src, bars, path) = (src.clone(), reporter.clone(), path.clone());
            let id = reporter.start(&name, d.size);
            tokio::task::spawn_blocking(move || -> Result<()> {
                use std::os::unix::fs::FileExt;
                let mut r = src.open_at(0).map_err(|e| EngineError::io(&path, e))?;
                let mut buf = vec![0u8; 1 << 20];
                let mut off = 0u64;
                loop {
                    let n = r.read(&mut buf).map_err(|e| EngineError::io(&path, e))?;
                    if n == 0 {
                        break;
                    }
                    ingest
                        .file()
                        .write_all_at(&buf[..n], off)
                        .map_err(|e| EngineError::io(&path, e))?;
                    off += n as u64;
                    bars.advance(id, n as u64);
                }
                ingest.commit()?;
                Ok(())
            })
            .await
            .expect("layout write does not panic")?;
            reporter.finish(id);
            Ok(false)
        }
    }
}
