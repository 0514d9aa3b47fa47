//! The stages of [`plan`](super::plan), each a function of the tree and the nodes the stages
//! before it shaped, so each can be read and tested alone: shape the inodes, place their data
//! (single layout: duplicates and sparse files; the chunked layout's blob placement is
//! `place_chunks` in the parent), place the metadata, place the primary image's data blocks,
//! encode the metadata, seal the superblock, and lay out the primary image's segments.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::format::*;
use super::{Content, Data, LOCAL_DEVICE, Node, dir, merge_bytes, xattr};
use crate::error::{Error, Result};
use crate::source::{BlobPlan, Segment};
use crate::tree::{InodeId, Kind, Tree};

/// Stage 1: every inode's size, content and xattrs, with flat data (the tail inline when there
/// is one); later stages change the shape where the layout needs it.
pub(super) fn shape_nodes(tree: &Tree, dirs: &dir::DirLayouts) -> Result<Vec<Node>> {
    let mut nodes: Vec<Node> = Vec::with_capacity(tree.inodes.len());
    for (id, inode) in tree.inodes.iter().enumerate() {
        let xattrs = xattr::encode(&inode.xattrs, &inode.path)?;
        let (size, content) = match &inode.kind {
            Kind::Dir { .. } => (dirs.size(id), Content::None),
            Kind::File {
                source,
                size,
                stamp,
                ..
            } => (
                *size,
                Content::File {
                    path: Arc::from(source.as_path()),
                    stamp: *stamp,
                },
            ),
            Kind::Symlink { target } => (
                target.len() as u64,
                Content::Bytes(Arc::new(target.clone())),
            ),
            _ => (0, Content::None),
        };
        let data = if size == 0 {
            Data::None
        } else {
            Data::Flat {
                blocks: size / BLKSZ,
                tail_inline: size % BLKSZ != 0,
            }
        };
        nodes.push(Node {
            size,
            content,
            data,
            xattrs,
            pos: 0,
            raw_blkaddr: 0,
            shares: None,
        });
    }
    Ok(nodes)
}

/// Stage 2 of the single layout: copies share whole blocks. An inline tail would be stored once
/// per copy (a tree of small duplicates would keep most of its size), so every member of a
/// group of identical files gets block-aligned data, tail included.
pub(super) fn align_duplicates(nodes: &mut [Node], dups: &[Option<InodeId>]) {
    for (id, dup) in dups.iter().enumerate() {
        if let Some(o) = *dup {
            for m in [o, id] {
                let size = nodes[m].size;
                nodes[m].data = Data::Flat {
                    blocks: size.div_ceil(BLKSZ),
                    tail_inline: false,
                };
            }
        }
    }
}

/// Stage 2 of the single layout: sparse files keep their holes. They become chunk-based on
/// device 0, with null indexes for chunks that hold no data, so a 5 GiB sparse file costs what
/// it stores. Block addresses are set by [`place_data`].
pub(super) fn map_sparse_files(tree: &Tree, chunk_size: u64, nodes: &mut [Node]) {
    for (id, inode) in tree.inodes.iter().enumerate() {
        if let Kind::File {
            size,
            extents: Some(ext),
            ..
        } = &inode.kind
            && *size >= BLKSZ
        {
            let cs = chunk_size;
            let map = (0..size.div_ceil(cs))
                .map(|c| {
                    let (start, end) = (c * cs, ((c + 1) * cs).min(*size));
                    ext.iter()
                        .any(|&(s, e)| s < end && e > start)
                        .then_some((LOCAL_DEVICE, 0))
                })
                .collect();
            nodes[id].data = Data::Chunks {
                bits: cs.trailing_zeros(),
                map,
            };
        }
    }
}

