//! A read-only view of an OCI image layout that is not the store (an `oci:PATH` the user named).
//!
//! [`Store::open`](crate::Store::open) creates its working directories and locks, which is right
//! for the store and wrong for a layout on a USB stick or a read-only share: `inspect`, `pull`
//! and `mount` of an `oci:` layout must never write into it (issue 11). This view only reads
//! `oci-layout`, `index.json` and blobs, and checks every blob it hands out against its digest.

use std::path::{Path, PathBuf};

use fspack_digest::Digest;

use crate::digest::{digest_hex, sha256_of};
use crate::error::{Result, StoreError};
use crate::layout::{Descriptor, Index};

/// An OCI image layout opened for reading only.
#[derive(Debug, Clone)]
pub struct LayoutReader {
    root: PathBuf,
}

impl LayoutReader {
    /// Opens the layout at `root`.
    ///
    /// Errors: [`StoreError::Io`] (not found) when `root` has no `oci-layout` file.
    pub fn open(root: &Path) -> Result<LayoutReader> {
        let marker = root.join("oci-layout");
        std::fs::metadata(&marker).map_err(|e| StoreError::io(&marker, e))?;
        Ok(LayoutReader {
            root: root.to_path_buf(),
        })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest tag `name` (`org.opencontainers.image.ref.name`) points at.
    pub fn resolve(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(Index::read(&self.root.join("index.json"))?.get(name))
    }

    /// The layout's tags (`org.opencontainers.image.ref.name`), in index order.
    ///
    /// Errors: [`StoreError::Io`] or [`StoreError::Corrupt`] for its `index.json`.
    pub fn tags(&self) -> Result<Vec<String>> {
        Ok(Index::read(&self.root.join("index.json"))?
            .tagged()
            .into_iter()
            .map(|(t, _)| t)
            .collect())
    }

    /// The error for a tag the layout does not have, naming the tags it has.
    pub fn missing_tag(&self, tag: &str) -> String {
        let tags = self.tags().unwrap_or_default();
        let has = match tags.len() {
            0 => "it has no tags".to_string(),
            n if n <= 10 => format!("its tags: {}", tags.join(", ")),
            n => format!("its tags: {} and {} more", tags[..10].join(", "), n - 10),
        };
        format!(
            "no tag {tag} in the OCI layout {}; {has}",
            self.root.display()
        )
    }

    /// Where blob `digest` lives (not checked; see [`LayoutReader::read_blob`]).
    pub fn blob_path(&self, digest: &Digest) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(digest_hex(digest)?))
    }

    /// Reads a blob of at most `max` bytes and checks that it hashes to `digest`.
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>> {
        let path = self.blob_path(digest)?;
        let size = std::fs::metadata(&path)
            .map_err(|e| StoreError::io(&path, e))?
            .len();
        if size > max {
            return Err(StoreError::TooLarge {
                digest: digest.to_string(),
                size,
                max,
            });
        }
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let actual = sha256_of(&bytes);
        if &actual != digest {
            return Err(StoreError::CorruptBlob {
                digest: digest.to_string(),
                actual: actual.to_string(),
                path,
            });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_is_read_without_writing_a_byte() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("layout");
        {
            let store = crate::Store::open(&root).unwrap();
            let d = store.put_blob_bytes(b"{}").unwrap();
            store.tag("v1", &d, "application/json", 2).unwrap();
        }
        let before = listing(&root);
        let r = LayoutReader::open(&root).unwrap();
        let d = r.resolve("v1").unwrap().unwrap();
        assert_eq!(r.read_blob(&d.digest, 10).unwrap(), b"{}");
        assert!(r.resolve("v2").unwrap().is_none());
        assert!(r.read_blob(&d.digest, 1).is_err(), "size limit");
        assert_eq!(listing(&root), before);
        assert!(
            LayoutReader::open(dir.path()).is_err(),
            "no oci-layout file"
        );
    }

    fn listing(root: &Path) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let m = e.metadata().unwrap();
                if m.is_dir() {
                    stack.push(e.path());
                }
                out.push((e.path(), m.len()));
            }
        }
        out.sort();
        out
    }
}
