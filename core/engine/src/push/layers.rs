//! Turning what the user points `push` at (a directory, an image file) into layers: the one
//! place that knows how each format and layout becomes layers, kept apart from the sending.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fspack_image::BlobPlan;
use fspack_image::detect::{self, Format};
use fspack_image::erofs::Layout;
use fspack_registry::{BlobSource, FileSource};

use crate::artifact::*;
use crate::build::{ImageFormat, ImageSettings, plan_erofs};
use crate::digest_cache::CacheKey;
use crate::error::{EngineError, Result};
use crate::staged::{Layer, Prepared, Primary, Scratch};

/// A [`BlobPlan`] as an upload source.
pub(crate) struct PlanSource(pub(crate) BlobPlan);

impl BlobSource for PlanSource {
    fn size(&self) -> u64 {
        self.0.len()
    }
    fn open_at(&self, offset: u64) -> std::io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.0.reader_at(offset)))
    }
}

/// The layer of an EROFS primary image (the whole image, or the metadata of a chunked one).
pub(super) fn meta_layer(
    title: &str,
    source: Arc<dyn BlobSource>,
    cache_key: Option<CacheKey>,
) -> Layer {
    Layer {
        media_type: MEDIA_EROFS.into(),
        annotations: titled(title),
        source,
        cache_key,
    }
}

pub(super) fn titled(title: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(ANN_TITLE.to_string(), title.to_string())])
}

/// Turns `source` (a directory or an image file) into layers in manifest order. SquashFS shards
/// of a directory are compressed under `staging` (a directory on the destination's file
/// system; `None`: the system temporary directory).
pub fn layers_for(
    source: &Path,
    settings: &ImageSettings,
    staging: Option<&Path>,
) -> Result<Prepared> {
    let meta = match std::fs::metadata(source) {
        Ok(m) => m,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && built_shards(&crate::build::blob_dir(source))?.is_some() =>
        {
            // `build --shards` writes OUT.d/ and no OUT (s10 fresh-eyes pass).
            let shards = crate::build::blob_dir(source);
            return Err(EngineError::NotFound(format!(
                "{} does not exist: a sharded SquashFS build writes its shards to {}\nhint: push {}, which holds them, or the source directory",
                source.display(),
                shards.display(),
                shards.display()
            )));
        }
        Err(e) => return Err(EngineError::io(source, e)),
    };
    if meta.is_dir()
        && let Some(shards) = built_shards(source)?
    {
        return shard_dir_layers(source, &shards);
    }
    if meta.is_dir() && settings.format == ImageFormat::Squashfs {
        return squashfs_layers(source, settings, staging);
    }
    if meta.is_dir() {
        return erofs_layers(source, settings);
    }
    if !meta.is_file() {
        // Opening a FIFO to look for magic bytes would wait for a writer for ever (s10
        // fresh-eyes pass); a device or socket is no image file either.
        return Err(EngineError::Usage(format!(
            "{} is a special file (FIFO, device or socket), not a directory or an image file\nhint: push a directory, or an image that `fspack build` wrote",
            source.display()
        )));
    }
    image_file_layers(source)
}

/// A directory planned as EROFS: the data blobs of a chunked layout as device layers, then the
/// primary image. A chunked primary names its devices' digests, so it is held back as
/// [`Primary::Bind`] until they are known.
fn erofs_layers(source: &Path, settings: &ImageSettings) -> Result<Prepared> {
    let image = plan_erofs(source, settings)?;
    let chunked = settings.erofs.layout == Layout::Chunked;
    let mut layers = Vec::new();
    for blob in image.blobs.iter().cloned() {
        layers.push(Layer {
            media_type: MEDIA_DEVICE.into(),
            annotations: device_annotations(&blob.name),
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
            notes: Vec::new(),
            _scratch: None,
        });
    }
    let title = image.meta.name.clone();
    let key = CacheKey::for_plan(&image.meta, true);
    layers.push(meta_layer(&title, Arc::new(PlanSource(image.meta)), key));
    let layout = if chunked { "chunked" } else { "single" };
    Ok(Prepared {
        layers,
        primary: None,
        format: "erofs",
        layout,
        notes: Vec::new(),
        _scratch: None,
    })
}

/// An image file, pushed as it is: one layer, its media type from its magic bytes (and a
/// SquashFS image's compressor), unless it is a chunked EROFS image whose data blobs go first.
///
/// Errors: [`EngineError::Usage`] when `source` is no EROFS or SquashFS image.
fn image_file_layers(source: &Path) -> Result<Prepared> {
    let file = std::fs::File::open(source).map_err(|e| EngineError::io(source, e))?;
    let probe = detect::probe(file)
        .map_err(|e| EngineError::io(source, e))?
        .ok_or_else(|| {
            EngineError::Usage(format!(
                "{} is neither a directory nor an EROFS or SquashFS image (no magic bytes found)",
                source.display()
            ))
        })?;
    let format = probe.format;
    let title = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let media_type = match format {
        Format::Erofs => MEDIA_EROFS.to_string(),
        Format::Squashfs => {
            let compressor = probe.compressor().ok_or_else(|| {
                EngineError::Usage(format!(
                    "{}: unknown SquashFS compressor id {}",
                    source.display(),
                    probe.compressor_id
                ))
            })?;
            squashfs_media_type(compressor)
        }
    };
    let src = FileSource::new(source).map_err(|e| EngineError::io(source, e))?;
    let image = Layer {
        media_type,
        annotations: titled(&title),
        source: Arc::new(src),
        cache_key: CacheKey::for_file(source, true),
    };
    if probe.extra_devices > 0 {
        return chunked_file_layers(source, probe.extra_devices, image);
    }
    Ok(Prepared {
        layers: vec![image],
        primary: None,
        format: format.name(),
        layout: "single",
        notes: Vec::new(),
        _scratch: None,
    })
}

