//! Block compressors for every algorithm the kernel's SquashFS driver reads, each pure Rust or
//! built from vendored C sources (no system libraries), with one reusable context per thread.
//!
//! SquashFS stores a block uncompressed whenever compression would not make it smaller, so
//! [`Codec::compress`] reports "not smaller" instead of returning a bigger buffer.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Compression algorithm of an image (one for data and metadata alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// Zstandard (kernel 4.14+); the default.
    #[default]
    Zstd,
    /// zlib streams ("gzip" in squashfs-tools).
    Gzip,
    /// LZMA2 in xz containers with CRC32 checks.
    Xz,
    /// LZ4 raw blocks (legacy format; the image carries the options block the kernel requires).
    Lz4,
    /// LZO1X.
    Lzo,
}

impl Compression {
    /// Every algorithm, in the order the CLI lists them.
    pub const ALL: [Compression; 5] = [
        Compression::Zstd,
        Compression::Gzip,
        Compression::Xz,
        Compression::Lz4,
        Compression::Lzo,
    ];

    /// The compressor id stored in the superblock.
    pub fn id(self) -> u16 {
        match self {
            Compression::Gzip => 1,
            Compression::Lzo => 3,
            Compression::Xz => 4,
            Compression::Lz4 => 5,
            Compression::Zstd => 6,
        }
    }

    /// Lowercase name as mksquashfs spells it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Lz4 => "lz4",
            Compression::Lzo => "lzo",
        }
    }

    /// The level used when none is given: zstd 3 (zstd's own default: fast enough to keep up
    /// with a network push; pass a higher level for archives), gzip 9 and xz 6 as mksquashfs.
    /// LZ4 and LZO have no levels here.
    pub fn default_level(self) -> Option<i32> {
        match self {
            Compression::Zstd => Some(3),
            Compression::Gzip => Some(9),
            Compression::Xz => Some(6),
            Compression::Lz4 | Compression::Lzo => None,
        }
    }

    /// Resolves and checks a user-given level.
    pub(crate) fn level(self, level: Option<i32>) -> Result<Option<i32>> {
        let Some(l) = level else {
            return Ok(self.default_level());
        };
        let ok = match self {
            Compression::Zstd => (1..=22).contains(&l),
            Compression::Gzip => (1..=9).contains(&l),
            Compression::Xz => (0..=9).contains(&l),
            Compression::Lz4 | Compression::Lzo => false,
        };
        if ok {
            Ok(Some(l))
        } else if self.default_level().is_none() {
            Err(Error::InvalidOption(format!(
                "{} takes no compression level (got {l})",
                self.name()
            )))
        } else {
            let range = match self {
                Compression::Zstd => "1 to 22",
                Compression::Gzip => "1 to 9",
                _ => "0 to 9",
            };
            Err(Error::InvalidOption(format!(
                "{} level {l} is out of range ({range})",
                self.name()
            )))
        }
    }

    /// Bytes of the compressor-options metadata payload, when the format requires one.
    pub(crate) fn options(self) -> Option<Vec<u8>> {
        match self {
            // The kernel refuses LZ4 images without options naming the legacy format (version 1).
            Compression::Lz4 => Some([1u32.to_le_bytes(), 0u32.to_le_bytes()].concat()),
            _ => None,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name() == s || (s == "zlib" && *c == Compression::Gzip))
            .ok_or_else(|| {
                Error::InvalidOption(format!(
                    "unknown compression {s:?} (expected zstd, gzip, xz, lz4 or lzo)"
                ))
            })
    }
}

/// A per-thread compression context.
pub(crate) struct Codec {
    kind: Compression,
    level: i32,
    block_size: u32,
    zstd: Option<zstd::bulk::Compressor<'static>>,
    zlib: Option<flate2::Compress>,
    lzo: Option<lzokay_native::Dict>,
}