/// Stage 3: metadata placement; sets each node's `pos` and returns the metadata's length in
/// blocks.
///
/// An inode with its xattrs and inline data must not cross a block boundary (the kernel rejects
/// inline data that does), so inodes go first-fit into blocks that still have room, the way
/// mkfs.erofs packs them; without that, a tree of small files wastes half a block per file.
/// Block 0 holds the superblock and the device table (`devices` slots from `devt_slotoff`); no
/// inode with an inline *file* tail goes there, so the superblock checksum never depends on file
/// data.
///
/// Errors: [`Error::TooLarge`] when the root inode lands beyond the 16-bit root nid.
pub(super) fn place_inodes(nodes: &mut [Node], devt_slotoff: usize, devices: usize) -> Result<u64> {
    let mut end = (devt_slotoff * DEVT_SLOT_SIZE + devices * DEVT_SLOT_SIZE) as u64;
    // Blocks left behind with free room: (block start, first free byte).
    let mut open: Vec<(u64, u64)> = Vec::new();
    const MAX_OPEN: usize = 128;
    for node in nodes.iter_mut() {
        // Inline xattrs over one block start a block and run across the next ones: the kernel
        // reads them by position, block by block (`erofs_xattr_iter_inline`, fs/erofs/xattr.c),
        // as mkfs.erofs 1.9.3 writes them. Only an inline tail must stay in the inode's block,
        // and the check below moves it to a block of its own.
        let base = node.base_len();
        if let Data::Flat {
            blocks,
            tail_inline: true,
        } = node.data
            && base + node.tail_len() > BLKSZ
        {
            // Cannot fit in one block with the inode: the tail gets a data block of its own.
            node.data = Data::Flat {
                blocks: blocks + 1,
                tail_inline: false,
            };
        }
        let file_tail = matches!(
            node.data,
            Data::Flat {
                tail_inline: true,
                ..
            }
        ) && matches!(node.content, Content::File { .. });
        let need = base + node.extra_len();
        let fits = |blk: u64, free: u64| {
            let p = free.next_multiple_of(ISLOT);
            p + need.min(BLKSZ) <= blk + BLKSZ && !(file_tail && blk == 0)
        };
        if need <= BLKSZ
            && let Some(slot) = open.iter_mut().find(|(blk, free)| fits(*blk, *free))
        {
            node.pos = slot.1.next_multiple_of(ISLOT);
            slot.1 = node.pos + need;
        } else {
            // Append at the end; what must stay within one block (the whole record, or the
            // inode and xattrs of a long chunk index) starts a new block when it would cross.
            let mut p = end.next_multiple_of(ISLOT);
            let in_block = if need <= BLKSZ { need } else { base };
            if (p % BLKSZ) + in_block > BLKSZ || (file_tail && p < BLKSZ) {
                let blk = end / BLKSZ * BLKSZ;
                if !end.is_multiple_of(BLKSZ) {
                    open.push((blk, end));
                }
                p = p.next_multiple_of(BLKSZ);
            }
            node.pos = p;
            end = p + need;
        }
        open.retain(|(blk, free)| {
            blk + BLKSZ - free.next_multiple_of(ISLOT) >= INODE_EXTENDED_SIZE as u64
        });
        if open.len() > MAX_OPEN {
            let fullest = (0..open.len())
                .min_by_key(|&i| open[i].0 + BLKSZ - open[i].1)
                .expect("non-empty");
            open.swap_remove(fullest);
        }
    }
    if nodes[Tree::ROOT].pos / ISLOT > u16::MAX as u64 {
        return Err(Error::TooLarge(
            "root inode beyond the 16-bit root nid".into(),
        ));
    }
    Ok(end.div_ceil(BLKSZ))
}

/// Stage 4: data blocks of the primary image, in inode order after the `meta_blocks` metadata
/// blocks; returns the image's length in blocks. Identical contents with the same block shape
/// (the tail may have gone inline for one and not the other) point at the earlier copy's blocks.
///
/// Errors: [`Error::TooLarge`] past 2^32 blocks.
pub(super) fn place_data(
    nodes: &mut [Node],
    dups: &[Option<InodeId>],
    meta_blocks: u64,
) -> Result<u32> {
    let mut next_blk = meta_blocks;
    let to_blk = |b: u64| {
        u32::try_from(b)
            .map_err(|_| Error::TooLarge("more than 2^32 blocks in the primary image".into()))
    };
    for id in 0..nodes.len() {
        if let Some(o) = dups[id]
            && nodes[o].data == nodes[id].data
            && matches!(nodes[id].data, Data::Flat { blocks, .. } if blocks > 0)
        {
            nodes[id].raw_blkaddr = nodes[o].raw_blkaddr;
            nodes[id].shares = Some(o);
            continue;
        }
        let node = &mut nodes[id];
        let size = node.size;
        match &mut node.data {
            Data::Flat { blocks, .. } if *blocks > 0 => {
                node.raw_blkaddr = to_blk(next_blk)?;
                next_blk += *blocks;
            }
            Data::Chunks { bits, map } => {
                let cs = 1u64 << *bits;
                for (c, entry) in map.iter_mut().enumerate() {
                    if let Some((LOCAL_DEVICE, blk)) = entry {
                        *blk = to_blk(next_blk)?;
                        next_blk += cs.min(size - c as u64 * cs).div_ceil(BLKSZ);
                    }
                }
            }
            _ => {}
        }
    }
    u32::try_from(next_blk).map_err(|_| Error::TooLarge("more than 2^32 blocks".into()))
}

