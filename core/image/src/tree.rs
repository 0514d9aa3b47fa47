//! The source-tree model shared by every encoder: one walk, many formats.
//!
//! The walk reads metadata only (lstat, xattrs, symlink targets, sparse extents). File data is read
//! later, on demand, by [`crate::source`], so memory stays proportional to the number of entries and
//! never to the size of the files.

use std::collections::HashMap;
use std::ffi::CStr;
use std::ffi::OsStr;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::error::{Error, Result};

/// Index of an inode in [`Tree::inodes`].
pub type InodeId = usize;

/// Longest name EROFS and SquashFS can store (and Linux's `NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// A directory entry: a name and the inode it points to (several entries may share a hardlinked inode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Raw name bytes; non-UTF-8 names are kept as they are.
    pub name: Vec<u8>,
    /// The inode this entry links to.
    pub inode: InodeId,
}

/// What an inode is, with what each kind needs besides the common attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory; entries sorted by raw name bytes, without `.` and `..`.
    Dir {
        /// Sorted entries.
        entries: Vec<Entry>,
    },
    /// A regular file whose data is read from `source` when the image is written.
    File {
        /// Absolute path of the source file.
        source: PathBuf,
        /// Size in bytes at walk time; a different size at read time is an error.
        size: u64,
        /// Byte ranges `[start, end)` that hold data; `None` when the file is not sparse.
        extents: Option<Vec<(u64, u64)>>,
        /// The source's size, times and identity at walk time, to detect changes on read.
        stamp: crate::source::FileStamp,
    },
    /// A symbolic link, stored verbatim and never followed.
    Symlink {
        /// Raw target bytes.
        target: Vec<u8>,
    },
    /// A character device (`0:0` is an overlayfs whiteout).
    CharDev {
        /// Linux device number as `st_rdev`.
        rdev: u64,
    },
    /// A block device.
    BlockDev {
        /// Linux device number as `st_rdev`.
        rdev: u64,
    },
    /// A named pipe.
    Fifo,
    /// A unix socket.
    Socket,
}

/// One inode with the attributes every format stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    /// The kind and kind-specific payload.
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch (may be negative).
    pub mtime: i64,
    /// Nanoseconds part of the modification time.
    pub mtime_nsec: u32,
    /// Extended attributes, sorted by full name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Number of entries in the tree that link to this inode (for directories: 2 + subdirectories).
    pub nlink: u32,
    /// Path relative to the root of the first entry that reached this inode, for error messages.
    pub path: PathBuf,
}

impl Inode {
    /// The `S_IF*` file-type bits for this inode.
    pub fn type_bits(&self) -> u32 {
        match self.kind {
            Kind::Dir { .. } => 0o040000,
            Kind::File { .. } => 0o100000,
            Kind::Symlink { .. } => 0o120000,
            Kind::CharDev { .. } => 0o020000,
            Kind::BlockDev { .. } => 0o060000,
            Kind::Fifo => 0o010000,
            Kind::Socket => 0o140000,
        }
    }

    /// Full `st_mode` (type and permission bits).
    pub fn mode(&self) -> u32 {
        self.type_bits() | self.perm
    }

    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }
}

/// Options that normalise what the walk records, for reproducible images.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Record every inode as owned by 0:0.
    pub all_root: bool,
    /// Record this modification time (seconds, nanoseconds zero) on every inode.
    pub mtime: Option<i64>,
    /// Paths that must not be inside the tree (the output being written), checked up front.
    pub forbid_inside: Vec<PathBuf>,
    /// Keep extended attributes (on by default through [`WalkOptions::new`]).
    pub skip_xattrs: bool,
    /// Stay on the source root's filesystem, as `mksquashfs -one-file-system` does: a directory
    /// that is another filesystem's mount point is recorded empty (its own attributes, none of
    /// its contents) and a file mounted over (a bind-mounted file) is left out.
    pub one_file_system: bool,
}

/// A walked source tree: inodes in walk order, with the root at index 0.
#[derive(Debug, Clone)]
pub struct Tree {
    /// All inodes; index 0 is the root directory.
    pub inodes: Vec<Inode>,
    /// The directory the tree was read from.
    pub root: PathBuf,
}

impl Tree {
    /// Index of the root directory.
    pub const ROOT: InodeId = 0;

