//! A SquashFS directory listing read as readdir reads it, checked for what lookup relies on.

use super::{DIR_COUNT, Dirent, Img, Inode, NAME_LEN, Walker, le16, le32};
use crate::error::Result;

impl Walker<'_> {
    /// Reads a directory's listing as the kernel's readdir does, then checks what its lookup
    /// relies on (fs/squashfs/namei.c): names in strictly ascending byte order, since a lookup
    /// stops at the first entry that sorts after the name; and every index entry of an
    /// extended directory naming a header's listing position, its metadata block and its
    /// first name, since a lookup of a later name starts there.
    pub(super) fn listing(&mut self, dir: &Inode, path: &str) -> Result<Vec<Dirent>> {
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
        let mut out: Vec<Dirent> = Vec::new();
        // (listing position, block relative to the directory table, first entry in `out`)
        let mut headers = Vec::new();
        while left > 0 {
            if left < 12 {
                return Err(bad(self.img, format!("{left} stray bytes")));
            }
            // A header that starts exactly at a block's end lives in the next block.
            let (len, next) = {
                let (data, next) = self.block("directory listing", pos, bounds.0, bounds.1)?;
                (data.len(), *next)
            };
            if off >= len {
                (pos, off) = (next, off - len);
            }
            headers.push((size - 3 - left, pos - self.sb.dir_table, out.len()));
            let (h, p, o) = self.meta("directory listing", pos, off, 12, bounds)?;
            (pos, off) = (p, o);
            left -= 12;
            let count = le32(&h, 0) + 1;
            let start = u64::from(le32(&h, 4));
            let base = i64::from(le32(&h, 8));
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
                self.check_name(&out, &name, path)?;
                let kind = le16(&e, 4);
                if !(1..=7).contains(&kind) {
                    return Err(self
                        .img
                        .bad("dirent type", format!("{path}: entry type {kind}")));
                }
                out.push(Dirent {
                    name,
                    iref: (start << 16) | u64::from(le16(&e, 0)),
                    kind,
                    // The kernel's sum: the header's number plus a signed 16-bit delta.
                    number: (base + i64::from(le16(&e, 2) as i16)) as u32,
                });
            }
        }
        self.check_index(dir, &headers, &out, path)?;
        Ok(out)
    }

    /// Checks an entry's `name`: no `/` or NUL, not `.` or `..`, and after the entries before
    /// it (`out`) in strictly ascending byte order.
    fn check_name(&self, out: &[Dirent], name: &[u8], path: &str) -> Result<()> {
        if name.contains(&b'/') || name.contains(&0) || name == b"." || name == b".." {
            return Err(self.img.bad(
                "dirent name",
                format!("{path}: name {:?}", String::from_utf8_lossy(name)),
            ));
        }
        if let Some(prev) = out.last()
            && prev.name.as_slice() >= name
        {
            return Err(self.img.bad(
                "directory order",
                format!(
                    "{path}: {:?} after {:?}; the kernel's lookup would miss it",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(&prev.name)
                ),
            ));
        }
        Ok(())
    }

    /// Checks that every index entry of the extended directory `dir` names, in ascending
    /// order, a header of its listing (`headers`: listing position, block, first entry in
    /// `out`) with that block and first name.
    fn check_index(
        &self,
        dir: &Inode,
        headers: &[(u64, u64, usize)],
        out: &[Dirent],
        path: &str,
    ) -> Result<()> {
        let mut after = None;
        for (i, (at, block, name)) in dir.dir_index.iter().enumerate() {
            let header = headers.iter().find(|h| h.0 == *at);
            let agrees = header.is_some_and(|&(_, b, first)| {
                b == *block && out.get(first).is_some_and(|d| d.name == *name)
            });
            if !agrees || after.is_some_and(|a| a >= *at) {
                return Err(self.img.bad(
                    "directory index",
                    format!(
                        "{path}: index entry {i} (listing byte {at}, block {block}, {:?}) \
                         names no header",
                        String::from_utf8_lossy(name)
                    ),
                ));
            }
            after = Some(*at);
        }
        Ok(())
    }
}
