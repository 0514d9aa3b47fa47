//! A native, streaming, reproducible EROFS writer (uncompressed).
//!
//! The writer plans the whole image from metadata first: inode placement, directory blocks, data
//! block addresses and, in the chunked layout, which data blob each chunk of each file lands in.
//! The result is a set of [`BlobPlan`]s that produce any byte of any output on demand, so a push
//! can stream blobs to a registry without a temporary copy, and a build never holds file data in
//! memory.
//!
//! Two layouts:
//! - [`Layout::Single`]: one self-contained image (FLAT_PLAIN / FLAT_INLINE inodes).
//! - [`Layout::Chunked`]: a small metadata image plus data blobs attached as extra devices
//!   (superblock device table; CHUNK_BASED inodes with 8-byte indexes `{startblk_hi, device_id,
//!   startblk_lo}`). This is the `org.erofs.role: device` layout of the EROFS image layer draft
//!   (erofs/erofs-image-spec §2.4, §11.3).
//!
//! Placement rules of the chunked layout (see `docs/format.md`):
//! - files smaller than one block are stored inline in the metadata image;
//! - files of at least `large_file` bytes start a new data blob and are cut into blobs of at most
//!   `blob_size` bytes at chunk boundaries, so an unchanged large file yields byte-identical blobs;
//!   chunks that are holes in a sparse source take no space (null chunk index);
//! - other files are packed, block aligned, into shared "pack" blobs of at most `blob_size`, in
//!   tree order, so editing one of them changes only its pack blob and the metadata image.

mod devices;
mod dir;
pub mod dump;
pub mod format;
pub mod mapped;
mod xattr;

pub use devices::{TAG_LEN, check_devices, device_tags, tag_of_digest};

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use self::format::*;
use crate::error::{Error, Result};
use crate::source::{BlobPlan, FileStamp, Segment};
use crate::tree::{InodeId, Kind, Tree};

/// How the image is split into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// One self-contained image.
    #[default]
    Single,
    /// A metadata image plus data blobs (EROFS multi-device, chunk-based files).
    Chunked,
}

/// Tunables of the EROFS writer.
#[derive(Debug, Clone)]
pub struct ErofsOptions {
    /// Single image or metadata + data blobs.
    pub layout: Layout,
    /// Chunk size for large files in the chunked layout (power of two, at least 4 KiB).
    pub chunk_size: u64,
    /// Largest data blob in the chunked layout (a multiple of `chunk_size`).
    pub blob_size: u64,
    /// Files of at least this size get data blobs of their own in the chunked layout.
    pub large_file: u64,
    /// Build time recorded in the superblock (seconds).
    pub build_time: u64,
}

/// Default chunk size: 1 MiB keeps the chunk index at 8 bytes per MiB (16 KiB per 2 GiB file).
pub const DEFAULT_CHUNK_SIZE: u64 = 1 << 20;
/// Default blob size: a 2 GiB model gives about eight blobs, enough to keep four uploads busy.
pub const DEFAULT_BLOB_SIZE: u64 = 256 << 20;
/// Default large-file threshold: a quarter of a blob.
pub const DEFAULT_LARGE_FILE: u64 = 64 << 20;

impl Default for ErofsOptions {
    fn default() -> Self {
        ErofsOptions {
            layout: Layout::Single,
            chunk_size: DEFAULT_CHUNK_SIZE,
            blob_size: DEFAULT_BLOB_SIZE,
            large_file: DEFAULT_LARGE_FILE,
            build_time: 0,
        }
    }
}

impl ErofsOptions {
    fn validate(&self) -> Result<()> {
        if !self.chunk_size.is_power_of_two()
            || self.chunk_size < BLKSZ
            || self.chunk_size > (BLKSZ << 31)
        {
            return Err(Error::InvalidOption(format!(
                "chunk size {} must be a power of two of at least 4096",
                self.chunk_size
            )));
        }
        if self.blob_size < self.chunk_size || !self.blob_size.is_multiple_of(self.chunk_size) {
            return Err(Error::InvalidOption(format!(
                "blob size {} must be a multiple of the chunk size {}",
                self.blob_size, self.chunk_size
            )));
        }
        if self.blob_size / BLKSZ > u32::MAX as u64 {
            return Err(Error::InvalidOption(format!(
                "blob size {} is above 16 TiB",
                self.blob_size
            )));
        }
        Ok(())
    }
}

/// A planned EROFS image: the primary image and, in the chunked layout, its data blobs in device
/// order (device id = index + 1).
#[derive(Debug, Clone)]
pub struct ErofsImage {
    /// The primary image (the whole image in the single layout, the metadata image otherwise).
    pub meta: BlobPlan,
    /// Data blobs, named `blob-0000`, `blob-0001`, … so sorted order is device order.
    pub blobs: Vec<BlobPlan>,
    /// Number of inodes.
    pub inodes: u64,
}

