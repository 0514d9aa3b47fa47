//! `fspack build`: walk a directory and write an image (and its data blobs) to disk.

use std::fs;
use std::path::{Path, PathBuf};

use fspack_image::erofs::{self, ErofsImage, ErofsOptions, Layout};
use fspack_image::source::tmp_name;
use fspack_image::squashfs::{self, ShardRules, ShardSpec, SquashfsOptions};
use fspack_image::{Tree, WalkOptions};
use serde::Serialize;

use crate::error::{EngineError, Result};

/// Which filesystem a directory becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageFormat {
    /// EROFS (single image or metadata + data blobs).
    #[default]
    Erofs,
    /// SquashFS (one image or overlay shards).
    Squashfs,
}

/// Everything that shapes an image built from a directory.
#[derive(Debug, Clone, Default)]
pub struct ImageSettings {
    /// The format.
    pub format: ImageFormat,
    /// Walk normalisation (ownership, times).
    pub walk: WalkOptions,
    /// EROFS writer options.
    pub erofs: ErofsOptions,
    /// SquashFS writer options.
    pub squashfs: SquashfsOptions,
    /// SquashFS sharding (`Count(1)`: one image).
    pub shards: ShardSpec,
    /// SquashFS shard thresholds (large files get a shard of their own).
    pub shard_rules: ShardRules,
    /// Largest data blob or shard pack; `None` sizes it from the tree (see [`auto_blob_size`]).
    pub blob_size: Option<u64>,
    /// SquashFS: fail on POSIX ACLs instead of dropping them with a warning.
    pub strict_acls: bool,
}

/// Smallest automatic blob size.
pub const MIN_AUTO_BLOB: u64 = 16 << 20;
/// Largest automatic blob size.
pub const MAX_AUTO_BLOB: u64 = 256 << 20;

/// Blob size for a tree holding `data` bytes: a sixteenth of the data rounded down to a power
/// of two, between 16 MiB and 256 MiB, so a 512 MiB model gives 16 blobs of 32 MiB and a 2 GiB
/// model about 16 of 128 MiB: enough to keep several uploads and downloads busy, and large
/// enough that per-blob round trips stay negligible. Power-of-two steps keep the size (and
/// with it every unchanged large file's blobs) stable while the tree's size drifts.
pub fn auto_blob_size(data: u64) -> u64 {
    let sixteenth = (data / 16).max(1);
    (1u64 << (63 - sixteenth.leading_zeros())).clamp(MIN_AUTO_BLOB, MAX_AUTO_BLOB)
}

#[cfg(test)]
mod tests {
    use super::auto_blob_size;

    #[test]
    fn automatic_blob_sizes_give_about_sixteen_blobs_within_bounds() {
        assert_eq!(auto_blob_size(0), 16 << 20);
        assert_eq!(auto_blob_size(512 << 20), 32 << 20);
        assert_eq!(auto_blob_size((2 << 30) + 12345), 128 << 20);
        assert_eq!(auto_blob_size(100 << 30), 256 << 20);
    }
}

impl ImageSettings {
    /// These settings with blob and shard sizes resolved for `tree`.
    pub fn sized_for(&self, tree: &Tree) -> ImageSettings {
        let mut s = self.clone();
        let blob = self
            .blob_size
            .unwrap_or_else(|| auto_blob_size(tree.data_bytes()))
            .max(s.erofs.chunk_size)
            .next_multiple_of(s.erofs.chunk_size);
        s.erofs.blob_size = blob;
        s.erofs.large_file = (blob / 4).max(s.erofs.chunk_size);
        s.shard_rules = ShardRules {
            large_file: (blob / 4).max(1),
            pack_size: blob,
        };
        s
    }
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
    /// Things the user should know (a tree that could not be sharded, clamped times).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Walks `dir` and plans an EROFS image, reading metadata only.
pub fn plan_erofs(dir: &Path, settings: &ImageSettings) -> Result<ErofsImage> {
    let tree = Tree::walk(dir, &settings.walk)?;
    Ok(erofs::plan(&tree, &settings.sized_for(&tree).erofs)?)
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
    let settings = &settings.sized_for(&tree);
    let image = erofs::plan(&tree, &settings.erofs)?;
    let mut report = BuildReport {
        image: out.to_path_buf(),
        blobs: Vec::new(),
        inodes: image.inodes,
        bytes: 0,
        notes: Vec::new(),
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

/// Builds SquashFS from `dir`: one image at `out`, or (sharded) `OUT.d/shard-NNN.squashfs`,
/// lowest overlay layer first.
pub fn build_squashfs(dir: &Path, out: &Path, settings: &ImageSettings) -> Result<BuildReport> {
    let mut walk = settings.walk.clone();
    walk.forbid_inside.push(absolute(out));
    let (tree, acl_note) = walk_for_squashfs(dir, &walk, settings)?;
    let settings = &settings.sized_for(&tree);
    let mut report = if settings.shards == ShardSpec::Count(1) {
        let r = squashfs::write(&tree, &settings.squashfs, out)?;
        BuildReport {
            image: out.to_path_buf(),
            blobs: Vec::new(),
            inodes: r.inodes,
            bytes: r.bytes,
            notes: r.warnings,
        }
    } else {
        write_shards(&tree, settings, &blob_dir(out))?
    };
    report.notes.splice(0..0, acl_note);
    Ok(report)
}

/// Walks `dir` for a SquashFS image: POSIX ACLs, which the format cannot store, are dropped
/// (or refused with [`ImageSettings::strict_acls`]); returns the tree and the one warning
/// that says what was dropped.
pub fn walk_for_squashfs(
    dir: &Path,
    walk: &WalkOptions,
    settings: &ImageSettings,
) -> Result<(Tree, Option<String>)> {
    let mut tree = Tree::walk(dir, walk)?;
    let dropped = squashfs::acl::drop_acls(&mut tree, settings.strict_acls)?;
    Ok((tree, dropped.warning()))
}

/// Writes the SquashFS shards of `tree` into `dir`.
pub fn write_shards(tree: &Tree, settings: &ImageSettings, dir: &Path) -> Result<BuildReport> {
    let r = squashfs::write_shards_report(
        tree,
        &settings.squashfs,
        settings.shards,
        &settings.shard_rules,
        dir,
    )?;
    let mut notes: Vec<String> = r
        .reports
        .iter()
        .flat_map(|x| x.warnings.iter().cloned())
        .collect();
    notes.extend(r.note);
    Ok(BuildReport {
        image: dir.to_path_buf(),
        inodes: tree.inodes.len() as u64,
        bytes: r.reports.iter().map(|x| x.bytes).sum(),
        blobs: r.shards,
        notes,
    })
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
