//! Per-chunk SHA-256 digests of a blob, in the chunk-index format of the EROFS image layer draft.
//!
//! The format is erofs-image-spec `spec.md` §3.4 (media type `application/vnd.erofs.chunk-index.v1`):
//! a 32-byte little-endian header, then one entry per chunk (`BlockOffset` u64,
//! `UncompressedOffset` u64, optional checksum). fspack writes and reads the raw variant only
//! (`CompressionType` 0, so `BlockOffset == UncompressedOffset`) with SHA-256 checksums
//! (`HashAlgo` 1, `HashSize` 32): 48 bytes per chunk.
//!
//! The index is what lets a downloader check each `Range` piece as it lands, resume from the last
//! good chunk, repair single chunks of a stored blob, and serve lazy reads that are verified
//! before they are answered. The index itself is authenticated by its digest, which the manifest
//! carries in the layer descriptor's `org.erofs.chunk-index.digest` annotation.
//!
//! This crate is pure: bytes in, bytes out. It knows nothing of HTTP, files, EROFS inodes or the
//! store; the registry client, the store and the engine build on it.

mod prefix;

use std::collections::BTreeMap;
use std::ops::Range;

pub use prefix::{PrefixHasher, ReadAt};

use fspack_digest::Digest;
use sha2::{Digest as _, Sha256};

/// Media type of a chunk index (erofs-image-spec §2.2).
pub const MEDIA_TYPE: &str = "application/vnd.erofs.chunk-index.v1";
/// Descriptor annotation: `offset[:end]` of an index embedded at the tail of the blob (§2.3).
pub const ANN_RANGE: &str = "org.erofs.chunk-index.range";
/// Descriptor annotation: digest of the index bytes (header and entries) (§2.3).
pub const ANN_DIGEST: &str = "org.erofs.chunk-index.digest";
/// Descriptor annotation: media type of the index; absent means [`MEDIA_TYPE`] (§2.3).
pub const ANN_MEDIA_TYPE: &str = "org.erofs.chunk-index.mediaType";
/// Descriptor annotation of a standalone index layer: the digest of the layer it indexes (§2.3).
pub const ANN_TARGET: &str = "org.erofs.chunk-index.target";

/// Length of the header in bytes (§3.4.1).
pub const HEADER_LEN: u64 = 32;
/// Length of one entry with a SHA-256 checksum in bytes (§3.4.2: 16 + `HashSize`).
pub const ENTRY_LEN: u64 = 48;
/// fspack's chunk size: 1 MiB. Chosen by measurement (`bench/chunk-size.sh`, bench/README.md): the table
/// costs 48 KiB per GiB, SHA-256 costs the same per byte at any size above 64 KiB, and one chunk
/// is what a lazy read of a small file or a resumed Range must fetch at least, so smaller is
/// better down to where request overhead shows.
pub const DEFAULT_CHUNK_SIZE: u64 = 1 << 20;
/// Largest index fspack accepts, in bytes: 64 MiB covers a 1.3 TiB blob at 1 MiB chunks and
/// bounds what a hostile annotation can make fspack allocate.
pub const MAX_INDEX_LEN: u64 = 64 << 20;

const MAGIC: [u8; 4] = [0xCD, 0xE4, 0xEC, 0x67];

/// What is wrong with a chunk index or its annotations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkIndexError {
    /// The bytes or annotations break a rule of the format: the layer is corrupt (§3.4.6).
    #[error("malformed chunk index: {0}")]
    Malformed(String),
    /// A valid index that fspack does not implement (zstd chunks, other hashes, flags); callers
    /// fall back to whole-blob verification as §2.2 and §3.4.6 direct.
    #[error("unsupported chunk index: {0}")]
    Unsupported(String),
}

/// Broad class of a [`ChunkIndexError`], for exit codes and fallbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Corrupt or contradictory: the content cannot be trusted.
    Integrity,
    /// Readable only by a newer implementation: ignore the index.
    Unsupported,
}

impl ChunkIndexError {
    /// The error's class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ChunkIndexError::Malformed(_) => ErrorKind::Integrity,
            ChunkIndexError::Unsupported(_) => ErrorKind::Unsupported,
        }
    }
}

fn malformed(s: impl Into<String>) -> ChunkIndexError {
    ChunkIndexError::Malformed(s.into())
}