impl Codec {
    /// A context for `kind` at a level already checked by [`Compression::level`].
    pub(crate) fn new(kind: Compression, level: Option<i32>, block_size: u32) -> Result<Codec> {
        let level = level.unwrap_or(0);
        let mut c = Codec {
            kind,
            level,
            block_size,
            zstd: None,
            zlib: None,
            lzo: None,
        };
        match kind {
            Compression::Zstd => {
                let z = zstd::bulk::Compressor::new(level).map_err(|e| {
                    Error::InvalidOption(format!("zstd level {level} refused: {e}"))
                })?;
                c.zstd = Some(z);
            }
            Compression::Gzip => {
                c.zlib = Some(flate2::Compress::new(
                    flate2::Compression::new(level as u32),
                    true,
                ))
            }
            Compression::Lzo => c.lzo = Some(lzokay_native::Dict::new()),
            Compression::Xz | Compression::Lz4 => {}
        }
        Ok(c)
    }

    /// Compresses `input` into `out`; returns false (and leaves `out` unspecified) when the
    /// result would not be smaller than the input, so the caller stores it raw.
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        if input.is_empty() {
            return Ok(false);
        }
        let fail =
            |what: String| Error::Format(format!("{} compression failed: {what}", self.kind));
        match self.kind {
            Compression::Zstd => {
                let z = self.zstd.as_mut().expect("zstd context");
                out.reserve(zstd::zstd_safe::compress_bound(input.len()));
                z.compress_to_buffer(input, out)
                    .map_err(|e| fail(e.to_string()))?;
            }
            Compression::Gzip => {
                let z = self.zlib.as_mut().expect("zlib context");
                z.reset();
                out.reserve(input.len() + input.len() / 1000 + 64);
                let st = z
                    .compress_vec(input, out, flate2::FlushCompress::Finish)
                    .map_err(|e| fail(e.to_string()))?;
                if st != flate2::Status::StreamEnd {
                    return Ok(false);
                }
            }
            Compression::Xz => {
                // The kernel decoder preallocates a dictionary of the block size (when no options
                // block says otherwise), so the encoder must not declare a larger one.
                let mut lz = liblzma::stream::LzmaOptions::new_preset(self.level as u32)
                    .map_err(|e| fail(e.to_string()))?;
                lz.dict_size(self.block_size.max(8192));
                let mut filters = liblzma::stream::Filters::new();
                filters.lzma2(&lz);
                let mut s = liblzma::stream::Stream::new_stream_encoder(
                    &filters,
                    liblzma::stream::Check::Crc32,
                )
                .map_err(|e| fail(e.to_string()))?;
                out.reserve(input.len() + input.len() / 16 + 256);
                loop {
                    let consumed = s.total_in() as usize;
                    let st = s
                        .process_vec(&input[consumed..], out, liblzma::stream::Action::Finish)
                        .map_err(|e| fail(e.to_string()))?;
                    if st == liblzma::stream::Status::StreamEnd {
                        break;
                    }
                    if out.len() >= input.len() {
                        return Ok(false);
                    }
                    out.reserve(64 << 10);
                }
            }
            Compression::Lz4 => {
                out.resize(lz4_flex::block::get_maximum_output_size(input.len()), 0);
                let n =
                    lz4_flex::block::compress_into(input, out).map_err(|e| fail(e.to_string()))?;
                out.truncate(n);
            }
            Compression::Lzo => {
                let d = self.lzo.as_mut().expect("lzo dict");
                *out = lzokay_native::compress_with_dict(input, d)
                    .map_err(|e| fail(format!("{e:?}")))?;
            }
        }
        Ok(out.len() < input.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_shrinks_text_and_refuses_to_grow_noise() {
        let text: Vec<u8> = b"squashfs metadata block ".repeat(400);
        let mut x = 0x1234_5678u32;
        let noise: Vec<u8> = (0..9000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        for c in Compression::ALL {
            let mut codec = Codec::new(c, c.level(None).unwrap(), 1 << 17).unwrap();
            let mut out = Vec::new();
            assert!(codec.compress(&text, &mut out).unwrap(), "{c}");
            assert!(out.len() < text.len() / 4, "{c}");
            assert!(!codec.compress(&noise, &mut out).unwrap(), "{c}");
        }
    }

    #[test]
    fn levels_are_checked() {
        assert!(Compression::Zstd.level(Some(23)).is_err());
        assert!(Compression::Lz4.level(Some(1)).is_err());
        assert_eq!(Compression::Gzip.level(None).unwrap(), Some(9));
        assert_eq!("xz".parse::<Compression>().unwrap(), Compression::Xz);
        assert!("brotli".parse::<Compression>().is_err());
    }
}