    /// Walks `root` without following symlinks (except `root` itself) and records its metadata.
    ///
    /// Errors: [`Error::PseudoFilesystem`] for a directory or mounted-over file on procfs, sysfs
    /// and the like (unless [`WalkOptions::one_file_system`] leaves it out),
    /// [`Error::DirectoryCycle`], [`Error::OutputInsideSource`], [`Error::NameTooLong`],
    /// [`Error::UnsupportedFileType`], and [`Error::Io`] naming the path that failed.
    pub fn walk(root: &Path, opts: &WalkOptions) -> Result<Tree> {
        let root = fs::canonicalize(root).map_err(|e| Error::io(root, e))?;
        let meta = fs::metadata(&root).map_err(|e| Error::io(&root, e))?;
        if !meta.is_dir() {
            return Err(Error::NotADirectory(root));
        }
        for out in &opts.forbid_inside {
            // The output's directory (a symlink named as the output is replaced, not followed,
            // when the image is renamed into place) and the output itself resolved through its
            // deepest existing ancestor: it may not exist yet, may be the source itself (an
            // `oci:` layout), or be several levels down.
            let parent = out.parent().unwrap_or(Path::new("/"));
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            if resolve_existing(parent).starts_with(&root)
                || resolve_existing(out).starts_with(&root)
            {
                return Err(Error::OutputInsideSource {
                    output: out.clone(),
                    source_dir: root.clone(),
                });
            }
        }
        let mut w = Walker {
            opts,
            inodes: Vec::new(),
            hardlinks: HashMap::new(),
            dirs: HashMap::new(),
        };
        let meta = Stat::of_path(&root)?;
        let root_dev = meta.dev;
        let root_ino = w.record(&root, PathBuf::new(), &meta, None)?;
        debug_assert_eq!(root_ino, Self::ROOT);
        w.dirs.insert(root_ino, ((meta.dev, meta.ino), None));
        // Filesystems already checked for being a pseudo-filesystem, by device number.
        let mut checked_devs = std::collections::HashSet::new();
        // An explicit stack instead of recursion: trees thousands of levels deep must not overflow.
        let mut stack = vec![(root_ino, root.clone(), root_dev)];
        while let Some((dir, path, dir_dev)) = stack.pop() {
            let rel = w.inodes[dir].path.clone();
            let mut entries = Vec::new();
            // Entries are stat'ed relative to their directory's descriptor: a one-name lookup
            // instead of a walk of the whole path per entry (issue 14). The descriptor lives only
            // while its directory is read, so deep or wide trees never hold many open.
            let dfd = rustix::fs::open(
                &path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| Error::io(&path, e.into()))?;
            if checked_devs.insert(dir_dev) {
                refuse_pseudo_filesystem(&dfd, &path, dir != Self::ROOT)?;
            }
            let rd = dfd
                .try_clone()
                .map_err(|e| Error::io(&path, e))
                .and_then(|fd| rustix::fs::Dir::new(fd).map_err(|e| Error::io(&path, e.into())))?;
            for ent in rd {
                let ent = ent.map_err(|e| Error::io(&path, e.into()))?;
                let cname = ent.file_name();
                let bytes = cname.to_bytes();
                if bytes == b"." || bytes == b".." {
                    continue;
                }
                let name = OsStr::from_bytes(bytes);
                let child_path = path.join(name);
                if bytes.len() > NAME_MAX {
                    return Err(Error::NameTooLong(child_path));
                }
                let meta = rustix::fs::statat(&dfd, cname, AtFlags::SYMLINK_NOFOLLOW)
                    .map(Stat::from)
                    .map_err(|e| Error::io(&child_path, e.into()))?;
                let child_rel = rel.join(name);
                let foreign = opts.one_file_system && meta.dev != root_dev;
                if foreign && !meta.is_dir() {
                    continue;
                }
                // A non-directory on another filesystem than its directory is a mount point
                // itself (a bind-mounted file): its filesystem is checked here, since no
                // directory of it is ever opened.
                if !meta.is_dir() && meta.dev != dir_dev && checked_devs.insert(meta.dev) {
                    let fd = rustix::fs::openat(
                        &dfd,
                        cname,
                        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| Error::io(&child_path, e.into()))?;
                    refuse_pseudo_filesystem(&fd, &child_path, true)?;
                }
                if meta.is_dir() {
                    w.check_cycle(dir, (meta.dev, meta.ino), &child_rel)?;
                }
                let ino = w.record(&child_path, child_rel, &meta, Some((&dfd, cname)))?;
                if foreign {
                    // Left empty: `.` and `..` only.
                    w.inodes[ino].nlink = 2;
                }
                if meta.is_dir() && !foreign {
                    w.dirs.insert(ino, ((meta.dev, meta.ino), Some(dir)));
                    stack.push((ino, child_path, meta.dev));
                }
                entries.push(Entry {
                    name: bytes.to_vec(),
                    inode: ino,
                });
            }
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            let subdirs = entries
                .iter()
                .filter(|e| w.inodes[e.inode].is_dir())
                .count() as u32;
            w.inodes[dir].nlink = 2 + subdirs;
            w.inodes[dir].kind = Kind::Dir { entries };
        }
        let mut tree = Tree {
            inodes: w.inodes,
            root,
        };
        tree.renumber();
        Ok(tree)
    }

