//! Model artifacts from other tools (CNCF ModelPack, KitOps ModelKits, Docker Model Runner),
//! mounted with no second copy (issue 15).
//!
//! Their layers are the model's files, raw or in tars. fspack never unpacks them: after the pull
//! has verified each blob, it builds a small EROFS metadata image from the manifest and the tar
//! headers ([`fspack_image::erofs::mapped`]) in which every file points into its layer blob,
//! attached as an extra device. Only compressed tar layers are expanded, once, into the store.
//!
//! Everything that comes from the artifact is checked before anything is mounted: file paths
//! (no absolute path, no `..`, no name over 255 bytes, no path twice, no file where a path needs
//! a directory; all before anything is downloaded), tar members (inside the tree, data inside the
//! layer, files, directories and links only) and raw sizes against the file metadata annotation.
//! A refusal names the layer and maps to exit code 6. `docs/format.md` lists the media types.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use fspack_digest::Digest;
use fspack_image::erofs::mapped::{
    MappedAttrs, MappedDevice, MappedEntry, MappedImage, MappedKind,
};
use fspack_image::tar_index::{MemberKind, clean_path, index_tar};
use fspack_image::tree::NAME_MAX;
use fspack_store::Store;
use serde::Deserialize;

use crate::artifact::{ANN_TITLE, Descriptor, Manifest};
use crate::error::{EngineError, Result};

/// `artifactType` of a ModelPack manifest (model-spec `specs-go/v1/mediatype.go`).
pub const ARTIFACT_MODELPACK: &str = "application/vnd.cncf.model.manifest.v1+json";
/// Media type of a ModelPack config.
pub const MEDIA_MODELPACK_CONFIG: &str = "application/vnd.cncf.model.config.v1+json";
/// Prefix of every ModelPack layer media type.
pub const MEDIA_MODELPACK_LAYER_PREFIX: &str = "application/vnd.cncf.model.";
/// Annotation: the layer's file path (model-spec `specs-go/v1/annotations.go`).
pub const ANN_FILEPATH: &str = "org.cncf.model.filepath";
/// Annotation: JSON file metadata (name, mode, uid, gid, size, mtime, typeflag).
pub const ANN_FILE_METADATA: &str = "org.cncf.model.file.metadata+json";
/// Config media type of a KitOps ModelKit (kitops `pkg/lib/constants/mediaType.go`).
pub const MEDIA_KITOPS_CONFIG: &str = "application/vnd.kitops.modelkit.config.v1+json";
/// Prefix of KitOps layer media types.
pub const MEDIA_KITOPS_LAYER_PREFIX: &str = "application/vnd.kitops.modelkit.";
/// Config media types of Docker Model Runner artifacts (model-runner
/// `pkg/distribution/types/config.go`; v1 is the older model-distribution spelling).
pub const MEDIA_DOCKER_MODEL_CONFIGS: &[&str] = &[
    "application/vnd.docker.ai.model.config.v0.1+json",
    "application/vnd.docker.ai.model.config.v0.2+json",
    "application/vnd.docker.ai.model.config.v1+json",
];
/// Docker Model Runner raw layer types with the file extension fspack names them by when a layer
/// carries no path annotation (legacy v0.1 artifacts).
pub const DOCKER_MODEL_RAW: &[(&str, &str)] = &[
    ("application/vnd.docker.ai.gguf.v3", "gguf"),
    ("application/vnd.docker.ai.model.file.v1+gguf", "gguf"),
    ("application/vnd.docker.ai.safetensors", "safetensors"),
    ("application/vnd.docker.ai.dduf", "dduf"),
    ("application/vnd.docker.ai.license", "license.txt"),
    ("application/vnd.docker.ai.mmproj", "mmproj"),
    ("application/vnd.docker.ai.chat.template.jinja", "jinja"),
];
/// Docker Model Runner tar layer types (uncompressed).
pub const DOCKER_MODEL_TAR: &[&str] = &[
    "application/vnd.docker.ai.vllm.config.tar",
    "application/vnd.docker.ai.dir.tar",
];

