//! The EROFS walk: superblock and its checksum, device table against the device blobs given,
//! then every inode reachable from the root with its xattrs, directory blocks and data extents
//! or chunk indexes. Field offsets follow the kernel's `fs/erofs/erofs_fs.h` (Linux 6.12..6.18);
//! where the kernel refuses something itself (`-EFSCORRUPTED`), the same rule is applied here so
//! the refusal happens before `mount(2)`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::reader::{Img, le16, le32, le64};
use crate::erofs::format::{MAGIC, SUPER_OFFSET, superblock_checksum};
use crate::error::Result;

/// Incompat features this walk understands: zero padding, compression configs / big
/// pclusters, chunked files, device table, tail packing, fragments / dedupe, xattr prefixes.
/// Anything newer (48-bit layouts, metabox) is refused rather than passed through unchecked.
const KNOWN_INCOMPAT: u32 = 0x7f;
const COMPAT_SB_CHKSUM: u32 = 0x1;
const INCOMPAT_DEVICE_TABLE: u32 = 0x8;
const INCOMPAT_XATTR_PREFIXES: u32 = 0x40;
const ISLOT: u64 = 32;
const EROFS_NAME_LEN: usize = 255;
const DIRENT: usize = 12;
const CHUNK_FORMAT_BLKBITS_MASK: u32 = 0x1f;
const CHUNK_FORMAT_INDEXES: u32 = 0x20;
const NULL_ADDR: u32 = u32::MAX;

/// Data layouts (`i_format` bits 1..3).
const FLAT_PLAIN: u16 = 0;
const COMPRESSED_FULL: u16 = 1;
const FLAT_INLINE: u16 = 2;
const COMPRESSED_COMPACT: u16 = 3;
const CHUNK_BASED: u16 = 4;

/// What the walk saw (for the benchmark and `-v` logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErofsCheck {
    /// Distinct inodes read.
    pub inodes: u64,
    /// Directories whose entries were read.
    pub directories: u64,
    /// Directory entries other than `.` and `..` (a hard link counts once per name).
    pub entries: u64,
    /// Chunk index entries checked.
    pub chunks: u64,
}

struct Sb {
    blkszbits: u32,
    meta_base: u64,
    xattr_base: u64,
    incompat: u32,
    /// Sizes in bytes of device 0 (the primary) and each extra device, as the device table
    /// claims them, bounded by the blobs given.
    device_bytes: Vec<u64>,
    /// Unified-address start block of each extra device (0: not mapped).
    mapped: Vec<(u64, u64)>,
}

struct Inode {
    nid: u64,
    mode: u16,
    layout: u16,
    size: u64,
    i_u: u32,
    /// Byte offset right after the inode and its inline xattrs.
    end: u64,
}

/// Walks the EROFS image at `primary` with its extra `devices` (in device-table order, as the
/// manifest lists them) and returns counts; fails with [`crate::Error::Check`] naming the rule.
///
/// Checks: magic, block size 512..4096, superblock checksum when the image claims one, known
/// incompat features, device count and sizes against the blobs, root inode a directory, every
/// inode slot inside the metadata, `i_format` and mode valid, inline and shared xattrs inside
/// their areas, flat data and inline tails inside the image (tails within one block, as the
/// kernel requires), chunk indexes naming an existing device and blocks inside it, directory
/// blocks with valid name offsets, names of 1..255 bytes without `/`, entry types agreeing with
/// the inodes they name, no directory reachable twice.
pub fn check_erofs(primary: &Path, devices: &[PathBuf]) -> Result<ErofsCheck> {
    let img = Img::open(primary)?;
    let sb = superblock(&img, devices)?;
    let mut out = ErofsCheck::default();
    let root_nid = u64::from(le16(&img.read("superblock", SUPER_OFFSET as u64, 128)?, 14));
    let root = inode(&img, &sb, root_nid, "/")?;
    if root.mode & 0o170000 != 0o040000 {
        return Err(img.bad(
            "root inode",
            format!(
                "root nid {root_nid} is not a directory (mode {:o})",
                root.mode
            ),
        ));
    }
    let mut seen: HashSet<u64> = HashSet::new();
    let mut stack: Vec<(Inode, String)> = vec![(root, "/".to_string())];
    seen.insert(root_nid);
    out.inodes = 1;
    while let Some((ino, path)) = stack.pop() {
        data(&img, &sb, &ino, &path, &mut out)?;
        if ino.mode & 0o170000 != 0o040000 {
            continue;
        }
        out.directories += 1;
        for (name, nid, ftype) in dirents(&img, &sb, &ino, &path)? {
            if name == b"." || name == b".." {
                continue;
            }
            out.entries += 1;
            let child_path = format!(
                "{}/{}",
                path.trim_end_matches('/'),
                String::from_utf8_lossy(&name)
            );
            let is_dir = ftype == 2;
            if !seen.insert(nid) {
                if is_dir {
                    return Err(img.bad(
                        "directory graph",
                        format!("{child_path}: directory nid {nid} is reachable twice"),
                    ));
                }
                continue; // A hard link to a file already checked.
            }
            out.inodes += 1;
            let child = inode(&img, &sb, nid, &child_path)?;
            let want = match child.mode & 0o170000 {
                0o100000 => 1,
                0o040000 => 2,
                0o020000 => 3,
                0o060000 => 4,
                0o010000 => 5,
                0o140000 => 6,
                0o120000 => 7,
                _ => 0,
            };
            if ftype != want {
                return Err(img.bad(
                    "dirent type",
                    format!(
                        "{child_path}: entry type {ftype} but inode {nid} has mode {:o}",
                        child.mode
                    ),
                ));
            }
            stack.push((child, child_path));
        }
    }
    Ok(out)
}

