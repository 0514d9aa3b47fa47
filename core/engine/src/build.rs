//! `fspack build`: walk a directory and write an image (and its data blobs) to disk.

use std::fs;
use std::path::{Path, PathBuf};

use fspack_image::erofs::{self, ErofsImage, ErofsOptions, Layout};
use fspack_image::source::tmp_name;
use fspack_image::{Tree, WalkOptions};
use serde::Serialize;

use crate::error::{EngineError, Result};

/// Everything that shapes an image built from a directory.
#[derive(Debug, Clone, Default)]
pub struct ImageSettings {
    /// Walk normalisation (ownership, times).
    pub walk: WalkOptions,
    /// EROFS writer options.
    pub erofs: ErofsOptions,
}

/// What a build wrote.
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// Primary image path.
    pub image: PathBuf,
    /// Data blob paths (chunked layout), in device order.
    pub blobs: Vec<PathBuf>,
    /// Inodes in the image.
    pub inodes: u64,
    /// Total bytes written (image and blobs).
    pub bytes: u64,
}

/// Walks `dir` and plans an EROFS image, reading metadata only.
pub fn plan_erofs(dir: &Path, settings: &ImageSettings) -> Result<ErofsImage> {
    let tree = Tree::walk(dir, &settings.walk)?;
    Ok(erofs::plan(&tree, &settings.erofs)?)
}

/// Directory that receives the data blobs of a chunked image written to `out`.
pub fn blob_dir(out: &Path) -> PathBuf {
    let mut name = out
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".d");
    out.with_file_name(name)
}

/// Builds an EROFS image of `dir` at `out`; data blobs of the chunked layout go to `OUT.d/`.
///
/// Blobs are written to a temporary directory and renamed into place before the image itself,
/// so a failed build leaves neither a half-written image nor a blob directory that does not match.
pub fn build_erofs(dir: &Path, out: &Path, settings: &ImageSettings) -> Result<BuildReport> {
    let mut walk = settings.walk.clone();
    walk.forbid_inside.push(absolute(out));
    let tree = Tree::walk(dir, &walk)?;
    let image = erofs::plan(&tree, &settings.erofs)?;
    let mut report = BuildReport {
        image: out.to_path_buf(),
        blobs: Vec::new(),
        inodes: image.inodes,
        bytes: 0,
    };
    if settings.erofs.layout == Layout::Chunked {
        let final_dir = blob_dir(out);
        let tmp_dir = tmp_name(&final_dir);
        let _ = fs::remove_dir_all(&tmp_dir);
        fs::create_dir_all(&tmp_dir).map_err(|e| EngineError::io(&tmp_dir, e))?;
        let written = (|| -> Result<()> {
            for blob in &image.blobs {
                blob.write_file(&tmp_dir.join(&blob.name))?;
                report.bytes += blob.len();
                report.blobs.push(final_dir.join(&blob.name));
            }
            if final_dir.exists() {
                fs::remove_dir_all(&final_dir).map_err(|e| EngineError::io(&final_dir, e))?;
            }
            fs::rename(&tmp_dir, &final_dir).map_err(|e| EngineError::io(&final_dir, e))
        })();
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&tmp_dir);
            return Err(e);
        }
    } else if blob_dir(out).is_dir() {
        // A stale blob directory from an earlier chunked build would no longer match the image.
        let stale = blob_dir(out);
        fs::remove_dir_all(&stale).map_err(|e| EngineError::io(&stale, e))?;
    }
    image.meta.write_file(out)?;
    report.bytes += image.meta.len();
    Ok(report)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}