    /// Reorders inodes breadth-first by sorted names, so inode order depends only on the tree's
    /// shape and names, never on `read_dir` order or hardlink discovery order.
    fn renumber(&mut self) {
        let n = self.inodes.len();
        let mut order = Vec::with_capacity(n);
        let mut new_id = vec![usize::MAX; n];
        new_id[Self::ROOT] = 0;
        order.push(Self::ROOT);
        let mut i = 0;
        while i < order.len() {
            let id = order[i];
            if let Kind::Dir { entries } = &self.inodes[id].kind {
                for e in entries {
                    if new_id[e.inode] == usize::MAX {
                        new_id[e.inode] = order.len();
                        order.push(e.inode);
                    }
                }
            }
            i += 1;
        }
        let mut old: Vec<Option<Inode>> = std::mem::take(&mut self.inodes)
            .into_iter()
            .map(Some)
            .collect();
        self.inodes = order
            .iter()
            .map(|&o| old[o].take().expect("each inode visited once"))
            .collect();
        for inode in &mut self.inodes {
            if let Kind::Dir { entries } = &mut inode.kind {
                for e in entries {
                    e.inode = new_id[e.inode];
                }
            }
        }
    }

    /// Entries of a directory inode (empty for other kinds).
    pub fn entries(&self, id: InodeId) -> &[Entry] {
        match &self.inodes[id].kind {
            Kind::Dir { entries } => entries,
            _ => &[],
        }
    }

    /// Parent of every directory (the root is its own parent), for `..` entries.
    pub fn dir_parents(&self) -> Vec<InodeId> {
        let mut parent = vec![Self::ROOT; self.inodes.len()];
        for (id, inode) in self.inodes.iter().enumerate() {
            if let Kind::Dir { entries } = &inode.kind {
                for e in entries {
                    if self.inodes[e.inode].is_dir() {
                        parent[e.inode] = id;
                    }
                }
            }
        }
        parent
    }

    /// Total bytes of regular-file data (logical sizes).
    pub fn data_bytes(&self) -> u64 {
        self.inodes
            .iter()
            .map(|i| match i.kind {
                Kind::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }
}

struct Walker<'a> {
    opts: &'a WalkOptions,
    inodes: Vec<Inode>,
    hardlinks: HashMap<(u64, u64), InodeId>,
    /// Each directory's (device, inode) and parent, to spot a directory that contains itself.
    dirs: HashMap<InodeId, ((u64, u64), Option<InodeId>)>,
}

impl Walker<'_> {
    /// Refuses a directory that is one of its own ancestors (a bind mount of a parent inside
    /// the tree): the walk would never end and would exhaust memory (issue 11). Directories
    /// cannot be hardlinked, so the same (device, inode) higher up means the same directory.
    fn check_cycle(&self, parent: InodeId, key: (u64, u64), rel: &Path) -> Result<()> {
        let mut at = Some(parent);
        while let Some(id) = at {
            let (k, up) = self.dirs[&id];
            if k == key {
                return Err(Error::DirectoryCycle {
                    path: rel.to_path_buf(),
                    ancestor: self.inodes[id].path.clone(),
                });
            }
            at = up;
        }
        Ok(())
    }