/// A parsed chunk index over `data_size` bytes: chunk `i` covers
/// `[starts[i], starts[i + 1])` (the last one ends at `data_size`) and has SHA-256 `sums[i]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkIndex {
    data_size: u64,
    starts: Vec<u64>,
    sums: Vec<[u8; 32]>,
}

impl ChunkIndex {
    /// Parses and checks an index (§3.4.4 steps 1–3 and §3.4.6): magic, version 1, raw chunks,
    /// no flags, zero reserved bytes, SHA-256, a payload of exactly `32 + 48 × NumChunks` bytes,
    /// entries that start at 0, strictly increase, stay below `UncompressedSize`, and have
    /// `BlockOffset == UncompressedOffset`.
    ///
    /// Errors: [`ChunkIndexError::Malformed`] for any broken rule, [`ChunkIndexError::Unsupported`]
    /// for a zstd index, another hash, or flags set.
    pub fn parse(bytes: &[u8]) -> Result<ChunkIndex, ChunkIndexError> {
        if bytes.len() < HEADER_LEN as usize {
            return Err(malformed(format!(
                "{} bytes is shorter than the 32-byte header",
                bytes.len()
            )));
        }
        if bytes[0..4] != MAGIC {
            return Err(malformed("bad magic"));
        }
        if bytes[4] != 1 {
            return Err(ChunkIndexError::Unsupported(format!(
                "version {}",
                bytes[4]
            )));
        }
        match bytes[5] {
            0 => {}
            1 => {
                return Err(ChunkIndexError::Unsupported(
                    "zstd-compressed chunks".into(),
                ));
            }
            c => return Err(malformed(format!("unknown compression type {c}"))),
        }
        let flags = u16::from_le_bytes([bytes[6], bytes[7]]);
        if flags != 0 {
            return Err(ChunkIndexError::Unsupported(format!("flags {flags:#x}")));
        }
        let data_size = le64(bytes, 8);
        let n = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes")) as u64;
        match (bytes[20], bytes[21]) {
            (1, 32) => {}
            (0, 0) => {
                return Err(ChunkIndexError::Unsupported(
                    "an index without checksums verifies nothing".into(),
                ));
            }
            (1, 64) => return Err(ChunkIndexError::Unsupported("SHA-512 checksums".into())),
            (a, s) => return Err(malformed(format!("hash algorithm {a} with size {s}"))),
        }
        if bytes[22..32].iter().any(|&b| b != 0) {
            return Err(malformed("reserved header bytes are not zero"));
        }
        let expected = HEADER_LEN + n * ENTRY_LEN;
        if bytes.len() as u64 != expected {
            return Err(malformed(format!(
                "{n} chunks need {expected} bytes, the index has {}",
                bytes.len()
            )));
        }
        if (n == 0) != (data_size == 0) {
            return Err(malformed(format!(
                "{n} chunks for {data_size} bytes of data"
            )));
        }
        let mut starts = Vec::with_capacity(n as usize);
        let mut sums = Vec::with_capacity(n as usize);
        for i in 0..n as usize {
            let e = &bytes[HEADER_LEN as usize + i * ENTRY_LEN as usize..][..ENTRY_LEN as usize];
            let (block, start) = (le64(e, 0), le64(e, 8));
            if block != start {
                return Err(malformed(format!(
                    "chunk {i}: BlockOffset {block} differs from UncompressedOffset {start} in a raw index"
                )));
            }
            let ok = match starts.last() {
                None => start == 0,
                Some(&prev) => start > prev,
            };
            if !ok || start >= data_size {
                return Err(malformed(format!(
                    "chunk {i} starts at {start}, out of order or past the {data_size}-byte data"
                )));
            }
            starts.push(start);
            sums.push(e[16..48].try_into().expect("32 bytes"));
        }
        Ok(ChunkIndex {
            data_size,
            starts,
            sums,
        })
    }

    /// The index of a blob that has none: one chunk spanning all `data_size` bytes, whose
    /// checksum is the blob's own sha256 (`digest_hex`, 64 hex digits). Verifying that chunk is
    /// verifying the whole blob, so a scheduler built on chunks serves such a blob only once all
    /// of it arrived and matched its digest (issue 15: lazy mounts of artifacts from elsewhere).
    ///
    /// Returns `None` for an empty blob or a digest that is not 64 hex digits.
    pub fn whole(data_size: u64, digest_hex: &str) -> Option<ChunkIndex> {
        let sum: [u8; 32] = hex::decode(digest_hex).ok()?.try_into().ok()?;
        (data_size > 0).then(|| ChunkIndex {
            data_size,
            starts: vec![0],
            sums: vec![sum],
        })
    }

