//! The id table (uids and gids behind 16-bit indexes) and the xattr table (deduplicated sets of
//! key/value pairs behind 32-bit ids), both filled while inodes are encoded.

use std::collections::HashMap;
use std::path::Path;

use super::compress::Codec;
use super::format::INVALID_U32;
use super::meta::{MetaWriter, lookup_table};
use crate::error::{Error, Result};

/// Most distinct uids and gids one image holds (the superblock's `no_ids` is a `u16`).
pub(crate) const MAX_IDS: usize = u16::MAX as usize;

/// Unique uids and gids in order of first use.
#[derive(Default)]
pub(crate) struct IdTable {
    ids: Vec<u32>,
    index: HashMap<u32, u16>,
}

impl IdTable {
    /// The 16-bit index of `id`, adding it on first use.
    pub(crate) fn get(&mut self, id: u32) -> Result<u16> {
        if let Some(&i) = self.index.get(&id) {
            return Ok(i);
        }
        // The superblock's id count is 16 bits: 65,536 ids would wrap it to 0 and give an
        // image the kernel refuses (issue 11). Index 65535 is therefore the last usable one.
        if self.ids.len() >= MAX_IDS {
            return Err(Error::TooLarge(format!(
                "more than {MAX_IDS} distinct uids and gids, at uid/gid {id} (SquashFS counts them in 16 bits)\nhint: build with --all-root, or as EROFS"
            )));
        }
        let i = self.ids.len() as u16;
        self.ids.push(id);
        self.index.insert(id, i);
        Ok(i)
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Encodes the table at absolute offset `at`; returns bytes and the superblock pointer.
    pub(crate) fn encode(&self, codec: &mut Codec, at: u64) -> Result<(Vec<u8>, u64)> {
        let raw: Vec<u8> = self.ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        lookup_table(codec, &raw, at)
    }
}

/// Key/value pairs and the id entries that point at them.
pub(crate) struct XattrTable {
    kv: MetaWriter,
    ids: Vec<u8>,
    count: u32,
    dedup: HashMap<Vec<u8>, u32>,
}

/// Prefixes SquashFS can store, with their type numbers.
const PREFIXES: [(&[u8], u16); 3] = [(b"user.", 0), (b"trusted.", 1), (b"security.", 2)];

impl XattrTable {
    pub(crate) fn new() -> XattrTable {
        XattrTable {
            kv: MetaWriter::new(),
            ids: Vec::new(),
            count: 0,
            dedup: HashMap::new(),
        }
    }

    /// The xattr id of a set of attributes (sorted by name), `INVALID_U32` for none; identical
    /// sets share one id and one copy of their pairs.
    pub(crate) fn add(
        &mut self,
        codec: &mut Codec,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        path: &Path,
    ) -> Result<u32> {
        if xattrs.is_empty() {
            return Ok(INVALID_U32);
        }
        let mut kv = Vec::new();
        for (name, value) in xattrs {
            let Some(&(prefix, ty)) = PREFIXES.iter().find(|(p, _)| name.starts_with(p)) else {
                return Err(Error::Xattr {
                    path: path.to_path_buf(),
                    name: String::from_utf8_lossy(name).into_owned(),
                    why: "SquashFS stores only user., trusted. and security. attributes",
                });
            };
            let short = &name[prefix.len()..];
            if short.is_empty() || short.len() > u16::MAX as usize {
                return Err(Error::Xattr {
                    path: path.to_path_buf(),
                    name: String::from_utf8_lossy(name).into_owned(),
                    why: "empty or oversized name",
                });
            }
            kv.extend_from_slice(&ty.to_le_bytes());
            kv.extend_from_slice(&(short.len() as u16).to_le_bytes());
            kv.extend_from_slice(short);
            kv.extend_from_slice(&(value.len() as u32).to_le_bytes());
            kv.extend_from_slice(value);
        }
        if let Some(&id) = self.dedup.get(&kv) {
            return Ok(id);
        }
        let (block, offset) = self.kv.pos();
        self.kv.write(codec, &kv)?;
        let id = self.count;
        self.count += 1;
        self.ids
            .extend_from_slice(&super::format::meta_ref(block, offset).to_le_bytes());
        self.ids
            .extend_from_slice(&(xattrs.len() as u32).to_le_bytes());
        self.ids.extend_from_slice(&(kv.len() as u32).to_le_bytes());
        self.dedup.insert(kv, id);
        Ok(id)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encodes pairs, id entries and the id-table header at absolute offset `at`; returns the
    /// bytes and the superblock pointer (the header).
    pub(crate) fn encode(self, codec: &mut Codec, at: u64) -> Result<(Vec<u8>, u64)> {
        let (mut bytes, _) = self.kv.finish(codec)?;
        let kv_start = at;
        let mut ids = MetaWriter::new();
        ids.write(codec, &self.ids)?;
        let ids_at = at + bytes.len() as u64;
        let (id_bytes, starts) = ids.finish(codec)?;
        bytes.extend_from_slice(&id_bytes);
        let header_at = at + bytes.len() as u64;
        bytes.extend_from_slice(&kv_start.to_le_bytes());
        bytes.extend_from_slice(&self.count.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        for s in starts {
            bytes.extend_from_slice(&(ids_at + s).to_le_bytes());
        }
        Ok((bytes, header_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::squashfs::Compression;

    #[test]
    fn identical_sets_share_an_id_and_foreign_prefixes_are_refused() {
        let mut codec = Codec::new(Compression::Zstd, Some(3), 1 << 17).unwrap();
        let mut t = XattrTable::new();
        let set = vec![
            (b"user.a".to_vec(), b"1".to_vec()),
            (b"security.capability".to_vec(), vec![1, 2]),
        ];
        let p = Path::new("x");
        assert_eq!(t.add(&mut codec, &set, p).unwrap(), 0);
        assert_eq!(t.add(&mut codec, &[], p).unwrap(), INVALID_U32);
        assert_eq!(t.add(&mut codec, &set[..1], p).unwrap(), 1);
        assert_eq!(t.add(&mut codec, &set, p).unwrap(), 0);
        let err = t
            .add(
                &mut codec,
                &[(b"system.posix_acl_access".to_vec(), vec![])],
                p,
            )
            .unwrap_err();
        assert!(err.to_string().contains("system.posix_acl_access"), "{err}");
    }

    #[test]
    fn ids_are_indexed_in_order_of_first_use() {
        let mut ids = IdTable::default();
        assert_eq!(ids.get(1000).unwrap(), 0);
        assert_eq!(ids.get(0).unwrap(), 1);
        assert_eq!(ids.get(1000).unwrap(), 0);
        assert_eq!(ids.len(), 2);
    }

    #[test]
    fn the_id_count_never_wraps() {
        let mut ids = IdTable::default();
        for i in 0..MAX_IDS as u32 {
            ids.get(i).unwrap();
        }
        assert_eq!(ids.len() as u16 as usize, MAX_IDS);
        let e = ids.get(MAX_IDS as u32).unwrap_err().to_string();
        assert!(e.contains("65535"), "{e}");
        assert_eq!(ids.get(7).unwrap(), 7, "known ids still resolve");
    }
}