/// Which tool's format an artifact follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// CNCF ModelPack (modctl, KitOps `--use-model-pack`, Docker Model Runner's ModelPack mode).
    ModelPack,
    /// KitOps ModelKit.
    KitOps,
    /// Docker Model Runner.
    DockerModel,
}

impl Flavor {
    /// Lowercase name (`modelpack`, `kitops`, `docker-model`).
    pub fn name(self) -> &'static str {
        match self {
            Flavor::ModelPack => "modelpack",
            Flavor::KitOps => "kitops",
            Flavor::DockerModel => "docker-model",
        }
    }
}

/// How a layer holds its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Packing {
    /// The blob is the file.
    Raw,
    /// An uncompressed tar, mapped member by member.
    Tar,
    /// A gzip-compressed tar, expanded once into the store.
    TarGzip,
    /// A zstd-compressed tar, expanded once into the store.
    TarZstd,
}

/// One layer of a model artifact as fspack will map it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelLayer {
    /// The layer's descriptor.
    pub desc: Descriptor,
    /// Raw or tar.
    pub packing: Packing,
    /// The cleaned file path of a raw layer (tar layers name their own members).
    pub path: Option<String>,
    /// Mode, owner and mtime of a raw layer's file (its file metadata annotation, or defaults).
    pub attrs: Option<MappedAttrs>,
}

/// A model artifact's layers, checked and ready to map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPlan {
    /// The format.
    pub flavor: Flavor,
    /// Layers in manifest order.
    pub layers: Vec<ModelLayer>,
}

/// Which model format `m` follows, if any: ModelPack by `artifactType` or config media type,
/// KitOps and Docker Model Runner by config media type.
pub fn detect(m: &Manifest) -> Option<Flavor> {
    let config = m.config.media_type.as_str();
    if m.artifact_type.as_deref() == Some(ARTIFACT_MODELPACK) || config == MEDIA_MODELPACK_CONFIG {
        Some(Flavor::ModelPack)
    } else if config == MEDIA_KITOPS_CONFIG {
        Some(Flavor::KitOps)
    } else if MEDIA_DOCKER_MODEL_CONFIGS.contains(&config) {
        Some(Flavor::DockerModel)
    } else {
        None
    }
}

/// How a layer of `flavor` with `media_type` holds its files; `None` when fspack cannot map it.
pub fn packing(flavor: Flavor, media_type: &str) -> Option<Packing> {
    let by_suffix = |mt: &str| {
        if mt.ends_with(".tar+gzip") {
            Some(Packing::TarGzip)
        } else if mt.ends_with(".tar+zstd") {
            Some(Packing::TarZstd)
        } else if mt.ends_with(".tar") {
            Some(Packing::Tar)
        } else {
            None
        }
    };
    match flavor {
        Flavor::ModelPack => {
            let rest = media_type.strip_prefix(MEDIA_MODELPACK_LAYER_PREFIX)?;
            // `.raw` is the spec's; `.gguf` / `.safetensors` are Docker Model Runner's raw
            // extensions of ModelPack (model-runner PR #791).
            if rest.ends_with(".raw") || rest.ends_with(".gguf") || rest.ends_with(".safetensors") {
                Some(Packing::Raw)
            } else {
                by_suffix(rest)
            }
        }
        Flavor::KitOps => by_suffix(media_type.strip_prefix(MEDIA_KITOPS_LAYER_PREFIX)?),
        Flavor::DockerModel => {
            if DOCKER_MODEL_RAW.iter().any(|(mt, _)| *mt == media_type) {
                Some(Packing::Raw)
            } else if DOCKER_MODEL_TAR.contains(&media_type) {
                Some(Packing::Tar)
            } else {
                None
            }
        }
    }
}

fn refused(what: &str, d: &Descriptor, path: Option<&str>, why: impl Into<String>) -> EngineError {
    EngineError::Refused {
        what: what.to_string(),
        layer: match path {
            Some(p) => format!("{} ({p})", d.digest),
            None => d.digest.to_string(),
        },
        why: why.into(),
    }
}

