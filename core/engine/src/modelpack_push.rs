//! `fspack push DIR REF --modelpack`: a directory as a CNCF ModelPack artifact (issue 15).
//!
//! One raw layer per file, so the blob *is* the file: modctl, KitOps, Docker Model Runner and
//! CRI-O read it as any ModelPack, fspack mounts it with no second copy, an unchanged file keeps
//! its digest (a re-push after an edit sends only the changed files), and identical files share
//! one blob. The layer media type follows the file's role ([`role_of`], documented in
//! `docs/format.md`); each layer carries `org.cncf.model.filepath` and the file metadata
//! annotation. No EROFS view travels with the artifact: fspack rebuilds the metadata image from
//! the manifest at mount time ([`crate::modelpack::build_view`]), which is what lets it mount any
//! ModelPack, not only its own, and leaves nothing in the registry that could disagree with the
//! layers it describes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use fspack_image::source::FileStamp;
use fspack_image::tree::Kind;
use fspack_image::{BlobPlan, Segment, Tree};

use crate::artifact::{ANN_TITLE, Descriptor};
use crate::build::ImageSettings;
use crate::error::{EngineError, Result};
use crate::modelpack::{ANN_FILE_METADATA, ANN_FILEPATH};
use crate::push::PlanSource;
use crate::staged::{Layer, Prepared};

/// Annotation: the media type was guessed from the file name (model-spec `annotations.go`).
pub const ANN_UNTESTED: &str = "org.cncf.model.file.mediatype.untested";

/// The role of a file in a model, which picks its layer media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Weights (`application/vnd.cncf.model.weight.v1.raw`).
    Weight,
    /// Configuration of the weights: model config, tokenizer (`weight.config.v1.raw`).
    WeightConfig,
    /// Documentation and licences (`doc.v1.raw`).
    Doc,
    /// Code (`code.v1.raw`).
    Code,
    /// Datasets (`dataset.v1.raw`).
    Dataset,
}

impl Role {
    /// The raw layer media type of this role.
    pub fn media_type(self) -> &'static str {
        match self {
            Role::Weight => "application/vnd.cncf.model.weight.v1.raw",
            Role::WeightConfig => "application/vnd.cncf.model.weight.config.v1.raw",
            Role::Doc => "application/vnd.cncf.model.doc.v1.raw",
            Role::Code => "application/vnd.cncf.model.code.v1.raw",
            Role::Dataset => "application/vnd.cncf.model.dataset.v1.raw",
        }
    }
}

const WEIGHT_EXT: &[&str] = &[
    "safetensors",
    "gguf",
    "ggml",
    "bin",
    "pt",
    "pth",
    "ckpt",
    "onnx",
    "h5",
    "keras",
    "msgpack",
    "pb",
    "tflite",
    "mlmodel",
    "npz",
    "npy",
    "dduf",
    "pkl",
    "joblib",
    "engine",
    "plan",
    "mar",
    "nemo",
    "ot",
];
const CONFIG_EXT: &[&str] = &["json", "yaml", "yml", "toml", "model", "tiktoken", "jinja"];
const CONFIG_NAMES: &[&str] = &["vocab.txt", "merges.txt", "added_tokens.txt"];
const DOC_EXT: &[&str] = &["md", "rst", "txt", "pdf", "html", "htm", "adoc", "org"];
const DOC_PREFIXES: &[&str] = &[
    "readme",
    "license",
    "licence",
    "notice",
    "copying",
    "authors",
    "changelog",
    "citation",
    "model_card",
];
const CODE_EXT: &[&str] = &[
    "py", "ipynb", "sh", "bash", "c", "cc", "cpp", "h", "hpp", "cu", "cuh", "js", "ts", "go", "rs",
    "java", "scala", "r", "jl", "lua", "swift", "kt", "cmake",
];
const CODE_NAMES: &[&str] = &[
    "dockerfile",
    "makefile",
    "requirements.txt",
    "setup.cfg",
    "pyproject.toml",
];
const DATASET_EXT: &[&str] = &[
    "csv", "tsv", "parquet", "arrow", "jsonl", "tfrecord", "avro", "feather", "hdf5",
];
const DATASET_DIRS: &[&str] = &["data", "dataset", "datasets"];

