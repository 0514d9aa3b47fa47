//! The kernel log as a last source of a mount failure's reason.
//!
//! Filesystems explain a refused mount in one of two places: the filesystem context of the new
//! mount API (overlayfs uses `invalfc()`), or only the kernel log (EROFS's `erofs_err()` and
//! SquashFS print with `printk`). For the second kind we note the end of `/dev/kmsg` before the
//! mount and, if it fails, read what was logged since, keeping lines of that filesystem. A
//! concurrent failing mount of the same filesystem may add its own lines; this is for humans.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;

/// A position in `/dev/kmsg` (reading it needs root, which mounting needs anyway).
pub(crate) struct KmsgCursor {
    file: File,
}

impl KmsgCursor {
    /// Marks the current end of the kernel log; `None` when it cannot be read.
    pub(crate) fn here() -> Option<KmsgCursor> {
        let mut file = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/kmsg")
            .ok()?;
        file.seek(SeekFrom::End(0)).ok()?;
        Some(KmsgCursor { file })
    }

    /// Messages logged since [`here`](Self::here) that start with `fstype` (case-insensitive).
    pub(crate) fn messages_of(mut self, fstype: &str) -> Vec<String> {
        let mut out = Vec::new();
        // Each read returns one record ("prio,seq,usec,flags;text\n" plus continuation lines);
        // EAGAIN once we are at the end. Bounded: a noisy kernel must not keep us here.
        let mut buf = vec![0u8; 8192];
        for _ in 0..256 {
            let n = match self.file.read(&mut buf) {
                Ok(n) if n > 0 => n,
                Ok(_) => break,
                // EPIPE: records were overwritten while we read; carry on from the next one.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(_) => break,
            };
            let record = String::from_utf8_lossy(&buf[..n]);
            let Some((_, text)) = record.split_once(';') else {
                continue;
            };
            let line = text.lines().next().unwrap_or("").trim();
            if line.len() >= fstype.len()
                && line[..fstype.len()].eq_ignore_ascii_case(fstype)
                && out.len() < 8
            {
                out.push(line.to_string());
            }
        }
        out
    }
}
