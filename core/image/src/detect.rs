//! Recognises image formats by their magic bytes, so pushes of foreign images and mounts of pulled
//! blobs never trust a file name or a media type alone; [`probe`] also says what an image needs
//! (issue 16), so the engine asks one function instead of parsing superblocks itself.

use std::io::Read;

/// Filesystem formats fspack can push and mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// EROFS (magic `0xE0F5E1E2` at byte 1024).
    Erofs,
    /// SquashFS 4.x (magic `hsqs` at byte 0).
    Squashfs,
}

impl Format {
    /// Lower-case name, as used on the command line and in `fstype`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Erofs => "erofs",
            Format::Squashfs => "squashfs",
        }
    }
}

/// Identifies the format of an image from its first 1028+ bytes.
pub fn detect_bytes(head: &[u8]) -> Option<Format> {
    if head.len() >= 4 && &head[..4] == b"hsqs" {
        return Some(Format::Squashfs);
    }
    if head.len() >= 1028
        && u32::from_le_bytes(head[1024..1028].try_into().ok()?) == crate::erofs::format::MAGIC
    {
        return Some(Format::Erofs);
    }
    None
}

/// Identifies the format of an image file.
pub fn detect_reader(r: impl Read) -> std::io::Result<Option<Format>> {
    Ok(detect_bytes(&read_head(r, 1028)?))
}

/// Up to `len` bytes from the start of `r`: fewer only when it ends sooner.
fn read_head(mut r: impl Read, len: usize) -> std::io::Result<Vec<u8>> {
    let mut head = vec![0u8; len];
    let mut filled = 0;
    while filled < head.len() {
        let n = r.read(&mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    head.truncate(filled);
    Ok(head)
}

/// What an image file is and what it needs: its format, the compressor id of a SquashFS image
/// and the extra devices (data blobs) of an EROFS image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The format, by its magic bytes.
    pub format: Format,
    /// SquashFS: the compressor id at byte 20 of the superblock (squashfs_fs.h); 0 for EROFS.
    pub compressor_id: u16,
    /// EROFS: the extra devices the superblock declares (`extra_devices`, byte 86 of the
    /// superblock at 1024, erofs_fs.h); each must be attached to mount it. 0 for SquashFS.
    pub extra_devices: u16,
}

impl Probe {
    /// The SquashFS compressor's name as squashfs-tools spells it (`gzip`, `lzma`, `lzo`, `xz`,
    /// `lz4`, `zstd`; squashfs_fs.h `*_COMPRESSION`); `None` for an unknown id or EROFS.
    pub fn compressor(&self) -> Option<&'static str> {
        if self.format != Format::Squashfs {
            return None;
        }
        Some(match self.compressor_id {
            1 => "gzip",
            2 => "lzma",
            3 => "lzo",
            4 => "xz",
            5 => "lz4",
            6 => "zstd",
            _ => return None,
        })
    }
}

/// Says what the image read from `r` is: `None` when it has neither magic.
///
/// Errors: the reader's, and [`std::io::ErrorKind::UnexpectedEof`] for an image cut off
/// inside its superblock (22 bytes for SquashFS's compressor id, 1152 for EROFS).
pub fn probe(r: impl Read) -> std::io::Result<Option<Probe>> {
    let sb_end = crate::erofs::format::SUPER_OFFSET + 128;
    let head = read_head(r, sb_end)?;
    let filled = head.len();
    let short = || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "superblock cut off");
    let le16 = |at: usize| u16::from_le_bytes([head[at], head[at + 1]]);
    Ok(match detect_bytes(&head) {
        None => None,
        Some(Format::Squashfs) if filled < 22 => return Err(short()),
        Some(Format::Squashfs) => Some(Probe {
            format: Format::Squashfs,
            compressor_id: le16(20),
            extra_devices: 0,
        }),
        Some(Format::Erofs) if filled < sb_end => return Err(short()),
        Some(Format::Erofs) => Some(Probe {
            format: Format::Erofs,
            compressor_id: 0,
            extra_devices: le16(crate::erofs::format::SUPER_OFFSET + 86),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_what_each_format_needs() {
        let mut sq = b"hsqs".to_vec();
        sq.resize(96, 0);
        sq[20] = 2;
        let p = probe(&sq[..]).unwrap().unwrap();
        assert_eq!((p.format, p.compressor()), (Format::Squashfs, Some("lzma")));
        sq[20] = 9;
        assert_eq!(probe(&sq[..]).unwrap().unwrap().compressor(), None);

        let mut ero = vec![0u8; 4096];
        ero[1024..1028].copy_from_slice(&crate::erofs::format::MAGIC.to_le_bytes());
        ero[1024 + 86] = 3;
        let p = probe(&ero[..]).unwrap().unwrap();
        assert_eq!(
            (p.format, p.extra_devices, p.compressor()),
            (Format::Erofs, 3, None)
        );
        assert_eq!(
            probe(&ero[..1100]).unwrap_err().kind(),
            std::io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            probe(&b"hsqs"[..]).unwrap_err().kind(),
            std::io::ErrorKind::UnexpectedEof
        );
        assert_eq!(probe(&vec![0u8; 2000][..]).unwrap(), None);
    }
}
