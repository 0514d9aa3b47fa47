//! Recognises image formats by their magic bytes, so pushes of foreign images and mounts of pulled
//! blobs never trust a file name or a media type alone.

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
pub fn detect_reader(mut r: impl Read) -> std::io::Result<Option<Format>> {
    let mut head = vec![0u8; 1028];
    let mut filled = 0;
    while filled < head.len() {
        let n = r.read(&mut head[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(detect_bytes(&head[..filled]))
}