/// Checks a model manifest before anything is fetched: every layer type mappable, every raw
/// layer with a clean path of names of at most 255 bytes and file metadata that agrees with its
/// size, no path twice, no raw layer's file where another's path needs a directory.
///
/// Errors: [`EngineError::Usage`] for a layer type fspack cannot map (exit 2, as for any other
/// unmountable artifact), [`EngineError::Refused`] naming the layer for a bad path.
pub fn plan(m: &Manifest, flavor: Flavor, what: &str) -> Result<ModelPlan> {
    if m.layers.is_empty() {
        return Err(EngineError::Usage(format!("{what} has no layers to mount")));
    }
    let mut layers = Vec::with_capacity(m.layers.len());
    let mut seen: HashMap<String, &str> = HashMap::new();
    for d in &m.layers {
        let packing = packing(flavor, &d.media_type).ok_or_else(|| {
            EngineError::Usage(format!(
                "{what}: layer {} has media type {:?}, which fspack cannot map from a {} artifact (see docs/format.md for the supported types)",
                d.digest,
                d.media_type,
                flavor.name()
            ))
        })?;
        let annotated = d
            .annotations
            .get(ANN_FILEPATH)
            .or_else(|| d.annotations.get(ANN_TITLE));
        let path = match (packing, annotated) {
            (Packing::Raw, Some(p)) => {
                let clean = clean_path(p.as_bytes())
                    .map_err(|e| refused(what, d, Some(p), e.to_string()))?
                    .ok_or_else(|| refused(what, d, Some(p), "the file path names the root"))?;
                // The metadata image would refuse it only once the layers are in the store.
                if let Some(long) = clean.split('/').find(|c| c.len() > NAME_MAX) {
                    return Err(refused(
                        what,
                        d,
                        Some(p),
                        format!(
                            "a path component of {} bytes ({}...) is longer than the {NAME_MAX} a file name can have",
                            long.len(),
                            long.chars().take(16).collect::<String>()
                        ),
                    ));
                }
                Some(clean)
            }
            (Packing::Raw, None) if flavor == Flavor::DockerModel => {
                let ext = DOCKER_MODEL_RAW
                    .iter()
                    .find(|(mt, _)| *mt == d.media_type)
                    .map_or("bin", |(_, e)| e);
                Some(format!("{}.{ext}", &d.digest.hex()[..12]))
            }
            (Packing::Raw, None) => {
                return Err(refused(
                    what,
                    d,
                    None,
                    format!("a raw layer without an {ANN_FILEPATH} annotation has no file name"),
                ));
            }
            _ => None,
        };
        if let Some(p) = &path
            && let Some(other) = seen.insert(p.clone(), d.digest.as_str())
        {
            return Err(refused(
                what,
                d,
                Some(p),
                format!("the path is also the file of layer {other}"),
            ));
        }
        let mut layer = ModelLayer {
            desc: d.clone(),
            packing,
            path,
            attrs: None,
        };
        if packing == Packing::Raw {
            layer.attrs = Some(raw_attrs(what, &layer)?);
        }
        layers.push(layer);
    }
    // A file where another layer needs a directory (`a` and `a/b`), refused here, before a
    // byte is fetched, rather than when the view is built from the downloaded layers (review
    // finding B3). Tar members are known only from the downloaded tars: `build_view` checks
    // those.
    for l in &layers {
        let Some(p) = &l.path else { continue };
        let mut dir = p.as_str();
        while let Some((parent, _)) = dir.rsplit_once('/') {
            if let Some(other) = seen.get(parent) {
                return Err(refused(
                    what,
                    &l.desc,
                    Some(p),
                    format!("its directory {parent:?} is the file of layer {other}"),
                ));
            }
            dir = parent;
        }
    }
    Ok(ModelPlan { flavor, layers })
}

/// The value of [`ANN_FILE_METADATA`] (model-spec `FileMetadata`).
#[derive(Debug, Deserialize)]
struct FileMetadata {
    #[serde(default)]
    mode: Option<u32>,
    #[serde(default)]
    uid: Option<u32>,
    #[serde(default)]
    gid: Option<u32>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default)]
    mtime: Option<String>,
}