/// One piece of the metadata: its byte offset in the primary image, its bytes, and the file tail
/// that follows the bytes (read from the source at write time).
pub(super) type Piece = (u64, Vec<u8>, Option<Segment>);

/// Stage 5: the metadata as one piece per inode (inode, xattrs, inline bytes or chunk index),
/// after a first piece holding the superblock's place and the device table, sorted by offset.
/// File tails stay source segments between the pieces: the metadata of a 50k-file tree then
/// costs a few MiB, never the size of its inline tails.
pub(super) fn encode_metadata(
    tree: &Tree,
    nodes: &[Node],
    dir_bytes: &[Option<Arc<Vec<u8>>>],
    blobs: &[BlobPlan],
    devt_slotoff: usize,
) -> Vec<Piece> {
    let mut pieces: Vec<Piece> = Vec::with_capacity(nodes.len() + 1);
    let devt_end = devt_slotoff * DEVT_SLOT_SIZE + blobs.len() * DEVT_SLOT_SIZE;
    let mut head = vec![0u8; devt_end - SUPER_OFFSET];
    for (i, blob) in blobs.iter().enumerate() {
        let off = devt_slotoff * DEVT_SLOT_SIZE + i * DEVT_SLOT_SIZE - SUPER_OFFSET;
        encode_device_slot(blob.len() / BLKSZ, &mut head[off..off + DEVT_SLOT_SIZE]);
    }
    pieces.push((SUPER_OFFSET as u64, head, None));
    for (id, (inode, node)) in tree.inodes.iter().zip(nodes).enumerate() {
        let mut rec = InodeRecord {
            layout: DataLayout::FlatPlain as u16,
            xattr_icount: xattr::icount(node.xattrs.len()),
            mode: inode.mode() as u16,
            size: node.size,
            i_u: node.raw_blkaddr,
            ino: (id + 1) as u32,
            uid: inode.uid,
            gid: inode.gid,
            mtime: inode.mtime,
            mtime_nsec: inode.mtime_nsec,
            nlink: inode.nlink,
        };
        if let Kind::CharDev { rdev } | Kind::BlockDev { rdev } = &inode.kind {
            rec.i_u = encode_rdev(*rdev);
        }
        let base = node.base_len() as usize;
        let mut buf = vec![0u8; base];
        let mut tail_seg = None;
        match &node.data {
            Data::Chunks { bits, map } => {
                rec.layout = DataLayout::ChunkBased as u16;
                rec.i_u = ((bits - BLKBITS) as u16 | CHUNK_FORMAT_INDEXES) as u32;
                let mut off = base.next_multiple_of(CHUNK_INDEX_SIZE);
                buf.resize(off + map.len() * CHUNK_INDEX_SIZE, 0);
                for entry in map {
                    let (dev, blk) = entry.unwrap_or((0, NULL_ADDR));
                    encode_chunk_index(dev, blk, &mut buf[off..off + CHUNK_INDEX_SIZE]);
                    off += CHUNK_INDEX_SIZE;
                }
            }
            Data::Flat {
                tail_inline: true,
                blocks,
            } => {
                rec.layout = DataLayout::FlatInline as u16;
                let tail_off = blocks * BLKSZ;
                match &node.content {
                    Content::Bytes(b) => buf.extend_from_slice(&b[tail_off as usize..]),
                    Content::File { path, stamp } => {
                        tail_seg = Some(Segment::File {
                            path: path.clone(),
                            offset: tail_off,
                            len: node.tail_len(),
                            expect: *stamp,
                        })
                    }
                    Content::None => {
                        let b = dir_bytes[id].as_ref().expect("directory bytes encoded");
                        buf.extend_from_slice(&b[tail_off as usize..]);
                    }
                }
            }
            _ => {}
        }
        rec.encode(&mut buf[..INODE_EXTENDED_SIZE]);
        buf[INODE_EXTENDED_SIZE..base].copy_from_slice(&node.xattrs);
        pieces.push((node.pos, buf, tail_seg));
    }
    // First-fit placement is not in inode order; segments must be.
    pieces.sort_by_key(|p| p.0);
    pieces
}

