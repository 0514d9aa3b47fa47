//! Which lazy-mount mechanism this kernel offers, decided in one place (issue 10).
//!
//! Linux 6.18 (this project's floor for lazy mounts) has FUSE and loop devices but no fscache,
//! ublk or nbd, and its fanotify pre-content events (`FAN_PRE_ACCESS`, Linux 6.14) do not fire
//! for EROFS file-backed reads; erofs-utils 1.9.3's `mount.erofs -t erofs.fanotify` fails here
//! with "cannot find valid erofs superblock". So the one backend today is [`Backend::FuseLoop`].
//! Linux 7.x moves lazy EROFS to pre-content hooks on file-backed mounts: a `Fanotify` variant
//! would be detected here (by probing `fanotify_init(FAN_CLASS_PRE_CONTENT)` and a test mount),
//! and [`super::server`] would run its event loop instead of the FUSE session, with the same
//! [`super::fill::Fill`] scheduler answering reads.

use std::path::Path;

use crate::error::{EngineError, Result};

/// A lazy-mount mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Missing blobs served as files of fspack's own FUSE filesystem, attached as read-only loop
    /// devices, switched to the store with `LOOP_CHANGE_FD` when complete.
    FuseLoop,
}

/// The backend this kernel supports.
///
/// Errors: [`EngineError::Usage`] naming what is missing (`/dev/fuse`, the `fuse` filesystem, or
/// loop devices), with the fix.
pub fn detect() -> Result<Backend> {
    if !Path::new("/dev/fuse").exists() {
        return Err(EngineError::Usage(
            "lazy mounts need FUSE, and /dev/fuse is missing\nhint: modprobe fuse, or give the container /dev/fuse; or mount without --lazy".into(),
        ));
    }
    if !fspack_mount::filesystem_supported("fuse") {
        return Err(EngineError::Usage(
            "lazy mounts need the kernel's fuse filesystem, which this kernel lacks\nhint: modprobe fuse, or mount without --lazy".into(),
        ));
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err(EngineError::Usage(
            "lazy mounts need loop devices, and /dev/loop-control is missing\nhint: modprobe loop; or mount without --lazy".into(),
        ));
    }
    Ok(Backend::FuseLoop)
}
