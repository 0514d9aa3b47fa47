//! Mapped EROFS images: a small metadata image whose regular files are byte ranges of other
//! files (downloaded OCI layer blobs) attached as extra devices, so those blobs serve every read
//! as they are and nothing is copied.
//!
//! fspack mounts ModelPack, KitOps and Docker Model Runner artifacts this way (issue 15). A raw
//! layer becomes one file at offset 0 of its blob. An uncompressed tar layer becomes one file per
//! member at the member's data offset, which tar puts on a 512-byte boundary. EROFS allows block
//! sizes from 512 bytes to the page size, so the image uses 4 KiB blocks when every file starts on
//! a 4 KiB boundary and 512-byte blocks otherwise (`mkfs.erofs --tar=i` does the same for tars).
//!
//! Every non-empty file is CHUNK_BASED with 8-byte chunk indexes that carry a device id
//! (erofs_fs.h `erofs_inode_chunk_index`; device table per erofs-image-spec §2.4). When the
//! file's last block lies whole inside its device (every tar member: tar pads data to 512
//! bytes), the chunk size is the file size rounded up to a power of two and the file costs one
//! index. When it does not (a raw blob whose size is not a block multiple), the kernel cannot read
//! that block: on Linux 6.18 a file-backed read of a device's partial last block fails with EIO
//! (measured), and a loop device ends at the last whole sector. Such a file gets chunks of about
//! sqrt(8 × size) bytes and its last chunk is copied into the metadata image (device 0), which
//! keeps index plus copy near sqrt(32 × size): 256 KiB for a 2 GiB file.
//!
//! Directories, symlink targets and those tail chunks live in data blocks of the metadata image.
//! No inline data is used, so no record has to fit a block together with its payload, whatever
//! the block size.

mod tree;

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::dir::encode_entries;
use super::format::*;
use crate::error::{Error, Result};

/// Attributes of one mapped inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappedAttrs {
    /// Permission bits (`mode & 0o7777`); the type bits come from the kind.
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Nanoseconds of the modification time.
    pub mtime_nsec: u32,
}

/// What a mapped entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MappedKind {
    /// A regular file: `size` bytes at byte `offset` of device `device` (1-based: device 1 is the
    /// first entry of [`MappedImage::devices`]). `offset` must be a multiple of 512.
    File {
        /// Device id, 1-based.
        device: u16,
        /// Byte offset of the file's first byte in the device.
        offset: u64,
        /// File size in bytes.
        size: u64,
    },
    /// A directory (its entries come from the other entries' paths).
    Dir,
    /// A symbolic link, stored verbatim and never followed.
    Symlink {
        /// Raw target bytes.
        target: Vec<u8>,
    },
}

/// A device: a file whose byte ranges become file data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedDevice {
    /// Where the device's bytes are (read only for the tail chunks copied into the image).
    pub path: std::path::PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// One entry of a mapped image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappedEntry {
    /// Path relative to the root, `/`-separated, with no empty, `.` or `..` component.
    pub path: String,
    /// The kind.
    pub kind: MappedKind,
    /// The attributes.
    pub attrs: MappedAttrs,
}

/// The input of a mapped image: device sizes, the root's attributes and the entries.
///
/// Parent directories that no entry names are created with the root's attributes. A directory
/// named twice keeps the attributes of its first explicit entry; any other path named twice is
/// an error.
#[derive(Debug, Clone)]
pub struct MappedImage {
    /// The extra devices in device order (device id = index + 1).
    pub devices: Vec<MappedDevice>,
    /// Attributes of the root directory (set on purpose: a tar without a `./` entry must not
    /// give a 0777 root).
    pub root: MappedAttrs,
    /// Files, directories and symlinks.
    pub entries: Vec<MappedEntry>,
    /// Build time recorded in the superblock (seconds).
    pub build_time: u64,
}

/// Device id of the metadata image itself in chunk indexes.
const LOCAL_DEVICE: u16 = 0;

/// Chunk geometry of one file.
struct Chunks {
    /// log2 of the chunk size in bytes.
    bits: u32,
    /// Number of chunks.
    count: u64,
    /// Whether the last chunk is copied into the metadata image.
    tail: bool,
}

enum Kind {
    Dir(BTreeMap<Vec<u8>, usize>),
    File { device: u16, offset: u64, size: u64 },
    Symlink(Vec<u8>),
}

struct Node {
    kind: Kind,
    attrs: MappedAttrs,
    explicit: bool,
    parent: usize,
}