fn superblock(img: &Img, devices: &[PathBuf]) -> Result<Sb> {
    let b = img.read("superblock", SUPER_OFFSET as u64, 128)?;
    if le32(&b, 0) != MAGIC {
        return Err(img.bad("superblock", "no EROFS magic at byte 1024"));
    }
    let blkszbits = u32::from(b[12]);
    if !(9..=12).contains(&blkszbits) {
        return Err(img.bad(
            "superblock",
            format!("block size 2^{blkszbits} (this kernel mounts 512..4096)"),
        ));
    }
    let blksz = 1u64 << blkszbits;
    let compat = le32(&b, 8);
    if compat & COMPAT_SB_CHKSUM != 0 {
        check_sb_checksum(img, blksz)?;
    }
    let incompat = le32(&b, 80);
    if incompat & !KNOWN_INCOMPAT != 0 {
        return Err(img.bad(
            "superblock features",
            format!(
                "incompat features {:#x} are not checked by fspack",
                incompat & !KNOWN_INCOMPAT
            ),
        ));
    }
    if b[90] != 0 {
        return Err(img.bad("superblock", format!("dirblkbits {} (must be 0)", b[90])));
    }
    let blocks = u64::from(le32(&b, 36));
    if blocks.saturating_mul(blksz) > img.len {
        return Err(img.bad(
            "superblock",
            format!(
                "claims {blocks} blocks of {blksz} bytes but the image has {} bytes",
                img.len
            ),
        ));
    }
    let (device_bytes, mapped) = device_table(img, &b, incompat, blksz, devices)?;
    Ok(Sb {
        blkszbits,
        meta_base: u64::from(le32(&b, 40)) * blksz,
        xattr_base: u64::from(le32(&b, 44)) * blksz,
        incompat,
        device_bytes,
        mapped,
    })
}

/// Kernel `erofs_superblock_csum_verify`: the superblock checksum over `blksz`-byte blocks.
fn check_sb_checksum(img: &Img, blksz: u64) -> Result<()> {
    // Kernel erofs_superblock_csum_verify: crc32c over the block from the superblock on
    // (or one whole block when blocks are smaller than 1 KiB), checksum field zeroed.
    let len = if blksz > SUPER_OFFSET as u64 {
        blksz - SUPER_OFFSET as u64
    } else {
        blksz
    };
    let mut block = img.read("superblock checksum", SUPER_OFFSET as u64, len as usize)?;
    let stored = le32(&block, 4);
    block[4..8].fill(0);
    let actual = superblock_checksum(&block);
    if actual != stored {
        return Err(img.bad(
            "superblock checksum",
            format!("stored {stored:#010x}, computed {actual:#010x}"),
        ));
    }
    Ok(())
}

/// Bytes of each device (the image first), and each extra device's (unified address, blocks).
type DeviceTable = (Vec<u64>, Vec<(u64, u64)>);

