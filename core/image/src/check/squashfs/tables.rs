//! The SquashFS table chain (xattr ids, ids, export, fragments) read as the kernel's mount reads it.

use super::{DATA_UNCOMPRESSED, Fit, INVALID, META_SIZE, Walker, le32, le64};
use crate::error::Result;

impl Walker<'_> {
    /// Reads and checks the tables addressed by index arrays (xattr ids, ids, the export
    /// table, fragments) in the order the kernel's `squashfs_fill_super` reads them, with its
    /// rules (fs/squashfs/{super,id,export,fragment,xattr_id}.c, the index checks added in
    /// Linux 5.11): each table ends where the next one begins, the xattr id, id and export
    /// indexes exactly, and its index entries rise in steps of at most one metadata block.
    pub(super) fn tables(&mut self) -> Result<()> {
        let b = self.img.read("superblock", 0, 96)?;
        let (lo, hi) = (self.sb.dir_table, self.sb.bytes_used);
        // Each table must end at or before `next`, which walks down from the image's end.
        let mut next = hi;
        // Xattr id table: a 16-byte header (key/value table start, count), then its index,
        // which must end exactly at `bytes_used`.
        if let Some(at) = self.sb.xattr_ids {
            let h = self.img.read("xattr table", at, 16)?;
            let (kv_start, count) = (le64(&h, 0), u64::from(le32(&h, 8)));
            if count == 0 {
                return Err(self.img.bad("xattr table", "no xattr ids"));
            }
            let idx = self.index("xattr table", at, at + 16, count * 16, Fit::Exact(hi))?;
            if kv_start < self.sb.dir_table || kv_start >= idx[0] {
                return Err(self.img.bad(
                    "xattr table",
                    format!(
                        "key/value table at {kv_start}, its first id block at {}",
                        idx[0]
                    ),
                ));
            }
            self.read_indexed("xattr table", &idx, count * 16, (kv_start, at))?;
            self.sb.xattr_ids = Some(count);
            next = kv_start;
        }
        // Id table: ids of 4 bytes.
        if self.sb.id_count == 0 {
            return Err(self.img.bad("id table", "no ids"));
        }
        let at = le64(&b, 48);
        let ids = self.index("id table", at, at, self.sb.id_count * 4, Fit::Exact(next))?;
        self.read_indexed("id table", &ids, self.sb.id_count * 4, (lo, at))?;
        next = ids[0];
        // Export table: one 8-byte inode reference per inode, its index exactly filling the
        // space up to `next`.
        let at = le64(&b, 88);
        if at != INVALID {
            let inodes = u64::from(le32(&b, 4));
            if inodes == 0 {
                return Err(self
                    .img
                    .bad("export table", "an export table for no inodes"));
            }
            let idx = self.index("export table", at, at, inodes * 8, Fit::Exact(next))?;
            self.read_indexed("export table", &idx, inodes * 8, (lo, at))?;
            next = idx[0];
        }
        // Fragment table: entries of 16 bytes. The kernel takes the count from the
        // superblock whatever the table position says.
        if self.sb.frag_count > 0 {
            let at = le64(&b, 80);
            let idx = self.index(
                "fragment table",
                at,
                at,
                self.sb.frag_count * 16,
                Fit::Within(next),
            )?;
            let raw =
                self.read_indexed("fragment table", &idx, self.sb.frag_count * 16, (lo, at))?;
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
            next = idx[0];
        }
        if self.sb.dir_table > next {
            return Err(self.img.bad(
                "table positions",
                format!(
                    "directory table at {} runs into the table at {next}",
                    self.sb.dir_table
                ),
            ));
        }
        Ok(())
    }

    /// Reads the index (block positions) of a table of `bytes` whose index starts at `at`,
    /// the table itself being known by `start` (`at` but for the xattr id table's header).
    /// The index must end where `fit` says; its entries must rise, each block at most one
    /// metadata block (plus its 2-byte header) after the previous, the last such a step
    /// before `start`.
    fn index(
        &self,
        check: &'static str,
        start: u64,
        at: u64,
        bytes: u64,
        fit: Fit,
    ) -> Result<Vec<u64>> {
        let n = bytes.div_ceil(META_SIZE as u64);
        let end = at.checked_add(n * 8);
        let fits = match (fit, end) {
            (_, None) => false,
            (Fit::Exact(limit), Some(end)) => end == limit,
            (Fit::Within(limit), Some(end)) => end <= limit,
        };
        if at == INVALID || !fits || !self.img.contains(at, n * 8) {
            let limit = match fit {
                Fit::Exact(l) => format!("ending exactly at {l}"),
                Fit::Within(l) => format!("ending by {l}"),
            };
            return Err(self
                .img
                .bad(check, format!("index of {n} blocks at {at}, not {limit}")));
        }
        let raw = self.img.read(check, at, (n * 8) as usize)?;
        let idx: Vec<u64> = raw.chunks_exact(8).map(|c| le64(c, 0)).collect();
        let step = META_SIZE as u64 + 2;
        for (i, pair) in idx.windows(2).enumerate() {
            if pair[0] >= pair[1] || pair[1] - pair[0] > step {
                return Err(self.img.bad(
                    check,
                    format!("index entry {i} at {} then {}", pair[0], pair[1]),
                ));
            }
        }
        let last = idx[idx.len() - 1];
        if last >= start || start - last > step {
            return Err(self.img.bad(
                check,
                format!("last block at {last} is not just before the table at {start}"),
            ));
        }
        Ok(idx)
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
}
