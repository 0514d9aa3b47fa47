//! Errors of the use cases, grouped so the CLI can map each kind to a documented exit code.

/// Result alias for the engine.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// What can go wrong in a use case.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Building or reading an image failed.
    #[error(transparent)]
    Image(#[from] fspack_image::Error),
    /// Talking to the registry failed.
    #[error(transparent)]
    Registry(#[from] fspack_registry::RegistryError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] fspack_store::StoreError),
    /// Attaching or mounting failed.
    #[error(transparent)]
    Mount(#[from] fspack_mount::MountError),
    /// A signature or policy refused the image, or a policy or key file is unusable.
    #[error(transparent)]
    Trust(#[from] crate::trust::TrustError),
    /// Bad input from the user (a reference, an option combination, a file that is not an image).
    #[error("{0}")]
    Usage(String),
    /// Something named by the user does not exist (a tag in the store, a mount point).
    #[error("{0}")]
    NotFound(String),
    /// Content or metadata that fails verification: a malformed chunk index, a cached blob of
    /// another size than the manifest says, a stored blob that no longer matches its digest, a
    /// blob labelled EROFS whose bytes are not, an image file paired with data blobs of another
    /// build. Not the user's mistake, and retrying will not help.
    #[error("{0}")]
    Integrity(String),
    /// Someone else's artifact that fspack refuses to mount: a layer path escaping the tree or
    /// named twice, a tar member past the end of its layer (issue 15). Nothing was mounted.
    #[error("{what}: layer {layer} refused: {why}; nothing was mounted")]
    Refused {
        /// The reference.
        what: String,
        /// The layer's digest, with its file path when it has one.
        layer: String,
        /// What is wrong.
        why: String,
    },
    /// An I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Broad classes of [`EngineError`]: the engine's own kinds, and those of the errors it wraps.
/// The CLI maps each to a documented exit code in one place (`cli/src/exit.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input from the user.
    Usage,
    /// Something named by the user does not exist.
    NotFound,
    /// Content failed verification.
    Integrity,
    /// Local I/O failed.
    Io,
    /// An error of the image crate.
    Image(fspack_image::ErrorKind),
    /// An error of the registry crate.
    Registry(fspack_registry::ErrorKind),
    /// An error of the store.
    Store(fspack_store::ErrorKind),
    /// An error of the mount crate.
    Mount(fspack_mount::ErrorKind),
}

impl EngineError {
    /// The class of this error (for wrapped errors, the wrapped crate's kind: they are
    /// `transparent`, so the CLI never sees them as a separate link of the chain).
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Image(e) => ErrorKind::Image(e.kind()),
            EngineError::Registry(e) => ErrorKind::Registry(e.kind()),
            EngineError::Store(e) => ErrorKind::Store(e.kind()),
            EngineError::Mount(e) => ErrorKind::Mount(e.kind()),
            EngineError::Usage(_) => ErrorKind::Usage,
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Integrity(_) | EngineError::Refused { .. } => ErrorKind::Integrity,
            EngineError::Trust(crate::trust::TrustError::Refused { .. }) => ErrorKind::Integrity,
            EngineError::Trust(crate::trust::TrustError::Config { .. }) => ErrorKind::Usage,
            EngineError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            EngineError::Io { .. } => ErrorKind::Io,
        }
    }

    /// Wraps an I/O error with its path.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