/// The device table of superblock `b` checked against the `devices` that came with the image:
/// as many, each at least as long as its slot claims. Returns the bytes of each device (the
/// image first) and each extra device's (unified address, blocks).
fn device_table(
    img: &Img,
    b: &[u8],
    incompat: u32,
    blksz: u64,
    devices: &[PathBuf],
) -> Result<DeviceTable> {
    let extra = usize::from(le16(b, 86));
    let mut device_bytes = vec![img.len];
    let mut mapped = Vec::new();
    if extra != devices.len() {
        return Err(img.bad(
            "device table",
            format!(
                "the superblock names {extra} extra devices but {} device blobs came with it",
                devices.len()
            ),
        ));
    }
    if extra > 0 {
        if incompat & INCOMPAT_DEVICE_TABLE == 0 {
            return Err(img.bad(
                "device table",
                "extra devices without the device-table feature",
            ));
        }
        let off = u64::from(le16(b, 88)) * 128;
        let table = img.read("device table", off, extra * 128)?;
        for (i, dev) in devices.iter().enumerate() {
            let slot = &table[i * 128..(i + 1) * 128];
            let dblocks = u64::from(le32(slot, 64));
            let uniaddr = u64::from(le32(slot, 68));
            let len = std::fs::metadata(dev)
                .map_err(|e| crate::Error::io(dev, e))?
                .len();
            if dblocks.saturating_mul(blksz) > len {
                return Err(img.bad(
                    "device table",
                    format!(
                        "device {} claims {dblocks} blocks ({} bytes) but its blob {} has {len} \
                         bytes",
                        i + 1,
                        dblocks.saturating_mul(blksz),
                        dev.display()
                    ),
                ));
            }
            device_bytes.push(dblocks * blksz);
            mapped.push((uniaddr, dblocks));
        }
    }
    Ok((device_bytes, mapped))
}

fn inode(img: &Img, sb: &Sb, nid: u64, path: &str) -> Result<Inode> {
    let off = nid
        .checked_mul(ISLOT)
        .and_then(|o| o.checked_add(sb.meta_base))
        .filter(|&o| img.contains(o, 32))
        .ok_or_else(|| {
            img.bad(
                "inode slot",
                format!("{path}: nid {nid} lies outside the image"),
            )
        })?;
    let h = img.read("inode slot", off, 32)?;
    let format = le16(&h, 0);
    if format & !0x1f != 0 {
        return Err(img.bad(
            "inode format",
            format!("{path}: nid {nid} has i_format {format:#x}"),
        ));
    }
    let extended = format & 1 == 1;
    let layout = (format >> 1) & 0x7;
    if layout > CHUNK_BASED {
        return Err(img.bad(
            "inode format",
            format!("{path}: nid {nid} has data layout {layout}"),
        ));
    }
    let (isize, mode, size, i_u) = if extended {
        let e = img.read("inode slot", off, 64)?;
        (64u64, le16(&e, 4), le64(&e, 8), le32(&e, 16))
    } else {
        (32u64, le16(&h, 4), u64::from(le32(&h, 8)), le32(&h, 16))
    };
    if !matches!(
        mode & 0o170000,
        0o100000 | 0o040000 | 0o020000 | 0o060000 | 0o010000 | 0o140000 | 0o120000
    ) {
        return Err(img.bad("inode mode", format!("{path}: nid {nid} has mode {mode:o}")));
    }
    let icount = u64::from(le16(&h, 2));
    let xsize = if icount == 0 {
        0
    } else {
        12 + (icount - 1) * 4
    };
    let xoff = off + isize;
    if xsize > 0 {
        xattrs(img, sb, xoff, xsize, path)?;
    }
    Ok(Inode {
        nid,
        mode,
        layout,
        size,
        i_u,
        end: xoff + xsize,
    })
}

/// Checks one xattr entry at `off` within `limit`; returns the offset after it (4-aligned).
fn xattr_entry(img: &Img, sb: &Sb, off: u64, limit: u64, path: &str) -> Result<u64> {
    if off + 4 > limit {
        return Err(img.bad("xattr", format!("{path}: entry header runs past its area")));
    }
    let e = img.read("xattr", off, 4)?;
    let (nlen, idx, vlen) = (u64::from(e[0]), e[1], u64::from(le16(&e, 2)));
    let long_prefix = idx & 0x80 != 0;
    if (long_prefix && sb.incompat & INCOMPAT_XATTR_PREFIXES == 0) || (!long_prefix && idx > 6) {
        return Err(img.bad("xattr", format!("{path}: unknown name prefix index {idx}")));
    }
    let end = off + 4 + nlen + vlen;
    if end > limit || !img.contains(off, 4 + nlen + vlen) {
        return Err(img.bad("xattr", format!("{path}: name or value runs past its area")));
    }
    Ok(end.next_multiple_of(4))
}

