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
mod stages;
mod xattr;

pub use devices::{TAG_LEN, check_devices, device_tags, tag_of_digest};

use std::path::Path;
use std::sync::Arc;

use self::format::*;
use self::stages::*;
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

/// Plans an EROFS image of `tree`, in stages: the inodes' sizes and data shapes, the layout's
/// data placement (duplicates and sparse files in the single layout, blobs in the chunked one),
/// the metadata placement, the data blocks of the primary image, the encoded metadata, the
/// superblock, and finally the primary image's segments.
pub fn plan(tree: &Tree, opts: &ErofsOptions) -> Result<ErofsImage> {
    opts.validate()?;
    let dirs = dir::DirLayouts::new(tree);
    let mut nodes = shape_nodes(tree, &dirs)?;
    let dups = duplicate_files(tree)?;
    let mut blobs: Vec<BlobPlan> = Vec::new();
    match opts.layout {
        Layout::Single => {
            align_duplicates(&mut nodes, &dups);
            map_sparse_files(tree, opts.chunk_size, &mut nodes);
        }
        Layout::Chunked => place_chunks(tree, opts, &dups, &mut nodes, &mut blobs)?,
    }
    let devt_slotoff = (SUPER_OFFSET + 128).div_ceil(DEVT_SLOT_SIZE);
    let meta_blocks = place_inodes(&mut nodes, devt_slotoff, blobs.len())?;
    let total_blocks = place_data(&mut nodes, &dups, meta_blocks)?;
    let nid = |id: InodeId| nodes[id].pos / ISLOT;
    let dir_bytes: Vec<Option<Arc<Vec<u8>>>> = tree
        .inodes
        .iter()
        .enumerate()
        .map(|(id, inode)| {
            inode
                .is_dir()
                .then(|| Arc::new(dirs.encode(id, tree, &nid)))
        })
        .collect();
    let mut pieces = encode_metadata(tree, &nodes, &dir_bytes, &blobs, devt_slotoff);
    let sb = SuperBlock {
        feature_compat: COMPAT_SB_CHKSUM,
        feature_incompat: 0,
        root_nid: nid(Tree::ROOT) as u16,
        inos: tree.inodes.len() as u64,
        build_time: opts.build_time,
        blocks: total_blocks,
        uuid: [0; 16],
        extra_devices: u16::try_from(blobs.len())
            .map_err(|_| Error::TooLarge("more than 65535 data blobs".into()))?,
        devt_slotoff: devt_slotoff as u16,
    };
    let chunked = nodes.iter().any(|n| matches!(n.data, Data::Chunks { .. }));
    seal_superblock(&mut pieces, sb, chunked);
    let segs = primary_segments(pieces, &nodes, &dir_bytes, meta_blocks);
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
        inodes: tree.inodes.len() as u64,
    })
}

/// For each inode, the earlier regular file with identical contents, if any. Sparse files
/// (their holes are placed per chunk) are left out.
fn duplicate_files(tree: &Tree) -> Result<Vec<Option<InodeId>>> {
    crate::dedup::inode_duplicates(tree, |sparse| !sparse)
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
        let file = ChunkedFile {
            path,
            stamp,
            size,
            extents: extents.as_deref(),
        };
        nodes[id].data = if size >= opts.large_file {
            file.large(opts, blobs)?
        } else {
            file.small(opts, blobs, &mut pack)?
        };
    }
    for (i, blob) in blobs.iter_mut().enumerate() {
        blob.name = format!("blob-{i:04}");
    }
    Ok(())
}

/// A regular file of at least one block being placed in the data blobs of the chunked layout.
struct ChunkedFile<'a> {
    path: Arc<Path>,
    stamp: FileStamp,
    size: u64,
    /// Byte ranges holding data (`None`: all of it), to keep holes out of the blobs.
    extents: Option<&'a [(u64, u64)]>,
}

impl ChunkedFile<'_> {
    /// A large file: chunks of `opts.chunk_size` bytes, filling blobs in order and starting a
    /// new one when the chunk does not fit; chunks holding no data map to no blob.
    fn large(&self, opts: &ErofsOptions, blobs: &mut Vec<BlobPlan>) -> Result<Data> {
        let (cs, size) = (opts.chunk_size, self.size);
        let nchunks = size.div_ceil(cs);
        let mut map = Vec::with_capacity(nchunks as usize);
        let mut cur: Option<usize> = None;
        for c in 0..nchunks {
            let start = c * cs;
            let len = cs.min(size - start);
            if !self.has_data(start, start + len) {
                map.push(None);
                continue;
            }
            let idx = blob_with_room(blobs, cur, len, opts.blob_size);
            cur = Some(idx);
            let blk = self.append(&mut blobs[idx], start, len)?;
            map.push(Some((device_of(idx)?, blk)));
        }
        Ok(Data::Chunks {
            bits: cs.trailing_zeros(),
            map,
        })
    }

    /// A small file: one chunk (its size rounded up to a power of two), packed with other small
    /// files into the blob `pack` until it is full.
    fn small(
        &self,
        opts: &ErofsOptions,
        blobs: &mut Vec<BlobPlan>,
        pack: &mut Option<usize>,
    ) -> Result<Data> {
        let size = self.size;
        let bits = size.next_power_of_two().trailing_zeros().max(BLKBITS);
        if !self.has_data(0, size) {
            return Ok(Data::Chunks {
                bits,
                map: vec![None],
            });
        }
        let idx = blob_with_room(blobs, *pack, size, opts.blob_size);
        *pack = Some(idx);
        let blk = self.append(&mut blobs[idx], 0, size)?;
        Ok(Data::Chunks {
            bits,
            map: vec![Some((device_of(idx)?, blk))],
        })
    }

    /// Whether bytes `start..end` of the file hold any data.
    fn has_data(&self, start: u64, end: u64) -> bool {
        match self.extents {
            None => true,
            Some(ext) => ext.iter().any(|&(s, e)| s < end && e > start),
        }
    }

    /// Appends `len` bytes of the file from `offset` to `blob`, padded to a block; returns the
    /// block they start at.
    ///
    /// Errors: [`Error::TooLarge`] for a blob beyond 2^32 blocks.
    fn append(&self, blob: &mut BlobPlan, offset: u64, len: u64) -> Result<u32> {
        let blk = blob.len() / BLKSZ;
        blob.segments.push(Segment::File {
            path: self.path.clone(),
            offset,
            len,
            expect: self.stamp,
        });
        let padded = len.next_multiple_of(BLKSZ);
        if padded > len {
            blob.segments.push(Segment::Zero(padded - len));
        }
        u32::try_from(blk).map_err(|_| Error::TooLarge("blob beyond 2^32 blocks".into()))
    }
}

/// The blob `cur` when `len` more bytes (padded to a block) keep it within `blob_size`, else a
/// new blob.
fn blob_with_room(
    blobs: &mut Vec<BlobPlan>,
    cur: Option<usize>,
    len: u64,
    blob_size: u64,
) -> usize {
    match cur {
        Some(i) if blobs[i].len() + len.next_multiple_of(BLKSZ) <= blob_size => i,
        _ => {
            blobs.push(BlobPlan {
                name: String::new(),
                segments: Vec::new(),
            });
            blobs.len() - 1
        }
    }
}

/// The device id of data blob `idx` (device 0 is the primary image).
///
/// Errors: [`Error::TooLarge`] beyond 65535 data blobs.
fn device_of(idx: usize) -> Result<u16> {
    u16::try_from(idx + 1).map_err(|_| Error::TooLarge("more than 65535 data blobs".into()))
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