impl MappedImage {
    /// Block size bits the image will use: 12 when every file starts on a 4 KiB boundary of its
    /// device, 9 otherwise.
    pub fn block_bits(&self) -> u32 {
        let aligned = self.entries.iter().all(|e| match e.kind {
            MappedKind::File { offset, .. } => offset.is_multiple_of(BLKSZ),
            _ => true,
        });
        if aligned { BLKBITS } else { 9 }
    }

    /// Encodes the metadata image.
    ///
    /// Errors: [`Error::Refused`] for a path that is not relative and clean, a path named twice,
    /// a file below a file, a device id out of range, a file reaching past its device or
    /// starting off a 512-byte boundary; [`Error::TooLarge`] beyond the format's 32-bit block
    /// addresses or 65535 devices.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let blkbits = self.block_bits();
        let blksz = 1u64 << blkbits;
        if self.devices.len() > u16::MAX as usize {
            return Err(Error::TooLarge("more than 65535 devices".into()));
        }
        let nodes = self.tree()?;
        let order = breadth_first(&nodes);
        let chunks: Vec<Option<Chunks>> = nodes.iter().map(|n| self.chunks(n, blkbits)).collect();
        let (devt_slotoff, end, pos) = self.place_inodes(&order, &chunks, blksz);
        if pos[0] / ISLOT > u16::MAX as u64 {
            return Err(Error::TooLarge(
                "root inode beyond the 16-bit root nid".into(),
            ));
        }
        let data = self.data_blocks(&nodes, &chunks, &pos, blksz)?;
        let (blkaddr, next) = place_data(&order, &data, end, blksz)?;
        let total_blocks = u32::try_from(next)
            .map_err(|_| Error::TooLarge("metadata beyond 2^32 blocks".into()))?;
        let mut img = vec![0u8; (next * blksz) as usize];

        for (i, dev) in self.devices.iter().enumerate() {
            let off = devt_slotoff * DEVT_SLOT_SIZE + i * DEVT_SLOT_SIZE;
            encode_device_slot(
                dev.size.div_ceil(blksz),
                &mut img[off..off + DEVT_SLOT_SIZE],
            );
        }
        let placed = Placed {
            nodes: &nodes,
            chunks: &chunks,
            data: &data,
            pos: &pos,
            blkaddr: &blkaddr,
            blkbits,
        };
        let mut any_chunked = false;
        for id in 0..nodes.len() {
            any_chunked |= placed.write_inode(&mut img, id)?;
        }

