//! Sharded output: the tree split into disjoint sets of files, each written as a complete
//! SquashFS image, so shards can be pushed in parallel and stacked read-only with overlayfs.
//!
//! Order and stacking: shards are named `shard-000.squashfs`, `shard-001.squashfs`, … lowest
//! layer first. Mount them with the highest number first in `lowerdir` (overlayfs lists the top
//! layer first): `lowerdir=/m/shard-002:/m/shard-001:/m/shard-000`.
//!
//! Rules:
//! - every non-directory inode lands in exactly one shard, with all of its names, so hardlinks
//!   stay one inode (same `st_ino`, right `st_nlink`);
//! - the top shard (the last) holds every directory of the source with its real attributes and
//!   xattrs. overlayfs shows a merged directory with the attributes of its topmost copy, so the
//!   copies of ancestor directories in lower shards are written with fixed, neutral attributes
//!   (0755, 0:0, mtime 0, no xattrs). A lower shard therefore depends only on its own files and
//!   their paths: an unchanged large file gives a byte-identical shard even when its siblings or
//!   its directories' times change;
//! - files with identical contents land in the shard of the first copy (in tree order): the
//!   writer shares data only within one image, so copies split across shards would each be
//!   stored in full, and a stack of shards would hold more than one unsharded image does;
//! - [`ShardSpec::Auto`]: each file of at least [`ShardRules::large_file`] bytes gets a shard of
//!   its own (lowest first, in tree order), together with its copies; the other entries are
//!   packed in tree order into shards of about [`ShardRules::pack_size`] bytes, a copy counting
//!   no bytes; the last pack is the top shard;
//! - [`ShardSpec::Count`]: at most `n` shards balanced by bytes (largest content first into the
//!   lightest shard, each content counted once); this evens out parallel uploads but does not
//!   keep shards stable across edits.
//!
//! Whiteout hazard: overlayfs reads a 0:0 character device as a whiteout and `trusted.overlay.*`
//! (or, with `userxattr`, `user.overlay.*`) xattrs as its own markers, in lower layers too, so a
//! tree holding them would lose or change files when stacked. Such a tree is written as one
//! unsharded image and [`ShardsReport::note`] says why: a user's file never silently vanishes.

use std::path::{Path, PathBuf};

use super::{SquashfsOptions, SquashfsReport, write};
use crate::error::{Error, Result};
use crate::tree::{Entry, Inode, InodeId, Kind, Tree};

/// How many shards to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShardSpec {
    /// Large files alone, the rest in packs of about [`ShardRules::pack_size`].
    #[default]
    Auto,
    /// At most this many shards, balanced by size.
    Count(usize),
}

/// Thresholds of [`ShardSpec::Auto`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRules {
    /// Files of at least this many bytes get a shard of their own.
    pub large_file: u64,
    /// Target bytes of file data per pack shard.
    pub pack_size: u64,
}

/// Default large-file threshold (same as the EROFS chunked layout).
pub const DEFAULT_LARGE_FILE: u64 = 64 << 20;
/// Default pack size.
pub const DEFAULT_PACK_SIZE: u64 = 256 << 20;

impl Default for ShardRules {
    fn default() -> Self {
        ShardRules {
            large_file: DEFAULT_LARGE_FILE,
            pack_size: DEFAULT_PACK_SIZE,
        }
    }
}

/// What [`write_shards_report`] produced.
#[derive(Debug, Clone, Default)]
pub struct ShardsReport {
    /// Shard images, lowest layer first.
    pub shards: Vec<PathBuf>,
    /// The report of each shard, in the same order.
    pub reports: Vec<SquashfsReport>,
    /// Why the tree was not sharded, when it could not be.
    pub note: Option<String>,
}

/// Most shards fspack writes: overlayfs stacks at most 500 lower layers (`OVL_MAX_STACK` in
/// `fs/overlayfs/params.h`; the kernel answers "too many lower directories, limit is 500"), and
/// fspack must be able to mount whatever it publishes (issue 11).
pub const MAX_SHARDS: usize = 500;

