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
    /// Things the user should know (a tree that could not be sharded, clamped times); `[]` when
    /// there are none.
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
/// Both are staged first, next to their final names: the blobs in a temporary directory, then
/// the image, whose device table records the digest of each blob as a pushed layer (see
/// [`fspack_image::erofs::check_devices`]). Every source file is read, and every byte written
/// and synced, before anything is renamed, so a failed build (a source file that changed, a
/// full disk) leaves the old `OUT` and `OUT.d/` as they were. The swap itself is two renames:
/// the blob directory is exchanged with the old one (`renameat2(RENAME_EXCHANGE)`), then the
/// image is renamed over the old image; if that rename fails, the old blob directory is
/// exchanged back. Only a crash between the two renames can leave the old image beside the new
/// blobs, and the device tags make fspack refuse that pair at push and at mount (issue 13).
pub fn build_erofs(dir: &Path, out: &Path, settings: &ImageSettings) -> Result<BuildReport> {
    let mut walk = settings.walk.clone();
    walk.forbid_inside.push(absolute(out));
    let tree = Tree::walk(dir, &walk)?;
    let settings = &settings.sized_for(&tree);
    let mut image = erofs::plan(&tree, &settings.erofs)?;
    let mut report = BuildReport {
        image: out.to_path_buf(),
        blobs: Vec::new(),
        inodes: image.inodes,
        bytes: 0,
        notes: Vec::new(),
    };
    let staged_image = tmp_name(out);
    // Listed so that an interrupted build removes it (`fspack_atomic::remove_pending`).
    let _listed_image = fspack_atomic::Pending::new(&staged_image);
    if settings.erofs.layout != Layout::Chunked {
        image.meta.write_file(&staged_image)?;
        report.bytes += image.meta.len();
        rename(&staged_image, out)?;
        // Only now, with the new image in place: a stale blob directory from an earlier chunked
        // build no longer belongs to anything.
        let stale = blob_dir(out);
        if stale.is_dir() {
            fs::remove_dir_all(&stale).map_err(|e| EngineError::io(&stale, e))?;
        }
        return Ok(report);
    }
    let final_dir = blob_dir(out);
    let staged_dir = tmp_name(&final_dir);
    let _listed_dir = fspack_atomic::Pending::new(&staged_dir);
    let _ = fs::remove_dir_all(&staged_dir);
    fs::create_dir_all(&staged_dir).map_err(|e| EngineError::io(&staged_dir, e))?;
    let staged = (|| -> Result<()> {
        let mut digests = Vec::with_capacity(image.blobs.len());
        for blob in &image.blobs {
            let path = staged_dir.join(&blob.name);
            blob.write_file(&path)?;
            digests.push(layer_digest(&path)?);
            report.bytes += blob.len();
            report.blobs.push(final_dir.join(&blob.name));
        }
        image.bind_devices(&digests)?;
        image.meta.write_file(&staged_image)?;
        report.bytes += image.meta.len();
        Ok(())
    })();
    if let Err(e) = staged {
        let _ = fs::remove_dir_all(&staged_dir);
        let _ = fs::remove_file(&staged_image);
        return Err(e);
    }
    // An interrupt waits for the swap: cut in half, it would leave the old image beside the
    // new blobs, or remove the old blobs the old image still needs.
    fspack_atomic::finishing(|| swap_in(&staged_dir, &final_dir, &staged_image, out))?;
    Ok(report)
}