/// A chunked EROFS image file from `fspack build`: its `devices` data blobs sit in `OUT.d/` and
/// go first, as device layers; the `image` layer goes last, once its device table is checked
/// against their digests ([`Primary::Check`]).
///
/// Errors: [`EngineError::NotFound`] naming the first missing data blob.
fn chunked_file_layers(source: &Path, devices: u16, image: Layer) -> Result<Prepared> {
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
        layers.push(Layer {
            media_type: MEDIA_DEVICE.into(),
            annotations: device_annotations(&name),
            source: Arc::new(blob),
            cache_key: CacheKey::for_file(&path, true),
        });
    }
    Ok(Prepared {
        layers,
        primary: Some(Primary::Check {
            path: source.to_path_buf(),
            layer: image,
        }),
        format: "erofs",
        layout: "chunked",
        notes: Vec::new(),
        _scratch: None,
    })
}

/// The shards in `dir` when it is the output of `fspack build --format squashfs --shards`:
/// nothing but `shard-000.squashfs`, `shard-001.squashfs`, … numbered without gaps, each a
/// SquashFS image. `None` for any other directory (it is a source to build).
///
/// Errors: [`EngineError::Io`] when `dir` or a shard cannot be read.
pub fn built_shards(dir: &Path) -> Result<Option<Vec<PathBuf>>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(_) if !dir.is_dir() => return Ok(None),
        Err(e) => return Err(EngineError::io(dir, e)),
    };
    // Every directory push asks this first: a source with any other name is told at its first
    // entry, without listing (let alone sorting) the rest.
    let mut names = Vec::new();
    for e in entries {
        let e = e.map_err(|e| EngineError::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("shard-") && name.ends_with(".squashfs")) {
            return Ok(None);
        }
        names.push(name);
    }
    names.sort();
    let expected = (0..names.len()).map(fspack_image::squashfs::shard_name);
    if names.is_empty() || !names.iter().cloned().eq(expected) {
        return Ok(None);
    }
    let mut shards = Vec::new();
    for n in names {
        let path = dir.join(n);
        if !path.is_file() {
            return Ok(None);
        }
        let file = std::fs::File::open(&path).map_err(|e| EngineError::io(&path, e))?;
        let probe = detect::probe(file).map_err(|e| EngineError::io(&path, e))?;
        if probe.map(|p| p.format) != Some(Format::Squashfs) {
            return Ok(None);
        }
        shards.push(path);
    }
    Ok(Some(shards))
}

/// The shards of a sharded SquashFS build (`OUT.d/`, see [`built_shards`]), pushed as built:
/// one layer each, lowest first, as a push of the source directory would send them.
fn shard_dir_layers(dir: &Path, shards: &[PathBuf]) -> Result<Prepared> {
    tracing::info!(
        "{} holds the shards of a SquashFS build: pushing them as built",
        dir.display()
    );
    let mut layers = Vec::new();
    for path in shards {
        let mut prepared = image_file_layers(path)?;
        layers.append(&mut prepared.layers);
    }
    Ok(squashfs_prepared(layers, None))
}

/// SquashFS `layers`, one per shard (lowest first), with the `scratch` space they are read from.
fn squashfs_prepared(layers: Vec<Layer>, scratch: Option<Scratch>) -> Prepared {
    let layout = if layers.len() > 1 {
        "sharded"
    } else {
        "single"
    };
    Prepared {
        layers,
        primary: None,
        format: "squashfs",
        layout,
        notes: Vec::new(),
        _scratch: scratch,
    }
}

/// Annotations of an EROFS data blob layer: its title and the `device` role.
fn device_annotations(title: &str) -> BTreeMap<String, String> {
    let mut annotations = titled(title);
    annotations.insert(ANN_EROFS_ROLE.into(), "device".into());
    annotations
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
    let base = staging
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).map_err(|e| EngineError::io(&base, e))?;
    let need = tree.data_bytes() + tree.data_bytes() / 64 + (1 << 20);
    let free = fspack_store::free_bytes(&base).map_err(|e| EngineError::io(&base, e))?;
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
    let scratch = Scratch::new(dir.clone());
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
    Ok(squashfs_prepared(layers, Some(scratch)))
}

/// Layer media type of a SquashFS image compressed with `compressor` (stacker's spelling).
pub fn squashfs_media_type(compressor: &str) -> String {
    format!("{MEDIA_SQUASHFS_PREFIX}+{compressor}")
}