/// The role of the file at `path` (relative, `/`-separated), and whether it was a guess.
///
/// The rule, first match wins, on the lowercased name: code by name (`Dockerfile`, `Makefile`,
/// `requirements.txt`, `setup.cfg`, `pyproject.toml`); weight config by name (`vocab.txt`,
/// `merges.txt`, `added_tokens.txt`); files under a top-level `data/`, `dataset/` or `datasets/`
/// directory, or with a dataset extension, are datasets; weight extensions are weights; config
/// extensions (`.json`, `.yaml`, `.model`, `.jinja`, ...) are weight config; names starting with
/// `README`, `LICENSE`, `NOTICE`, ... or with a doc extension are docs; code extensions are code.
/// Anything else is a weight, marked with [`ANN_UNTESTED`] as model-spec provides for guesses.
pub fn role_of(path: &str) -> (Role, bool) {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    let top = lower.split('/').next().unwrap_or("");
    let known = |list: &[&str], s: &str| list.contains(&s);
    let role = if known(CODE_NAMES, name) {
        Role::Code
    } else if known(CONFIG_NAMES, name) {
        Role::WeightConfig
    } else if (lower.contains('/') && known(DATASET_DIRS, top)) || known(DATASET_EXT, ext) {
        Role::Dataset
    } else if known(WEIGHT_EXT, ext) {
        Role::Weight
    } else if known(CONFIG_EXT, ext) {
        Role::WeightConfig
    } else if DOC_PREFIXES.iter().any(|p| name.starts_with(p)) || known(DOC_EXT, ext) {
        Role::Doc
    } else if known(CODE_EXT, ext) {
        Role::Code
    } else {
        return (Role::Weight, true);
    };
    (role, false)
}

/// RFC 3339 with nanoseconds, as Go's `time.Time` marshals it.
fn rfc3339(secs: i64, nsec: u32) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| t.replace_nanosecond(nsec).unwrap_or(t))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

/// One raw layer per regular file of `source`, in path order. A directory that holds no file
/// (at any depth) has no layer to carry it, so the returned notes name those left out.
///
/// Errors: [`EngineError::Usage`] when `source` is not a directory, holds no file, or holds a
/// symlink or special file (a ModelPack layer is a file; there is no way to say "link").
pub fn layers(source: &Path, settings: &ImageSettings) -> Result<Prepared> {
    let tree = Tree::walk(source, &settings.walk)?;
    let mut files: Vec<(String, &fspack_image::tree::Inode)> = Vec::new();
    for inode in &tree.inodes {
        match &inode.kind {
            Kind::File { .. } => {}
            Kind::Dir { .. } => continue,
            _ => {
                return Err(EngineError::Usage(format!(
                    "{}: ModelPack layers are regular files; {} is a symlink or special file (remove it or push without --modelpack)",
                    source.display(),
                    inode.path.display()
                )));
            }
        }
        let path = inode.path.to_str().ok_or_else(|| {
            EngineError::Usage(format!(
                "{}: ModelPack file paths are strings; {} is not UTF-8",
                source.display(),
                inode.path.display()
            ))
        })?;
        files.push((path.to_string(), inode));
    }
    // Hard links reach one inode from several paths; each path is a layer of its own.
    for inode in &tree.inodes {
        if let Kind::Dir { entries } = &inode.kind {
            for e in entries {
                let target = &tree.inodes[e.inode];
                if target.nlink > 1 && matches!(target.kind, Kind::File { .. }) {
                    let p = inode.path.join(std::ffi::OsStr::new(
                        std::str::from_utf8(&e.name).unwrap_or_default(),
                    ));
                    let p = p.to_string_lossy().into_owned();
                    if !files.iter().any(|(q, _)| *q == p) {
                        files.push((p, target));
                    }
                }
            }
        }
    }
    if files.is_empty() {
        return Err(EngineError::Usage(format!(
            "{} holds no file to push as a model",
            source.display()
        )));
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let notes = empty_dirs_note(&tree, files.iter().map(|(p, _)| p.as_str()))
        .into_iter()
        .collect();
    let mut out = Vec::with_capacity(files.len());
    for (path, inode) in files {
        let Kind::File {
            source: src,
            size,
            stamp,
            ..
        } = &inode.kind
        else {
            continue;
        };
        let (role, untested) = role_of(&path);
        let name = path.rsplit('/').next().unwrap_or(&path).to_string();
        let meta = serde_json::json!({
            "name": name,
            "mode": inode.perm,
            "uid": inode.uid,
            "gid": inode.gid,
            "size": size,
            "mtime": rfc3339(inode.mtime, inode.mtime_nsec),
            "typeflag": b'0',
        });
        let mut annotations = BTreeMap::from([
            (ANN_FILEPATH.to_string(), path.clone()),
            (ANN_FILE_METADATA.to_string(), meta.to_string()),
            (ANN_TITLE.to_string(), path.clone()),
        ]);
        if untested {
            annotations.insert(ANN_UNTESTED.into(), "true".into());
        }
        // The file as the walk saw it, read as a plan is: a file that grows, shrinks or is
        // replaced before or while it is read fails naming itself ([`file_source`]).
        out.push(Layer {
            media_type: role.media_type().into(),
            annotations,
            source: Arc::new(file_source(src, *size, *stamp)),
            cache_key: crate::digest_cache::CacheKey::for_file(src, false),
        });
    }
    let mut prepared = Prepared::plain(out, "modelpack", "per-file");
    prepared.notes = notes;
    Ok(prepared)
}

/// Directories listed in a note before the rest are only counted.
const NOTE_DIRS_LISTED: usize = 10;

/// The note naming the directories of `tree` that hold none of the `files` (relative paths) at
/// any depth, the topmost of each such subtree only (`a/`, not also `a/b/`), or `None`
/// when every directory holds a file. A ModelPack artifact has only file layers: a pull
/// recreates the directories on the way to a file and no others (review finding B2).
fn empty_dirs_note<'a>(tree: &Tree, files: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut holding: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for f in files {
        let mut p = f;
        while let Some((parent, _)) = p.rsplit_once('/') {
            if !holding.insert(parent) {
                break;
            }
            p = parent;
        }
    }
    let mut empty: Vec<String> = Vec::new();
    for inode in &tree.inodes {
        let Kind::Dir { .. } = inode.kind else {
            continue;
        };
        let path = inode.path.to_string_lossy();
        if path.is_empty() || holding.contains(path.as_ref()) {
            continue;
        }
        // Only the topmost: its parent is the root or holds a file.
        let top = match path.rsplit_once('/') {
            None => true,
            Some((parent, _)) => holding.contains(parent),
        };
        if top {
            empty.push(format!("{path}/"));
        }
    }
    if empty.is_empty() {
        return None;
    }
    empty.sort();
    let what = match empty.len() {
        1 => "1 empty directory is".to_string(),
        n => format!("{n} empty directories are"),
    };
    let mut listed = empty[..empty.len().min(NOTE_DIRS_LISTED)].join(", ");
    if empty.len() > NOTE_DIRS_LISTED {
        listed.push_str(&format!(" and {} more", empty.len() - NOTE_DIRS_LISTED));
    }
    Some(format!(
        "{what} not part of a ModelPack artifact, which holds files only: {listed}"
    ))
}

