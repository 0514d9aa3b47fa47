//! Errors of the store: each names the path or digest involved.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An I/O call on `path` failed.
    #[error("{}", io_message(path, source))]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A digest that is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest {0:?}: fspack stores sha256 digests only (sha256:<64 hex digits>)")]
    InvalidDigest(String),
    /// Content did not hash to the digest it was stored under; nothing was committed.
    #[error("content of {digest} does not match: got {actual}; the partial download was discarded")]
    DigestMismatch {
        /// The expected digest.
        digest: String,
        /// What the content hashed to.
        actual: String,
    },
    /// Content had the wrong length; nothing was committed.
    #[error(
        "content of {digest} has {actual} bytes, expected {expected}; the partial download was discarded"
    )]
    SizeMismatch {
        /// The expected digest.
        digest: String,
        /// Expected size.
        expected: u64,
        /// Actual size.
        actual: u64,
    },
    /// A committed blob no longer hashes to its name: it was changed on disk.
    #[error(
        "blob {digest} at {} was changed on disk (it hashes to {actual})\nhint: delete it and pull again",
        path.display()
    )]
    CorruptBlob {
        /// The digest the blob is stored under.
        digest: String,
        /// What it hashes to now.
        actual: String,
        /// The blob file.
        path: PathBuf,
    },
    /// The store directory could be read or changed by another user (issue 12: models pulled
    /// with credentials must not become readable by every local user).
    #[error(
        "store {path} is {why}; refusing to use it\nhint: use a directory you own that only you can write (fspack creates it with mode 0700), or pass another --store"
    )]
    Insecure {
        /// The store root.
        path: PathBuf,
        /// `world-writable (mode 0777)`, `owned by uid 1000, not by uid 0`, ...
        why: String,
    },
    /// The directory exists but is not an OCI image layout.
    #[error(
        "{0} is not empty and is not an OCI image layout (no oci-layout file); choose another --store"
    )]
    NotALayout(PathBuf),
    /// A file of the store could not be parsed.
    #[error("{path} is corrupt: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A blob larger than the caller accepts.
    #[error("blob {digest} is {size} bytes, more than the {max} this read accepts")]
    TooLarge {
        /// The digest.
        digest: String,
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
}

fn io_message(path: &Path, e: &std::io::Error) -> String {
    let mut text = format!("i/o error on {}", path.display());
    // The store holding `path`: the hints below are about it, not the one file.
    let store = || {
        path.ancestors()
            .find(|p| p.join("oci-layout").exists())
            .unwrap_or(path)
    };
    if e.raw_os_error() == Some(libc_enospc()) {
        // s12 fresh-eyes pass: the hint did not say how to drop what the store holds.
        text.push_str(&format!(
            "\nhint: the store at {} is full; {}",
            store().display(),
            crate::full_store_advice(store())
        ));
    } else if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem {
        text.push_str(&format!(
            "\nhint: the store at {} is read-only; ls, inspect, verify (without --repair) and mount of what it holds work there, commands that add to it need a writable --store",
            store().display()
        ));
    }
    text
}

fn libc_enospc() -> i32 {
    rustix::io::Errno::NOSPC.raw_os_error()
}

/// Broad classes of [`StoreError`]. The CLI maps each to a documented exit code in one place
/// (`cli/src/exit.rs`); a new variant gets a kind here and the compiler then asks for its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: a digest, or a `--store` that is not a store.
    Usage,
    /// A file or blob that should exist does not.
    NotFound,
    /// Content failed verification (digest, size, a store file that does not parse, a limit);
    /// nothing was committed.
    Integrity,
    /// Local I/O failed (a full disk, permissions).
    Io,
}

impl StoreError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            StoreError::Io { .. } => ErrorKind::Io,
            StoreError::InvalidDigest(_)
            | StoreError::NotALayout(_)
            | StoreError::Insecure { .. } => ErrorKind::Usage,
            StoreError::DigestMismatch { .. }
            | StoreError::SizeMismatch { .. }
            | StoreError::CorruptBlob { .. }
            | StoreError::Corrupt { .. }
            | StoreError::TooLarge { .. } => ErrorKind::Integrity,
        }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Whether the error is a full disk (`ENOSPC`).
    pub fn is_no_space(&self) -> bool {
        matches!(self, StoreError::Io { source, .. } if source.raw_os_error() == Some(libc_enospc()))
    }
}

/// Result alias.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_store_hint_names_what_the_store_can_drop() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("oci-layout"), "{}").unwrap();
        let file = dir.path().join("ingest").join("x.data");
        let full = std::io::Error::from_raw_os_error(libc_enospc());
        let text = io_message(&file, &full);
        let fspack = crate::command_for(dir.path());
        assert!(text.contains(&format!("the store at {} is full", dir.path().display())));
        assert!(text.contains(&format!("`{fspack} gc --partial`")), "{text}");
        assert!(
            text.contains("--store"),
            "a temporary store is not the default: {text}"
        );
        let other = io_message(&file, &std::io::Error::other("x"));
        assert!(!other.contains("hint:"), "{other}");
    }
}
