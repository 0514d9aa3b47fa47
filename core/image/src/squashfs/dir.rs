//! Directory listings: entries grouped under headers that share an inode metadata block, and the
//! index that lets the kernel skip to the right 8 KiB of a large directory.
//!
//! Rules (kernel `fs/squashfs/dir.c`, `namei.c`): at most 256 entries per header; entries of one
//! header have their inodes in the same inode-table block and inode numbers within ±32767 of the
//! header's; names are sorted bytewise. We also start a new header, and record an index entry for
//! it, whenever the bytes since the last indexed header would exceed one metadata block, so a
//! lookup reads at most about two blocks of a huge directory.

use super::format::{DIR_COUNT, METADATA_SIZE};

/// One child as the listing needs it.
pub(crate) struct DirChild<'a> {
    pub name: &'a [u8],
    /// Start of the inode's block relative to the inode table.
    pub block: u64,
    /// Offset of the inode in its uncompressed block.
    pub offset: u16,
    pub inode_number: u32,
    /// Basic inode type (directory entries never carry extended types).
    pub basic_type: u16,
}

/// An index entry: byte offset of a header in the listing and the first name under it.
pub(crate) struct IndexPoint<'a> {
    pub offset: u32,
    pub name: &'a [u8],
}

const ENTRY: usize = 8;

/// Encodes the listing of `children` (already sorted by name).
pub(crate) fn encode<'a>(children: &[DirChild<'a>]) -> (Vec<u8>, Vec<IndexPoint<'a>>) {
    let mut out = Vec::new();
    let mut index = Vec::new();
    let mut count_at: Option<usize> = None;
    let mut count = 0usize;
    let mut base = (0u64, 0u32);
    let mut indexed_at = 0usize;
    for c in children {
        let size = ENTRY + c.name.len();
        let diff = c.inode_number as i64 - base.1 as i64;
        let too_far = out.len() + size - indexed_at > METADATA_SIZE;
        let new_header = count_at.is_none()
            || count == DIR_COUNT
            || c.block != base.0
            || !(-32768..=32767).contains(&diff)
            || too_far;
        if new_header {
            if let Some(at) = count_at {
                out[at..at + 4].copy_from_slice(&(count as u32 - 1).to_le_bytes());
                if too_far {
                    indexed_at = out.len();
                    index.push(IndexPoint {
                        offset: out.len() as u32,
                        name: c.name,
                    });
                }
            }
            count_at = Some(out.len());
            count = 0;
            base = (c.block, c.inode_number);
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(c.block as u32).to_le_bytes());
            out.extend_from_slice(&c.inode_number.to_le_bytes());
        }
        let diff = (c.inode_number as i64 - base.1 as i64) as i16;
        out.extend_from_slice(&c.offset.to_le_bytes());
        out.extend_from_slice(&diff.to_le_bytes());
        out.extend_from_slice(&c.basic_type.to_le_bytes());
        out.extend_from_slice(&(c.name.len() as u16 - 1).to_le_bytes());
        out.extend_from_slice(c.name);
        count += 1;
    }
    if let Some(at) = count_at {
        out[at..at + 4].copy_from_slice(&(count as u32 - 1).to_le_bytes());
    }
    (out, index)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(listing: &[u8]) -> Vec<(u32, u32, u32)> {
        let mut out = Vec::new();
        let mut p = 0;
        while p < listing.len() {
            let rd = |o: usize| u32::from_le_bytes(listing[o..o + 4].try_into().unwrap());
            let (count, block, ino) = (rd(p) + 1, rd(p + 4), rd(p + 8));
            out.push((count, block, ino));
            p += 12;
            for _ in 0..count {
                let name_len = u16::from_le_bytes([listing[p + 6], listing[p + 7]]) as usize + 1;
                p += 8 + name_len;
            }
        }
        out
    }

    #[test]
    fn headers_split_at_256_entries_block_changes_and_far_inode_numbers() {
        let names: Vec<Vec<u8>> = (0..600).map(|i| format!("f{i:04}").into_bytes()).collect();
        let kids: Vec<DirChild> = names
            .iter()
            .enumerate()
            .map(|(i, n)| DirChild {
                name: n,
                block: if i < 300 { 0 } else { 4000 },
                offset: 0,
                inode_number: if i == 599 { 100_000 } else { i as u32 + 1 },
                basic_type: 2,
            })
            .collect();
        let (listing, _) = encode(&kids);
        let h = headers(&listing);
        assert_eq!(
            h,
            vec![
                (256, 0, 1),
                (44, 0, 257),
                (256, 4000, 301),
                (43, 4000, 557),
                (1, 4000, 100_000)
            ]
        );
    }

    #[test]
    fn large_listings_get_an_index_point_per_metadata_block() {
        let names: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("{i:05}{}", "x".repeat(40)).into_bytes())
            .collect();
        let kids: Vec<DirChild> = names
            .iter()
            .enumerate()
            .map(|(i, n)| DirChild {
                name: n,
                block: 0,
                offset: 0,
                inode_number: i as u32 + 1,
                basic_type: 2,
            })
            .collect();
        let (listing, index) = encode(&kids);
        assert!(listing.len() > 10 * METADATA_SIZE);
        assert!(index.len() >= listing.len() / METADATA_SIZE);
        let mut prev = 0;
        for p in &index {
            assert!(p.offset as usize - prev <= METADATA_SIZE);
            // Each index point is a header whose first entry carries the recorded name.
            let at = p.offset as usize + 12;
            let len = u16::from_le_bytes([listing[at + 6], listing[at + 7]]) as usize + 1;
            assert_eq!(&listing[at + 8..at + 8 + len], p.name);
            prev = p.offset as usize;
        }
    }
}
