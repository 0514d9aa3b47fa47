//! Positional reads with a small window cache: metadata walks touch the same blocks many times
//! (inodes packed 32 bytes apart), and images can be gigabytes, so nothing is read whole.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const WINDOW: u64 = 64 << 10;
const MAX_WINDOWS: usize = 256;

/// A read-only image file.
pub(crate) struct Img {
    file: File,
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
    cache: RefCell<HashMap<u64, Vec<u8>>>,
}

impl Img {
    pub(crate) fn open(path: &Path) -> Result<Img> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        Ok(Img {
            file,
            path: path.to_path_buf(),
            len,
            cache: RefCell::default(),
        })
    }

    /// A failed check on this image.
    pub(crate) fn bad(&self, check: &'static str, detail: impl Into<String>) -> Error {
        Error::Check {
            path: self.path.clone(),
            check,
            detail: detail.into(),
        }
    }

    /// Whether `off..off+len` lies inside the file.
    pub(crate) fn contains(&self, off: u64, len: u64) -> bool {
        off.checked_add(len).is_some_and(|end| end <= self.len)
    }

    /// `len` bytes at `off`, or a `check` failure when they run past the end of the file.
    pub(crate) fn read(&self, check: &'static str, off: u64, len: usize) -> Result<Vec<u8>> {
        if !self.contains(off, len as u64) {
            return Err(self.bad(
                check,
                format!(
                    "bytes {off}..{} lie beyond the end of the image ({} bytes)",
                    off.saturating_add(len as u64),
                    self.len
                ),
            ));
        }
        let mut out = Vec::with_capacity(len);
        let mut pos = off;
        let end = off + len as u64;
        let mut cache = self.cache.borrow_mut();
        while pos < end {
            let w = pos / WINDOW;
            if !cache.contains_key(&w) {
                if cache.len() >= MAX_WINDOWS {
                    cache.clear();
                }
                let start = w * WINDOW;
                let n = WINDOW.min(self.len - start) as usize;
                let mut buf = vec![0u8; n];
                self.file
                    .read_exact_at(&mut buf, start)
                    .map_err(|e| Error::io(&self.path, e))?;
                cache.insert(w, buf);
            }
            let buf = &cache[&w];
            let from = (pos - w * WINDOW) as usize;
            let take = (buf.len() - from).min((end - pos) as usize);
            out.extend_from_slice(&buf[from..from + take]);
            pos += take as u64;
        }
        Ok(out)
    }
}

pub(crate) fn le16(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(b[off..off + 4].try_into().expect("4 bytes"))
}

pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().expect("8 bytes"))
}
