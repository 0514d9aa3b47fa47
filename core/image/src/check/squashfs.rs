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
/// every metadata block inside its table and decompressing to at most 8 KiB, the id,
/// fragment, xattr-id and export tables readable, every fragment inside the image, the root
/// a directory, every directory listing (header counts, name lengths, names without `/`) and
/// every inode it names (type agreeing with the entry, id indexes in range, block lists and
/// fragments inside the image, xattr ids in range), no directory reachable twice.
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
    let mut seen: HashSet<u64> = HashSet::from([root]);
    out.inodes = 1;
    out.blocks += root_ino.blocks;
    let mut stack = vec![(root_ino, "/".to_string())];
    while let Some((dir, path)) = stack.pop() {
        out.directories += 1;
        for (name, iref, kind) in w.listing(&dir, &path)? {
            out.entries += 1;
            let child_path = format!(
                "{}/{}",
                path.trim_end_matches('/'),
                String::from_utf8_lossy(&name)
            );
            let fresh = seen.insert(iref);
            if kind == 1 && !seen_dirs.insert(iref) {
                return Err(img.bad(
                    "directory graph",
                    format!("{child_path}: directory inode reachable twice"),
                ));
            }
            if !fresh {
                continue;
            }
            let child = w.inode(iref, &child_path)?;
            out.inodes += 1;
            out.blocks += child.blocks;
            let basic = if child.kind > 7 {
                child.kind - 7
            } else {
                child.kind
            };
            if basic != kind {
                return Err(img.bad(
                    "dirent type",
                    format!(
                        "{child_path}: entry type {kind} but the inode has type {}",
                        child.kind
                    ),
                ));
            }
            if kind == 1 {
                stack.push((child, child_path));
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
        frag_count: if frag_table == INVALID {
            0
        } else {
            u64::from(le32(&b, 16))
        },
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

struct Inode {
    kind: u16,
    /// Directory: (block, offset, listing size) in the directory table.
    dir: Option<(u64, u16, u64)>,
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

    /// Reads and checks the tables addressed by index arrays: ids, fragments, xattr ids.
    fn tables(&mut self) -> Result<()> {
        let b = self.img.read("superblock", 0, 96)?;
        let lo = self.sb.dir_table;
        let hi = self.sb.bytes_used;
        // Id table: ids of 4 bytes, 2048 per metadata block.
        if self.sb.id_count == 0 {
            return Err(self.img.bad("id table", "no ids"));
        }
        let ids = self.index("id table", le64(&b, 48), self.sb.id_count * 4)?;
        self.read_indexed("id table", &ids, self.sb.id_count * 4, (lo, hi))?;
        // Fragment table: entries of 16 bytes.
        if self.sb.frag_count > 0 {
            let idx = self.index("fragment table", le64(&b, 80), self.sb.frag_count * 16)?;
            let raw =
                self.read_indexed("fragment table", &idx, self.sb.frag_count * 16, (lo, hi))?;
            for (i, e) in raw.chunks_exact(16).enumerate() {
                let (start, size) = (le64(e, 0), le32(e, 8));
                let stored = u64::from(size & !DATA_UNCOMPRESSED);
                if size & !DATA_UNCOMPRESSED == 0
                    || stored > self.sb.block_size
                    || start
                        .checked_add(stored)
                        .is_none_or(|end| end > self.sb.bytes_used)
                {
                    return Err(self.img.bad(
                        "fragment table",
                        format!("fragment {i}: {stored} bytes at {start} outside the image"),
                    ));
                }
                self.fragments.push((start, size));
            }
        }
        // Xattr id table: a 16-byte header (kv table start, count), then the index.
        if let Some(at) = self.sb.xattr_ids {
            let h = self.img.read("xattr table", at, 16)?;
            let (kv_start, count) = (le64(&h, 0), u64::from(le32(&h, 8)));
            if kv_start < self.sb.dir_table || kv_start > at {
                return Err(self
                    .img
                    .bad("xattr table", format!("key/value table at {kv_start}")));
            }
            let idx = self.index("xattr table", at + 16, count * 16)?;
            self.read_indexed("xattr table", &idx, count * 16, (kv_start, at))?;
            self.sb.xattr_ids = Some(count);
        }
        Ok(())
    }

    /// Reads an index array of block positions for a table of `bytes` at `at`.
    fn index(&self, check: &'static str, at: u64, bytes: u64) -> Result<Vec<u64>> {
        let n = bytes.div_ceil(META_SIZE as u64);
        if at == INVALID || !self.img.contains(at, n * 8) || at + n * 8 > self.sb.bytes_used {
            return Err(self.img.bad(check, format!("index of {n} blocks at {at}")));
        }
        let raw = self.img.read(check, at, (n * 8) as usize)?;
        Ok(raw.chunks_exact(8).map(|c| le64(c, 0)).collect())
    }

    fn read_indexed(
        &mut self,
        check: &'static str,
        index: &[u64],
        bytes: u64,
        bounds: (u64, u64),
    ) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let img = self.img;
        for (i, &pos) in index.iter().enumerate() {
            let want = (bytes - i as u64 * META_SIZE as u64).min(META_SIZE as u64) as usize;
            let (data, _) = self.block(check, pos, bounds.0, bounds.1)?;
            if data.len() < want {
                return Err(img.bad(
                    check,
                    format!("block {i} holds {} bytes, {want} expected", data.len()),
                ));
            }
            out.extend_from_slice(&data[..want]);
        }
        Ok(out)
    }

    fn inode(&mut self, iref: u64, path: &str) -> Result<Inode> {
        let bounds = self.inode_bounds();
        let (block, offset) = (self.sb.inode_table + (iref >> 16), (iref & 0xffff) as usize);
        let bad = |img: &Img, d: String| img.bad("inode", format!("{path}: {d}"));
        let (h, mut pos, mut off) = self.meta("inode", block, offset, 16, bounds)?;
        let kind = le16(&h, 0);
        let (uid, gid) = (u64::from(le16(&h, 4)), u64::from(le16(&h, 6)));
        if uid >= self.sb.id_count || gid >= self.sb.id_count {
            return Err(bad(
                self.img,
                format!("id index {uid}/{gid} of {}", self.sb.id_count),
            ));
        }
        let mut take = |w: &mut Self, n: usize| -> Result<Vec<u8>> {
            let (b, p, o) = w.meta("inode", pos, off, n, bounds)?;
            pos = p;
            off = o;
            Ok(b)
        };
        let mut xattr = u32::MAX;
        let mut inode = Inode {
            kind,
            dir: None,
            blocks: 0,
        };
        match kind {
            1 => {
                let b = take(self, 16)?;
                inode.dir = Some((u64::from(le32(&b, 0)), le16(&b, 10), u64::from(le16(&b, 8))));
            }
            8 => {
                let b = take(self, 24)?;
                inode.dir = Some((u64::from(le32(&b, 8)), le16(&b, 18), u64::from(le32(&b, 4))));
                xattr = le32(&b, 20);
                for _ in 0..le16(&b, 16) {
                    let e = take(self, 12)?;
                    let n = le32(&e, 8) as usize + 1;
                    if n > NAME_LEN {
                        return Err(bad(self.img, format!("directory index name of {n} bytes")));
                    }
                    take(self, n)?;
                }
            }
            2 | 9 => {
                let (start, size, frag, foff) = if kind == 2 {
                    let b = take(self, 16)?;
                    (
                        u64::from(le32(&b, 0)),
                        u64::from(le32(&b, 12)),
                        le32(&b, 4),
                        u64::from(le32(&b, 8)),
                    )
                } else {
                    let b = take(self, 40)?;
                    xattr = le32(&b, 36);
                    (
                        le64(&b, 0),
                        le64(&b, 8),
                        le32(&b, 28),
                        u64::from(le32(&b, 32)),
                    )
                };
                let bs = self.sb.block_size;
                let n = if frag == NO_FRAGMENT {
                    size.div_ceil(bs)
                } else {
                    size / bs
                };
                // Each block size takes 4 bytes of metadata; more blocks than the image could
                // hold is malformed before it is read.
                if n.saturating_mul(4) > self.sb.bytes_used {
                    return Err(bad(self.img, format!("{n} data blocks for {size} bytes")));
                }
                let mut at = start;
                let mut left = n;
                while left > 0 {
                    let batch = left.min(2048);
                    let sizes = take(self, (batch * 4) as usize)?;
                    for s in sizes.chunks_exact(4) {
                        let s = le32(s, 0);
                        let stored = u64::from(s & !DATA_UNCOMPRESSED);
                        if stored > bs {
                            return Err(self.img.bad(
                                "block list",
                                format!("{path}: a block of {stored} bytes (block size {bs})"),
                            ));
                        }
                        at = at.saturating_add(stored);
                    }
                    left -= batch;
                }
                if (n > 0 && start < 96) || at > self.sb.bytes_used {
                    return Err(self.img.bad(
                        "block list",
                        format!(
                            "{path}: data {start}..{at} lies outside the image's {} bytes",
                            self.sb.bytes_used
                        ),
                    ));
                }
                if frag != NO_FRAGMENT {
                    let tail = size % bs;
                    if u64::from(frag) >= self.fragments.len() as u64
                        || foff.saturating_add(tail) > bs
                        || tail == 0
                    {
                        return Err(self.img.bad(
                            "fragment",
                            format!("{path}: fragment {frag} at offset {foff}"),
                        ));
                    }
                }
                inode.blocks = n;
            }
            3 | 10 => {
                let b = take(self, 8)?;
                let n = le32(&b, 4) as usize;
                if n == 0 || n >= 4096 {
                    return Err(self
                        .img
                        .bad("symlink", format!("{path}: target of {n} bytes")));
                }
                take(self, n)?;
                if kind == 10 {
                    xattr = le32(&take(self, 4)?, 0);
                }
            }
            4 | 5 => {
                take(self, 8)?;
            }
            11 | 12 => {
                xattr = le32(&take(self, 12)?, 8);
            }
            6 | 7 => {
                take(self, 4)?;
            }
            13 | 14 => {
                xattr = le32(&take(self, 8)?, 4);
            }
            _ => return Err(bad(self.img, format!("inode type {kind}"))),
        }
        if xattr != u32::MAX && self.sb.xattr_ids.is_none_or(|n| u64::from(xattr) >= n) {
            return Err(self.img.bad(
                "xattr",
                format!("{path}: xattr id {xattr} beyond the xattr id table"),
            ));
        }
        Ok(inode)
    }

    /// The entries of a directory: `(name, inode reference, basic type)`.
    fn listing(&mut self, dir: &Inode, path: &str) -> Result<Vec<(Vec<u8>, u64, u16)>> {
        let (block, offset, size) = dir.dir.expect("directories carry a listing");
        let bad = |img: &Img, d: String| img.bad("directory listing", format!("{path}: {d}"));
        // The kernel counts 3 bytes for "." and ".." in the size.
        if size < 3 {
            return Err(bad(self.img, format!("listing size {size}")));
        }
        let mut left = size - 3;
        let bounds = (self.sb.dir_table, self.sb.bytes_used);
        let mut pos = self.sb.dir_table + block;
        let mut off = usize::from(offset);
        let mut out = Vec::new();
        while left > 0 {
            if left < 12 {
                return Err(bad(self.img, format!("{left} stray bytes")));
            }
            let (h, p, o) = self.meta("directory listing", pos, off, 12, bounds)?;
            (pos, off) = (p, o);
            left -= 12;
            let count = le32(&h, 0) + 1;
            let start = u64::from(le32(&h, 4));
            if count > DIR_COUNT {
                return Err(bad(self.img, format!("header of {count} entries")));
            }
            for _ in 0..count {
                if left < 8 {
                    return Err(bad(self.img, "entry runs past the listing".into()));
                }
                let (e, p, o) = self.meta("directory listing", pos, off, 8, bounds)?;
                (pos, off) = (p, o);
                let n = usize::from(le16(&e, 6)) + 1;
                left = left.saturating_sub(8);
                if n > NAME_LEN || n as u64 > left {
                    return Err(bad(self.img, format!("name of {n} bytes")));
                }
                let (name, p, o) = self.meta("directory listing", pos, off, n, bounds)?;
                (pos, off) = (p, o);
                left -= n as u64;
                if name.contains(&b'/') || name.contains(&0) || name == b"." || name == b".." {
                    return Err(self.img.bad(
                        "dirent name",
                        format!("{path}: name {:?}", String::from_utf8_lossy(&name)),
                    ));
                }
                let kind = le16(&e, 4);
                if !(1..=7).contains(&kind) {
                    return Err(self
                        .img
                        .bad("dirent type", format!("{path}: entry type {kind}")));
                }
                let iref = (start << 16) | u64::from(le16(&e, 0));
                out.push((name, iref, kind));
            }
        }
        Ok(out)
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
