//! EROFS directory blocks: sorted `erofs_dirent` arrays followed by their names.
//!
//! Every block starts with 12-byte dirents (`nid`, `nameoff`, `file_type`); names follow without
//! terminators and never span blocks. All entries, `.` and `..` included, are sorted by raw bytes
//! across the whole directory because the kernel binary-searches them on lookup. A directory's size
//! ends at its last name, so the last block can be stored inline after the inode.

use super::format::{BLKSZ, DIRENT_SIZE, ft, put16, put64};
use crate::tree::{InodeId, Kind, Tree};

struct DirLayout {
    /// Sorted `(name, target)` including `.` and `..`.
    entries: Vec<(Vec<u8>, InodeId)>,
    /// `[start, end)` entry ranges, one per block.
    blocks: Vec<(usize, usize)>,
    size: u64,
}

/// Block layouts of every directory of a tree, computed from names alone (before nids exist).
pub(super) struct DirLayouts {
    dirs: Vec<Option<DirLayout>>,
}

impl DirLayouts {
    pub(super) fn new(tree: &Tree) -> Self {
        let parents = tree.dir_parents();
        let dirs = tree
            .inodes
            .iter()
            .enumerate()
            .map(|(id, inode)| {
                let Kind::Dir { entries } = &inode.kind else {
                    return None;
                };
                let mut all: Vec<(Vec<u8>, InodeId)> = Vec::with_capacity(entries.len() + 2);
                all.push((b".".to_vec(), id));
                all.push((b"..".to_vec(), parents[id]));
                all.extend(entries.iter().map(|e| (e.name.clone(), e.inode)));
                all.sort_by(|a, b| a.0.cmp(&b.0));
                let mut blocks = Vec::new();
                let mut start = 0;
                let mut used = 0u64;
                for (i, (name, _)) in all.iter().enumerate() {
                    let need = (DIRENT_SIZE + name.len()) as u64;
                    if used + need > BLKSZ {
                        blocks.push((start, i));
                        start = i;
                        used = 0;
                    }
                    used += need;
                }
                blocks.push((start, all.len()));
                let size = (blocks.len() as u64 - 1) * BLKSZ + used;
                Some(DirLayout {
                    entries: all,
                    blocks,
                    size,
                })
            })
            .collect();
        DirLayouts { dirs }
    }

    /// Size in bytes (`i_size`) of directory `id`.
    pub(super) fn size(&self, id: InodeId) -> u64 {
        self.dirs[id].as_ref().map_or(0, |d| d.size)
    }

    /// Encodes directory `id` (full blocks padded with zeros, the last block exact).
    pub(super) fn encode(&self, id: InodeId, tree: &Tree, nid: &dyn Fn(InodeId) -> u64) -> Vec<u8> {
        let d = self.dirs[id].as_ref().expect("a directory");
        let mut out = vec![0u8; d.size as usize];
        for (b, &(start, end)) in d.blocks.iter().enumerate() {
            let base = b * BLKSZ as usize;
            let count = end - start;
            let mut nameoff = count * DIRENT_SIZE;
            for (k, (name, target)) in d.entries[start..end].iter().enumerate() {
                let de = base + k * DIRENT_SIZE;
                put64(&mut out, de, nid(*target));
                put16(&mut out, de + 8, nameoff as u16);
                out[de + 10] = file_type(&tree.inodes[*target].kind);
                out[base + nameoff..base + nameoff + name.len()].copy_from_slice(name);
                nameoff += name.len();
            }
        }
        out
    }
}

fn file_type(kind: &Kind) -> u8 {
    match kind {
        Kind::Dir { .. } => ft::DIR,
        Kind::File { .. } => ft::REG,
        Kind::Symlink { .. } => ft::LNK,
        Kind::CharDev { .. } => ft::CHR,
        Kind::BlockDev { .. } => ft::BLK,
        Kind::Fifo => ft::FIFO,
        Kind::Socket => ft::SOCK,
    }
}

/// Encodes one directory from already sorted `(name, nid, file type)` entries (`.` and `..`
/// included) into blocks of `blksz` bytes, the last block exact. Used by writers whose block
/// size is not the 4 KiB of [`DirLayouts`] (the mapped images of `super::mapped`).
pub(super) fn encode_entries(entries: &[(&[u8], u64, u8)], blksz: u64) -> Vec<u8> {
    let mut blocks: Vec<(usize, usize)> = Vec::new();
    let (mut start, mut used) = (0, 0u64);
    for (i, (name, _, _)) in entries.iter().enumerate() {
        let need = (DIRENT_SIZE + name.len()) as u64;
        if used + need > blksz {
            blocks.push((start, i));
            start = i;
            used = 0;
        }
        used += need;
    }
    blocks.push((start, entries.len()));
    let size = (blocks.len() as u64 - 1) * blksz + used;
    let mut out = vec![0u8; size as usize];
    for (b, &(start, end)) in blocks.iter().enumerate() {
        let base = b * blksz as usize;
        let mut nameoff = (end - start) * DIRENT_SIZE;
        for (k, (name, nid, ft)) in entries[start..end].iter().enumerate() {
            let de = base + k * DIRENT_SIZE;
            put64(&mut out, de, *nid);
            put16(&mut out, de + 8, nameoff as u16);
            out[de + 10] = *ft;
            out[base + nameoff..base + nameoff + name.len()].copy_from_slice(name);
            nameoff += name.len();
        }
    }
    out
}
