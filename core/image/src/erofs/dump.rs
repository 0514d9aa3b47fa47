//! A small EROFS reader that renders an image as text: superblock, then every inode by path.
//!
//! It exists for snapshot tests (a reviewer can read what the writer laid out) and as a second
//! opinion on our own bytes beside the kernel and fsck.erofs. It reads uncompressed images from
//! memory and checks every offset, so arbitrary bytes give an error, never a panic.

use std::fmt::Write as _;

use super::format::*;
use crate::error::{Error, Result};

struct Reader<'a> {
    img: &'a [u8],
    blkszbits: u32,
}

struct Inode {
    mode: u16,
    layout: u16,
    size: u64,
    i_u: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    mtime_nsec: u32,
    nlink: u32,
    /// Byte offset right after the inode and its xattrs.
    body: usize,
    xattrs: Vec<(u8, Vec<u8>, Vec<u8>)>,
}

fn bad(what: impl Into<String>) -> Error {
    Error::Format(format!("not a valid EROFS image: {}", what.into()))
}

impl Reader<'_> {
    fn slice(&self, off: usize, len: usize) -> Result<&[u8]> {
        self.img
            .get(off..off.checked_add(len).ok_or_else(|| bad("offset overflow"))?)
            .ok_or_else(|| {
                bad(format!(
                    "range {off}+{len} beyond the image ({} bytes)",
                    self.img.len()
                ))
            })
    }

    fn inode(&self, nid: u64) -> Result<Inode> {
        let off = nid
            .checked_mul(ISLOT)
            .and_then(|o| usize::try_from(o).ok())
            .ok_or_else(|| bad(format!("nid {nid} is out of range")))?;
        let h = self.slice(off, 32)?;
        let format = get16(h, 0);
        let extended = format & 1 == 1;
        let layout = (format >> 1) & 0x7;
        let xattr_icount = get16(h, 2) as usize;
        let (isize, ino) = if extended {
            let b = self.slice(off, 64)?;
            (
                64,
                Inode {
                    mode: get16(b, 4),
                    layout,
                    size: get64(b, 8),
                    i_u: get32(b, 16),
                    uid: get32(b, 24),
                    gid: get32(b, 28),
                    mtime: get64(b, 32),
                    mtime_nsec: get32(b, 40),
                    nlink: get32(b, 44),
                    body: 0,
                    xattrs: Vec::new(),
                },
            )
        } else {
            (
                32,
                Inode {
                    mode: get16(h, 4),
                    layout,
                    size: get32(h, 8) as u64,
                    i_u: get32(h, 16),
                    uid: get16(h, 24) as u32,
                    gid: get16(h, 26) as u32,
                    mtime: 0,
                    mtime_nsec: 0,
                    nlink: get16(h, 6) as u32,
                    body: 0,
                    xattrs: Vec::new(),
                },
            )
        };
        let mut ino = ino;
        let xsize = if xattr_icount == 0 {
            0
        } else {
            XATTR_IBODY_HEADER + (xattr_icount - 1) * 4
        };
        let xa = self.slice(off + isize, xsize)?;
        let mut p = XATTR_IBODY_HEADER.min(xsize);
        while p + 4 <= xsize {
            let (nlen, idx, vlen) = (xa[p] as usize, xa[p + 1], get16(xa, p + 2) as usize);
            let name = xa
                .get(p + 4..p + 4 + nlen)
                .ok_or_else(|| bad("xattr name"))?
                .to_vec();
            let value = xa
                .get(p + 4 + nlen..p + 4 + nlen + vlen)
                .ok_or_else(|| bad("xattr value"))?
                .to_vec();
            ino.xattrs.push((idx, name, value));
            p = (p + 4 + nlen + vlen).next_multiple_of(4);
        }
        ino.body = off + isize + xsize;
        Ok(ino)
    }

    /// Data of a flat (plain or inline) inode; chunk-based data lives on other devices.
    fn flat_data(&self, ino: &Inode) -> Result<Vec<u8>> {
        let bsz = 1usize << self.blkszbits;
        let size = usize::try_from(ino.size).map_err(|_| bad("size"))?;
        let inline = ino.layout == DataLayout::FlatInline as u16;
        let full = if inline { size / bsz * bsz } else { size };
        let mut out = self.slice(ino.i_u as usize * bsz, full)?.to_vec();
        if inline {
            out.extend_from_slice(self.slice(ino.body, size - full)?);
        }
        Ok(out)
    }
}

fn type_char(mode: u16) -> char {
    match mode as u32 & 0o170000 {
        0o040000 => 'd',
        0o100000 => '-',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '?',
    }
}