/// Device id of the primary image in chunk indexes.
const LOCAL_DEVICE: u16 = 0;

/// Where an inode's data goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Data {
    /// No data blocks (empty files, devices, fifos, sockets, tail-only inline files use `Flat`).
    None,
    /// Contiguous blocks in the primary image, the tail optionally inline.
    Flat { blocks: u64, tail_inline: bool },
    /// Chunk indexes: `(device id, block address)` per chunk, `None` for holes.
    Chunks {
        bits: u32,
        map: Vec<Option<(u16, u32)>>,
    },
}

/// What an inode's bytes are made of.
#[derive(Debug, Clone)]
enum Content {
    None,
    Bytes(Arc<Vec<u8>>),
    File { path: Arc<Path>, stamp: FileStamp },
}

#[derive(Debug, Clone)]
struct Node {
    size: u64,
    content: Content,
    data: Data,
    xattrs: Vec<u8>,
    /// Byte offset of the inode in the primary image.
    pos: u64,
    raw_blkaddr: u32,
    /// The earlier inode whose data blocks this one points at (identical contents).
    shares: Option<InodeId>,
}

impl Node {
    fn tail_len(&self) -> u64 {
        self.size % BLKSZ
    }
    fn base_len(&self) -> u64 {
        (INODE_EXTENDED_SIZE + self.xattrs.len()) as u64
    }
    /// Bytes of metadata after the inode and xattrs: chunk index or inline tail.
    fn extra_len(&self) -> u64 {
        match &self.data {
            Data::Chunks { map, .. } => {
                let aligned = self.base_len().next_multiple_of(CHUNK_INDEX_SIZE as u64);
                aligned - self.base_len() + (map.len() * CHUNK_INDEX_SIZE) as u64
            }
            Data::Flat {
                tail_inline: true, ..
            } => self.tail_len(),
            _ => 0,
        }
    }
}