    /// Encodes the index (header and entries), `32 + 48 × chunk_count()` bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::encoded_len(self.starts.len() as u64) as usize);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[1, 0, 0, 0]);
        out.extend_from_slice(&self.data_size.to_le_bytes());
        out.extend_from_slice(&(self.starts.len() as u32).to_le_bytes());
        out.extend_from_slice(&[1, 32]);
        out.extend_from_slice(&[0; 10]);
        for (start, sum) in self.starts.iter().zip(&self.sums) {
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(&start.to_le_bytes());
            out.extend_from_slice(sum);
        }
        out
    }

    /// Length in bytes of an encoded index with `chunks` entries.
    pub fn encoded_len(chunks: u64) -> u64 {
        HEADER_LEN + chunks * ENTRY_LEN
    }

    /// Number of chunks of `data_size` bytes cut at `chunk_size` (the last may be shorter).
    pub fn chunks_for(data_size: u64, chunk_size: u64) -> u64 {
        data_size.div_ceil(chunk_size.max(1))
    }

    /// The indexed data's length in bytes (`UncompressedSize`).
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    /// Number of chunks.
    pub fn chunk_count(&self) -> usize {
        self.starts.len()
    }

    /// Byte range `[start, end)` of chunk `i` in the blob. Panics if `i >= chunk_count()`.
    pub fn chunk(&self, i: usize) -> Range<u64> {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.data_size);
        self.starts[i]..end
    }

    /// Largest chunk in bytes (what a reader must buffer to verify one chunk).
    pub fn max_chunk_len(&self) -> u64 {
        (0..self.chunk_count())
            .map(|i| {
                let r = self.chunk(i);
                r.end - r.start
            })
            .max()
            .unwrap_or(0)
    }

    /// The chunks that intersect bytes `[start, end)`; empty when the range is empty or lies
    /// past the data.
    pub fn chunks_covering(&self, start: u64, end: u64) -> Range<usize> {
        let end = end.min(self.data_size);
        if start >= end {
            return 0..0;
        }
        let first = self.starts.partition_point(|&s| s <= start) - 1;
        let last = self.starts.partition_point(|&s| s < end);
        first..last
    }

    /// Whether `bytes` are exactly chunk `i`'s content. Panics if `i >= chunk_count()`.
    pub fn verify(&self, i: usize, bytes: &[u8]) -> bool {
        let r = self.chunk(i);
        bytes.len() as u64 == r.end - r.start && Sha256::digest(bytes)[..] == self.sums[i]
    }

    /// Hex SHA-256 of chunk `i`, for messages.
    pub fn chunk_digest(&self, i: usize) -> String {
        format!("sha256:{}", hex::encode(self.sums[i]))
    }
}

fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}

/// Builds an index from data fed in pieces of any size, hashing each chunk once.
#[derive(Debug, Clone)]
pub struct ChunkIndexBuilder {
    chunk_size: u64,
    pos: u64,
    in_chunk: u64,
    hasher: Sha256,
    starts: Vec<u64>,
    sums: Vec<[u8; 32]>,
}

impl ChunkIndexBuilder {
    /// A builder cutting chunks of `chunk_size` bytes (at least 1).
    pub fn new(chunk_size: u64) -> Self {
        ChunkIndexBuilder {
            chunk_size: chunk_size.max(1),
            pos: 0,
            in_chunk: 0,
            hasher: Sha256::new(),
            starts: Vec::new(),
            sums: Vec::new(),
        }
    }

    /// Feeds the next bytes of the data.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = ((self.chunk_size - self.in_chunk) as usize).min(data.len());
            if self.in_chunk == 0 {
                self.starts.push(self.pos);
            }
            self.hasher.update(&data[..take]);
            self.in_chunk += take as u64;
            self.pos += take as u64;
            data = &data[take..];
            if self.in_chunk == self.chunk_size {
                self.sums.push(self.hasher.finalize_reset().into());
                self.in_chunk = 0;
            }
        }
    }

    /// The index over everything fed so far.
    pub fn finish(mut self) -> ChunkIndex {
        if self.in_chunk > 0 {
            self.sums.push(self.hasher.finalize_reset().into());
        }
        ChunkIndex {
            data_size: self.pos,
            starts: self.starts,
            sums: self.sums,
        }
    }
}