/// File name of shard `i`.
pub fn shard_name(i: usize) -> String {
    format!("shard-{i:03}.squashfs")
}

/// Why `tree` cannot be stacked from shards (an entry overlayfs would treat as its own marker),
/// naming the first such path; `None` when sharding is safe.
pub fn shard_hazard(tree: &Tree) -> Option<String> {
    for inode in &tree.inodes {
        if let Kind::CharDev { rdev: 0 } = inode.kind {
            return Some(format!(
                "/{} is a 0:0 character device, which overlayfs reads as a whiteout; wrote one unsharded image instead",
                inode.path.display()
            ));
        }
        if let Some((name, _)) = inode
            .xattrs
            .iter()
            .find(|(n, _)| n.starts_with(b"trusted.overlay.") || n.starts_with(b"user.overlay."))
        {
            return Some(format!(
                "/{} has the xattr {}, which overlayfs interprets; wrote one unsharded image instead",
                inode.path.display(),
                String::from_utf8_lossy(name)
            ));
        }
    }
    None
}

/// Writes `tree` as shards `shard-000.squashfs`, … (lowest overlay layer first) into `out_dir`
/// with the default [`ShardRules`]; returns their paths. See [`write_shards_report`].
pub fn write_shards(
    tree: &Tree,
    opts: &SquashfsOptions,
    shards: ShardSpec,
    out_dir: &Path,
) -> Result<Vec<PathBuf>> {
    let r = write_shards_report(tree, opts, shards, &ShardRules::default(), out_dir)?;
    if let Some(note) = &r.note {
        tracing::warn!("{note}");
    }
    Ok(r.shards)
}

/// Writes the shards of `tree` into `out_dir` (created if missing), each atomically, and removes
/// stale `shard-NNN.squashfs` files of an earlier, larger set.
pub fn write_shards_report(
    tree: &Tree,
    opts: &SquashfsOptions,
    shards: ShardSpec,
    rules: &ShardRules,
    out_dir: &Path,
) -> Result<ShardsReport> {
    opts.validate()?;
    let note = shard_hazard(tree);
    let sets = if note.is_some() {
        Vec::new()
    } else {
        plan(tree, shards, rules)?
    };
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let mut report = ShardsReport {
        note,
        ..Default::default()
    };
    if sets.len() <= 1 {
        let path = out_dir.join(shard_name(0));
        report.reports.push(write(tree, opts, &path)?);
        report.shards.push(path);
    } else {
        let top = sets.len() - 1;
        for (i, set) in sets.iter().enumerate() {
            let sub = subset(tree, set, i == top);
            let path = out_dir.join(shard_name(i));
            report.reports.push(write(&sub, opts, &path)?);
            report.shards.push(path);
        }
    }
    remove_stale(out_dir, report.shards.len())?;
    Ok(report)
}