fn xattrs(img: &Img, sb: &Sb, off: u64, size: u64, path: &str) -> Result<()> {
    let area = img.read("xattr", off, size as usize)?;
    let shared = u64::from(area[4]);
    if 12 + shared * 4 > size {
        return Err(img.bad(
            "xattr",
            format!("{path}: {shared} shared xattr ids do not fit the inline area"),
        ));
    }
    for i in 0..shared as usize {
        let id = u64::from(le32(&area, 12 + i * 4));
        let at = sb.xattr_base + id * 4;
        // A shared entry's extent is bounded only by the image.
        xattr_entry(img, sb, at, img.len, path)?;
    }
    let limit = off + size;
    let mut p = off + 12 + shared * 4;
    while p < limit {
        p = xattr_entry(img, sb, p, limit, path)?;
    }
    Ok(())
}

/// Byte extents of a flat inode's data: the full blocks at `raw_blkaddr`, then the inline tail
/// right after the inode.
fn flat_extents(img: &Img, sb: &Sb, ino: &Inode, path: &str) -> Result<Vec<(u64, u64)>> {
    let blksz = 1u64 << sb.blkszbits;
    let inline = ino.layout == FLAT_INLINE;
    let full = if inline {
        ino.size / blksz * blksz
    } else {
        ino.size
    };
    let mut out = Vec::new();
    if full > 0 {
        let start = u64::from(ino.i_u) * blksz;
        if !img.contains(start, full) && !in_mapped_device(sb, u64::from(ino.i_u), full) {
            return Err(img.bad(
                "data extent",
                format!(
                    "{path}: {full} bytes at block {} lie outside the image",
                    ino.i_u
                ),
            ));
        }
        out.push((start, full));
    }
    let tail = ino.size - full;
    if tail > 0 {
        if ino.end % blksz + tail > blksz || !img.contains(ino.end, tail) {
            return Err(img.bad(
                "inline data",
                format!("{path}: inline tail of {tail} bytes crosses a block boundary"),
            ));
        }
        out.push((ino.end, tail));
    }
    Ok(out)
}

/// Whether a flat extent falls inside an extra device mapped into the unified block space.
fn in_mapped_device(sb: &Sb, blk: u64, bytes: u64) -> bool {
    let blocks = bytes.div_ceil(1 << sb.blkszbits);
    sb.mapped
        .iter()
        .any(|&(start, n)| start > 0 && blk >= start && blk + blocks <= start + n)
}

fn data(img: &Img, sb: &Sb, ino: &Inode, path: &str, out: &mut ErofsCheck) -> Result<()> {
    let kind = ino.mode & 0o170000;
    if matches!(kind, 0o020000 | 0o060000 | 0o010000 | 0o140000) {
        return Ok(()); // i_u is a device number, nothing to follow.
    }
    if kind == 0o120000 && ino.size >= 4096 {
        return Err(img.bad("symlink", format!("{path}: target of {} bytes", ino.size)));
    }
    match ino.layout {
        FLAT_PLAIN | FLAT_INLINE => {
            flat_extents(img, sb, ino, path)?;
        }
        CHUNK_BASED => chunks(img, sb, ino, path, out)?,
        COMPRESSED_FULL | COMPRESSED_COMPACT => {
            // The map header the kernel reads first; the lcluster indexes after it are
            // bounded by the image, their decompression is the kernel's.
            let at = ino.end.next_multiple_of(8);
            img.read("compressed index", at, 8)?;
        }
        _ => unreachable!("layout checked when the inode was read"),
    }
    Ok(())
}

