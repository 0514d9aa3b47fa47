//! EROFS on-disk constants and record encoders, from the kernel's `fs/erofs/erofs_fs.h`.
//!
//! Only what the uncompressed writer needs: the superblock, extended inodes, inline xattrs,
//! directory entries, chunk indexes and device slots. All fields are little endian.

/// Byte offset of the superblock in the primary device.
pub const SUPER_OFFSET: usize = 1024;
/// `EROFS_SUPER_MAGIC_V1`.
pub const MAGIC: u32 = 0xE0F5_E1E2;
/// Block size bits: 4 KiB blocks, the page size the kernel requires on x86-64 and arm64 (4K pages).
pub const BLKBITS: u32 = 12;
/// Block size in bytes.
pub const BLKSZ: u64 = 1 << BLKBITS;
/// Size of an extended (64-byte) inode; the writer uses only these, for 64-bit sizes, 32-bit ids
/// and per-inode nanosecond mtimes.
pub const INODE_EXTENDED_SIZE: usize = 64;
/// Inode slot granularity: nid = byte offset / 32.
pub const ISLOT: u64 = 32;
/// Size of one device-table slot.
pub const DEVT_SLOT_SIZE: usize = 128;
/// Size of a directory entry header.
pub const DIRENT_SIZE: usize = 12;
/// Size of a chunk index entry (with device id).
pub const CHUNK_INDEX_SIZE: usize = 8;
/// Marks a chunk with no data (a hole).
pub const NULL_ADDR: u32 = u32::MAX;

/// Superblock compat flag: `checksum` holds crc32c of the superblock block.
pub const COMPAT_SB_CHKSUM: u32 = 0x1;
/// Superblock compat flag: inode mtimes are meaningful (set by current mkfs.erofs too).
pub const COMPAT_MTIME: u32 = 0x2;
/// Incompat flag: chunk-based files exist.
pub const INCOMPAT_CHUNKED_FILE: u32 = 0x4;
/// Incompat flag: a device table is present.
pub const INCOMPAT_DEVICE_TABLE: u32 = 0x8;

/// Data layouts (`i_format` bits 1..3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataLayout {
    /// Contiguous blocks at `raw_blkaddr`.
    FlatPlain = 0,
    /// Contiguous blocks, the last partial block stored right after the inode.
    FlatInline = 2,
    /// Data addressed through a chunk index after the inode.
    ChunkBased = 4,
}

/// Chunk format flag: 8-byte indexes carrying a device id.
pub const CHUNK_FORMAT_INDEXES: u16 = 0x20;

/// Directory entry file types.
pub mod ft {
    /// Regular file.
    pub const REG: u8 = 1;
    /// Directory.
    pub const DIR: u8 = 2;
    /// Character device.
    pub const CHR: u8 = 3;
    /// Block device.
    pub const BLK: u8 = 4;
    /// FIFO.
    pub const FIFO: u8 = 5;
    /// Socket.
    pub const SOCK: u8 = 6;
    /// Symlink.
    pub const LNK: u8 = 7;
}

/// Xattr name prefixes with their on-disk index (the name is stored without the prefix).
pub const XATTR_PREFIXES: &[(u8, &[u8])] = &[
    (2, b"system.posix_acl_access"),
    (3, b"system.posix_acl_default"),
    (1, b"user."),
    (4, b"trusted."),
    (6, b"security."),
];

/// Size of `erofs_xattr_ibody_header`.
pub const XATTR_IBODY_HEADER: usize = 12;

/// Fields of the superblock the writer sets.
#[derive(Debug, Default, Clone)]
pub struct SuperBlock {
    /// Compat flags.
    pub feature_compat: u32,
    /// Incompat flags.
    pub feature_incompat: u32,
    /// Root directory nid (16 bits in this superblock layout: the root is placed first).
    pub root_nid: u16,
    /// Number of inodes.
    pub inos: u64,
    /// Build time (seconds).
    pub build_time: u64,
    /// Total blocks of the primary device.
    pub blocks: u32,
    /// Volume UUID.
    pub uuid: [u8; 16],
    /// Number of extra devices.
    pub extra_devices: u16,
    /// Device table position in 128-byte slots.
    pub devt_slotoff: u16,
}

impl SuperBlock {
    /// Encodes the 128-byte superblock (checksum zero; see [`superblock_checksum`]).
    pub fn encode(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        put32(&mut b, 0, MAGIC);
        put32(&mut b, 4, 0);
        put32(&mut b, 8, self.feature_compat);
        b[12] = BLKBITS as u8;
        b[13] = 0; // sb_extslots
        put16(&mut b, 14, self.root_nid);
        put64(&mut b, 16, self.inos);
        put64(&mut b, 24, self.build_time);
        put32(&mut b, 32, 0); // build_time_nsec
        put32(&mut b, 36, self.blocks);
        put32(&mut b, 40, 0); // meta_blkaddr
        put32(&mut b, 44, 0); // xattr_blkaddr
        b[48..64].copy_from_slice(&self.uuid);
        // volume_name 64..80 left empty
        put32(&mut b, 80, self.feature_incompat);
        put16(&mut b, 84, 0); // available_compr_algs
        put16(&mut b, 86, self.extra_devices);
        put16(&mut b, 88, self.devt_slotoff);
        b
    }
}

