//! A native, parallel, reproducible SquashFS 4.0 writer over the shared [`Tree`] model.
//!
//! Why our own encoder rather than `backhand`: backhand cannot write xattrs or hardlinks, does not
//! keep holes, compresses on one thread and holds one open reader per input until it writes (its
//! docs at docs.rs/backhand and its `FilesystemWriter` API, as of 0.x). The format is small enough that owning it costs less than
//! working around those gaps, and it lets SquashFS share the walk, the error types and the
//! change-detection rules of the EROFS writer.
//!
//! Layout, in the order the kernel insists on: superblock, compressor options (LZ4 only), data
//! and fragment blocks, inode table, directory table, fragment table, export table, id table,
//! xattr table; padded to 4 KiB. The export table (inode number → inode) is always written: it
//! costs 8 bytes per inode and makes images NFS-exportable, as mksquashfs does by default.
//!
//! Sharded output for parallel pushes is in [`shard`].

pub mod acl;
mod compress;
mod data;
mod dir;
mod format;
mod inode;
mod meta;
pub mod shard;
mod tables;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

pub use self::compress::Compression;
pub use self::shard::{
    MAX_SHARDS, ShardRules, ShardSpec, ShardsReport, shard_hazard, shard_name, write_shards,
    write_shards_report,
};

use self::compress::Codec;
use self::data::{CodecSpec, FileData, FileInput};
use self::format::{INVALID_U64, Superblock, flags, itype};
use self::meta::{MetaWriter, lookup_table};
use self::tables::{IdTable, XattrTable};
use crate::error::{Error, Result};
use crate::tree::{InodeId, Kind, Tree};

/// Default data block size: 128 KiB, as mksquashfs.
pub const DEFAULT_BLOCK_SIZE: u32 = 128 << 10;

/// Tunables of the SquashFS writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SquashfsOptions {
    /// Compression algorithm for data and metadata.
    pub compression: Compression,
    /// Compression level; `None` picks [`Compression::default_level`].
    pub level: Option<i32>,
    /// Data block size: a power of two from 4 KiB to 1 MiB.
    pub block_size: u32,
    /// Creation time recorded in the superblock (seconds since the epoch).
    pub mkfs_time: u32,
}

impl Default for SquashfsOptions {
    fn default() -> Self {
        SquashfsOptions {
            compression: Compression::Zstd,
            level: None,
            block_size: DEFAULT_BLOCK_SIZE,
            mkfs_time: 0,
        }
    }
}

impl SquashfsOptions {
    fn validate(&self) -> Result<Option<i32>> {
        if !self.block_size.is_power_of_two() || !(4096..=1 << 20).contains(&self.block_size) {
            return Err(Error::InvalidOption(format!(
                "block size {} must be a power of two from 4096 to 1048576",
                self.block_size
            )));
        }
        self.compression.level(self.level)
    }
}

/// What [`write`] produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SquashfsReport {
    /// Size of the image file in bytes (padded to 4 KiB).
    pub bytes: u64,
    /// Number of inodes.
    pub inodes: u64,
    /// Data blocks stored (all-zero blocks excluded).
    pub data_blocks: u64,
    /// Fragment blocks stored.
    pub fragments: u64,
    /// Inodes whose mtime was outside SquashFS's unsigned 32-bit range and was clamped to it.
    pub clamped_mtimes: u64,
    /// Human-readable notes for the user (clamped times, with an example path).
    pub warnings: Vec<String>,
}

/// Writes `tree` as a SquashFS image to `out`, atomically: the image is built in a temporary file
/// next to `out` and renamed over it only when complete, so an error leaves no partial output.
pub fn write(tree: &Tree, opts: &SquashfsOptions, out: &Path) -> Result<SquashfsReport> {
    let level = opts.validate()?;
    fspack_atomic::write_with(
        out,
        fspack_atomic::Options::DURABLE,
        |file, tmp| write_to(tree, opts, level, file, tmp),
        Error::io,
    )
}

fn basic_type(kind: &Kind) -> u16 {
    match kind {
        Kind::Dir { .. } => itype::DIR,
        Kind::File { .. } => itype::FILE,
        Kind::Symlink { .. } => itype::SYMLINK,
        Kind::BlockDev { .. } => itype::BLKDEV,
        Kind::CharDev { .. } => itype::CHRDEV,
        Kind::Fifo => itype::FIFO,
        Kind::Socket => itype::SOCKET,
    }
}