    /// Records the inode `meta` describes, reached at `path`; `at` is its directory's descriptor
    /// and its name there, to read a symlink or sparse map without walking the path again.
    fn record(
        &mut self,
        path: &Path,
        rel: PathBuf,
        meta: &Stat,
        at: Option<(&OwnedFd, &CStr)>,
    ) -> Result<InodeId> {
        let ft = meta.file_type;
        if ft != FileType::Directory
            && meta.nlink > 1
            && let Some(&id) = self.hardlinks.get(&(meta.dev, meta.ino))
        {
            self.inodes[id].nlink += 1;
            return Ok(id);
        }
        let kind = if ft == FileType::Directory {
            Kind::Dir {
                entries: Vec::new(),
            }
        } else if ft == FileType::RegularFile {
            let size = meta.size;
            let extents = if meta.blocks * 512 < size {
                sparse_extents(path, at, size)?
            } else {
                None
            };
            Kind::File {
                source: path.to_path_buf(),
                size,
                extents,
                stamp: meta.stamp(),
            }
        } else if ft == FileType::Symlink {
            let target = match at {
                Some((dir, name)) => rustix::fs::readlinkat(dir, name, Vec::new())
                    .map(|t| t.into_bytes())
                    .map_err(|e| Error::io(path, e.into()))?,
                None => fs::read_link(path)
                    .map_err(|e| Error::io(path, e))?
                    .into_os_string()
                    .into_vec(),
            };
            Kind::Symlink { target }
        } else if ft == FileType::CharacterDevice {
            Kind::CharDev { rdev: meta.rdev }
        } else if ft == FileType::BlockDevice {
            Kind::BlockDev { rdev: meta.rdev }
        } else if ft == FileType::Fifo {
            Kind::Fifo
        } else if ft == FileType::Socket {
            Kind::Socket
        } else {
            return Err(Error::UnsupportedFileType(path.to_path_buf()));
        };
        let xattrs = if self.opts.skip_xattrs {
            Vec::new()
        } else {
            read_xattrs(path)?
        };
        let (uid, gid) = if self.opts.all_root {
            (0, 0)
        } else {
            (meta.uid, meta.gid)
        };
        let (mtime, mtime_nsec) = match self.opts.mtime {
            Some(t) => (t, 0),
            None => meta.mtime,
        };
        let id = self.inodes.len();
        self.inodes.push(Inode {
            kind,
            perm: meta.mode & 0o7777,
            uid,
            gid,
            mtime,
            mtime_nsec,
            xattrs,
            nlink: 1,
            path: rel,
        });
        if ft != FileType::Directory && meta.nlink > 1 {
            self.hardlinks.insert((meta.dev, meta.ino), id);
        }
        Ok(id)
    }
}

