//! The FUSE side of a lazy mount: one read-only directory whose files are the blobs being
//! fetched, named by their hex digest, for the kernel's loop devices to read (issue 10).
//!
//! A loop device needs a file; the file's reads must block until the chunk is verified. FUSE
//! gives exactly that on kernels without fscache, ublk or nbd. The protocol is `fuser`'s; this
//! module only maps inodes to blobs and hands each read to the [`Fill`] scheduler, which answers
//! it (possibly later, from a fetch worker) through the [`ReadReply`] trait.

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request,
};

use super::fill::{Fill, ReadReply};

/// Attributes never change: the kernel may cache them for as long as it likes.
const TTL: Duration = Duration::from_secs(3600);
const ROOT: u64 = 1;

/// The filesystem: inode 1 is the directory, inode `2 + i` is blob `i` of the fill.
pub struct BlobFs {
    fill: Arc<Fill>,
    names: Vec<String>,
    started: SystemTime,
}

impl BlobFs {
    /// Serves the blobs of `fill` as files named by the hex part of their digests.
    pub fn new(fill: Arc<Fill>) -> BlobFs {
        let names = fill
            .blobs
            .iter()
            .map(|b| file_name(&b.desc.digest))
            .collect();
        BlobFs {
            fill,
            names,
            started: SystemTime::now(),
        }
    }

    fn attr(&self, ino: u64) -> Option<FileAttr> {
        let (kind, size, perm, nlink) = if ino == ROOT {
            (FileType::Directory, 0, 0o500, 2)
        } else {
            let b = self.fill.blobs.get((ino - 2) as usize)?;
            (FileType::RegularFile, b.desc.size, 0o400, 1)
        };
        Some(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }
}

pub use crate::artifact::served_file_name as file_name;

/// [`ReadReply`] over fuser's reply.
struct FuseReply(ReplyData);

impl ReadReply for FuseReply {
    fn data(self: Box<Self>, bytes: &[u8]) {
        self.0.data(bytes);
    }
    fn error(self: Box<Self>, errno: i32) {
        self.0.error(Errno::from_i32(errno));
    }
}

impl Filesystem for BlobFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = (parent.0 == ROOT)
            .then(|| self.names.iter().position(|n| OsStr::new(n) == name))
            .flatten();
        match found.and_then(|i| self.attr(i as u64 + 2)) {
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino.0) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if ino.0 == ROOT || self.attr(ino.0).is_none() {
            return reply.error(Errno::ENOENT);
        }
        if flags.0 & libc_o_accmode() != 0 {
            return reply.error(Errno::EROFS);
        }
        // The content of a digest never changes: keep the page cache across opens.
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match ino.0.checked_sub(2).map(|i| i as usize) {
            Some(b) if b < self.fill.blobs.len() => {
                self.fill.read(b, offset, size, Box::new(FuseReply(reply)))
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino.0 != ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let mut entries = vec![
            (ROOT, FileType::Directory, ".".to_string()),
            (ROOT, FileType::Directory, "..".to_string()),
        ];
        for (i, n) in self.names.iter().enumerate() {
            entries.push((i as u64 + 2, FileType::RegularFile, n.clone()));
        }
        for (i, (ino, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(ino), (i + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

/// `O_ACCMODE`: any write access is refused.
fn libc_o_accmode() -> i32 {
    0o3
}