        let mut incompat = 0;
        if any_chunked {
            incompat |= INCOMPAT_CHUNKED_FILE;
        }
        if !self.devices.is_empty() {
            incompat |= INCOMPAT_DEVICE_TABLE;
        }
        let sb = SuperBlock {
            feature_compat: COMPAT_SB_CHKSUM,
            feature_incompat: incompat,
            root_nid: (pos[0] / ISLOT) as u16,
            inos: nodes.len() as u64,
            build_time: self.build_time,
            blocks: total_blocks,
            uuid: [0; 16],
            extra_devices: self.devices.len() as u16,
            devt_slotoff: devt_slotoff as u16,
        };
        seal(&mut img, sb, blkbits);
        Ok(img)
    }

    /// The chunk geometry of a non-empty file `n` (`None` for anything else): one chunk when its
    /// last block lies whole inside its device, else chunks of about sqrt(8 × size) bytes with
    /// the last one copied (see the module docs).
    fn chunks(&self, n: &Node, blkbits: u32) -> Option<Chunks> {
        let Kind::File {
            device,
            offset,
            size,
        } = n.kind
        else {
            return None;
        };
        if size == 0 {
            return None;
        }
        let dev_size = self.devices[device as usize - 1].size;
        let tail = offset + size.next_multiple_of(1 << blkbits) > dev_size;
        let want = if tail {
            // sqrt(8 × size): the chunk index and the copied last chunk weigh the same.
            (8 * size).isqrt().next_power_of_two()
        } else {
            size.next_power_of_two()
        };
        let bits = want.trailing_zeros().clamp(blkbits, blkbits + 31);
        Some(Chunks {
            bits,
            count: size.div_ceil(1 << bits),
            tail,
        })
    }

    /// Inodes after the superblock and device table, in `order`, each with its chunk indexes;
    /// an inode never crosses a block. Returns the device table's slot offset, the end of the
    /// last inode and each node's inode offset, in bytes.
    fn place_inodes(
        &self,
        order: &[usize],
        chunks: &[Option<Chunks>],
        blksz: u64,
    ) -> (usize, u64, Vec<u64>) {
        let devt_slotoff = (SUPER_OFFSET + 128).div_ceil(DEVT_SLOT_SIZE);
        let mut end = (devt_slotoff * DEVT_SLOT_SIZE + self.devices.len() * DEVT_SLOT_SIZE) as u64;
        let mut pos = vec![0u64; chunks.len()];
        for &id in order {
            let mut p = end.next_multiple_of(ISLOT);
            if p % blksz + INODE_EXTENDED_SIZE as u64 > blksz {
                p = p.next_multiple_of(blksz);
            }
            pos[id] = p;
            let index = chunks[id]
                .as_ref()
                .map_or(0, |c| c.count * CHUNK_INDEX_SIZE as u64);
            end = p + INODE_EXTENDED_SIZE as u64 + index;
        }
        (devt_slotoff, end, pos)
    }

    /// Each node's data in the metadata image: directory entries (naming nids from the inode
    /// offsets `pos`), symlink targets, and the copied last chunk of a file whose device cannot
    /// serve its last block; `None` for other files.
    ///
    /// Errors: [`Error::Io`] reading a copied chunk from its device file.
    fn data_blocks(
        &self,
        nodes: &[Node],
        chunks: &[Option<Chunks>],
        pos: &[u64],
        blksz: u64,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let nid = |id: usize| pos[id] / ISLOT;
        let mut data: Vec<Option<Vec<u8>>> = Vec::with_capacity(nodes.len());
        for (id, n) in nodes.iter().enumerate() {
            data.push(match &n.kind {
                Kind::Dir(children) => {
                    let mut ents: Vec<(&[u8], u64, u8)> =
                        vec![(b".", nid(id), ft::DIR), (b"..", nid(n.parent), ft::DIR)];
                    for (name, &c) in children {
                        let t = match nodes[c].kind {
                            Kind::Dir(_) => ft::DIR,
                            Kind::File { .. } => ft::REG,
                            Kind::Symlink(_) => ft::LNK,
                        };
                        ents.push((name, nid(c), t));
                    }
                    ents.sort_by(|a, b| a.0.cmp(b.0));
                    Some(encode_entries(&ents, blksz))
                }
                Kind::Symlink(t) => Some(t.clone()),
                Kind::File { .. } => None,
            });
        }
        // A file whose last block its device cannot serve: that last chunk is copied here.
        for (id, n) in nodes.iter().enumerate() {
            if let (
                Some(c),
                Kind::File {
                    device,
                    offset,
                    size,
                },
            ) = (&chunks[id], &n.kind)
                && c.tail
            {
                let start = (c.count - 1) << c.bits;
                let dev = &self.devices[*device as usize - 1];
                let mut buf = vec![0u8; (size - start) as usize];
                let f = std::fs::File::open(&dev.path).map_err(|e| Error::io(&dev.path, e))?;
                std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, offset + start)
                    .map_err(|e| Error::io(&dev.path, e))?;
                data[id] = Some(buf);
            }
        }
        Ok(data)
    }
}

/// Node ids in breadth-first order: the root gets the first nid, so its nid fits the 16-bit
/// field.
fn breadth_first(nodes: &[Node]) -> Vec<usize> {
    let mut order = vec![0usize];
    let mut i = 0;
    while i < order.len() {
        if let Kind::Dir(children) = &nodes[order[i]].kind {
            order.extend(children.values().copied());
        }
        i += 1;
    }
    order
}

/// Data blocks after the inodes (which end at byte `end`), in `order`: each node's first block,
/// and the image's length in blocks.
///
/// Errors: [`Error::TooLarge`] past 2^32 blocks.
fn place_data(
    order: &[usize],
    data: &[Option<Vec<u8>>],
    end: u64,
    blksz: u64,
) -> Result<(Vec<u32>, u64)> {
    let mut blkaddr = vec![0u32; data.len()];
    let mut next = end.div_ceil(blksz);
    for &id in order {
        if let Some(d) = &data[id]
            && !d.is_empty()
        {
            blkaddr[id] = u32::try_from(next)
                .map_err(|_| Error::TooLarge("metadata beyond 2^32 blocks".into()))?;
            next += (d.len() as u64).div_ceil(blksz);
        }
    }
    Ok((blkaddr, next))
}

/// Every node with its place in the metadata image, ready to be written.
struct Placed<'a> {
    nodes: &'a [Node],
    chunks: &'a [Option<Chunks>],
    data: &'a [Option<Vec<u8>>],
    /// Byte offset of each inode.
    pos: &'a [u64],
    /// First data block of each node.
    blkaddr: &'a [u32],
    blkbits: u32,
}