/// Attributes of a file with no metadata: read-only for others, owned by root, mtime 0.
const DEFAULT_FILE: MappedAttrs = MappedAttrs {
    perm: 0o644,
    uid: 0,
    gid: 0,
    mtime: 0,
    mtime_nsec: 0,
};

/// Parses RFC 3339 (what Go's `time.Time` writes) to seconds and nanoseconds.
fn parse_time(s: &str) -> Option<(i64, u32)> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    Some((t.unix_timestamp(), t.nanosecond()))
}

fn raw_attrs(what: &str, l: &ModelLayer) -> Result<MappedAttrs> {
    let Some(json) = l.desc.annotations.get(ANN_FILE_METADATA) else {
        return Ok(DEFAULT_FILE);
    };
    let path = l.path.as_deref();
    let meta: FileMetadata = serde_json::from_str(json).map_err(|e| {
        refused(
            what,
            &l.desc,
            path,
            format!("{ANN_FILE_METADATA} is not valid: {e}"),
        )
    })?;
    if let Some(size) = meta.size
        && u64::try_from(size).ok() != Some(l.desc.size)
    {
        return Err(refused(
            what,
            &l.desc,
            path,
            format!(
                "the file metadata says {size} bytes, the layer has {}",
                l.desc.size
            ),
        ));
    }
    let (mtime, mtime_nsec) = meta.mtime.as_deref().and_then(parse_time).unwrap_or((0, 0));
    Ok(MappedAttrs {
        perm: meta.mode.map_or(DEFAULT_FILE.perm, |m| m & 0o7777),
        uid: meta.uid.unwrap_or(0),
        gid: meta.gid.unwrap_or(0),
        mtime,
        mtime_nsec,
    })
}

/// The mountable view of a model artifact: the metadata image and its devices, all in the store.
#[derive(Debug, Clone)]
pub struct ModelView {
    /// Digest of the metadata image (a derived blob in the store).
    pub meta_digest: Digest,
    /// Device blobs in device order: `(digest, path)`.
    pub devices: Vec<(Digest, PathBuf)>,
    /// Block size of the metadata image in bytes (512 when tar members are mapped).
    pub block_size: u64,
    /// Notes for the user (layers expanded into the store).
    pub notes: Vec<String>,
}

/// Builds (or rebuilds: it is a pure function of the manifest and the blobs) the metadata image
/// of `plan`, whose blobs must all be committed in `store`, except with `lazy` (a lazy server's
/// FUSE directory): raw layers missing from the store are then mapped onto their file there, and
/// a tail block copied into the image is read through it, so it is verified before it is used
/// (issue 15).
///
/// Errors: [`EngineError::Refused`] naming the layer for a tar member escaping the tree or past
/// the end of its layer, an unmappable member type, a path named twice or a file where a
/// directory must be; [`EngineError::NotFound`] for a blob missing from the store.
pub fn build_view(
    store: &Store,
    plan: &ModelPlan,
    what: &str,
    lazy: Option<&std::path::Path>,
) -> Result<ModelView> {
    let mut view = ViewBuilder {
        store,
        what,
        devices: Vec::new(),
        entries: Vec::new(),
        owner: BTreeMap::new(),
        notes: Vec::new(),
    };
    for l in &plan.layers {
        let d = &l.desc;
        let served = lazy
            .filter(|_| l.packing == Packing::Raw && !store.has_blob(&d.digest))
            .map(|dir| dir.join(crate::artifact::served_file_name(&d.digest)));
        if served.is_none() && !store.has_blob_sized(&d.digest, d.size) {
            return Err(EngineError::NotFound(format!(
                "blob {} of {what} is not in the store; pull it again",
                d.digest
            )));
        }
        match l.packing {
            Packing::Raw => view.raw_layer(l, served)?,
            Packing::Tar | Packing::TarGzip | Packing::TarZstd => view.tar_layer(l)?,
        }
    }
    view.finish()
}

