//! On-disk constants and fixed-size records of SquashFS 4.0 (little endian), in one place so the
//! encoders share one reading of the format (squashfs-tools-ng `doc/format.adoc`, the kernel's
//! `fs/squashfs/squashfs_fs.h`).

/// `hsqs`.
pub const MAGIC: u32 = 0x7371_7368;
/// Size of the superblock at offset 0.
pub const SUPERBLOCK_SIZE: usize = 96;
/// Uncompressed size of a metadata block (inodes, directories, tables).
pub const METADATA_SIZE: usize = 8192;
/// Set in a metadata block header when the block is stored uncompressed.
pub const META_UNCOMPRESSED: u16 = 0x8000;
/// Set in a data or fragment block size when the block is stored uncompressed.
pub const DATA_UNCOMPRESSED: u32 = 1 << 24;
/// "No fragment" / "no xattrs" in 32-bit index fields.
pub const INVALID_U32: u32 = 0xFFFF_FFFF;
/// "Table absent" in 64-bit superblock fields.
pub const INVALID_U64: u64 = u64::MAX;
/// The kernel refuses directory headers with more entries than this.
pub const DIR_COUNT: usize = 256;
/// Images are padded to this so they fill whole device blocks of a loop device.
pub const DEVICE_BLOCK: u64 = 4096;

/// Superblock flags we set.
pub mod flags {
    /// There are no extended attributes in the image.
    pub const NO_XATTRS: u16 = 0x0200;
    /// The NFS export table is present.
    pub const EXPORTABLE: u16 = 0x0080;
    /// A compressor-options metadata block follows the superblock.
    pub const COMPRESSOR_OPTIONS: u16 = 0x0400;
}

/// Inode type numbers; extended types are basic + 7.
pub mod itype {
    /// Directory.
    pub const DIR: u16 = 1;
    /// Regular file.
    pub const FILE: u16 = 2;
    /// Symbolic link.
    pub const SYMLINK: u16 = 3;
    /// Block device.
    pub const BLKDEV: u16 = 4;
    /// Character device.
    pub const CHRDEV: u16 = 5;
    /// Named pipe.
    pub const FIFO: u16 = 6;
    /// Unix socket.
    pub const SOCKET: u16 = 7;
    /// Offset from a basic type to its extended form.
    pub const EXTENDED: u16 = 7;
}

/// The 96-byte superblock.
#[derive(Debug, Clone, Default)]
pub struct Superblock {
    pub inode_count: u32,
    pub mkfs_time: u32,
    pub block_size: u32,
    pub fragment_count: u32,
    pub compression_id: u16,
    pub flags: u16,
    pub id_count: u16,
    pub root_inode: u64,
    pub bytes_used: u64,
    pub id_table: u64,
    pub xattr_id_table: u64,
    pub inode_table: u64,
    pub directory_table: u64,
    pub fragment_table: u64,
    pub export_table: u64,
}

impl Superblock {
    /// Encodes the superblock.
    pub fn encode(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut b = Vec::with_capacity(SUPERBLOCK_SIZE);
        b.extend_from_slice(&MAGIC.to_le_bytes());
        b.extend_from_slice(&self.inode_count.to_le_bytes());
        b.extend_from_slice(&self.mkfs_time.to_le_bytes());
        b.extend_from_slice(&self.block_size.to_le_bytes());
        b.extend_from_slice(&self.fragment_count.to_le_bytes());
        b.extend_from_slice(&self.compression_id.to_le_bytes());
        b.extend_from_slice(&(self.block_size.trailing_zeros() as u16).to_le_bytes());
        b.extend_from_slice(&self.flags.to_le_bytes());
        b.extend_from_slice(&self.id_count.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        for v in [
            self.root_inode,
            self.bytes_used,
            self.id_table,
            self.xattr_id_table,
            self.inode_table,
            self.directory_table,
            self.fragment_table,
            self.export_table,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.try_into().expect("superblock is 96 bytes")
    }
}

/// Encodes a Linux `dev_t` the way the kernel's `new_decode_dev` reads it from a 32-bit field:
/// minor low byte, 12 bits of major, then the upper 12 bits of minor. `None` when it does not fit.
pub fn encode_dev(rdev: u64) -> Option<u32> {
    let major = rustix::fs::major(rdev);
    let minor = rustix::fs::minor(rdev);
    if major >= 1 << 12 || minor >= 1 << 20 {
        return None;
    }
    Some((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

/// A 64-bit metadata reference: block start (relative to its table) and offset in the block.
pub fn meta_ref(block_start: u64, offset: u16) -> u64 {
    (block_start << 16) | offset as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_round_trip_through_the_kernel_decoding() {
        for (major, minor) in [(1u32, 3u32), (259, 70000), (4095, (1 << 20) - 1), (0, 0)] {
            let enc = encode_dev(rustix::fs::makedev(major, minor)).unwrap();
            assert_eq!((enc & 0xfff00) >> 8, major);
            assert_eq!((enc & 0xff) | ((enc >> 12) & 0xfff00), minor);
        }
        assert_eq!(encode_dev(rustix::fs::makedev(4096, 0)), None);
        assert_eq!(encode_dev(rustix::fs::makedev(1, 1 << 20)), None);
    }

    #[test]
    fn superblock_is_96_bytes_with_block_log() {
        let sb = Superblock {
            block_size: 1 << 17,
            ..Default::default()
        }
        .encode();
        assert_eq!(&sb[..4], b"hsqs");
        assert_eq!(u16::from_le_bytes([sb[22], sb[23]]), 17);
        assert_eq!(u16::from_le_bytes([sb[28], sb[29]]), 4);
    }
}
