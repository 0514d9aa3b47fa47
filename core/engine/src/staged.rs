//! Layers staged for a push: each with where its bytes come from, in manifest order, and the
//! scratch space they need until sent. Produced by `push` for images and by `modelpack_push`
//! for model directories, consumed by `push`; apart from both so neither depends on the other.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use fspack_registry::BlobSource;

use crate::digest_cache::CacheKey;

/// One layer of a push, with where its bytes come from.
pub struct Layer {
    /// Media type.
    pub media_type: String,
    /// Annotations (title, role).
    pub annotations: BTreeMap<String, String>,
    /// The bytes.
    pub source: Arc<dyn BlobSource>,
    /// What the bytes are made of, to find the layer's digest in the store's digest cache
    /// instead of hashing it; `None`: always hashed.
    pub cache_key: Option<CacheKey>,
}

/// The EROFS primary layer of a chunked push, held back until its device layers are hashed: the
/// primary names each device's digest in its device table (issue 13).
pub enum Primary {
    /// Built from a directory: the device digests are written into the planned image.
    Bind(Box<fspack_image::erofs::ErofsImage>),
    /// An image file from `fspack build`: its device tags must match the blobs in `OUT.d/`.
    Check {
        /// The image file.
        path: PathBuf,
        /// The layer to send once the check passed.
        layer: Layer,
    },
}

/// Layers ready to send, with whatever scratch space they need kept alive until then.
pub struct Prepared {
    /// Layers in manifest order (without [`Prepared::primary`], which goes last).
    pub layers: Vec<Layer>,
    /// The EROFS primary of a chunked image, sent after the device layers.
    pub primary: Option<Primary>,
    /// `erofs` or `squashfs`.
    pub format: &'static str,
    /// `single`, `chunked` or `sharded`.
    pub layout: &'static str,
    /// What the user should know about the source that no layer shows (a ModelPack push leaves
    /// out empty directories); `[]` when nothing.
    pub notes: Vec<String>,
    pub(crate) _scratch: Option<Scratch>,
}

impl Prepared {
    /// Layers that need no primary or scratch space (a ModelPack push).
    pub(crate) fn plain(layers: Vec<Layer>, format: &'static str, layout: &'static str) -> Self {
        Prepared {
            layers,
            primary: None,
            format,
            layout,
            notes: Vec::new(),
            _scratch: None,
        }
    }
}

/// A temporary directory removed on drop (SquashFS shards compressed before upload).
pub(crate) struct Scratch {
    pub(crate) dir: PathBuf,
    /// Held, not read: lists `dir` for an interrupt until this is dropped.
    _listed: fspack_atomic::Pending,
}

impl Scratch {
    /// `dir`, removed when this is dropped, and by an interrupt before that
    /// (`fspack_atomic::remove_pending`).
    pub(crate) fn new(dir: PathBuf) -> Scratch {
        let _listed = fspack_atomic::Pending::new(&dir);
        Scratch { dir, _listed }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
