//! The SquashFS walk: superblock and table positions, then every directory from the root
//! following the same metadata references the kernel follows (`fs/squashfs/`: a directory
//! entry names its inode by metadata block and offset, not by number), every inode, its block
//! list and fragment, the id, fragment, xattr-id and export tables. Metadata blocks are
//! decompressed with the same codecs the writer uses, capped at 8 KiB each.
//!
//! Written here rather than taken from a reader crate because the check must follow inode
//! references exactly as the kernel does; a reader that looks inodes up by number would pass
//! an image whose references point elsewhere.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

use super::reader::{Img, le16, le32, le64};

mod inode;
mod listing;
mod tables;
use crate::error::Result;

const MAGIC: u32 = 0x7371_7368;
const META_SIZE: usize = 8192;
const META_UNCOMPRESSED: u16 = 0x8000;
const DATA_UNCOMPRESSED: u32 = 1 << 24;
const INVALID: u64 = u64::MAX;
const NO_FRAGMENT: u32 = u32::MAX;
const FLAG_COMPRESSOR_OPTIONS: u16 = 0x0400;
const DIR_COUNT: u32 = 256;
const NAME_LEN: usize = 256;

/// What the walk saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SquashfsCheck {
    /// Distinct inodes read.
    pub inodes: u64,
    /// Directories whose listings were read.
    pub directories: u64,
    /// Directory entries (a hard link counts once per name).
    pub entries: u64,
    /// Data blocks whose position and size were checked.
    pub blocks: u64,
}

struct Sb {
    block_size: u64,
    compressor: u16,
    id_count: u64,
    bytes_used: u64,
    inode_table: u64,
    dir_table: u64,
    frag_count: u64,
    xattr_ids: Option<u64>,
}

struct Walker<'a> {
    img: &'a Img,
    sb: Sb,
    /// Decompressed metadata blocks by absolute position: (bytes, position of the next block).
    cache: HashMap<u64, (Vec<u8>, u64)>,
    fragments: Vec<(u64, u32)>,
}

/// Walks the SquashFS image at `path`; fails with [`crate::Error::Check`] naming the rule.
///
/// Checks: magic, version 4.0, block size a power of two in 4 KiB..1 MiB agreeing with its log,
/// a known compressor, `bytes_used` within the file, tables in order and inside `bytes_used`,
/// every metadata block inside its table and decompressing to at most 8 KiB, the xattr-id,
/// id, export and fragment tables chained as the kernel's mount reads them (see
/// `Walker::tables`), every fragment inside the image, the root a directory, every directory
/// listing (header counts, name lengths, names without `/` in strictly ascending order, the
/// directory index agreeing with the headers) and every inode it names (type agreeing with
/// the entry and with the mode's type bits, its number non-zero, unique and equal to the
/// entry's, id indexes in range, block lists and fragments inside the image, xattr ids in
/// range), no directory reachable twice.
///
/// Errors: [`crate::Error::Check`] naming the rule (`superblock`, `table positions`,
/// `id table`, `export table`, `fragment table`, `xattr table`, `inode`, `inode number`,
/// `directory listing`, `directory order`, `directory index`, `dirent name`, `dirent type`,
/// `directory graph`, `block list`, `fragment`, `symlink`, `root inode`), or an I/O error
/// reading `path`.
pub fn check_squashfs(path: &Path) -> Result<SquashfsCheck> {
    let img = Img::open(path)?;
    let sb = superblock(&img)?;
    let root = le64(&img.read("superblock", 0, 96)?, 32);
    let mut w = Walker {
        img: &img,
        sb,
        cache: HashMap::new(),
        fragments: Vec::new(),
    };
    w.tables()?;
    let mut out = SquashfsCheck::default();
    let root_ino = w.inode(root, "/")?;
    if !matches!(root_ino.kind, 1 | 8) {
        return Err(img.bad(
            "root inode",
            format!("root inode has type {}", root_ino.kind),
        ));
    }
    let mut seen_dirs: HashSet<u64> = HashSet::from([root]);
    // The kernel caches inodes by number (iget_locked): two inodes under one number would
    // show one in place of the other, and a name whose number disagrees with its inode's
    // would show whichever inode was cached first.
    let mut number_of: HashMap<u64, u32> = HashMap::from([(root, root_ino.number)]);
    let mut inode_of: HashMap<u32, u64> = HashMap::from([(root_ino.number, root)]);
    out.inodes = 1;
    out.blocks += root_ino.blocks;
    let mut stack = vec![(root_ino, "/".to_string())];
    while let Some((dir, path)) = stack.pop() {
        out.directories += 1;
        for d in w.listing(&dir, &path)? {
            out.entries += 1;
            let child_path = format!(
                "{}/{}",
                path.trim_end_matches('/'),
                String::from_utf8_lossy(&d.name)
            );
            if d.kind == 1 && !seen_dirs.insert(d.iref) {
                return Err(img.bad(
                    "directory graph",
                    format!("{child_path}: directory inode reachable twice"),
                ));
            }
            let number = match number_of.get(&d.iref) {
                Some(&n) => n,
                None => {
                    let child = w.inode(d.iref, &child_path)?;
                    out.inodes += 1;
                    out.blocks += child.blocks;
                    let basic = if child.kind > 7 {
                        child.kind - 7
                    } else {
                        child.kind
                    };
                    if basic != d.kind {
                        return Err(img.bad(
                            "dirent type",
                            format!(
                                "{child_path}: entry type {} but the inode has type {}",
                                d.kind, child.kind
                            ),
                        ));
                    }
                    if let Some(other) = inode_of.insert(child.number, d.iref) {
                        return Err(img.bad(
                            "inode number",
                            format!(
                                "{child_path}: inode number {} is also the inode at {other:#x}'s",
                                child.number
                            ),
                        ));
                    }
                    number_of.insert(d.iref, child.number);
                    let number = child.number;
                    if d.kind == 1 {
                        stack.push((child, child_path.clone()));
                    }
                    number
                }
            };
            if number != d.number {
                return Err(img.bad(
                    "inode number",
                    format!(
                        "{child_path}: the entry says inode number {}, the inode {number}",
                        d.number
                    ),
                ));
            }
        }
    }
    Ok(out)
}

