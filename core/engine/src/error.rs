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
    /// another size than the manifest says, a stored blob that no longer matches its digest.
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

impl EngineError {
    /// Wraps an I/O error with its path.
    pub fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