/// Writes the whole image into an open file.
fn write_to(
    tree: &Tree,
    opts: &SquashfsOptions,
    level: Option<i32>,
    out: &File,
    out_path: &Path,
) -> Result<SquashfsReport> {
    let n = tree.inodes.len();
    if n as u64 >= u32::MAX as u64 {
        return Err(Error::TooLarge(format!(
            "{n} inodes (SquashFS allows 2^32 - 2)"
        )));
    }
    let kind = opts.compression;
    let mut codec = Codec::new(kind, level, opts.block_size)?;

    // Compressor options go right after the superblock, as one uncompressed metadata block.
    let mut head = Vec::new();
    let mut sb_flags = flags::EXPORTABLE;
    if let Some(o) = kind.options() {
        sb_flags |= flags::COMPRESSOR_OPTIONS;
        head.extend_from_slice(&(o.len() as u16 | format::META_UNCOMPRESSED).to_le_bytes());
        head.extend_from_slice(&o);
    }
    let data_start = (format::SUPERBLOCK_SIZE + head.len()) as u64;

    let mut ids = IdTable::default();
    let mut xattrs = XattrTable::new();
    let attrs = inode_attrs(tree, &mut codec, &mut ids, &mut xattrs)?;
    let (file_slot, inputs) = file_inputs(tree);
    let spec = CodecSpec {
        kind,
        level,
        block_size: opts.block_size,
    };
    let data = data::write_data(&inputs, spec, out, out_path, data_start)?;
    let meta = write_metadata(tree, &mut codec, &attrs, &data.files, &file_slot)?;
    let root = meta.refs[Tree::ROOT].expect("root written last");

    let mut sb = Superblock {
        inode_count: n as u32,
        mkfs_time: opts.mkfs_time,
        block_size: opts.block_size,
        fragment_count: data.fragments.len() as u32,
        compression_id: kind.id(),
        flags: sb_flags,
        id_count: ids.len() as u16,
        root_inode: format::meta_ref(root.0, root.1),
        xattr_id_table: INVALID_U64,
        fragment_table: INVALID_U64,
        ..Default::default()
    };
    let tables = Tables {
        meta,
        fragments: &data.fragments,
        ids: &ids,
        xattrs,
    };
    let pos = tables.write(&mut codec, &mut sb, out, out_path, data.end)?;
    sb.bytes_used = pos;
    let mut first = sb.encode().to_vec();
    first.extend_from_slice(&head);
    out.write_all_at(&first, 0)
        .map_err(|e| Error::io(out_path, e))?;
    let padded = pos.next_multiple_of(format::DEVICE_BLOCK);
    if padded > pos {
        out.write_all_at(&vec![0u8; (padded - pos) as usize], pos)
            .map_err(|e| Error::io(out_path, e))?;
    }
    tracing::debug!(bytes = padded, inodes = n, "squashfs image written");
    Ok(SquashfsReport {
        bytes: padded,
        inodes: n as u64,
        data_blocks: data.blocks,
        fragments: data.fragments.len() as u64,
        clamped_mtimes: attrs.clamped,
        warnings: attrs.warnings,
    })
}

/// What every inode carries besides its kind: its header (ids from the id table, the
/// modification time clamped to SquashFS's range) and its xattr id.
struct InodeAttrs {
    headers: Vec<inode::Header>,
    xattr_ids: Vec<u32>,
    /// Inodes whose modification time was clamped.
    clamped: u64,
    warnings: Vec<String>,
}

/// Ids, xattrs and times, in inode order so the tables do not depend on traversal details;
/// before any data is written, so a tree the format cannot hold fails at once (issue 11).
///
/// Errors: the id table's (over 65536 ids) and the xattr table's.
fn inode_attrs(
    tree: &Tree,
    codec: &mut Codec,
    ids: &mut IdTable,
    xattrs: &mut XattrTable,
) -> Result<InodeAttrs> {
    let n = tree.inodes.len();
    let mut headers = Vec::with_capacity(n);
    let mut xattr_ids = Vec::with_capacity(n);
    let mut clamped = 0u64;
    let mut warnings = Vec::new();
    for (id, inode) in tree.inodes.iter().enumerate() {
        let mtime = if inode.mtime < 0 || inode.mtime > u32::MAX as i64 {
            clamped += 1;
            if clamped == 1 {
                warnings.push(format!(
                    "modification time {} of {} is outside SquashFS's range (1970 to 2106) and was clamped",
                    inode.mtime,
                    display_path(&inode.path)
                ));
            }
            inode.mtime.clamp(0, u32::MAX as i64) as u32
        } else {
            inode.mtime as u32
        };
        headers.push(inode::Header {
            perm: inode.perm as u16,
            uid: ids.get(inode.uid)?,
            gid: ids.get(inode.gid)?,
            mtime,
            number: id as u32 + 1,
        });
        xattr_ids.push(xattrs.add(codec, &inode.xattrs, &inode.path)?);
    }
    if clamped > 1 {
        warnings.push(format!(
            "{clamped} inodes in all had their modification time clamped"
        ));
    }
    Ok(InodeAttrs {
        headers,
        xattr_ids,
        clamped,
        warnings,
    })
}