/// The metadata image of a model view as its layers are mapped in.
struct ViewBuilder<'a> {
    store: &'a Store,
    /// The reference, for errors.
    what: &'a str,
    /// (digest, path, size) of each device, device id = index + 1.
    devices: Vec<(Digest, PathBuf, u64)>,
    entries: Vec<MappedEntry>,
    /// Who claimed each path, to name both layers when two claim one: (layer, is a directory).
    owner: BTreeMap<String, (String, bool)>,
    notes: Vec<String>,
}

impl ViewBuilder<'_> {
    /// The device id of blob `digest` at `path`, added as a device when new.
    fn device_of(&mut self, digest: &Digest, path: PathBuf, size: u64) -> u16 {
        if let Some(i) = self.devices.iter().position(|d| &d.0 == digest) {
            return (i + 1) as u16;
        }
        self.devices.push((digest.clone(), path, size));
        self.devices.len() as u16
    }

    /// Claims `path` (a directory when `dir`) and its parent directories for layer `l`.
    ///
    /// Errors: [`EngineError::Refused`] naming both layers when another one named the path, or
    /// named a parent as something else than a directory; `member` is the tar member to name.
    fn claim(&mut self, l: &ModelLayer, path: &str, dir: bool, member: Option<&str>) -> Result<()> {
        let d = &l.desc;
        let mut parts: Vec<&str> = path.split('/').collect();
        let mut is_dir = dir;
        while !parts.is_empty() {
            let p = parts.join("/");
            match self.owner.get(&p) {
                Some((_, true)) if is_dir => {}
                Some((other, _)) => {
                    return Err(refused(
                        self.what,
                        d,
                        member.or(l.path.as_deref()),
                        format!("{p:?} is also named by layer {other}"),
                    ));
                }
                None => {
                    self.owner.insert(p, (d.digest.to_string(), is_dir));
                }
            }
            parts.pop();
            is_dir = true;
        }
        Ok(())
    }

    /// A raw layer: one file, the whole blob (or the lazy server's file `served` for it).
    fn raw_layer(&mut self, l: &ModelLayer, served: Option<PathBuf>) -> Result<()> {
        let d = &l.desc;
        let path = l.path.clone().expect("raw layers have a path after plan()");
        self.claim(l, &path, false, None)?;
        let blob = served.unwrap_or_else(|| self.store.blob_path(&d.digest));
        let device = self.device_of(&d.digest, blob, d.size);
        self.entries.push(MappedEntry {
            path,
            kind: MappedKind::File {
                device,
                offset: 0,
                size: d.size,
            },
            attrs: l.attrs.unwrap_or(DEFAULT_FILE),
        });
        Ok(())
    }

    /// A tar layer: each member mapped at its data offset in the tar, expanded once into the
    /// store when compressed (with a note); a hard link maps its target's bytes.
    fn tar_layer(&mut self, l: &ModelLayer) -> Result<()> {
        let (store, what, d) = (self.store, self.what, &l.desc);
        let (digest, size) = if l.packing == Packing::Tar {
            (d.digest.clone(), d.size)
        } else {
            let (digest, size, fresh) = expand(store, l)?;
            if fresh {
                self.notes.push(format!(
                    "layer {} ({:?}) was compressed: expanded once into the store as {digest} ({size} bytes)",
                    d.digest, d.media_type
                ));
            }
            (digest, size)
        };
        let blob = store.blob_path(&digest);
        let f = std::fs::File::open(&blob).map_err(|e| EngineError::io(&blob, e))?;
        let members = index_tar(&f, size, &blob).map_err(|e| match e {
            fspack_image::Error::Io { .. } => EngineError::Image(e),
            e => refused(what, d, None, e.to_string()),
        })?;
        let device = self.device_of(&digest, blob.clone(), size);
        let mut files: HashMap<&str, (u64, u64)> = HashMap::new();
        for m in &members {
            let kind = match &m.kind {
                MemberKind::File { offset, size } => {
                    files.insert(&m.path, (*offset, *size));
                    MappedKind::File {
                        device,
                        offset: *offset,
                        size: *size,
                    }
                }
                MemberKind::Dir => MappedKind::Dir,
                MemberKind::Symlink(target) => MappedKind::Symlink {
                    target: target.clone(),
                },
                MemberKind::HardLink(target) => {
                    let (offset, size) = *files.get(target.as_str()).ok_or_else(|| {
                        refused(
                            what,
                            d,
                            Some(&m.path),
                            format!("a hard link to {target:?}, which is not an earlier file of this layer"),
                        )
                    })?;
                    MappedKind::File {
                        device,
                        offset,
                        size,
                    }
                }
            };
            self.claim(l, &m.path, m.kind == MemberKind::Dir, Some(&m.path))?;
            self.entries.push(MappedEntry {
                path: m.path.clone(),
                kind,
                attrs: m.attrs,
            });
        }
        Ok(())
    }

    /// Encodes the metadata image and stores it as a blob.
    ///
    /// Errors: [`EngineError::Refused`] for what the image format refuses; the store's.
    fn finish(self) -> Result<ModelView> {
        let (store, what, devices, entries) = (self.store, self.what, self.devices, self.entries);
        // The root (and every directory no layer names) is fspack's: 0755, root-owned, with the
        // newest mtime of the tree so `ls -l` shows when the model last changed.
        let newest = entries.iter().map(|e| e.attrs.mtime).max().unwrap_or(0);
        let image = MappedImage {
            devices: devices
                .iter()
                .map(|d| MappedDevice {
                    path: d.1.clone(),
                    size: d.2,
                })
                .collect(),
            root: MappedAttrs {
                perm: 0o755,
                uid: 0,
                gid: 0,
                mtime: newest,
                mtime_nsec: 0,
            },
            entries,
            build_time: newest.max(0) as u64,
        };
        let block_size = 1u64 << image.block_bits();
        let bytes = image.encode().map_err(|e| match e {
            fspack_image::Error::Refused { path, why } => EngineError::Refused {
                what: what.to_string(),
                layer: path,
                why,
            },
            e => EngineError::Image(e),
        })?;
        let meta_digest = store.put_blob_bytes(&bytes)?;
        Ok(ModelView {
            meta_digest,
            devices: devices.into_iter().map(|(d, p, _)| (d, p)).collect(),
            block_size,
            notes: self.notes,
        })
    }
}