/// Where a blob's embedded index lies and what it must hash to, from the layer descriptor's
/// annotations (§2.3, §3.4.3 "embedded in the layer blob", raw variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    /// Byte range `[start, end)` of the index bytes in the blob; `start` is also where the
    /// indexed data ends.
    pub range: Range<u64>,
    /// `sha256:<hex>` of the index bytes; the manifest authenticates the index through it.
    pub digest: Digest,
}

impl Embedded {
    /// Reads the annotations of a layer of `blob_size` bytes.
    ///
    /// Returns `Ok(None)` when the layer has no embedded index, or one that fspack may ignore
    /// (another media type; §2.2: "MUST treat the layer as if no chunk index were present").
    /// Errors with [`ChunkIndexError::Malformed`] when the range does not parse, does not end at
    /// the end of the blob (§3.1: the index is the trailing section), has the wrong length for
    /// any whole number of entries, is larger than [`MAX_INDEX_LEN`], or has no `sha256:` digest
    /// (an index without one authenticates nothing, so it is refused rather than trusted).
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        blob_size: u64,
    ) -> Result<Option<Embedded>, ChunkIndexError> {
        let Some(range) = annotations.get(ANN_RANGE) else {
            return Ok(None);
        };
        if annotations
            .get(ANN_MEDIA_TYPE)
            .is_some_and(|m| m != MEDIA_TYPE)
        {
            return Ok(None);
        }
        let parse = |s: &str| -> Result<u64, ChunkIndexError> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed(format!(
                    "{ANN_RANGE} {range:?} is not offset[:end]"
                )));
            }
            s.parse()
                .map_err(|_| malformed(format!("{ANN_RANGE} {range:?} overflows")))
        };
        let (start, end) = match range.split_once(':') {
            Some((a, b)) => (parse(a)?, parse(b)?),
            None => (parse(range)?, blob_size),
        };
        if end != blob_size || start > end {
            return Err(malformed(format!(
                "{ANN_RANGE} {range:?} is not the tail of the {blob_size}-byte blob"
            )));
        }
        let len = end - start;
        if len < HEADER_LEN || !(len - HEADER_LEN).is_multiple_of(ENTRY_LEN) || len > MAX_INDEX_LEN
        {
            return Err(malformed(format!(
                "{ANN_RANGE} {range:?} spans {len} bytes, not a SHA-256 index of at most {MAX_INDEX_LEN} bytes"
            )));
        }
        let digest = annotations
            .get(ANN_DIGEST)
            .ok_or_else(|| malformed(format!("{ANN_RANGE} is set but {ANN_DIGEST} is missing")))?;
        let digest = parse_sha256(digest)?;
        Ok(Some(Embedded {
            range: start..end,
            digest,
        }))
    }

    /// The annotations that describe `index` embedded at `start` of a blob.
    pub fn annotations(start: u64, index_bytes: &[u8]) -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                ANN_RANGE.to_string(),
                format!("{start}:{}", start + index_bytes.len() as u64),
            ),
            (
                ANN_DIGEST.to_string(),
                sha256_digest(index_bytes).to_string(),
            ),
        ])
    }

    /// Checks `bytes` against the digest and parses them; the index must cover exactly the data
    /// before it (`data_size == range.start`).
    pub fn open(&self, bytes: &[u8]) -> Result<ChunkIndex, ChunkIndexError> {
        let actual = sha256_digest(bytes);
        if actual != self.digest {
            return Err(malformed(format!(
                "index bytes hash to {actual}, the manifest says {}",
                self.digest
            )));
        }
        let index = ChunkIndex::parse(bytes)?;
        if index.data_size() != self.range.start {
            return Err(malformed(format!(
                "index covers {} bytes, but the data before it is {} bytes",
                index.data_size(),
                self.range.start
            )));
        }
        Ok(index)
    }
}