fn chunks(img: &Img, sb: &Sb, ino: &Inode, path: &str, out: &mut ErofsCheck) -> Result<()> {
    let fmt = ino.i_u;
    if fmt & !(CHUNK_FORMAT_BLKBITS_MASK | CHUNK_FORMAT_INDEXES) != 0 {
        return Err(img.bad("chunk format", format!("{path}: chunk format {fmt:#x}")));
    }
    let bits = sb.blkszbits + (fmt & CHUNK_FORMAT_BLKBITS_MASK);
    if bits > 40 {
        return Err(img.bad("chunk format", format!("{path}: chunks of 2^{bits} bytes")));
    }
    let chunk = 1u64 << bits;
    let n = ino.size.div_ceil(chunk);
    let indexes = fmt & CHUNK_FORMAT_INDEXES != 0;
    let unit = if indexes { 8 } else { 4 };
    let base = if indexes {
        ino.end.next_multiple_of(8)
    } else {
        ino.end
    };
    if !n
        .checked_mul(unit)
        .is_some_and(|len| img.contains(base, len))
    {
        return Err(img.bad(
            "chunk index",
            format!("{path}: {n} chunk entries run past the end of the image"),
        ));
    }
    let blksz = 1u64 << sb.blkszbits;
    // Read in slices: a 2 GiB file in 1 MiB chunks has 2048 entries, 16 KiB.
    let mut i = 0u64;
    while i < n {
        let batch = (n - i).min(8192);
        let raw = img.read("chunk index", base + i * unit, (batch * unit) as usize)?;
        for j in 0..batch {
            let e = &raw[(j * unit) as usize..((j + 1) * unit) as usize];
            let (dev, blk) = if indexes {
                (usize::from(le16(e, 2)), le32(e, 4))
            } else {
                (0, le32(e, 0))
            };
            if blk == NULL_ADDR {
                continue; // A hole.
            }
            let idx = i + j;
            let len = chunk.min(ino.size - idx * chunk);
            let Some(&dev_len) = sb.device_bytes.get(dev) else {
                return Err(img.bad(
                    "chunk index",
                    format!(
                        "{path}: chunk {idx} names device {dev}, but the image has {} extra \
                         devices",
                        sb.device_bytes.len() - 1
                    ),
                ));
            };
            let start = u64::from(blk) * blksz;
            if start.checked_add(len).is_none_or(|end| end > dev_len) {
                return Err(img.bad(
                    "chunk index",
                    format!(
                        "{path}: chunk {idx} ({len} bytes at block {blk} of device {dev}) lies \
                         outside the device ({dev_len} bytes)"
                    ),
                ));
            }
        }
        out.chunks += batch;
        i += batch;
    }
    Ok(())
}

/// Reads and checks the entries of a directory: `(name, nid, file type)`.
fn dirents(img: &Img, sb: &Sb, ino: &Inode, path: &str) -> Result<Vec<(Vec<u8>, u64, u8)>> {
    if !matches!(ino.layout, FLAT_PLAIN | FLAT_INLINE) {
        return Err(img.bad(
            "directory layout",
            format!(
                "{path}: directory nid {} uses data layout {} (only flat directories are \
                 checked)",
                ino.nid, ino.layout
            ),
        ));
    }
    let blksz = 1u64 << sb.blkszbits;
    let mut out = Vec::new();
    for (start, len) in flat_extents(img, sb, ino, path)? {
        let mut off = 0;
        while off < len {
            let blen = (len - off).min(blksz) as usize;
            let block = img.read("directory block", start + off, blen)?;
            off += blen as u64;
            dir_block(img, &block, path, &mut out)?;
        }
    }
    Ok(out)
}

fn dir_block(img: &Img, block: &[u8], path: &str, out: &mut Vec<(Vec<u8>, u64, u8)>) -> Result<()> {
    let bad = |detail: String| img.bad("directory block", format!("{path}: {detail}"));
    if block.len() < DIRENT {
        return Err(bad(format!("block of {} bytes", block.len())));
    }
    let first = usize::from(le16(block, 8));
    if first < DIRENT || first % DIRENT != 0 || first >= block.len() {
        return Err(bad(format!("first name offset {first}")));
    }
    let count = first / DIRENT;
    for i in 0..count {
        let de = &block[i * DIRENT..(i + 1) * DIRENT];
        let nameoff = usize::from(le16(de, 8));
        let end = if i + 1 < count {
            usize::from(le16(block, (i + 1) * DIRENT + 8))
        } else {
            // The last name runs to the first NUL or the end of the block.
            let rest = block.get(nameoff..).unwrap_or_default();
            nameoff + rest.iter().position(|&b| b == 0).unwrap_or(rest.len())
        };
        if nameoff < first || end <= nameoff || end > block.len() || end - nameoff > EROFS_NAME_LEN
        {
            return Err(bad(format!(
                "entry {i} has name bytes {nameoff}..{end} in a block of {}",
                block.len()
            )));
        }
        let name = &block[nameoff..end];
        if name.contains(&b'/') || name.contains(&0) {
            return Err(img.bad(
                "dirent name",
                format!("{path}: name {:?}", String::from_utf8_lossy(name)),
            ));
        }
        let ftype = de[10];
        if ftype > 7 {
            return Err(img.bad(
                "dirent type",
                format!("{path}: entry {i} has file type {ftype}"),
            ));
        }
        out.push((name.to_vec(), le64(de, 0), ftype));
    }
    Ok(())
}