/// Stage 6: the superblock, written into the first piece: its feature flags (chunk-based files
/// when `chunked`, a device table when there are extra devices), a UUID derived from the
/// metadata (names, sizes, modes, times, xattrs, layout; the tails by their stamps), then the
/// checksum over the rest of block 0.
pub(super) fn seal_superblock(pieces: &mut [Piece], mut sb: SuperBlock, chunked: bool) {
    if chunked {
        sb.feature_incompat |= INCOMPAT_CHUNKED_FILE;
    }
    if sb.extra_devices > 0 {
        sb.feature_incompat |= INCOMPAT_DEVICE_TABLE;
    }
    pieces[0].1[..128].copy_from_slice(&sb.encode());
    let mut h = Sha256::new();
    for (off, bytes, tail) in pieces.iter() {
        h.update(off.to_le_bytes());
        h.update(bytes);
        if let Some(Segment::File { expect, .. }) = tail {
            h.update(expect.size.to_le_bytes());
            h.update(expect.mtime.0.to_le_bytes());
            h.update(expect.mtime.1.to_le_bytes());
        }
    }
    let digest = h.finalize();
    sb.uuid.copy_from_slice(&digest[..16]);
    sb.uuid[6] = (sb.uuid[6] & 0x0f) | 0x50; // RFC 4122 version 5 style: name-based
    sb.uuid[8] = (sb.uuid[8] & 0x3f) | 0x80;
    pieces[0].1[..128].copy_from_slice(&sb.encode());
    let mut block0 = vec![0u8; BLKSZ as usize];
    for (off, bytes, _) in pieces.iter().take_while(|p| p.0 < BLKSZ) {
        let end = (*off as usize + bytes.len()).min(BLKSZ as usize);
        block0[*off as usize..end].copy_from_slice(&bytes[..end - *off as usize]);
    }
    let crc = superblock_checksum(&block0[SUPER_OFFSET..]);
    put32(&mut pieces[0].1, 4, crc);
}

/// Stage 7: the primary image as segments: the metadata pieces with their file tails, padded to
/// `meta_blocks`, then the data blocks of each inode that owns some, in inode order.
pub(super) fn primary_segments(
    pieces: Vec<Piece>,
    nodes: &[Node],
    dir_bytes: &[Option<Arc<Vec<u8>>>],
    meta_blocks: u64,
) -> Vec<Segment> {
    let mut segs = vec![Segment::Zero(SUPER_OFFSET as u64)];
    let mut at = SUPER_OFFSET as u64;
    for (off, bytes, tail) in pieces {
        segs.push(Segment::Zero(off - at));
        at = off + bytes.len() as u64;
        let len = bytes.len();
        segs.push(Segment::Bytes {
            buf: Arc::new(bytes),
            start: 0,
            len,
        });
        if let Some(t) = tail {
            at += t.len();
            segs.push(t);
        }
    }
    segs.push(Segment::Zero(meta_blocks * BLKSZ - at));
    for (id, node) in nodes.iter().enumerate() {
        if let (Data::Chunks { bits, map }, Content::File { path, stamp }) =
            (&node.data, &node.content)
        {
            let cs = 1u64 << *bits;
            for (c, entry) in map.iter().enumerate() {
                if let Some((LOCAL_DEVICE, _)) = entry {
                    let (offset, len) = (c as u64 * cs, cs.min(node.size - c as u64 * cs));
                    segs.push(Segment::File {
                        path: path.clone(),
                        offset,
                        len,
                        expect: *stamp,
                    });
                    segs.push(Segment::Zero(len.next_multiple_of(BLKSZ) - len));
                }
            }
            continue;
        }
        let Data::Flat { blocks, .. } = node.data else {
            continue;
        };
        if blocks == 0 || node.shares.is_some() {
            continue;
        }
        let bytes = (blocks * BLKSZ).min(node.size);
        match &node.content {
            Content::File { path, stamp } => segs.push(Segment::File {
                path: path.clone(),
                offset: 0,
                len: bytes,
                expect: *stamp,
            }),
            Content::Bytes(b) => segs.push(Segment::Bytes {
                buf: b.clone(),
                start: 0,
                len: bytes as usize,
            }),
            Content::None => {
                let b = dir_bytes[id].as_ref().expect("directory bytes encoded");
                segs.push(Segment::Bytes {
                    buf: b.clone(),
                    start: 0,
                    len: bytes as usize,
                });
            }
        }
        let pad = blocks * BLKSZ - bytes;
        if pad > 0 {
            segs.push(Segment::Zero(pad));
        }
    }
    merge_bytes(segs)
}

#[cfg(test)]
mod tests;
