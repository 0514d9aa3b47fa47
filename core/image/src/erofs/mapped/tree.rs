//! The directory tree of a mapped image, built from its entries' paths with every path and
//! file mapping checked first, so the encoder in [`super`] only lays out what is valid.

use std::collections::BTreeMap;

use super::{Kind, MappedEntry, MappedImage, MappedKind, Node};
use crate::error::{Error, Result};
use crate::tree::NAME_MAX;

impl MappedImage {
    /// Builds the directory tree, checking every path and file mapping.
    pub(super) fn tree(&self) -> Result<Vec<Node>> {
        let mut nodes = vec![Node {
            kind: Kind::Dir(BTreeMap::new()),
            attrs: self.root,
            explicit: true,
            parent: 0,
        }];
        for e in &self.entries {
            let parts = self.check_entry(e)?;
            let (last, dirs) = parts.split_last().expect("split gives one part");
            let cur = self.parent_dir(&mut nodes, &e.path, dirs)?;
            let Kind::Dir(children) = &nodes[cur].kind else {
                return Err(bad(&e.path, "a parent is not a directory"));
            };
            if let Some(&existing) = children.get(last.as_bytes()) {
                let both_dirs =
                    matches!(nodes[existing].kind, Kind::Dir(_)) && e.kind == MappedKind::Dir;
                if !both_dirs {
                    return Err(bad(&e.path, "the path is named twice"));
                }
                if !nodes[existing].explicit {
                    nodes[existing].attrs = e.attrs;
                    nodes[existing].explicit = true;
                }
                continue;
            }
            let id = nodes.len();
            nodes.push(Node {
                kind: match &e.kind {
                    MappedKind::Dir => Kind::Dir(BTreeMap::new()),
                    MappedKind::File {
                        device,
                        offset,
                        size,
                    } => Kind::File {
                        device: *device,
                        offset: *offset,
                        size: *size,
                    },
                    MappedKind::Symlink { target } => Kind::Symlink(target.clone()),
                },
                attrs: e.attrs,
                explicit: true,
                parent: cur,
            });
            if let Kind::Dir(ch) = &mut nodes[cur].kind {
                ch.insert(last.as_bytes().to_vec(), id);
            }
        }
        Ok(nodes)
    }

    /// Checks that entry `e`'s path is clean and relative with names the format can hold, and
    /// that a file's bytes lie on its device from a 512-byte boundary; returns the path's names.
    ///
    /// Errors: [`Error::Refused`] naming the path.
    fn check_entry<'e>(&self, e: &'e MappedEntry) -> Result<Vec<&'e str>> {
        let parts: Vec<&str> = e.path.split('/').collect();
        for c in &parts {
            if c.is_empty() || *c == "." || *c == ".." {
                return Err(bad(&e.path, "not a clean relative path"));
            }
            if c.len() > NAME_MAX || c.contains('\0') {
                return Err(bad(
                    &e.path,
                    "a name longer than 255 bytes or with a NUL byte",
                ));
            }
        }
        if let MappedKind::File {
            device,
            offset,
            size,
        } = e.kind
        {
            let dev = (device as usize)
                .checked_sub(1)
                .and_then(|i| self.devices.get(i))
                .map(|d| d.size)
                .ok_or_else(|| bad(&e.path, format!("device {device} does not exist")))?;
            if !offset.is_multiple_of(512) {
                return Err(bad(
                    &e.path,
                    format!("offset {offset} is not a multiple of 512"),
                ));
            }
            if offset.checked_add(size).is_none_or(|end| end > dev) {
                return Err(bad(
                    &e.path,
                    format!(
                        "{size} bytes at {offset} reach past the end of device {device} ({dev} bytes)"
                    ),
                ));
            }
        }
        Ok(parts)
    }

    /// The directory node that holds the last name of `path`, following the names `dirs` from
    /// the root and creating the directories not named by an entry of their own.
    ///
    /// Errors: [`Error::Refused`] when one of `dirs` is not a directory.
    fn parent_dir(&self, nodes: &mut Vec<Node>, path: &str, dirs: &[&str]) -> Result<usize> {
        let mut cur = 0usize;
        for c in dirs {
            let Kind::Dir(children) = &nodes[cur].kind else {
                return Err(bad(path, "a parent is not a directory"));
            };
            cur = match children.get(c.as_bytes()) {
                Some(&id) => id,
                None => {
                    let id = nodes.len();
                    nodes.push(Node {
                        kind: Kind::Dir(BTreeMap::new()),
                        attrs: self.root,
                        explicit: false,
                        parent: cur,
                    });
                    if let Kind::Dir(ch) = &mut nodes[cur].kind {
                        ch.insert(c.as_bytes().to_vec(), id);
                    }
                    id
                }
            };
        }
        Ok(cur)
    }
}

fn bad(path: &str, why: impl Into<String>) -> Error {
    Error::Refused {
        path: path.to_string(),
        why: why.into(),
    }
}