/// Data: every regular file in inode order, with each inode's slot among them
/// (`usize::MAX` for inodes that are no regular file).
fn file_inputs(tree: &Tree) -> (Vec<usize>, Vec<FileInput<'_>>) {
    let mut file_slot = vec![usize::MAX; tree.inodes.len()];
    let mut inputs = Vec::new();
    for (id, inode) in tree.inodes.iter().enumerate() {
        if let Kind::File {
            source,
            size,
            extents,
            stamp,
        } = &inode.kind
        {
            file_slot[id] = inputs.len();
            inputs.push(FileInput {
                path: source,
                size: *size,
                extents: extents.as_deref(),
                stamp: *stamp,
            });
        }
    }
    (file_slot, inputs)
}

/// The inode and directory tables as written, and where each inode landed in the first.
struct Metadata {
    inodes: MetaWriter,
    dirs: MetaWriter,
    /// (block, offset) of each inode in the inode table.
    refs: Vec<Option<(u64, u16)>>,
}

/// Inodes and directories, children before parents, so every reference is known when written.
///
/// Errors: [`Error::TooLarge`] for a directory table above 4 GiB; the codec's.
fn write_metadata(
    tree: &Tree,
    codec: &mut Codec,
    attrs: &InodeAttrs,
    files: &[FileData],
    file_slot: &[usize],
) -> Result<Metadata> {
    let n = tree.inodes.len();
    let parents = tree.dir_parents();
    let mut inodes = MetaWriter::new();
    let mut dirs = MetaWriter::new();
    let mut refs: Vec<Option<(u64, u16)>> = vec![None; n];
    let mut buf = Vec::new();
    let mut stack: Vec<(InodeId, usize)> = vec![(Tree::ROOT, 0)];
    let empty = FileData::default();
    while let Some((d, next)) = stack.last_mut() {
        let d = *d;
        let entries = tree.entries(d);
        if *next < entries.len() {
            let child = entries[*next].inode;
            *next += 1;
            if tree.inodes[child].is_dir() {
                stack.push((child, 0));
            } else if refs[child].is_none() {
                refs[child] = Some(inodes.pos());
                buf.clear();
                encode_leaf(
                    tree,
                    child,
                    &attrs.headers[child],
                    attrs.xattr_ids[child],
                    files,
                    file_slot,
                    &empty,
                    &mut buf,
                )?;
                inodes.write(codec, &buf)?;
            }
            continue;
        }
        stack.pop();
        let parent = if d == Tree::ROOT {
            n as u32 + 1
        } else {
            parents[d] as u32 + 1
        };
        let di = write_listing(tree, d, parent, attrs.xattr_ids[d], &refs, codec, &mut dirs)?;
        refs[d] = Some(inodes.pos());
        buf.clear();
        inode::dir(&mut buf, &attrs.headers[d], &di);
        inodes.write(codec, &buf)?;
    }
    Ok(Metadata { inodes, dirs, refs })
}

/// Writes the listing of directory `d` into the directory table, its children's inodes already
/// placed in `refs`; returns its inode, naming inode number `parent` as its parent.
fn write_listing<'t>(
    tree: &'t Tree,
    d: InodeId,
    parent: u32,
    xattr: u32,
    refs: &[Option<(u64, u16)>],
    codec: &mut Codec,
    dirs: &mut MetaWriter,
) -> Result<inode::DirInode<'t>> {
    let entries = tree.entries(d);
    let children: Vec<dir::DirChild> = entries
        .iter()
        .map(|e| {
            let (block, offset) = refs[e.inode].expect("children are written first");
            dir::DirChild {
                name: &e.name,
                block,
                offset,
                inode_number: e.inode as u32 + 1,
                basic_type: basic_type(&tree.inodes[e.inode].kind),
            }
        })
        .collect();
    let (listing, index) = dir::encode(&children);
    let (block, offset) = dirs.pos();
    let upos = dirs.upos();
    dirs.write(codec, &listing)?;
    let index = index
        .iter()
        .map(|p| {
            (
                p.offset,
                dirs.block_start_of(upos + p.offset as u64) as u32,
                p.name,
            )
        })
        .collect();
    if dirs.upos() > u32::MAX as u64 || block > u32::MAX as u64 {
        return Err(Error::TooLarge("directory table above 4 GiB".into()));
    }
    Ok(inode::DirInode {
        block,
        offset,
        listing: listing.len() as u32,
        nlink: tree.inodes[d].nlink,
        parent,
        index,
        xattr,
    })
}

