//! The new mount API (`fsopen`, `fsconfig`, `fsmount`, `move_mount`; Linux 5.2+), used where
//! `mount(2)` cannot express a mount: its option string is limited to one page (4095 bytes plus
//! the NUL) and cannot carry commas inside a path. One `fsconfig` call per device or layer has
//! neither limit. The filesystem context also collects the kernel's explanation of a failure,
//! which `mount(2)` only writes to `dmesg`; we read it back into the error.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, fsconfig_create, fsconfig_set_fd,
    fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
};

/// An open filesystem context from `fsopen`.
pub(crate) struct FsContext {
    fd: OwnedFd,
}

impl FsContext {
    /// Opens a context for a new superblock of `fstype`.
    pub(crate) fn open(fstype: &str) -> io::Result<FsContext> {
        Ok(FsContext {
            fd: fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?,
        })
    }

    /// Sets a string parameter (`source`, `device`, `lowerdir+`, …).
    pub(crate) fn set_string(&self, key: &str, value: &OsStr) -> io::Result<()> {
        Ok(fsconfig_set_string(&self.fd, key, value)?)
    }

    /// Sets a parameter to an open fd (`lowerdir+` of overlayfs, Linux 6.13+).
    pub(crate) fn set_fd(&self, key: &str, fd: impl AsFd) -> io::Result<()> {
        Ok(fsconfig_set_fd(&self.fd, key, fd)?)
    }

    /// Sets a flag parameter (`ro`).
    pub(crate) fn set_flag(&self, key: &str) -> io::Result<()> {
        Ok(fsconfig_set_flag(&self.fd, key)?)
    }

    /// Creates the superblock: the step where the filesystem reads and checks the image.
    pub(crate) fn create(&self) -> io::Result<()> {
        Ok(fsconfig_create(&self.fd)?)
    }

    /// Makes a detached mount of the superblock: in no mount namespace, so it vanishes with
    /// its last reference (the fd, or an overlay that took it as a layer).
    pub(crate) fn detached(&self, attrs: MountAttrFlags) -> io::Result<OwnedFd> {
        Ok(fsmount(&self.fd, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?)
    }

    /// Makes a detached mount of the superblock with `attrs` and attaches it on `target` (an
    /// `O_PATH` fd of the mount point, so a swapped path cannot redirect it).
    pub(crate) fn mount_on(&self, attrs: MountAttrFlags, target: impl AsFd) -> io::Result<()> {
        let mnt = self.detached(attrs)?;
        move_mount(
            &mnt,
            "",
            target,
            "",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )?;
        Ok(())
    }

    /// Drains the messages the kernel logged into this context (`e `/`w `/`i ` prefixed lines),
    /// keeping errors and warnings.
    pub(crate) fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 4096];
        // Each read returns one message; ENODATA once the log is empty. Bounded in case of a
        // kernel that keeps answering.
        for _ in 0..64 {
            match rustix::io::read(&self.fd, &mut buf[..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]).trim_end().to_string();
                    if let Some(msg) = text.strip_prefix("e ").or_else(|| text.strip_prefix("w ")) {
                        out.push(msg.to_string());
                    }
                }
            }
        }
        out
    }
}