/// Plans an EROFS image of `tree`.
pub fn plan(tree: &Tree, opts: &ErofsOptions) -> Result<ErofsImage> {
    opts.validate()?;
    let n = tree.inodes.len();
    let dirs = dir::DirLayouts::new(tree);
    let mut nodes: Vec<Node> = Vec::with_capacity(n);
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
    let dups = duplicate_files(tree)?;
    if opts.layout == Layout::Single {
        // Copies share whole blocks: an inline tail would be stored once per copy (a tree of
        // small duplicates would keep most of its size), so every member of a group of
        // identical files gets block-aligned data, tail included.
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

    // Chunked layout: decide blob placement of file data.
    let mut blobs: Vec<BlobPlan> = Vec::new();
    if opts.layout == Layout::Chunked {
        place_chunks(tree, opts, &dups, &mut nodes, &mut blobs)?;
    } else {
        // Sparse files keep their holes in the single layout too: chunk-based on device 0, with
        // null indexes for chunks that hold no data, so a 5 GiB sparse file costs what it stores.
        for (id, inode) in tree.inodes.iter().enumerate() {
            if let Kind::File {
                size,
                extents: Some(ext),
                ..
            } = &inode.kind
                && *size >= BLKSZ
            {
                let cs = opts.chunk_size;
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

    // Metadata placement. An inode with its xattrs and inline data must not cross a block
    // boundary (the kernel rejects inline data that does), so inodes go first-fit into blocks
    // that still have room, the way mkfs.erofs packs them; without that, a tree of small files
    // wastes half a block per file. Block 0 holds the superblock and device table; no inode with
    // an inline *file* tail goes there, so the superblock checksum never depends on file data.
    let devt_slotoff = (SUPER_OFFSET + 128).div_ceil(DEVT_SLOT_SIZE);
    let mut end = (devt_slotoff * DEVT_SLOT_SIZE + blobs.len() * DEVT_SLOT_SIZE) as u64;
    // Blocks left behind with free room: (block start, first free byte).
    let mut open: Vec<(u64, u64)> = Vec::new();
    const MAX_OPEN: usize = 128;
    for (id, node) in nodes.iter_mut().enumerate() {
        let base = node.base_len();
        if base > BLKSZ {
            return Err(Error::Xattr {
                path: tree.inodes[id].path.clone(),
                name: String::new(),
                why: "extended attributes of this inode take more than one 4 KiB block",
            });
        }
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
    let meta_blocks = end.div_ceil(BLKSZ);

    // Data blocks of the primary image, in inode order.
    let mut next_blk = meta_blocks;
    let to_blk = |b: u64| {
        u32::try_from(b)
            .map_err(|_| Error::TooLarge("more than 2^32 blocks in the primary image".into()))
    };
    for id in 0..nodes.len() {
        // Identical contents with the same block shape (the tail may have gone inline for one
        // and not the other) point at the earlier copy's blocks: flat inodes may share them.
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
    let total_blocks =
        u32::try_from(next_blk).map_err(|_| Error::TooLarge("more than 2^32 blocks".into()))?;

    // Encode metadata as one piece per inode (inode, xattrs, inline bytes or chunk index) with
    // file tails as source segments between them: the metadata of a 50k-file tree then costs a
    // few MiB, never the size of its inline tails.
    let nid = |id: InodeId| nodes[id].pos / ISLOT;
    let mut dir_bytes: Vec<Option<Arc<Vec<u8>>>> = vec![None; n];
    for (id, inode) in tree.inodes.iter().enumerate() {
        if inode.is_dir() {
            dir_bytes[id] = Some(Arc::new(dirs.encode(id, tree, &nid)));
        }
    }
    // (offset, bytes, file tail that follows the bytes)
    let mut pieces: Vec<(u64, Vec<u8>, Option<Segment>)> = Vec::with_capacity(n + 1);
    let devt_end = devt_slotoff * DEVT_SLOT_SIZE + blobs.len() * DEVT_SLOT_SIZE;
    let mut head = vec![0u8; devt_end - SUPER_OFFSET];
    for (i, blob) in blobs.iter().enumerate() {
        let off = devt_slotoff * DEVT_SLOT_SIZE + i * DEVT_SLOT_SIZE - SUPER_OFFSET;
        encode_device_slot(blob.len() / BLKSZ, &mut head[off..off + DEVT_SLOT_SIZE]);
    }
    pieces.push((SUPER_OFFSET as u64, head, None));
    for (id, (inode, node)) in tree.inodes.iter().zip(&nodes).enumerate() {
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

    // Superblock: UUID from the metadata (names, sizes, modes, times, xattrs, layout), then the
    // checksum over the rest of block 0.
    let mut incompat = 0;
    if nodes.iter().any(|n| matches!(n.data, Data::Chunks { .. })) {
        incompat |= INCOMPAT_CHUNKED_FILE;
    }
    if !blobs.is_empty() {
        incompat |= INCOMPAT_DEVICE_TABLE;
    }
    let mut sb = SuperBlock {
        feature_compat: COMPAT_SB_CHKSUM,
        feature_incompat: incompat,
        root_nid: nid(Tree::ROOT) as u16,
        inos: n as u64,
        build_time: opts.build_time,
        blocks: total_blocks,
        uuid: [0; 16],
        extra_devices: u16::try_from(blobs.len())
            .map_err(|_| Error::TooLarge("more than 65535 data blobs".into()))?,
        devt_slotoff: devt_slotoff as u16,
    };
    pieces[0].1[..128].copy_from_slice(&sb.encode());
    let mut h = Sha256::new();
    for (off, bytes, tail) in &pieces {
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

    // Segments of the primary image: metadata pieces with file tails, then data blocks.
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
    let segs = merge_bytes(segs);
    let meta_name = if opts.layout == Layout::Chunked {
        "meta.erofs"
    } else {
        "image.erofs"
    };
    Ok(ErofsImage {
        meta: BlobPlan {
            name: meta_name.into(),
            segments: segs,
        },
        blobs,
        inodes: n as u64,
    })
}

/// For each inode, the earlier regular file with identical contents, if any. Sparse files
/// (their holes are placed per chunk) are left out.
fn duplicate_files(tree: &Tree) -> Result<Vec<Option<InodeId>>> {
    let mut ids = Vec::new();
    let mut candidates = Vec::new();
    for (id, inode) in tree.inodes.iter().enumerate() {
        if let Kind::File {
            source,
            size,
            extents: None,
            stamp,
        } = &inode.kind
        {
            ids.push(id);
            candidates.push(crate::dedup::Candidate {
                path: source,
                size: *size,
                stamp: *stamp,
            });
        }
    }
    let mut out = vec![None; tree.inodes.len()];
    for (k, o) in crate::dedup::duplicates(&candidates)?
        .into_iter()
        .enumerate()
    {
        out[ids[k]] = o.map(|o| ids[o]);
    }
    Ok(out)
}

/// Assigns chunk-based data placement for regular files of at least one block.
fn place_chunks(
    tree: &Tree,
    opts: &ErofsOptions,
    dups: &[Option<InodeId>],
    nodes: &mut [Node],
    blobs: &mut Vec<BlobPlan>,
) -> Result<()> {
    let mut pack: Option<usize> = None;
    for (id, inode) in tree.inodes.iter().enumerate() {
        let Kind::File { size, extents, .. } = &inode.kind else {
            continue;
        };
        let size = *size;
        if size < BLKSZ {
            continue;
        }
        // A copy's chunk indexes name the same device ranges as the first copy's.
        if let Some(o) = dups[id]
            && matches!(nodes[o].data, Data::Chunks { .. })
        {
            nodes[id].data = nodes[o].data.clone();
            nodes[id].shares = Some(o);
            continue;
        }
        let Content::File { path, stamp } = nodes[id].content.clone() else {
            continue;
        };
        let has_data = |start: u64, end: u64| match extents {
            None => true,
            Some(ext) => ext.iter().any(|&(s, e)| s < end && e > start),
        };
        let padded = |len: u64| len.next_multiple_of(BLKSZ);
        let push = |blob: &mut BlobPlan, offset: u64, len: u64| -> Result<u32> {
            let blk = blob.len() / BLKSZ;
            blob.segments.push(Segment::File {
                path: path.clone(),
                offset,
                len,
                expect: stamp,
            });
            if padded(len) > len {
                blob.segments.push(Segment::Zero(padded(len) - len));
            }
            u32::try_from(blk).map_err(|_| Error::TooLarge("blob beyond 2^32 blocks".into()))
        };
        let dev_of = |idx: usize| -> Result<u16> {
            u16::try_from(idx + 1).map_err(|_| Error::TooLarge("more than 65535 data blobs".into()))
        };
        if size >= opts.large_file {
            let cs = opts.chunk_size;
            let nchunks = size.div_ceil(cs);
            let mut map = Vec::with_capacity(nchunks as usize);
            let mut cur: Option<usize> = None;
            for c in 0..nchunks {
                let start = c * cs;
                let len = cs.min(size - start);
                if !has_data(start, start + len) {
                    map.push(None);
                    continue;
                }
                let idx = match cur {
                    Some(i) if blobs[i].len() + padded(len) <= opts.blob_size => i,
                    _ => {
                        blobs.push(BlobPlan {
                            name: String::new(),
                            segments: Vec::new(),
                        });
                        blobs.len() - 1
                    }
                };
                cur = Some(idx);
                let blk = push(&mut blobs[idx], start, len)?;
                map.push(Some((dev_of(idx)?, blk)));
            }
            nodes[id].data = Data::Chunks {
                bits: cs.trailing_zeros(),
                map,
            };
        } else {
            let bits = size.next_power_of_two().trailing_zeros().max(BLKBITS);
            if !has_data(0, size) {
                nodes[id].data = Data::Chunks {
                    bits,
                    map: vec![None],
                };
                continue;
            }
            let idx = match pack {
                Some(i) if blobs[i].len() + padded(size) <= opts.blob_size => i,
                _ => {
                    blobs.push(BlobPlan {
                        name: String::new(),
                        segments: Vec::new(),
                    });
                    blobs.len() - 1
                }
            };
            pack = Some(idx);
            let blk = push(&mut blobs[idx], 0, size)?;
            nodes[id].data = Data::Chunks {
                bits,
                map: vec![Some((dev_of(idx)?, blk))],
            };
        }
    }
    for (i, blob) in blobs.iter_mut().enumerate() {
        blob.name = format!("blob-{i:04}");
    }
    Ok(())
}

/// Coalesces runs of generated bytes and short zero gaps into single buffers (few large writes
/// instead of one per inode) and drops empty segments; file data and long zero runs stay as they are.
fn merge_bytes(segs: Vec<Segment>) -> Vec<Segment> {
    const SMALL_GAP: u64 = BLKSZ;
    let mut out: Vec<Segment> = Vec::with_capacity(segs.len() / 2 + 1);
    let mut acc: Vec<u8> = Vec::new();
    let flush = |acc: &mut Vec<u8>, out: &mut Vec<Segment>| {
        if !acc.is_empty() {
            let buf = std::mem::take(acc);
            let len = buf.len();
            out.push(Segment::Bytes {
                buf: Arc::new(buf),
                start: 0,
                len,
            });
        }
    };
    for s in segs {
        match &s {
            _ if s.is_empty() => {}
            Segment::Bytes { buf, start, len } => {
                acc.extend_from_slice(&buf[*start..*start + *len])
            }
            Segment::Zero(n) if *n <= SMALL_GAP && !acc.is_empty() => {
                acc.resize(acc.len() + *n as usize, 0)
            }
            Segment::Zero(n) => {
                flush(&mut acc, &mut out);
                if let Some(Segment::Zero(m)) = out.last_mut() {
                    *m += n;
                } else {
                    out.push(s);
                }
            }
            Segment::File { .. } => {
                flush(&mut acc, &mut out);
                out.push(s);
            }
        }
    }
    flush(&mut acc, &mut out);
    out
}
