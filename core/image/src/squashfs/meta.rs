//! Metadata streams: records of any size cut into 8 KiB blocks, each compressed on its own and
//! prefixed with a 16-bit size header, plus the "lookup table" layout (blocks followed by an
//! array of absolute block positions) used by the id, fragment, export and xattr-id tables.
//!
//! Records may straddle block boundaries; readers address them by (block start, offset), which
//! [`MetaWriter::pos`] hands out before a record is appended.

use super::compress::Codec;
use super::format::{META_UNCOMPRESSED, METADATA_SIZE};
use crate::error::Result;

/// An append-only metadata stream.
pub(crate) struct MetaWriter {
    /// Bytes of the block being filled (less than 8 KiB once `write` returns).
    pending: Vec<u8>,
    /// Finished blocks, headers included.
    out: Vec<u8>,
    /// Start of each finished block in `out`.
    starts: Vec<u64>,
    scratch: Vec<u8>,
}

impl MetaWriter {
    pub(crate) fn new() -> MetaWriter {
        MetaWriter {
            pending: Vec::with_capacity(METADATA_SIZE),
            out: Vec::new(),
            starts: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Where the next record begins: block start relative to the stream, offset in the block.
    pub(crate) fn pos(&self) -> (u64, u16) {
        (self.out.len() as u64, self.pending.len() as u16)
    }

    /// Uncompressed position of the next byte, as if all blocks were laid end to end.
    pub(crate) fn upos(&self) -> u64 {
        (self.starts.len() * METADATA_SIZE + self.pending.len()) as u64
    }

    /// Start (relative to the stream) of the block holding uncompressed position `upos`, which
    /// must be in a finished block or the one being filled.
    pub(crate) fn block_start_of(&self, upos: u64) -> u64 {
        let idx = (upos / METADATA_SIZE as u64) as usize;
        self.starts
            .get(idx)
            .copied()
            .unwrap_or(self.out.len() as u64)
    }

    /// Appends bytes, finishing blocks as they fill.
    pub(crate) fn write(&mut self, codec: &mut Codec, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let room = METADATA_SIZE - self.pending.len();
            let n = room.min(bytes.len());
            self.pending.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.pending.len() == METADATA_SIZE {
                self.flush(codec)?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, codec: &mut Codec) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.starts.push(self.out.len() as u64);
        if codec.compress(&self.pending, &mut self.scratch)? {
            self.out
                .extend_from_slice(&(self.scratch.len() as u16).to_le_bytes());
            self.out.extend_from_slice(&self.scratch);
        } else {
            let h = self.pending.len() as u16 | META_UNCOMPRESSED;
            self.out.extend_from_slice(&h.to_le_bytes());
            self.out.extend_from_slice(&self.pending);
        }
        self.pending.clear();
        Ok(())
    }

    /// Finishes the last block; returns the stream bytes and the start of each block.
    pub(crate) fn finish(mut self, codec: &mut Codec) -> Result<(Vec<u8>, Vec<u64>)> {
        self.flush(codec)?;
        Ok((self.out, self.starts))
    }
}

/// Encodes a lookup table placed at absolute offset `at`: its metadata blocks, then the array of
/// absolute block positions. Returns the bytes and the absolute offset of the array (what the
/// superblock points to).
pub(crate) fn lookup_table(codec: &mut Codec, entries: &[u8], at: u64) -> Result<(Vec<u8>, u64)> {
    let mut w = MetaWriter::new();
    w.write(codec, entries)?;
    let (mut bytes, starts) = w.finish(codec)?;
    let index_at = at + bytes.len() as u64;
    for s in starts {
        bytes.extend_from_slice(&(at + s).to_le_bytes());
    }
    Ok((bytes, index_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::squashfs::Compression;

    #[test]
    fn records_straddle_blocks_and_positions_follow_compressed_starts() {
        let mut codec = Codec::new(Compression::Zstd, Some(3), 1 << 17).unwrap();
        let mut w = MetaWriter::new();
        w.write(&mut codec, &[7u8; 8000]).unwrap();
        assert_eq!(w.pos(), (0, 8000));
        w.write(&mut codec, &[9u8; 500]).unwrap();
        let (start, off) = w.pos();
        assert_eq!(off as usize, 8500 - METADATA_SIZE);
        assert!(start > 0 && start < 100, "first block compressed: {start}");
        assert_eq!(w.block_start_of(8191), 0);
        assert_eq!(w.block_start_of(8192), start);
        let (bytes, starts) = w.finish(&mut codec).unwrap();
        assert_eq!(starts, vec![0, start]);
        let h0 = u16::from_le_bytes([bytes[0], bytes[1]]);
        assert_eq!(h0 & META_UNCOMPRESSED, 0);
        assert_eq!(h0 as u64 + 2, start);
    }

    #[test]
    fn incompressible_blocks_are_stored_raw() {
        let mut codec = Codec::new(Compression::Lz4, None, 1 << 17).unwrap();
        let mut w = MetaWriter::new();
        let noise: Vec<u8> = (0..100u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        w.write(&mut codec, &noise).unwrap();
        let (bytes, _) = w.finish(&mut codec).unwrap();
        let h = u16::from_le_bytes([bytes[0], bytes[1]]);
        assert_eq!(h, 100 | META_UNCOMPRESSED);
    }
}
