//! The one error type of the crate: each variant names the file, device or mount point involved,
//! keeps the OS error as its source (the CLI prints it as a cause), and adds a `hint:` line where
//! the fix is known.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while attaching loop devices or mounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A file, directory or device node could not be opened or read.
    #[error("cannot open {}{}", path.display(), Hint::for_open(source))]
    Open {
        /// The path that was opened.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `/dev/loop-control` did not hand out a free loop device.
    #[error("cannot get a free loop device for {}{}", file.display(), Hint::for_open(source))]
    LoopControl {
        /// The backing file to be attached.
        file: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// `LOOP_CONFIGURE` refused the backing file.
    #[error("cannot attach {} to {}{}", file.display(), device.display(), Hint::for_open(source))]
    LoopAttach {
        /// The backing file.
        file: PathBuf,
        /// The loop device.
        device: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Other processes kept taking the free loop device before us.
    #[error(
        "no free loop device for {} after {attempts} attempts: other processes kept taking them\nhint: retry, or look for leaked devices with `losetup -a`",
        file.display()
    )]
    LoopBusy {
        /// The backing file.
        file: PathBuf,
        /// How many devices were tried.
        attempts: u32,
    },
    /// The mount point is missing, a symlink or not a directory.
    #[error("cannot mount on {}: {why}\nhint: the mount point must be an existing directory, not a symlink", target.display())]
    BadTarget {
        /// The mount point.
        target: PathBuf,
        /// What is wrong with it (`it is not a directory`, …).
        why: &'static str,
    },
    /// A file-backed EROFS primary with block-device extra devices, or the other way round.
    #[error(
        "cannot mount EROFS {} with device {}: the primary and its devices must all be regular files or all be block devices\nhint: attach them all to loop devices, or pass them all as files",
        primary.display(),
        device.display()
    )]
    MixedErofsSources {
        /// The primary image.
        primary: PathBuf,
        /// The first device of the other kind.
        device: PathBuf,
    },
    /// The kernel refused a mount.
    #[error("cannot mount {fstype} {source_desc} on {}{}{}", target.display(), KernelText(kernel), Hint::for_mount(fstype, source))]
    Mount {
        /// The filesystem type.
        fstype: String,
        /// The source: a device, a file, or a list of layers.
        source_desc: String,
        /// The mount point.
        target: PathBuf,
        /// What the kernel logged about the failure in the filesystem context.
        kernel: Vec<String>,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused an unmount.
    #[error("cannot unmount {}{}", target.display(), Hint::for_unmount(source))]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A line of `/proc/self/mountinfo` did not have the documented shape.
    #[error("{}: line {line} is malformed: {text:?}", path.display())]
    MountInfo {
        /// The file parsed.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
    /// What mounting needs is missing from this process or machine.
    #[error("{missing}\nhint: {hint}")]
    Privileges {
        /// What is missing.
        missing: String,
        /// How to get it.
        hint: &'static str,
    },
}

/// Broad classes of [`MountError`]. The CLI maps each to a documented exit code in one place
/// (`cli/src/exit.rs`); a new variant gets a kind here and the compiler then asks for its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The mount point given is unusable (a symlink, not a directory, missing).
    Usage,
    /// The kernel refused, or privileges or kernel support are missing.
    Mount,
}

impl MountError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MountError::BadTarget { .. } => ErrorKind::Usage,
            MountError::Open { .. }
            | MountError::LoopControl { .. }
            | MountError::LoopAttach { .. }
            | MountError::LoopBusy { .. }
            | MountError::MixedErofsSources { .. }
            | MountError::Mount { .. }
            | MountError::Unmount { .. }
            | MountError::MountInfo { .. }
            | MountError::Privileges { .. } => ErrorKind::Mount,
        }
    }

    /// The OS error number behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            MountError::Open { source, .. }
            | MountError::LoopControl { source, .. }
            | MountError::LoopAttach { source, .. }
            | MountError::Mount { source, .. }
            | MountError::Unmount { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// Whether the kernel wanted a block device (`ENOTBLK`): for EROFS, file-backed mounts are
    /// not supported by this kernel (before 6.12, or built without them); use a loop device.
    pub fn is_not_block_device(&self) -> bool {
        matches!(self, MountError::Mount { .. }) && self.errno() == Some(libc::ENOTBLK)
    }

    /// Whether the failure is a lack of privileges (`EPERM`, `EACCES`, or [`privileges`] said so).
    ///
    /// [`privileges`]: crate::privileges
    pub fn is_permission(&self) -> bool {
        matches!(self, MountError::Privileges { .. })
            || matches!(self.errno(), Some(libc::EPERM) | Some(libc::EACCES))
    }

    pub(crate) fn open(path: &Path, source: io::Error) -> Self {
        MountError::Open {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Renders the kernel's own messages (if any) after the main text.
struct KernelText<'a>(&'a [String]);

impl fmt::Display for KernelText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.is_empty() {
            write!(f, " (kernel: {})", self.0.join("; "))?;
        }
        Ok(())
    }
}

/// A `\nhint: …` tail (the CLI printer turns it into a `hint:` line), or nothing.
struct Hint(Option<String>);

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(h) => write!(f, "\nhint: {h}"),
            None => Ok(()),
        }
    }
}

const NEED_ROOT: &str = "mounting needs root (CAP_SYS_ADMIN)";

impl Hint {
    fn for_open(e: &io::Error) -> Hint {
        Hint(match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => {
                Some(format!("{NEED_ROOT}, and so do loop devices"))
            }
            _ => None,
        })
    }

    fn for_mount(fstype: &str, e: &io::Error) -> Hint {
        Hint(match e.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Some(NEED_ROOT.to_string()),
            Some(libc::ENODEV) => Some(format!("the kernel has no {fstype} driver (see /proc/filesystems)")),
            Some(libc::ENOTBLK) if fstype == "erofs" => Some(
                "file-backed EROFS needs Linux 6.12+ built with CONFIG_EROFS_FS_BACKED_BY_FILE; use a loop device"
                    .to_string(),
            ),
            Some(libc::ENOTBLK) => Some(format!("{fstype} needs a block device: attach the file to a loop device")),
            Some(libc::ENOTDIR) => Some("the mount point must be a directory".to_string()),
            Some(libc::EBUSY) => Some("the device or mount point is busy (already mounted?)".to_string()),
            Some(libc::EINVAL) => Some(format!(
                "the image is not a valid {fstype} filesystem or an option was refused; `dmesg` may say more"
            )),
            _ => None,
        })
    }

    fn for_unmount(e: &io::Error) -> Hint {
        Hint(match e.raw_os_error() {
            Some(libc::EBUSY) => {
                Some("files under it are still in use: close them (`fuser -vm` on the mount point lists the processes)".to_string())
            }
            Some(libc::EINVAL) => Some("it is not a mount point".to_string()),
            Some(libc::EPERM) => Some(NEED_ROOT.to_string()),
            _ => None,
        })
    }
}
