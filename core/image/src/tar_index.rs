//! Where each member of an uncompressed tar keeps its data, read from the headers alone.
//!
//! A mapped EROFS image ([`crate::erofs::mapped`]) points its files at these offsets, so a tar
//! layer is mounted without being extracted (issue 15). Parsing is the `tar` crate's; this module
//! only decides what fspack accepts from someone else's archive: clean relative paths, members
//! whose data lies inside the layer, and the member types a read-only model tree needs.

use std::fs::File;
use std::path::Path;

use crate::erofs::mapped::MappedAttrs;
use crate::error::{Error, Result};

/// What a tar member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKind {
    /// A regular file: `size` bytes at archive offset `offset` (a multiple of 512).
    File {
        /// Byte offset of the data in the archive.
        offset: u64,
        /// Data size in bytes.
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symbolic link with its raw target.
    Symlink(Vec<u8>),
    /// A hard link to an earlier member (its cleaned path).
    HardLink(String),
}

/// One member of a tar, with its path cleaned (no `./` prefix, no trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarMember {
    /// Path relative to the archive root, `/`-separated.
    pub path: String,
    /// Kind and data location.
    pub kind: MemberKind,
    /// Mode bits, owner and mtime from the header.
    pub attrs: MappedAttrs,
}

fn refused(path: &str, why: impl Into<String>) -> Error {
    Error::Refused {
        path: path.to_string(),
        why: why.into(),
    }
}

/// Cleans a member path: drops `.` components and a trailing `/`; refuses absolute paths, `..`
/// and names that are not UTF-8 (ModelPack paths are strings). Returns `None` for the root
/// itself (`./`).
pub fn clean_path(raw: &[u8]) -> Result<Option<String>> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    let s = std::str::from_utf8(raw).map_err(|_| refused(&shown, "the path is not UTF-8"))?;
    if s.starts_with('/') {
        return Err(refused(s, "an absolute path escapes the tree"));
    }
    let mut parts = Vec::new();
    for c in s.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(refused(s, "a `..` component escapes the tree")),
            c if c.contains('\0') => return Err(refused(s, "a NUL byte in the path")),
            c => parts.push(c),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// Lists the members of the uncompressed tar `file` (`len` bytes, shown as `name` in errors),
/// seeking over member data instead of reading it.
///
/// Errors: [`Error::Refused`] for a path that escapes the tree, a member whose data reaches past
/// `len`, or a member type other than file, directory, symlink and hard link (devices, fifos,
/// GNU sparse files); [`Error::Format`] when the headers cannot be parsed.
pub fn index_tar(file: &File, len: u64, name: &Path) -> Result<Vec<TarMember>> {
    let mut archive = tar::Archive::new(file);
    let unreadable =
        |e: std::io::Error| Error::Format(format!("{} is not a readable tar: {e}", name.display()));
    let mut out = Vec::new();
    for entry in archive.entries_with_seek().map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        // The path is judged first: a hostile name is refused whatever else the header holds.
        let Some(path) = clean_path(&raw)? else {
            // `./` itself: the root's attributes are fspack's to set, not one layer's.
            continue;
        };
        let header = entry.header();
        let typ = header.entry_type();
        // Attributes only shape what `stat` shows; an empty numeric field (some writers leave
        // uid or mtime blank) reads as 0 rather than failing the mount.
        let attrs = MappedAttrs {
            perm: header.mode().map_or(0o644, |m| m & 0o7777),
            uid: header
                .uid()
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            gid: header
                .gid()
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0),
            mtime: header
                .mtime()
                .ok()
                .map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX)),
            mtime_nsec: 0,
        };
        let kind = match typ {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let (offset, size) = (entry.raw_file_position(), entry.size());
                if offset.checked_add(size).is_none_or(|end| end > len) {
                    return Err(refused(
                        &shown,
                        format!(
                            "the header claims {size} bytes at offset {offset}, past the end of the layer ({len} bytes)"
                        ),
                    ));
                }
                MemberKind::File { offset, size }
            }
            tar::EntryType::Directory => MemberKind::Dir,
            tar::EntryType::Symlink => MemberKind::Symlink(
                entry
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default(),
            ),
            tar::EntryType::Link => {
                let target = entry.link_name_bytes().unwrap_or_default();
                match clean_path(&target)? {
                    Some(t) => MemberKind::HardLink(t),
                    None => return Err(refused(&shown, "a hard link to the root")),
                }
            }
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => continue,
            other => {
                return Err(refused(
                    &shown,
                    format!(
                        "tar member type {other:?} cannot be mapped (files, directories and links only)"
                    ),
                ));
            }
        };
        out.push(TarMember { path, kind, attrs });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_or_refused() {
        assert_eq!(clean_path(b"./a/b/").unwrap().as_deref(), Some("a/b"));
        assert_eq!(clean_path(b"./").unwrap(), None);
        assert_eq!(clean_path(b"a//./b").unwrap().as_deref(), Some("a/b"));
        for bad in [&b"/etc/passwd"[..], b"a/../../x", b"..", b"\xff"] {
            assert!(
                matches!(clean_path(bad), Err(Error::Refused { .. })),
                "{bad:?}"
            );
        }
    }
}
