//! One SquashFS inode read and checked the way the kernel's `squashfs_read_inode` reads it.

use super::{DATA_UNCOMPRESSED, Img, Inode, NAME_LEN, NO_FRAGMENT, Walker, le16, le32, le64};
use crate::error::Result;

/// Where the next bytes of an inode are read from in the inode table.
struct Cursor {
    pos: u64,
    off: usize,
    bounds: (u64, u64),
}

impl Cursor {
    /// The next `n` bytes of the inode.
    fn take(&mut self, w: &mut Walker, n: usize) -> Result<Vec<u8>> {
        let (b, p, o) = w.meta("inode", self.pos, self.off, n, self.bounds)?;
        self.pos = p;
        self.off = o;
        Ok(b)
    }
}

fn bad(img: &Img, path: &str, d: String) -> crate::error::Error {
    img.bad("inode", format!("{path}: {d}"))
}

impl Walker<'_> {
    pub(super) fn inode(&mut self, iref: u64, path: &str) -> Result<Inode> {
        let bounds = self.inode_bounds();
        let (block, offset) = (self.sb.inode_table + (iref >> 16), (iref & 0xffff) as usize);
        let (h, pos, off) = self.meta("inode", block, offset, 16, bounds)?;
        let (kind, number) = self.check_header(&h, path)?;
        let mut cur = Cursor { pos, off, bounds };
        let mut xattr = u32::MAX;
        let mut inode = Inode {
            kind,
            number,
            dir: None,
            dir_index: Vec::new(),
            blocks: 0,
        };
        match kind {
            1 => {
                let b = cur.take(self, 16)?;
                inode.dir = Some((u64::from(le32(&b, 0)), le16(&b, 10), u64::from(le16(&b, 8))));
            }
            8 => xattr = self.extended_dir(&mut cur, &mut inode, path)?,
            2 | 9 => (inode.blocks, xattr) = self.file_blocks(&mut cur, kind, path)?,
            3 | 10 => {
                let b = cur.take(self, 8)?;
                let n = le32(&b, 4) as usize;
                if n == 0 || n >= 4096 {
                    return Err(self
                        .img
                        .bad("symlink", format!("{path}: target of {n} bytes")));
                }
                cur.take(self, n)?;
                if kind == 10 {
                    xattr = le32(&cur.take(self, 4)?, 0);
                }
            }
            4 | 5 => {
                cur.take(self, 8)?;
            }
            11 | 12 => {
                xattr = le32(&cur.take(self, 12)?, 8);
            }
            6 | 7 => {
                cur.take(self, 4)?;
            }
            13 | 14 => {
                xattr = le32(&cur.take(self, 8)?, 4);
            }
            _ => return Err(bad(self.img, path, format!("inode type {kind}"))),
        }
        if xattr != u32::MAX && self.sb.xattr_ids.is_none_or(|n| u64::from(xattr) >= n) {
            return Err(self.img.bad(
                "xattr",
                format!("{path}: xattr id {xattr} beyond the xattr id table"),
            ));
        }
        Ok(inode)
    }

    /// Checks the 16-byte header `h` every inode starts with; returns its type and number.
    fn check_header(&self, h: &[u8], path: &str) -> Result<(u16, u32)> {
        let kind = le16(h, 0);
        let (uid, gid) = (u64::from(le16(h, 4)), u64::from(le16(h, 6)));
        if uid >= self.sb.id_count || gid >= self.sb.id_count {
            return Err(bad(
                self.img,
                path,
                format!("id index {uid}/{gid} of {}", self.sb.id_count),
            ));
        }
        // The kernel refuses inode number 0 and a mode whose file type bits (when set; the
        // writers leave them 0) name another type than the inode's (the read fails with EIO).
        let (number, format) = (le32(h, 12), le16(h, 2) & 0o170000);
        if number == 0 {
            return Err(bad(self.img, path, "inode number 0".into()));
        }
        let basic = if kind > 7 { kind - 7 } else { kind };
        let expected = match basic {
            1 => 0o040000,
            2 => 0o100000,
            3 => 0o120000,
            4 => 0o060000,
            5 => 0o020000,
            6 => 0o010000,
            _ => 0o140000,
        };
        if format != 0 && format != expected {
            return Err(bad(
                self.img,
                path,
                format!("mode names file type {format:o}, the inode is type {kind}"),
            ));
        }
        Ok((kind, number))
    }

    /// The body of an extended directory (type 8): its listing and its index into `inode`;
    /// returns its xattr id.
    fn extended_dir(&mut self, cur: &mut Cursor, inode: &mut Inode, path: &str) -> Result<u32> {
        let b = cur.take(self, 24)?;
        inode.dir = Some((u64::from(le32(&b, 8)), le16(&b, 18), u64::from(le32(&b, 4))));
        for _ in 0..le16(&b, 16) {
            let e = cur.take(self, 12)?;
            let n = le32(&e, 8) as usize + 1;
            if n > NAME_LEN {
                return Err(bad(
                    self.img,
                    path,
                    format!("directory index name of {n} bytes"),
                ));
            }
            let name = cur.take(self, n)?;
            inode
                .dir_index
                .push((u64::from(le32(&e, 0)), u64::from(le32(&e, 4)), name));
        }
        Ok(le32(&b, 20))
    }

    /// The body of a regular file (`kind` 2 or 9): its block list, checked to lie inside the
    /// image with no block over the block size, and its fragment; returns the number of data
    /// blocks and the xattr id (`u32::MAX`: none).
    fn file_blocks(&mut self, cur: &mut Cursor, kind: u16, path: &str) -> Result<(u64, u32)> {
        let mut xattr = u32::MAX;
        let (start, size, frag, foff) = if kind == 2 {
            let b = cur.take(self, 16)?;
            (
                u64::from(le32(&b, 0)),
                u64::from(le32(&b, 12)),
                le32(&b, 4),
                u64::from(le32(&b, 8)),
            )
        } else {
            let b = cur.take(self, 40)?;
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
        // Each block size takes 4 bytes of the inode table, which is made of compressed
        // metadata blocks: at most 8 KiB each, and at least 3 bytes on disk (2 of header). A
        // list longer than the table could unpack to is malformed before it is read. The image
        // size is no bound: a sparse file's block list is all zeros and compresses to almost
        // nothing (s8 fidelity pass: an 8 MiB zero file in a small image was refused).
        let (table_start, table_end) = cur.bounds;
        let table_max = (table_end.saturating_sub(table_start) / 3 + 1).saturating_mul(8192);
        if n.saturating_mul(4) > table_max {
            return Err(bad(
                self.img,
                path,
                format!("{n} data blocks for {size} bytes"),
            ));
        }
        let mut at = start;
        let mut left = n;
        while left > 0 {
            let batch = left.min(2048);
            let sizes = cur.take(self, (batch * 4) as usize)?;
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
        Ok((n, xattr))
    }
}