/// Expands a compressed tar layer into the store once; returns `(digest, size, newly expanded)`.
/// The expansion of each layer is remembered in `derived/expanded/<hex>` so later mounts reuse it.
fn expand(store: &Store, l: &ModelLayer) -> Result<(Digest, u64, bool)> {
    let d = &l.desc;
    let dir = store.root().join("derived/expanded");
    let note = dir.join(d.digest.hex());
    if let Ok(text) = std::fs::read_to_string(&note)
        && let Some((digest, size)) = text.trim().split_once(' ')
        && let Ok(size) = size.parse::<u64>()
        && let Ok(digest) = crate::artifact::parse_sha256(digest)
        && store.has_blob_sized(&digest, size)
    {
        return Ok((digest, size, false));
    }
    let src = store.blob_path(&d.digest);
    let f = std::fs::File::open(&src).map_err(|e| EngineError::io(&src, e))?;
    let f = std::io::BufReader::new(f);
    let (digest, size) = match l.packing {
        Packing::TarGzip => store.put_blob_reader(&mut flate2::read::MultiGzDecoder::new(f))?,
        Packing::TarZstd => {
            let mut z = zstd::stream::read::Decoder::with_buffer(f)
                .map_err(|e| EngineError::io(&src, e))?;
            store.put_blob_reader(&mut z)?
        }
        _ => unreachable!("only compressed tars are expanded"),
    };
    std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
    std::fs::write(&note, format!("{digest} {size}\n")).map_err(|e| EngineError::io(&note, e))?;
    Ok((digest, size, true))
}

#[cfg(test)]
mod tests;