fn superblock(img: &Img) -> Result<Sb> {
    let b = img.read("superblock", 0, 96)?;
    let bad = |d: String| img.bad("superblock", d);
    if le32(&b, 0) != MAGIC {
        return Err(bad("no SquashFS magic".into()));
    }
    if (le16(&b, 28), le16(&b, 30)) != (4, 0) {
        return Err(bad(format!("version {}.{}", le16(&b, 28), le16(&b, 30))));
    }
    let block_size = le32(&b, 12);
    let block_log = le16(&b, 22);
    if !block_size.is_power_of_two()
        || !(4096..=1 << 20).contains(&block_size)
        || block_size.trailing_zeros() != u32::from(block_log)
    {
        return Err(bad(format!("block size {block_size} with log {block_log}")));
    }
    let compressor = le16(&b, 20);
    if !matches!(compressor, 1 | 3..=6) {
        return Err(bad(format!("compressor id {compressor} is not supported")));
    }
    let bytes_used = le64(&b, 40);
    if bytes_used > img.len {
        return Err(bad(format!(
            "bytes_used {bytes_used} is beyond the image ({} bytes)",
            img.len
        )));
    }
    let (id_table, xattr_table, inode_table, dir_table, frag_table, export_table) = (
        le64(&b, 48),
        le64(&b, 56),
        le64(&b, 64),
        le64(&b, 72),
        le64(&b, 80),
        le64(&b, 88),
    );
    if !(96 <= inode_table && inode_table < dir_table && dir_table < bytes_used) {
        return Err(img.bad(
            "table positions",
            format!("inode table at {inode_table}, directory table at {dir_table}"),
        ));
    }
    for (name, at) in [
        ("id", id_table),
        ("xattr id", xattr_table),
        ("fragment", frag_table),
        ("export", export_table),
    ] {
        if at != INVALID && (at < dir_table || at >= bytes_used) {
            return Err(img.bad(
                "table positions",
                format!("{name} table at {at} lies outside {dir_table}..{bytes_used}"),
            ));
        }
    }
    if id_table == INVALID {
        return Err(img.bad("table positions", "no id table"));
    }
    Ok(Sb {
        block_size: u64::from(block_size),
        compressor,
        id_count: u64::from(le16(&b, 26)),
        bytes_used,
        inode_table,
        dir_table,
        frag_count: u64::from(le32(&b, 16)),
        // Resolved in `tables` (the count sits in the xattr id table's header).
        xattr_ids: (xattr_table != INVALID).then_some(xattr_table),
    })
    .and_then(|sb| {
        if le16(&b, 24) & FLAG_COMPRESSOR_OPTIONS != 0 {
            // The options block follows the superblock; it must at least be in bounds.
            let h = le16(&img.read("compressor options", 96, 2)?, 0);
            if usize::from(h & !META_UNCOMPRESSED) > META_SIZE {
                return Err(img.bad("compressor options", "oversized options block"));
            }
        }
        Ok(sb)
    })
}

/// Where a table's index must end (see [`Walker::index`]).
#[derive(Clone, Copy)]
enum Fit {
    /// At exactly this position.
    Exact(u64),
    /// At or before this position.
    Within(u64),
}