/// Kernel superblock checksum: crc32c seeded with ~0 and no final inversion, over the superblock
/// block from the superblock offset to the end of the block, with the checksum field zeroed.
pub fn superblock_checksum(block0_from_sb: &[u8]) -> u32 {
    !crc32c::crc32c(block0_from_sb)
}

/// Fields of an extended inode.
#[derive(Debug, Default, Clone)]
pub struct InodeRecord {
    /// Data layout.
    pub layout: u16,
    /// `i_xattr_icount`.
    pub xattr_icount: u16,
    /// `st_mode`.
    pub mode: u16,
    /// Size in bytes.
    pub size: u64,
    /// Union: raw block address, encoded rdev or chunk format.
    pub i_u: u32,
    /// 32-bit inode number for `stat` compatibility.
    pub ino: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: u32,
    /// Link count.
    pub nlink: u32,
}

impl InodeRecord {
    /// Encodes the 64-byte `erofs_inode_extended`.
    pub fn encode(&self, out: &mut [u8]) {
        let b = &mut out[..INODE_EXTENDED_SIZE];
        b.fill(0);
        put16(b, 0, 1 | (self.layout << 1));
        put16(b, 2, self.xattr_icount);
        put16(b, 4, self.mode);
        put64(b, 8, self.size);
        put32(b, 16, self.i_u);
        put32(b, 20, self.ino);
        put32(b, 24, self.uid);
        put32(b, 28, self.gid);
        put64(b, 32, self.mtime as u64);
        put32(b, 40, self.mtime_nsec);
        put32(b, 44, self.nlink);
    }
}

/// Converts a userspace `st_rdev` to the kernel's `new_encode_dev` form stored in inodes.
pub fn encode_rdev(rdev: u64) -> u32 {
    let major = (((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff)) as u32;
    let minor = ((rdev & 0xff) | ((rdev >> 12) & !0xff)) as u32;
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

/// Encodes one device slot: the device's size in blocks; tag and mapping unused (devices are
/// addressed by id, not mapped into one flat block space).
pub fn encode_device_slot(blocks: u64, out: &mut [u8]) {
    let b = &mut out[..DEVT_SLOT_SIZE];
    b.fill(0);
    put32(b, 64, blocks as u32);
    put32(b, 68, 0);
    put32(b, 72, (blocks >> 32) as u32);
}

/// Encodes a chunk index entry.
pub fn encode_chunk_index(device_id: u16, blkaddr: u32, out: &mut [u8]) {
    put16(out, 0, 0);
    put16(out, 2, device_id);
    put32(out, 4, blkaddr);
}

/// Writes a little-endian u16.
pub fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_le_bytes());
}
/// Writes a little-endian u32.
pub fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_le_bytes());
}
/// Writes a little-endian u64.
pub fn put64(b: &mut [u8], off: usize, v: u64) {
    b[off..off + 8].copy_from_slice(&v.to_le_bytes());
}
/// Reads a little-endian u16.
pub fn get16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(b[off..off + 2].try_into().expect("2 bytes"))
}
/// Reads a little-endian u32.
pub fn get32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}
/// Reads a little-endian u64.
pub fn get64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdev_roundtrip_matches_kernel_encoding() {
        // makedev(8, 1) in glibc's encoding is 0x801; new_encode_dev(8:1) is also 0x801.
        assert_eq!(encode_rdev(0x801), 0x801);
        // A minor above 255 moves to the high bits in both encodings.
        let glibc = |major: u64, minor: u64| {
            (minor & 0xff)
                | ((major & 0xfff) << 8)
                | ((minor & !0xff) << 12)
                | ((major & !0xfff) << 32)
        };
        assert_eq!(
            encode_rdev(glibc(4, 300)),
            (300 & 0xff) | (4 << 8) | ((300 & !0xff) << 12)
        );
        assert_eq!(encode_rdev(0), 0);
    }

    #[test]
    fn superblock_fields_land_at_kernel_offsets() {
        let sb = SuperBlock {
            root_nid: 36,
            blocks: 7,
            extra_devices: 2,
            devt_slotoff: 9,
            ..Default::default()
        };
        let b = sb.encode();
        assert_eq!(get32(&b, 0), MAGIC);
        assert_eq!(b[12], 12);
        assert_eq!(get16(&b, 14), 36);
        assert_eq!(get32(&b, 36), 7);
        assert_eq!(get16(&b, 86), 2);
        assert_eq!(get16(&b, 88), 9);
    }
}
