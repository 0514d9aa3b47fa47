//! Errors of the image crate: each names the source path or the limit that was hit.

use std::path::{Path, PathBuf};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while walking a tree or writing an image.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O call on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The source is not a directory.
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    /// The output would be written inside the tree being read.
    #[error("output {output} is inside the source directory {source_dir}; write it elsewhere")]
    OutputInsideSource {
        /// The output path.
        output: PathBuf,
        /// The source root.
        source_dir: PathBuf,
    },
    /// A directory inside the tree is one of its own ancestors (a bind mount of a parent).
    #[error(
        "/{} is the directory /{} again (a bind mount or loop inside the tree); the walk would never end\nhint: unmount it, or build from a directory that does not contain it",
        path.display(),
        ancestor.display()
    )]
    DirectoryCycle {
        /// The repeated directory, relative to the root.
        path: PathBuf,
        /// The ancestor it repeats, relative to the root (empty for the root).
        ancestor: PathBuf,
    },
    /// A name longer than 255 bytes.
    #[error("name too long for the image (more than 255 bytes): {0}")]
    NameTooLong(PathBuf),
    /// A directory of the tree lies on a pseudo-filesystem (procfs, sysfs, ...), whose files
    /// report sizes that are not their contents: they would be stored empty or cut short.
    #[error(
        "{} is on {fs}, whose files do not report their real size; they would be stored empty or cut short\nhint: {}copy the files into a plain directory first",
        path.display(),
        if *inside { "pass --one-file-system to leave other filesystems out, or " } else { "" }
    )]
    PseudoFilesystem {
        /// The first directory read on that filesystem.
        path: PathBuf,
        /// The filesystem's name.
        fs: &'static str,
        /// Whether `path` is below the source root (a mount inside the tree), where
        /// `--one-file-system` helps; false when the source itself is on it.
        inside: bool,
    },
    /// A file type the formats cannot store.
    #[error("unsupported file type: {0}")]
    UnsupportedFileType(PathBuf),
    /// A file changed between the walk and the moment its data was read.
    #[error("file changed as we read it: {path} ({what}); build again once it is stable")]
    FileChanged {
        /// The source file.
        path: PathBuf,
        /// What differed.
        what: String,
    },
    /// An extended attribute the format cannot represent.
    #[error("extended attribute {name:?} on {path} cannot be stored: {why}")]
    Xattr {
        /// The inode path.
        path: PathBuf,
        /// Attribute name (lossy).
        name: String,
        /// The reason.
        why: &'static str,
    },
    /// An option value out of range.
    #[error("invalid option: {0}")]
    InvalidOption(String),
    /// A limit of the on-disk format was exceeded.
    #[error("image too large: {0}")]
    TooLarge(String),
    /// The metadata walk before mount found the image malformed (issue 12); `check` names the
    /// rule, so a report says which structure was wrong.
    #[error("{path}: image check `{check}` failed: {detail}")]
    Check {
        /// The image file.
        path: PathBuf,
        /// The rule that failed (`superblock checksum`, `dirent target`, ...).
        check: &'static str,
        /// What was found.
        detail: String,
    },
    /// Bytes that are not an image this crate understands.
    #[error("{0}")]
    Format(String),
    /// An entry of someone else's artifact that fspack refuses to map: a path escaping the tree
    /// or named twice, a tar member reaching past its layer, a member type it cannot map.
    #[error("{path:?}: {why}")]
    Refused {
        /// The entry's path as the artifact spells it.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// A data device of a multi-device EROFS image is not the one the image was built with
    /// (issue 13): its identity differs from the tag in the image's device table.
    #[error(
        "device {device_id} ({device}) does not belong to EROFS image {image}: the image expects {expected}, the device is {actual}; refusing to mount a mismatched pair\nhint: rebuild, or pull the image again so its data blobs match"
    )]
    DeviceMismatch {
        /// The primary (metadata) image.
        image: PathBuf,
        /// Device id (1-based, as in chunk indexes).
        device_id: u16,
        /// The device's path.
        device: PathBuf,
        /// The identity recorded in the image's device table.
        expected: String,
        /// The identity of the device given.
        actual: String,
    },
}

/// Broad classes of [`Error`]. The CLI maps each to a documented exit code in one place
/// (`cli/src/exit.rs`); a new variant gets a kind here and the compiler then asks for its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input from the user: an option, an output inside the source, a source that is no
    /// directory.
    Usage,
    /// A path that should exist does not.
    NotFound,
    /// The source tree holds something the format cannot store, or exceeds a format limit.
    Unsupported,
    /// A source file changed while it was read.
    Changed,
    /// Image bytes are malformed, or an image and its devices do not belong together.
    Integrity,
    /// Other local I/O failed.
    Io,
}

impl Error {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            Error::Io { .. } => ErrorKind::Io,
            Error::NotADirectory(_)
            | Error::OutputInsideSource { .. }
            | Error::InvalidOption(_)
            | Error::DirectoryCycle { .. } => ErrorKind::Usage,
            Error::NameTooLong(_)
            | Error::UnsupportedFileType(_)
            | Error::PseudoFilesystem { .. }
            | Error::Xattr { .. }
            | Error::TooLarge(_) => ErrorKind::Unsupported,
            Error::FileChanged { .. } => ErrorKind::Changed,
            Error::Format(_)
            | Error::DeviceMismatch { .. }
            | Error::Refused { .. }
            | Error::Check { .. } => ErrorKind::Integrity,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