/// Renders `img` (the primary image) as text. Does not follow chunk indexes into other devices.
pub fn dump(img: &[u8]) -> Result<String> {
    let sb = img
        .get(SUPER_OFFSET..SUPER_OFFSET + 128)
        .ok_or_else(|| bad("shorter than a superblock"))?;
    if get32(sb, 0) != MAGIC {
        return Err(bad("no EROFS magic at byte 1024"));
    }
    let r = Reader {
        img,
        blkszbits: sb[12] as u32,
    };
    if !(9..=16).contains(&r.blkszbits) {
        return Err(bad(format!("block size bits {}", r.blkszbits)));
    }
    let mut out = String::new();
    let root = get16(sb, 14) as u64;
    let _ = writeln!(
        out,
        "superblock: blkszbits={} root_nid={} inos={} blocks={} compat={:#x} incompat={:#x} extra_devices={} uuid={}",
        r.blkszbits,
        root,
        get64(sb, 16),
        get32(sb, 36),
        get32(sb, 8),
        get32(sb, 80),
        get16(sb, 86),
        hex::encode(&sb[48..64])
    );
    let mut stack = vec![(b"/".to_vec(), root)];
    let mut seen = std::collections::HashSet::new();
    while let Some((path, nid)) = stack.pop() {
        let ino = r.inode(nid)?;
        let first = seen.insert(nid);
        dump_inode(&r, &path, &ino, &mut out)?;
        if ino.mode as u32 & 0o170000 != 0o040000 || !first {
            continue;
        }
        let mut children = dir_children(&r, &path, &ino)?;
        children.reverse();
        stack.extend(children);
    }
    Ok(out)
}

/// Appends the line of inode `ino` at `path`: its attributes, xattrs, chunk indexes (the first
/// eight), symlink target or device number.
fn dump_inode(r: &Reader, path: &[u8], ino: &Inode, out: &mut String) -> Result<()> {
    let _ = write!(
        out,
        "{} {}{:04o} nlink={} uid={} gid={} size={} mtime={}.{:09} layout={}",
        String::from_utf8_lossy(path).escape_debug(),
        type_char(ino.mode),
        ino.mode & 0o7777,
        ino.nlink,
        ino.uid,
        ino.gid,
        ino.size,
        ino.mtime as i64,
        ino.mtime_nsec,
        ino.layout
    );
    for (idx, name, value) in &ino.xattrs {
        let _ = write!(
            out,
            " xattr[{idx}]{}={}",
            String::from_utf8_lossy(name).escape_debug(),
            hex::encode(value)
        );
    }
    if ino.layout == DataLayout::ChunkBased as u16 {
        let bits = (ino.i_u & 0x1f) + r.blkszbits;
        let n = ino.size.div_ceil(1 << bits) as usize;
        let base = ino.body.next_multiple_of(CHUNK_INDEX_SIZE);
        let mut chunks = Vec::new();
        for c in 0..n.min(8) {
            let e = r.slice(base + c * CHUNK_INDEX_SIZE, CHUNK_INDEX_SIZE)?;
            let blk = get32(e, 4);
            chunks.push(if blk == NULL_ADDR {
                "hole".into()
            } else {
                format!("{}:{}", get16(e, 2), blk)
            });
        }
        let _ = write!(
            out,
            " chunkbits={bits} chunks=[{}{}]",
            chunks.join(","),
            if n > 8 { ",…" } else { "" }
        );
    }
    match ino.mode as u32 & 0o170000 {
        0o120000 => {
            let t = r.flat_data(ino)?;
            let _ = write!(out, " -> {}", String::from_utf8_lossy(&t).escape_debug());
        }
        0o020000 | 0o060000 => {
            let _ = write!(out, " rdev={:#x}", ino.i_u);
        }
        _ => {}
    }
    out.push('\n');
    Ok(())
}

/// The entries of directory `ino` at `path` but `.` and `..`, as (path, nid) in listing order.
fn dir_children(r: &Reader, path: &[u8], ino: &Inode) -> Result<Vec<(Vec<u8>, u64)>> {
    let data = r.flat_data(ino)?;
    let bsz = 1usize << r.blkszbits;
    let mut children = Vec::new();
    for block in data.chunks(bsz) {
        if block.len() < DIRENT_SIZE {
            return Err(bad("directory block shorter than a dirent"));
        }
        let count = get16(block, 8) as usize / DIRENT_SIZE;
        for i in 0..count {
            let de = block
                .get(i * DIRENT_SIZE..(i + 1) * DIRENT_SIZE)
                .ok_or_else(|| bad("dirent"))?;
            let start = get16(de, 8) as usize;
            let end = if i + 1 < count {
                let next = (i + 1) * DIRENT_SIZE + 8;
                let b = block.get(next..next + 2).ok_or_else(|| bad("dirent"))?;
                u16::from_le_bytes([b[0], b[1]]) as usize
            } else {
                block.len()
            };
            let raw = block.get(start..end).ok_or_else(|| bad("dirent name"))?;
            let name = raw.split(|&b| b == 0).next().unwrap_or_default();
            if name != b"." && name != b".." {
                let mut p = path.to_vec();
                if p != b"/" {
                    p.push(b'/');
                }
                p.extend_from_slice(name);
                children.push((p, get64(de, 0)));
            }
        }
    }
    Ok(children)
}