impl Placed<'_> {
    /// Writes node `id`'s inode, its chunk indexes and its data into `img`; returns whether the
    /// inode is chunk-based.
    ///
    /// Errors: [`Error::TooLarge`] for a chunk beyond 2^32 blocks of its device.
    fn write_inode(&self, img: &mut [u8], id: usize) -> Result<bool> {
        let (nodes, blkbits) = (self.nodes, self.blkbits);
        let blksz = 1u64 << blkbits;
        let n = &nodes[id];
        let subdirs = match &n.kind {
            Kind::Dir(c) => c
                .values()
                .filter(|&&c| matches!(nodes[c].kind, Kind::Dir(_)))
                .count(),
            _ => 0,
        };
        let (type_bits, size, nlink) = match &n.kind {
            Kind::Dir(_) => (
                0o040000,
                self.data[id].as_ref().map_or(0, |d| d.len() as u64),
                2 + subdirs as u32,
            ),
            Kind::File { size, .. } => (0o100000, *size, 1),
            Kind::Symlink(t) => (0o120000, t.len() as u64, 1),
        };
        let mut rec = InodeRecord {
            layout: DataLayout::FlatPlain as u16,
            xattr_icount: 0,
            mode: (type_bits | (n.attrs.perm & 0o7777)) as u16,
            size,
            i_u: self.blkaddr[id],
            ino: (id + 1) as u32,
            uid: n.attrs.uid,
            gid: n.attrs.gid,
            mtime: n.attrs.mtime,
            mtime_nsec: n.attrs.mtime_nsec,
            nlink,
        };
        let p = self.pos[id] as usize;
        let mut chunked = false;
        if let (Some(c), Kind::File { device, offset, .. }) = (&self.chunks[id], &n.kind) {
            chunked = true;
            rec.layout = DataLayout::ChunkBased as u16;
            rec.i_u = ((c.bits - blkbits) as u16 | CHUNK_FORMAT_INDEXES) as u32;
            let per_chunk = 1u64 << (c.bits - blkbits);
            for k in 0..c.count {
                let (dev, blk) = if c.tail && k == c.count - 1 {
                    (LOCAL_DEVICE, self.blkaddr[id] as u64)
                } else {
                    (*device, offset / blksz + k * per_chunk)
                };
                let blk = u32::try_from(blk).map_err(|_| {
                    Error::TooLarge(format!(
                        "device {device} beyond 2^32 blocks of {blksz} bytes"
                    ))
                })?;
                let at = p + INODE_EXTENDED_SIZE + k as usize * CHUNK_INDEX_SIZE;
                encode_chunk_index(dev, blk, &mut img[at..at + CHUNK_INDEX_SIZE]);
            }
        }
        rec.encode(&mut img[p..p + INODE_EXTENDED_SIZE]);
        if let Some(d) = &self.data[id] {
            let at = self.blkaddr[id] as usize * blksz as usize;
            img[at..at + d.len()].copy_from_slice(d);
        }
        Ok(chunked)
    }
}

/// Writes the superblock `sb` into `img` with a name-based UUID over everything but the UUID
/// and the checksum, then the checksum.
fn seal(img: &mut Vec<u8>, mut sb: SuperBlock, blkbits: u32) {
    let blksz = 1u64 << blkbits;
    let put_sb = |img: &mut [u8], sb: &SuperBlock| {
        let mut b = sb.encode();
        b[12] = blkbits as u8;
        img[SUPER_OFFSET..SUPER_OFFSET + 128].copy_from_slice(&b);
    };
    put_sb(img, &sb);
    // Name-based UUID over everything but the UUID and checksum.
    let digest = Sha256::digest(&img[..]);
    sb.uuid.copy_from_slice(&digest[..16]);
    sb.uuid[6] = (sb.uuid[6] & 0x0f) | 0x50;
    sb.uuid[8] = (sb.uuid[8] & 0x3f) | 0x80;
    put_sb(img, &sb);
    // The kernel checks crc32c over one block from the superblock on, or over the rest of
    // block 0 when a block is larger than the superblock offset (super.c).
    let len = if blksz > SUPER_OFFSET as u64 {
        blksz as usize - SUPER_OFFSET
    } else {
        blksz as usize
    };
    if img.len() < SUPER_OFFSET + len {
        img.resize(SUPER_OFFSET + len, 0);
    }
    let crc = superblock_checksum(&img[SUPER_OFFSET..SUPER_OFFSET + len]);
    put32(img, SUPER_OFFSET + 4, crc);
}
