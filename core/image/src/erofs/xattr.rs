//! Inline (per-inode) EROFS extended attributes.
//!
//! Layout: a 12-byte `erofs_xattr_ibody_header`, then `erofs_xattr_entry` records (name length,
//! prefix index, value size, name suffix, value), each padded to 4 bytes. Shared xattrs and long
//! name prefixes are not used: every Linux namespace a tree can carry has a short prefix index.

use std::path::Path;

use super::format::{XATTR_IBODY_HEADER, XATTR_PREFIXES, put16};
use crate::error::{Error, Result};

/// Encodes the inline xattr area of one inode (empty when there are no xattrs).
pub(super) fn encode(xattrs: &[(Vec<u8>, Vec<u8>)], path: &Path) -> Result<Vec<u8>> {
    if xattrs.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = vec![0u8; XATTR_IBODY_HEADER];
    for (name, value) in xattrs {
        let err = |why| Error::Xattr {
            path: path.to_path_buf(),
            name: String::from_utf8_lossy(name).into(),
            why,
        };
        let (index, suffix) = XATTR_PREFIXES
            .iter()
            .find_map(|(idx, prefix)| {
                let exact_only = prefix.starts_with(b"system.");
                if exact_only {
                    (name.as_slice() == *prefix).then_some((*idx, &name[..0]))
                } else {
                    name.strip_prefix(*prefix).map(|s| (*idx, s))
                }
            })
            .ok_or_else(|| err("EROFS has no prefix for this namespace"))?;
        if suffix.len() > 255 {
            return Err(err("name longer than 255 bytes after its prefix"));
        }
        if value.len() > u16::MAX as usize {
            return Err(err("value larger than 65535 bytes"));
        }
        let at = out.len();
        out.resize(at + 4, 0);
        out[at] = suffix.len() as u8;
        out[at + 1] = index;
        put16(&mut out, at + 2, value.len() as u16);
        out.extend_from_slice(suffix);
        out.extend_from_slice(value);
        out.resize(out.len().next_multiple_of(4), 0);
        if out.len() > MAX_INLINE {
            return Err(err(
                "with the attributes before it, more than the 256 KiB of inline xattrs an EROFS \
                 inode can have (16-bit i_xattr_icount); --format squashfs stores them",
            ));
        }
    }
    Ok(out)
}

/// Largest inline xattr area: `i_xattr_icount` is 16 bits and counts 4-byte units after the
/// first (the 12-byte header counts as one).
const MAX_INLINE: usize = XATTR_IBODY_HEADER + (u16::MAX as usize - 1) * 4;

/// `i_xattr_icount` for an inline area of `len` bytes.
pub(super) fn icount(len: usize) -> u16 {
    if len == 0 {
        0
    } else {
        ((len - XATTR_IBODY_HEADER) / 4 + 1) as u16
    }
}