/// Moves a staged blob directory and image into place (see [`build_erofs`] for the order).
fn swap_in(staged_dir: &Path, final_dir: &Path, staged_image: &Path, out: &Path) -> Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    let cleanup = || {
        let _ = fs::remove_dir_all(staged_dir);
        let _ = fs::remove_file(staged_image);
    };
    if !final_dir.exists() {
        rename(staged_dir, final_dir).inspect_err(|_| cleanup())?;
        return rename(staged_image, out).inspect_err(|_| {
            let _ = fs::remove_dir_all(final_dir);
            let _ = fs::remove_file(staged_image);
        });
    }
    // After the exchange, `staged_dir` holds the old blobs until the image is in place.
    exchange_dirs(staged_dir, final_dir).inspect_err(|_| cleanup())?;
    if let Err(e) = rename(staged_image, out) {
        // Put the old blobs back beside the old image.
        let _ = renameat_with(CWD, staged_dir, CWD, final_dir, RenameFlags::EXCHANGE);
        cleanup();
        return Err(e);
    }
    let _ = fs::remove_dir_all(staged_dir);
    Ok(())
}

/// Exchanges the directories `staged_dir` and `final_dir` (`renameat2(RENAME_EXCHANGE)`), so
/// `staged_dir` then names the old contents. On a filesystem without the flag, the old
/// directory is moved aside and the new one in: the same result, with a window of two renames.
///
/// Errors: [`EngineError::Io`] naming the directory a rename failed on; both directories are
/// then as they were, except after a failed rename back in the fallback.
fn exchange_dirs(staged_dir: &Path, final_dir: &Path) -> Result<()> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, staged_dir, CWD, final_dir, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            let aside = tmp_name(&final_dir.with_extension("d-old"));
            let _ = fs::remove_dir_all(&aside);
            rename(final_dir, &aside)?;
            if let Err(e) = rename(staged_dir, final_dir) {
                let _ = fs::rename(&aside, final_dir);
                return Err(e);
            }
            fs::rename(&aside, staged_dir).map_err(|e| EngineError::io(&aside, e))
        }
        Err(e) => Err(EngineError::io(final_dir, e.into())),
    }
}

fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| EngineError::io(to, e))?;
    if let Some(dir) = to.parent().filter(|p| !p.as_os_str().is_empty())
        && let Ok(d) = fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The digest the data blob at `path` gets as a pushed layer: its bytes followed by the chunk
/// index `fspack push` embeds (issue 9), so a device tag written here equals the layer digest a
/// pull stores the blob under.
pub(crate) fn layer_digest(path: &Path) -> Result<fspack_digest::Digest> {
    let src = fspack_registry::FileSource::new(path).map_err(|e| EngineError::io(path, e))?;
    crate::layer_hash::hash_blocking(
        std::sync::Arc::new(src),
        &|_| {},
        crate::layer_hash::IndexMode::Embedded,
    )
    .map(|h| h.digest)
    .map_err(|e| EngineError::io(path, e))
}

/// Builds SquashFS from `dir`: one image at `out`, or (sharded) `OUT.d/shard-NNN.squashfs`,
/// lowest overlay layer first. Shards are written into a staged directory that replaces
/// `OUT.d/` in one exchange once all are written, so a failed or interrupted build leaves the
/// old set whole (s9 fresh-eyes pass: Ctrl-C had left new shards among the old ones).
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
        let final_dir = blob_dir(out);
        let staged_dir = tmp_name(&final_dir);
        let _listed_dir = fspack_atomic::Pending::new(&staged_dir);
        let _ = fs::remove_dir_all(&staged_dir);
        let mut report = write_shards(&tree, settings, &staged_dir).inspect_err(|_| {
            let _ = fs::remove_dir_all(&staged_dir);
        })?;
        fspack_atomic::finishing(|| -> Result<()> {
            if final_dir.exists() {
                exchange_dirs(&staged_dir, &final_dir).inspect_err(|_| {
                    let _ = fs::remove_dir_all(&staged_dir);
                })?;
                // The old shards, now under the staged name.
                let _ = fs::remove_dir_all(&staged_dir);
                Ok(())
            } else {
                rename(&staged_dir, &final_dir).inspect_err(|_| {
                    let _ = fs::remove_dir_all(&staged_dir);
                })
            }
        })?;
        report.image = final_dir.clone();
        for blob in &mut report.blobs {
            if let Some(name) = blob.file_name() {
                *blob = final_dir.join(name);
            }
        }
        report
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