/// A directory entry as readdir reports it.
struct Dirent {
    name: Vec<u8>,
    /// Where the inode is: metadata block (relative to the inode table) << 16 | offset.
    iref: u64,
    kind: u16,
    /// The inode number the kernel looks the inode up by in its cache.
    number: u32,
}

struct Inode {
    kind: u16,
    /// The inode number the kernel caches the inode under.
    number: u32,
    /// Directory: (block, offset, listing size) in the directory table.
    dir: Option<(u64, u16, u64)>,
    /// Extended directory: its index (listing position, block, first name) of headers.
    dir_index: Vec<(u64, u64, Vec<u8>)>,
    /// Data blocks checked (files).
    blocks: u64,
}

impl Walker<'_> {
    /// Decompresses the metadata block at absolute `pos`, which must lie in `lo..hi`.
    fn block(
        &mut self,
        check: &'static str,
        pos: u64,
        lo: u64,
        hi: u64,
    ) -> Result<&(Vec<u8>, u64)> {
        if !self.cache.contains_key(&pos) {
            if pos < lo || pos.saturating_add(2) > hi {
                return Err(self.img.bad(
                    check,
                    format!("metadata block at {pos} lies outside its table ({lo}..{hi})"),
                ));
            }
            let h = le16(&self.img.read(check, pos, 2)?, 0);
            let len = u64::from(h & !META_UNCOMPRESSED);
            if len == 0 || len as usize > META_SIZE || pos + 2 + len > hi {
                return Err(self
                    .img
                    .bad(check, format!("metadata block at {pos} claims {len} bytes")));
            }
            let raw = self.img.read(check, pos + 2, len as usize)?;
            let data = if h & META_UNCOMPRESSED != 0 {
                raw
            } else {
                decompress(self.sb.compressor, &raw, META_SIZE).map_err(|e| {
                    self.img.bad(
                        check,
                        format!("metadata block at {pos} does not decompress: {e}"),
                    )
                })?
            };
            if self.cache.len() > 4096 {
                self.cache.clear();
            }
            self.cache.insert(pos, (data, pos + 2 + len));
        }
        Ok(&self.cache[&pos])
    }

    /// `len` bytes of metadata starting at block `pos` (absolute), byte `offset`, continuing
    /// into the following blocks as the kernel's `squashfs_read_metadata` does.
    fn meta(
        &mut self,
        check: &'static str,
        mut pos: u64,
        mut offset: usize,
        mut len: usize,
        (lo, hi): (u64, u64),
    ) -> Result<(Vec<u8>, u64, usize)> {
        let mut out = Vec::with_capacity(len);
        let img = self.img;
        loop {
            let (data, next) = self.block(check, pos, lo, hi)?;
            if offset > data.len() {
                return Err(img.bad(
                    check,
                    format!("offset {offset} past a {}-byte metadata block", data.len()),
                ));
            }
            let take = (data.len() - offset).min(len);
            out.extend_from_slice(&data[offset..offset + take]);
            len -= take;
            offset += take;
            if len == 0 {
                return Ok((out, pos, offset));
            }
            pos = *next;
            offset = 0;
        }
    }

    fn inode_bounds(&self) -> (u64, u64) {
        (self.sb.inode_table, self.sb.dir_table)
    }
}

/// Decompresses one metadata block with the image's compressor, refusing output over `max`.
fn decompress(compressor: u16, raw: &[u8], max: usize) -> std::result::Result<Vec<u8>, String> {
    let capped = |r: &mut dyn Read| -> std::result::Result<Vec<u8>, String> {
        let mut out = Vec::new();
        r.take(max as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| e.to_string())?;
        if out.len() > max {
            return Err(format!("more than {max} bytes"));
        }
        Ok(out)
    };
    match compressor {
        1 => capped(&mut flate2::read::ZlibDecoder::new(raw)),
        3 => lzokay_native::decompress_all(raw, None)
            .map_err(|e| format!("{e:?}"))
            .and_then(|v| {
                if v.len() > max {
                    Err(format!("more than {max} bytes"))
                } else {
                    Ok(v)
                }
            }),
        4 => capped(&mut liblzma::read::XzDecoder::new(raw)),
        5 => {
            let mut out = vec![0u8; max];
            let n = lz4_flex::block::decompress_into(raw, &mut out).map_err(|e| e.to_string())?;
            out.truncate(n);
            Ok(out)
        }
        6 => capped(&mut zstd::stream::read::Decoder::new(raw).map_err(|e| e.to_string())?),
        _ => Err(format!("compressor id {compressor}")),
    }
}