/// A chunk index kept in a blob of its own (§3.4.3 "standalone"), for a layer that must stay
/// byte for byte what other tools expect (a ModelPack raw layer is the file itself, issue 15).
///
/// The target layer's descriptor carries [`ANN_DIGEST`] (the index blob's digest) and no
/// [`ANN_RANGE`]; the index blob covers the whole target blob. The manifest that names the
/// target therefore authenticates the index, wherever the index blob is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standalone {
    /// `sha256:<hex>` of the index blob.
    pub digest: Digest,
    /// Size in bytes of the blob it indexes (the index's `UncompressedSize`).
    pub data_size: u64,
}

impl Standalone {
    /// Reads the annotations of a layer of `blob_size` bytes: `Ok(Some)` when they name a
    /// standalone index (a digest and no range), `Ok(None)` when they name none, an embedded one,
    /// or one of another media type (§2.2).
    ///
    /// Errors with [`ChunkIndexError::Malformed`] when the digest is not a sha256 digest.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        blob_size: u64,
    ) -> Result<Option<Standalone>, ChunkIndexError> {
        if annotations.contains_key(ANN_RANGE)
            || annotations
                .get(ANN_MEDIA_TYPE)
                .is_some_and(|m| m != MEDIA_TYPE)
        {
            return Ok(None);
        }
        let Some(digest) = annotations.get(ANN_DIGEST) else {
            return Ok(None);
        };
        Ok(Some(Standalone {
            digest: parse_sha256(digest)?,
            data_size: blob_size,
        }))
    }

    /// The annotation that names `index_bytes` as the standalone index of a layer.
    pub fn annotations(index_bytes: &[u8]) -> BTreeMap<String, String> {
        BTreeMap::from([(
            ANN_DIGEST.to_string(),
            sha256_digest(index_bytes).to_string(),
        )])
    }

    /// Checks `bytes` against the digest and parses them; the index must cover exactly the
    /// target blob (`data_size`).
    pub fn open(&self, bytes: &[u8]) -> Result<ChunkIndex, ChunkIndexError> {
        let actual = sha256_digest(bytes);
        if actual != self.digest {
            return Err(malformed(format!(
                "index bytes hash to {actual}, the manifest says {}",
                self.digest
            )));
        }
        let index = ChunkIndex::parse(bytes)?;
        if index.data_size() != self.data_size {
            return Err(malformed(format!(
                "index covers {} bytes, but the blob it indexes has {}",
                index.data_size(),
                self.data_size
            )));
        }
        Ok(index)
    }
}

/// Where a layer's chunk index is: in its blob's tail, or in a blob of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexAt {
    /// Embedded at the tail of the layer blob ([`Embedded`]).
    Embedded(Embedded),
    /// A blob of its own ([`Standalone`]).
    Standalone(Standalone),
}

impl IndexAt {
    /// Reads a layer descriptor's annotations (see [`Embedded::from_annotations`] and
    /// [`Standalone::from_annotations`]; an embedded range wins).
    ///
    /// Errors: theirs.
    pub fn from_annotations(
        annotations: &BTreeMap<String, String>,
        blob_size: u64,
    ) -> Result<Option<IndexAt>, ChunkIndexError> {
        if let Some(e) = Embedded::from_annotations(annotations, blob_size)? {
            return Ok(Some(IndexAt::Embedded(e)));
        }
        Ok(Standalone::from_annotations(annotations, blob_size)?.map(IndexAt::Standalone))
    }

    /// `sha256:<hex>` of the index bytes.
    pub fn digest(&self) -> &Digest {
        match self {
            IndexAt::Embedded(e) => &e.digest,
            IndexAt::Standalone(s) => &s.digest,
        }
    }

    /// Bytes of the layer blob that the index covers.
    pub fn data_size(&self) -> u64 {
        match self {
            IndexAt::Embedded(e) => e.range.start,
            IndexAt::Standalone(s) => s.data_size,
        }
    }
}

/// Parses the [`ANN_DIGEST`] annotation (the one rule, `fspack_digest`'s): chunk indexes are
/// SHA-256 only.
fn parse_sha256(digest: &str) -> Result<Digest, ChunkIndexError> {
    match Digest::parse(digest) {
        Ok(d) if d.algorithm() == fspack_digest::Algorithm::Sha256 => Ok(d),
        _ => Err(malformed(format!(
            "{ANN_DIGEST} {digest:?} is not a sha256 digest"
        ))),
    }
}

fn sha256_digest(bytes: &[u8]) -> Digest {
    Digest::from_sha256(Sha256::digest(bytes).into())
}

#[cfg(test)]
mod tests;