/// The tables that follow the data, in the kernel's order: inodes, directories, fragments,
/// export, ids, xattrs.
struct Tables<'a> {
    meta: Metadata,
    /// (absolute start, on-disk size) of each fragment block.
    fragments: &'a [(u64, u32)],
    ids: &'a IdTable,
    xattrs: XattrTable,
}

impl Tables<'_> {
    /// Writes the tables from byte `pos` of `out`, setting their offsets (and the no-xattrs
    /// flag) in `sb`; returns the offset just past the last.
    fn write(
        self,
        codec: &mut Codec,
        sb: &mut Superblock,
        out: &File,
        out_path: &Path,
        mut pos: u64,
    ) -> Result<u64> {
        let Tables {
            meta,
            fragments,
            ids,
            xattrs,
        } = self;
        let put = |bytes: &[u8], pos: &mut u64| -> Result<()> {
            out.write_all_at(bytes, *pos)
                .map_err(|e| Error::io(out_path, e))?;
            *pos += bytes.len() as u64;
            Ok(())
        };
        let (inode_bytes, _) = meta.inodes.finish(codec)?;
        sb.inode_table = pos;
        put(&inode_bytes, &mut pos)?;
        drop(inode_bytes);
        let (dir_bytes, _) = meta.dirs.finish(codec)?;
        sb.directory_table = pos;
        put(&dir_bytes, &mut pos)?;
        drop(dir_bytes);
        if !fragments.is_empty() {
            let raw: Vec<u8> = fragments
                .iter()
                .flat_map(|&(start, size)| {
                    let mut e = start.to_le_bytes().to_vec();
                    e.extend_from_slice(&size.to_le_bytes());
                    e.extend_from_slice(&0u32.to_le_bytes());
                    e
                })
                .collect();
            let (bytes, at) = lookup_table(codec, &raw, pos)?;
            sb.fragment_table = at;
            put(&bytes, &mut pos)?;
        }
        let export: Vec<u8> = meta
            .refs
            .iter()
            .flat_map(|r| {
                let (b, o) = r.expect("every inode is reachable from the root");
                format::meta_ref(b, o).to_le_bytes()
            })
            .collect();
        let (bytes, at) = lookup_table(codec, &export, pos)?;
        sb.export_table = at;
        put(&bytes, &mut pos)?;
        let (bytes, at) = ids.encode(codec, pos)?;
        sb.id_table = at;
        put(&bytes, &mut pos)?;
        if xattrs.is_empty() {
            sb.flags |= flags::NO_XATTRS;
        } else {
            let (bytes, at) = xattrs.encode(codec, pos)?;
            sb.xattr_id_table = at;
            put(&bytes, &mut pos)?;
        }
        Ok(pos)
    }
}

#[allow(clippy::too_many_arguments)]
fn encode_leaf(
    tree: &Tree,
    id: InodeId,
    h: &inode::Header,
    xattr: u32,
    files: &[FileData],
    file_slot: &[usize],
    empty: &FileData,
    buf: &mut Vec<u8>,
) -> Result<()> {
    let ino = &tree.inodes[id];
    match &ino.kind {
        Kind::File { size, .. } => {
            let d = files.get(file_slot[id]).unwrap_or(empty);
            inode::file(buf, h, d, *size, ino.nlink, xattr);
        }
        Kind::Symlink { target } => inode::symlink(buf, h, target, ino.nlink, xattr),
        Kind::CharDev { rdev } | Kind::BlockDev { rdev } => {
            let dev = format::encode_dev(*rdev).ok_or_else(|| {
                Error::TooLarge(format!(
                    "device number {}:{} of {} does not fit SquashFS's 32-bit field",
                    rustix::fs::major(*rdev),
                    rustix::fs::minor(*rdev),
                    display_path(&ino.path)
                ))
            })?;
            inode::device(buf, basic_type(&ino.kind), h, dev, ino.nlink, xattr);
        }
        Kind::Fifo | Kind::Socket => inode::ipc(buf, basic_type(&ino.kind), h, ino.nlink, xattr),
        Kind::Dir { .. } => unreachable!("directories are encoded after their children"),
    }
    Ok(())
}

/// `/relative/path` for messages (the root is `/`).
fn display_path(p: &Path) -> String {
    format!("/{}", p.display())
}