/// Filesystems whose files do not report their contents' size (procfs says 0 bytes, sysfs 4096),
/// by `statfs(2)` `f_type` (`include/uapi/linux/magic.h`): a build would store them empty or cut.
const PSEUDO_FILESYSTEMS: &[(u64, &str)] = &[
    (0x9fa0, "procfs"),
    (0x6265_6572, "sysfs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x6265_6570, "configfs"),
    (0x0027_e0eb, "cgroupfs"),
    (0x6367_7270, "cgroup2fs"),
    (0xcafe_4a11, "bpffs"),
    (0xde5e_81e4, "efivarfs"),
    (0x6165_676c, "pstorefs"),
    (0x1980_0202, "mqueue"),
    (0x6573_5543, "fusectl"),
];

/// Refuses to read what is open at `fd` (a directory, or an `O_PATH` descriptor of a file that
/// is a mount point itself), at `path`, when it lies on a pseudo-filesystem.
fn refuse_pseudo_filesystem(fd: &OwnedFd, path: &Path, inside: bool) -> Result<()> {
    let st = rustix::fs::fstatfs(fd).map_err(|e| Error::io(path, e.into()))?;
    match PSEUDO_FILESYSTEMS
        .iter()
        .find(|(magic, _)| *magic == (st.f_type as u64) & 0xffff_ffff)
    {
        Some(&(_, fs)) => Err(Error::PseudoFilesystem {
            path: path.to_path_buf(),
            fs,
            inside,
        }),
        None => Ok(()),
    }
}

/// An inode's metadata as `fstatat(2)` returns it, read without following a symlink, in the
/// widths this module uses.
struct Stat {
    file_type: FileType,
    mode: u32,
    dev: u64,
    ino: u64,
    nlink: u64,
    size: u64,
    blocks: u64,
    uid: u32,
    gid: u32,
    rdev: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
}

impl Stat {
    fn of_path(path: &Path) -> Result<Stat> {
        rustix::fs::stat(path)
            .map(Stat::from)
            .map_err(|e| Error::io(path, e.into()))
    }

    fn is_dir(&self) -> bool {
        self.file_type == FileType::Directory
    }

    /// The stamp the data is checked against when it is read. The kernel's `stat` and `statx`
    /// encode the device number alike (majors have 12 bits, minors 20), so it compares equal to
    /// a stamp taken later through `std` (`statx`).
    fn stamp(&self) -> crate::source::FileStamp {
        crate::source::FileStamp {
            size: self.size,
            mtime: (self.mtime.0, self.mtime.1.into()),
            ctime: (self.ctime.0, self.ctime.1.into()),
            dev_ino: (self.dev, self.ino),
        }
    }
}

impl From<rustix::fs::Stat> for Stat {
    // The field widths of `struct stat` differ between architectures, so the casts are needed on
    // some and a no-op on others.
    #[allow(clippy::unnecessary_cast)]
    fn from(s: rustix::fs::Stat) -> Stat {
        Stat {
            file_type: FileType::from_raw_mode(s.st_mode as _),
            mode: s.st_mode as u32,
            dev: s.st_dev as u64,
            ino: s.st_ino as u64,
            nlink: s.st_nlink as u64,
            size: s.st_size as u64,
            blocks: s.st_blocks as u64,
            uid: s.st_uid as u32,
            gid: s.st_gid as u32,
            rdev: s.st_rdev as u64,
            mtime: (s.st_mtime as i64, s.st_mtime_nsec as u32),
            ctime: (s.st_ctime as i64, s.st_ctime_nsec as u32),
        }
    }
}

/// `p` made absolute with its deepest existing ancestor canonicalized (symlinks resolved) and
/// the missing rest appended, so a path that does not exist yet compares like one that does.
fn resolve_existing(p: &Path) -> PathBuf {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let mut head = abs.clone();
    let mut tail = Vec::new();
    loop {
        if let Ok(c) = fs::canonicalize(&head) {
            return tail.iter().rev().fold(c, |acc: PathBuf, n| acc.join(n));
        }
        match (head.file_name().map(|n| n.to_os_string()), head.parent()) {
            (Some(name), Some(parent)) => {
                tail.push(name);
                head = parent.to_path_buf();
            }
            _ => return abs,
        }
    }
}

/// Data ranges of a sparse file, found with `SEEK_DATA`/`SEEK_HOLE` (metadata only, no reads).
fn sparse_extents(
    path: &Path,
    at: Option<(&OwnedFd, &CStr)>,
    size: u64,
) -> Result<Option<Vec<(u64, u64)>>> {
    use rustix::fs::{SeekFrom, seek};
    let file: OwnedFd = match at {
        Some((dir, name)) => {
            rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
                .map_err(|e| Error::io(path, e.into()))?
        }
        None => fs::File::open(path).map_err(|e| Error::io(path, e))?.into(),
    };
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let start = match seek(&file, SeekFrom::Data(pos)) {
            Ok(p) => p,
            Err(rustix::io::Errno::NXIO) => break,
            // Filesystems without SEEK_DATA: treat as dense.
            Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(Error::io(path, e.into())),
        };
        let end = seek(&file, SeekFrom::Hole(start)).map_err(|e| Error::io(path, e.into()))?;
        let end = end.min(size);
        if end > start {
            out.push((start, end));
        }
        pos = end;
    }
    Ok(Some(out))
}

/// Extended attributes of `path` (not following symlinks), sorted by name.
fn read_xattrs(path: &Path) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut names = vec![0u8; 4096];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names[..]) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) => {
                let len: usize = rustix::fs::llistxattr(path, &mut [0u8; 0][..])
                    .map_err(|e| Error::io(path, e.into()))?;
                names.resize(len.max(names.len() * 2), 0);
            }
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(path, e.into())),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let cname = OsStr::from_bytes(name);
        let mut value = vec![0u8; 256];
        let len = loop {
            match rustix::fs::lgetxattr(path, cname, &mut value[..]) {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) => {
                    let need: usize = rustix::fs::lgetxattr(path, cname, &mut [0u8; 0][..])
                        .map_err(|e| Error::io(path, e.into()))?;
                    value.resize(need.max(value.len() * 2), 0);
                }
                // Removed between list and get: nothing to record.
                Err(rustix::io::Errno::NODATA) => break usize::MAX,
                Err(e) => return Err(Error::io(path, e.into())),
            }
        };
        if len == usize::MAX {
            continue;
        }
        value.truncate(len);
        out.push((name.to_vec(), value));
    }
    out.sort();
    Ok(out)
}