/// The layer source of the file at `path` as the walk saw it (`size` bytes, `stamp`): a plan of
/// that one file, whose reader fails with `fspack_image::Error::FileChanged` naming `path` when
/// the file no longer matches `stamp` as it is opened or once it is read. Read as it is now (a
/// bare file source), a file that grew gave more bytes than planned and the push failed
/// without saying which file (review finding B1).
fn file_source(path: &Path, size: u64, stamp: FileStamp) -> PlanSource {
    PlanSource(BlobPlan {
        name: path.display().to_string(),
        segments: vec![Segment::File {
            path: Arc::from(path),
            offset: 0,
            len: size,
            expect: stamp,
        }],
    })
}

/// The model config (model-spec `config-schema.json`): a descriptor naming the model, the format
/// guessed from the weight files, and `modelfs.diffIds`, which for raw layers are the layer
/// digests. `createdAt` is set only from `SOURCE_DATE_EPOCH`, so a re-push of the same tree gives
/// the same config and manifest.
pub fn config(source: &Path, layers: &[Descriptor]) -> Vec<u8> {
    let name = std::fs::canonicalize(source)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "model".into());
    let mut descriptor = serde_json::json!({ "name": name });
    if let Some(secs) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        descriptor["createdAt"] = rfc3339(secs, 0).into();
    }
    let mut config = serde_json::json!({});
    let ext_of = |d: &Descriptor| {
        d.annotations
            .get(ANN_FILEPATH)
            .and_then(|p| p.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()))
    };
    for format in ["safetensors", "gguf", "onnx", "pt", "bin"] {
        if layers.iter().any(|d| {
            d.media_type == Role::Weight.media_type() && ext_of(d).as_deref() == Some(format)
        }) {
            config["format"] = format.into();
            break;
        }
    }
    let body = serde_json::json!({
        "descriptor": descriptor,
        "config": config,
        "modelfs": {
            "type": "layers",
            "diffIds": layers.iter().map(|d| d.digest.clone()).collect::<Vec<_>>(),
        },
    });
    serde_json::to_vec(&body).expect("config serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_documented_rule() {
        for (path, role, guess) in [
            ("model-00001-of-00002.safetensors", Role::Weight, false),
            ("gguf/q4.GGUF", Role::Weight, false),
            ("config.json", Role::WeightConfig, false),
            ("tokenizer.model", Role::WeightConfig, false),
            ("merges.txt", Role::WeightConfig, false),
            ("README.md", Role::Doc, false),
            ("LICENSE", Role::Doc, false),
            ("notes.txt", Role::Doc, false),
            ("modeling_llama.py", Role::Code, false),
            ("requirements.txt", Role::Code, false),
            ("data/train.json", Role::Dataset, false),
            ("eval.parquet", Role::Dataset, false),
            ("weights.unknown", Role::Weight, true),
        ] {
            assert_eq!(role_of(path), (role, guess), "{path}");
        }
    }

    /// When [`Grower`] appends 4 KiB to the file it watches.
    enum GrowWhen {
        /// When hashing starts: after the push planned the file's size, before it reads it.
        Hashing,
        /// When the upload of the layer with this title starts, after it was hashed.
        Sending(&'static str),
    }

    /// A reporter that grows the file `.0` at the moment `.1` names.
    struct Grower(std::path::PathBuf, GrowWhen);

    impl Grower {
        fn grow(&self) {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&self.0)
                .unwrap();
            f.write_all(&[7; 4096]).unwrap();
        }
    }

    impl crate::report::Reporter for Grower {
        fn start_phase(&self, _: &str, _: u64) -> usize {
            if matches!(self.1, GrowWhen::Hashing) {
                self.grow();
            }
            0
        }
        fn start(&self, name: &str, _: u64) -> usize {
            if matches!(self.1, GrowWhen::Sending(title) if title == name) {
                self.grow();
            }
            0
        }
        fn advance(&self, _: usize, _: u64) {}
        fn reset(&self, _: usize, _: u64) {}
        fn finish(&self, _: usize) {}
        fn message(&self, _: &str) {}
    }

    /// Pushes a model (`config.json` and a 64 KiB `model.safetensors`) with `--modelpack` into
    /// an `oci:` layout tagged `v1`, growing the weights at `when`. Returns the push's error and
    /// the layout's `index.json` afterwards (empty when there is none).
    fn push_growing(when: GrowWhen) -> (EngineError, String) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("model");
        std::fs::create_dir(&src).unwrap();
        std::fs::write(src.join("config.json"), b"{}").unwrap();
        let weights = src.join("model.safetensors");
        std::fs::write(&weights, vec![1u8; 64 << 10]).unwrap();
        let layout = tmp.path().join("layout");
        let target = crate::target::Target::parse(&format!("oci:{}:v1", layout.display())).unwrap();
        let settings = crate::push::PushSettings {
            image: ImageSettings::default(),
            jobs: 1,
            upload: Default::default(),
            annotations: vec![],
            staging_store: None,
            modelpack: true,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let err = rt
            .block_on(crate::push::push(
                &src,
                &target,
                &settings,
                None,
                Arc::new(Grower(weights, when)),
            ))
            .unwrap_err();
        let index = std::fs::read_to_string(layout.join("index.json")).unwrap_or_default();
        (err, index)
    }

    /// Review finding B1: a file that grows during `push --modelpack` fails naming the file and
    /// the push, with the kind (and so the exit code) of a file that changed under an EROFS
    /// push; not "the image sources: the source gave N bytes, M were planned".
    #[test]
    fn a_file_that_grows_during_the_push_is_named() {
        use crate::error::{ErrorKind, kinds};
        let (err, _) = push_growing(GrowWhen::Hashing);
        let msg = err.to_string();
        assert!(
            matches!(&err, EngineError::ChangedDuringPush { path, .. } if path.ends_with("model/model.safetensors")),
            "{err:?}"
        );
        assert!(
            msg.contains("model.safetensors changed during the push")
                && msg.contains(&format!(
                    "size was {} bytes, now {}",
                    64 << 10,
                    (64 << 10) + 4096
                ))
                && !msg.contains("image"),
            "{msg}"
        );
        assert_eq!(err.kind(), ErrorKind::Image(kinds::Image::Changed));
    }

    /// s10 left item: a file that changes after it was hashed, while it is sent, is named as a
    /// file that changed during the push, not reported as the destination's write error.
    #[test]
    fn a_file_that_grows_while_it_is_sent_is_named() {
        let (err, index) = push_growing(GrowWhen::Sending("model.safetensors"));
        assert!(
            matches!(&err, EngineError::ChangedDuringPush { path, .. } if path.ends_with("model/model.safetensors")),
            "{err:?}"
        );
        // No tag: the layout's index names no manifest.
        assert!(
            !index.contains("org.opencontainers.image.ref.name"),
            "{index}"
        );
    }

    #[test]
    fn times_are_go_style_rfc3339() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_748_772_000, 500_000_000),
            "2025-06-01T10:00:00.5Z"
        );
    }
}
