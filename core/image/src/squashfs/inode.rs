//! Inode records: the common header and the body of each type, choosing the extended form only
//! when the basic one cannot say it (xattrs, hardlinks on files, files or offsets past 4 GiB,
//! sparse files, large or indexed directories), as mksquashfs does.

use super::data::FileData;
use super::format::{INVALID_U32, itype};

/// Fields every inode header carries.
pub(crate) struct Header {
    pub perm: u16,
    pub uid: u16,
    pub gid: u16,
    pub mtime: u32,
    pub number: u32,
}

fn header(buf: &mut Vec<u8>, ty: u16, h: &Header) {
    for v in [ty, h.perm, h.uid, h.gid] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    buf.extend_from_slice(&h.mtime.to_le_bytes());
    buf.extend_from_slice(&h.number.to_le_bytes());
}

fn u32s(buf: &mut Vec<u8>, vals: &[u32]) {
    for v in vals {
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

/// A regular file.
pub(crate) fn file(buf: &mut Vec<u8>, h: &Header, d: &FileData, size: u64, nlink: u32, xattr: u32) {
    let (frag, frag_off) = d.fragment.unwrap_or((INVALID_U32, 0));
    let basic = size <= u32::MAX as u64
        && d.start <= u32::MAX as u64
        && nlink == 1
        && xattr == INVALID_U32
        && d.sparse == 0;
    if basic {
        header(buf, itype::FILE, h);
        u32s(buf, &[d.start as u32, frag, frag_off, size as u32]);
    } else {
        header(buf, itype::FILE + itype::EXTENDED, h);
        buf.extend_from_slice(&d.start.to_le_bytes());
        buf.extend_from_slice(&size.to_le_bytes());
        buf.extend_from_slice(&d.sparse.to_le_bytes());
        u32s(buf, &[nlink, frag, frag_off, xattr]);
    }
    u32s(buf, &d.sizes);
}

/// Where a directory's listing is and what the inode says about it.
pub(crate) struct DirInode<'a> {
    /// Start of the listing's block relative to the directory table.
    pub block: u64,
    pub offset: u16,
    /// Listing size in bytes (the inode stores it plus 3 for `.` and `..`).
    pub listing: u32,
    pub nlink: u32,
    pub parent: u32,
    /// (offset in listing, block start relative to the directory table, first name).
    pub index: Vec<(u32, u32, &'a [u8])>,
    pub xattr: u32,
}

/// A directory.
pub(crate) fn dir(buf: &mut Vec<u8>, h: &Header, d: &DirInode<'_>) {
    let size = d.listing + 3;
    if size <= u16::MAX as u32 && d.xattr == INVALID_U32 && d.index.is_empty() {
        header(buf, itype::DIR, h);
        u32s(buf, &[d.block as u32, d.nlink]);
        buf.extend_from_slice(&(size as u16).to_le_bytes());
        buf.extend_from_slice(&d.offset.to_le_bytes());
        u32s(buf, &[d.parent]);
    } else {
        header(buf, itype::DIR + itype::EXTENDED, h);
        u32s(buf, &[d.nlink, size, d.block as u32, d.parent]);
        buf.extend_from_slice(&(d.index.len() as u16).to_le_bytes());
        buf.extend_from_slice(&d.offset.to_le_bytes());
        u32s(buf, &[d.xattr]);
        for (off, start, name) in &d.index {
            u32s(buf, &[*off, *start, name.len() as u32 - 1]);
            buf.extend_from_slice(name);
        }
    }
}

/// A symbolic link.
pub(crate) fn symlink(buf: &mut Vec<u8>, h: &Header, target: &[u8], nlink: u32, xattr: u32) {
    let ext = xattr != INVALID_U32;
    header(
        buf,
        itype::SYMLINK + if ext { itype::EXTENDED } else { 0 },
        h,
    );
    u32s(buf, &[nlink, target.len() as u32]);
    buf.extend_from_slice(target);
    if ext {
        u32s(buf, &[xattr]);
    }
}

/// A character or block device (`basic` is [`itype::CHRDEV`] or [`itype::BLKDEV`]).
pub(crate) fn device(buf: &mut Vec<u8>, basic: u16, h: &Header, dev: u32, nlink: u32, xattr: u32) {
    let ext = xattr != INVALID_U32;
    header(buf, basic + if ext { itype::EXTENDED } else { 0 }, h);
    u32s(buf, &[nlink, dev]);
    if ext {
        u32s(buf, &[xattr]);
    }
}

/// A FIFO or socket (`basic` is [`itype::FIFO`] or [`itype::SOCKET`]).
pub(crate) fn ipc(buf: &mut Vec<u8>, basic: u16, h: &Header, nlink: u32, xattr: u32) {
    let ext = xattr != INVALID_U32;
    header(buf, basic + if ext { itype::EXTENDED } else { 0 }, h);
    u32s(buf, &[nlink]);
    if ext {
        u32s(buf, &[xattr]);
    }
}