fn remove_stale(out_dir: &Path, keep: usize) -> Result<()> {
    let rd = std::fs::read_dir(out_dir).map_err(|e| Error::io(out_dir, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| Error::io(out_dir, e))?;
        let name = ent.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(num) = name
            .strip_prefix("shard-")
            .and_then(|s| s.strip_suffix(".squashfs"))
        else {
            continue;
        };
        let ours = num.len() >= 3 && num.bytes().all(|b| b.is_ascii_digit());
        if ours && num.parse::<usize>().is_ok_and(|i| i >= keep) {
            let p = ent.path();
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

fn leaf_size(inode: &Inode) -> u64 {
    match inode.kind {
        Kind::File { size, .. } => size,
        _ => 0,
    }
}

/// For each inode, the first regular file (in inode order) with identical contents, if any.
///
/// Errors: a source file that cannot be read or changed since the walk (see [`crate::dedup`]).
fn copies(tree: &Tree) -> Result<Vec<Option<InodeId>>> {
    crate::dedup::inode_duplicates(tree, |_| true)
}

/// Non-directory inodes of each shard, lowest first; the last set is the top shard.
fn plan(tree: &Tree, spec: ShardSpec, rules: &ShardRules) -> Result<Vec<Vec<InodeId>>> {
    if let ShardSpec::Count(n) = spec
        && (n == 0 || n > MAX_SHARDS)
    {
        return Err(Error::InvalidOption(format!(
            "{n} shards: fspack mounts SquashFS shards with overlayfs, which stacks at most {MAX_SHARDS} lower layers\nhint: use --shards {MAX_SHARDS} or fewer, or --shards auto"
        )));
    }
    let copy_of = copies(tree)?;
    plan_with_copies(tree, spec, rules, &copy_of)
}

/// [`plan`] given each inode's first identical copy (`copy_of[id]`, earlier in inode order):
/// a copy joins the set of its original, so the shard's writer stores the contents once.
fn plan_with_copies(
    tree: &Tree,
    spec: ShardSpec,
    rules: &ShardRules,
    copy_of: &[Option<InodeId>],
) -> Result<Vec<Vec<InodeId>>> {
    let leaves: Vec<InodeId> = (0..tree.inodes.len())
        .filter(|&i| !tree.inodes[i].is_dir())
        .collect();
    match spec {
        ShardSpec::Auto => {
            // Which set holds each original: (large-file set or pack, index).
            let mut home: Vec<Option<(bool, usize)>> = vec![None; tree.inodes.len()];
            let mut sets: Vec<Vec<InodeId>> = Vec::new();
            let mut packs: Vec<Vec<InodeId>> = vec![Vec::new()];
            let mut fill = 0u64;
            for &l in &leaves {
                if let Some((large, i)) = copy_of[l].and_then(|o| home[o]) {
                    if large {
                        sets[i].push(l);
                    } else {
                        packs[i].push(l);
                    }
                    continue;
                }
                let size = leaf_size(&tree.inodes[l]);
                if size >= rules.large_file {
                    home[l] = Some((true, sets.len()));
                    sets.push(vec![l]);
                    continue;
                }
                let cur = packs.last_mut().expect("one pack");
                if !cur.is_empty() && fill + size > rules.pack_size {
                    packs.push(Vec::new());
                    fill = 0;
                }
                home[l] = Some((false, packs.len() - 1));
                packs.last_mut().expect("one pack").push(l);
                fill += size;
            }
            sets.extend(packs);
            if sets.len() > MAX_SHARDS {
                // More large files than overlayfs can stack: balance them into the most shards
                // it takes rather than refuse a tree the user did not ask to split finely.
                return plan_with_copies(tree, ShardSpec::Count(MAX_SHARDS), rules, copy_of);
            }
            Ok(sets)
        }
        ShardSpec::Count(n) => {
            // One unit per contents: an original and its copies, weighed once.
            let mut units: Vec<Vec<InodeId>> = Vec::new();
            let mut unit_of = vec![usize::MAX; tree.inodes.len()];
            for &l in &leaves {
                match copy_of[l] {
                    Some(o) if unit_of[o] != usize::MAX => units[unit_of[o]].push(l),
                    _ => {
                        unit_of[l] = units.len();
                        units.push(vec![l]);
                    }
                }
            }
            let weight = |u: &Vec<InodeId>| leaf_size(&tree.inodes[u[0]]);
            let mut by_size: Vec<usize> = (0..units.len()).collect();
            by_size.sort_by_key(|&u| (std::cmp::Reverse(weight(&units[u])), units[u][0]));
            let mut bins: Vec<(u64, Vec<InodeId>)> = vec![(0, Vec::new()); n];
            for u in by_size {
                let lightest = (0..n).min_by_key(|&b| (bins[b].0, b)).expect("n >= 1");
                bins[lightest].0 += weight(&units[u]);
                bins[lightest].1.extend_from_slice(&units[u]);
            }
            let mut sets: Vec<Vec<InodeId>> = bins
                .into_iter()
                .map(|(_, mut v)| {
                    v.sort_unstable();
                    v
                })
                .filter(|v| !v.is_empty())
                .collect();
            if sets.is_empty() {
                sets.push(Vec::new());
            }
            Ok(sets)
        }
    }
}

/// The part of `tree` a shard holds: the given leaves with all their names, and either every
/// directory with real attributes (`top`) or just their ancestors with neutral ones.
fn subset(tree: &Tree, leaves: &[InodeId], top: bool) -> Tree {
    let n = tree.inodes.len();
    let mut keep = vec![false; n];
    for &l in leaves {
        keep[l] = true;
    }
    // Breadth-first ids put children after parents, so one backward pass marks ancestors.
    for d in (0..n).rev() {
        if tree.inodes[d].is_dir() {
            keep[d] = top || d == Tree::ROOT || tree.entries(d).iter().any(|e| keep[e.inode]);
        }
    }
    let mut new_id = vec![usize::MAX; n];
    let mut order = vec![Tree::ROOT];
    new_id[Tree::ROOT] = 0;
    let mut i = 0;
    while i < order.len() {
        for e in tree.entries(order[i]) {
            if keep[e.inode] && new_id[e.inode] == usize::MAX {
                new_id[e.inode] = order.len();
                order.push(e.inode);
            }
        }
        i += 1;
    }
    let inodes = order
        .iter()
        .map(|&old| {
            let src = &tree.inodes[old];
            let mut inode = match &src.kind {
                Kind::Dir { entries } => {
                    let entries: Vec<Entry> = entries
                        .iter()
                        .filter(|e| keep[e.inode])
                        .map(|e| Entry {
                            name: e.name.clone(),
                            inode: new_id[e.inode],
                        })
                        .collect();
                    let subdirs = entries
                        .iter()
                        .filter(|e| tree.inodes[order[e.inode]].is_dir())
                        .count() as u32;
                    let mut d = Inode {
                        kind: Kind::Dir { entries },
                        nlink: 2 + subdirs,
                        ..attrs_only(src)
                    };
                    if !top {
                        d.perm = 0o755;
                        d.uid = 0;
                        d.gid = 0;
                        d.mtime = 0;
                        d.mtime_nsec = 0;
                        d.xattrs.clear();
                    }
                    d
                }
                _ => src.clone(),
            };
            inode.path = src.path.clone();
            inode
        })
        .collect();
    Tree {
        inodes,
        root: tree.root.clone(),
    }
}

/// A copy of an inode's attributes with a placeholder kind, to avoid cloning a large entry list.
fn attrs_only(src: &Inode) -> Inode {
    Inode {
        kind: Kind::Fifo,
        perm: src.perm,
        uid: src.uid,
        gid: src.gid,
        mtime: src.mtime,
        mtime_nsec: src.mtime_nsec,
        xattrs: src.xattrs.clone(),
        nlink: src.nlink,
        path: src.path.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn leaf(kind: Kind, path: &str) -> Inode {
        Inode {
            kind,
            perm: 0o644,
            uid: 1,
            gid: 1,
            mtime: 5,
            mtime_nsec: 0,
            xattrs: vec![],
            nlink: 1,
            path: PathBuf::from(path),
        }
    }

    fn file(size: u64, path: &str) -> Inode {
        leaf(
            Kind::File {
                source: PathBuf::from(path),
                size,
                extents: None,
                stamp: Default::default(),
            },
            path,
        )
    }

    /// root { a/ { big, small }, b/ { tiny, link-to-small } }
    fn sample() -> Tree {
        let e = |name: &str, inode| Entry {
            name: name.as_bytes().to_vec(),
            inode,
        };
        let dir = |entries, path: &str| {
            let mut d = leaf(Kind::Dir { entries }, path);
            d.perm = 0o700;
            d.mtime = 99;
            d
        };
        let mut small = file(10, "a/small");
        small.nlink = 2;
        Tree {
            inodes: vec![
                dir(vec![e("a", 1), e("b", 2)], ""),
                dir(vec![e("big", 3), e("small", 4)], "a"),
                dir(vec![e("link", 4), e("tiny", 5)], "b"),
                file(100, "a/big"),
                small,
                file(1, "b/tiny"),
            ],
            root: PathBuf::from("/src"),
        }
    }

    #[test]
    fn auto_puts_large_files_alone_and_keeps_hardlinks_together() {
        let t = sample();
        let rules = ShardRules {
            large_file: 50,
            pack_size: 1000,
        };
        let sets = plan(&t, ShardSpec::Auto, &rules).unwrap();
        assert_eq!(sets, vec![vec![3], vec![4, 5]]);
        let low = subset(&t, &sets[0], false);
        // root, a, big: b is not needed, and a gets neutral attributes.
        assert_eq!(low.inodes.len(), 3);
        assert_eq!((low.inodes[1].perm, low.inodes[1].mtime), (0o755, 0));
        let top = subset(&t, &sets[1], true);
        // root, a, b, small (once, two names), tiny.
        assert_eq!(top.inodes.len(), 5);
        assert_eq!((top.inodes[1].perm, top.inodes[1].mtime), (0o700, 99));
        let small = top.entries(1)[0].inode;
        assert_eq!(top.entries(2)[0].inode, small);
        assert_eq!(top.inodes[small].nlink, 2);
        assert_eq!(top.inodes[0].nlink, 4);
    }

    #[test]
    fn count_balances_by_size() {
        let t = sample();
        let sets = plan(&t, ShardSpec::Count(2), &ShardRules::default()).unwrap();
        assert_eq!(sets, vec![vec![3], vec![4, 5]]);
        assert!(plan(&t, ShardSpec::Count(0), &ShardRules::default()).is_err());
        let one = plan(&t, ShardSpec::Count(9), &ShardRules::default()).unwrap();
        assert_eq!(one.iter().map(Vec::len).sum::<usize>(), 3);
    }

    #[test]
    fn copies_join_their_original_and_weigh_nothing() {
        let t = sample();
        // Pretend b/tiny (5) holds the same bytes as a/big (3).
        let mut copy_of = vec![None; t.inodes.len()];
        copy_of[5] = Some(3);
        let rules = ShardRules {
            large_file: 50,
            pack_size: 1000,
        };
        let auto = plan_with_copies(&t, ShardSpec::Auto, &rules, &copy_of).unwrap();
        assert_eq!(auto, vec![vec![3, 5], vec![4]]);
        // Counted once, the contents weigh 100 against 10: the copy does not tip the balance.
        let count = plan_with_copies(&t, ShardSpec::Count(2), &rules, &copy_of).unwrap();
        assert_eq!(count, vec![vec![3, 5], vec![4]]);
        // A copy of a packed file joins that pack even after a later pack opened.
        let tight = ShardRules {
            large_file: 1000,
            pack_size: 100,
        };
        let packs = plan_with_copies(&t, ShardSpec::Auto, &tight, &copy_of).unwrap();
        assert_eq!(packs, vec![vec![3, 5], vec![4]]);
    }

    #[test]
    fn whiteout_lookalikes_are_hazards() {
        let mut t = sample();
        assert!(shard_hazard(&t).is_none());
        t.inodes[5].kind = Kind::CharDev { rdev: 0 };
        assert!(shard_hazard(&t).unwrap().contains("/b/tiny"));
        t.inodes[5].kind = Kind::Fifo;
        t.inodes[1]
            .xattrs
            .push((b"trusted.overlay.opaque".to_vec(), b"y".to_vec()));
        assert!(shard_hazard(&t).unwrap().contains("trusted.overlay.opaque"));
    }
}
