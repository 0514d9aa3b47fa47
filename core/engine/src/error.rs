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
    Trust(#[from] TrustError),
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
    /// Stored blobs that stay corrupt or missing only because their repair failed for a reason
    /// of `kind` (the registry unreachable or failing, after retries). The kind is the repair
    /// failure's, not [`ErrorKind::Integrity`]: the content is still bad, but trying the same
    /// repair again later may work.
    #[error("{what}")]
    NotRepaired {
        /// What is still bad, naming the blob(s).
        what: String,
        /// The kind of the repair failure (the same for every such blob).
        kind: ErrorKind,
    },
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
    /// A use case's step that failed, naming what it was doing (`failed to mount REF on DIR`);
    /// the error beneath keeps its kind. The engine's `anyhow::Context`: the CLI prints `what`,
    /// then each cause.
    #[error("{what}")]
    Context {
        /// What was being done, naming the reference, path or digest.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<EngineError>,
    },
    /// A source file of a ModelPack push changed while the push read it. Such a push builds no
    /// image, so it says so in its own words rather than the image crate's ("build again");
    /// the kind is the image crate's [`kinds::Image::Changed`], as for a directory pushed as
    /// EROFS or SquashFS.
    #[error("{path} changed during the push ({what}); push again once it is stable")]
    ChangedDuringPush {
        /// The source file.
        path: std::path::PathBuf,
        /// What differed (size, times, identity).
        what: String,
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

/// The kinds of the lower crates' errors, re-exported so the CLI maps exit codes without
/// depending on those crates.
pub mod kinds {
    pub use fspack_image::ErrorKind as Image;
    pub use fspack_mount::ErrorKind as Mount;
    pub use fspack_registry::ErrorKind as Registry;
    pub use fspack_store::ErrorKind as Store;
}

/// The kind of one link of an error chain, if it is an error of the engine or of a crate it
/// wraps (a lower crate's error may reach the CLI unwrapped, through `?` into `anyhow`).
/// `None` for any other error.
pub fn kind_of(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    if let Some(e) = err.downcast_ref::<EngineError>() {
        return Some(e.kind());
    }
    if let Some(e) = err.downcast_ref::<fspack_registry::RegistryError>() {
        return Some(ErrorKind::Registry(e.kind()));
    }
    if let Some(e) = err.downcast_ref::<fspack_store::StoreError>() {
        return Some(ErrorKind::Store(e.kind()));
    }
    if let Some(e) = err.downcast_ref::<fspack_image::Error>() {
        return Some(ErrorKind::Image(e.kind()));
    }
    if let Some(e) = err.downcast_ref::<fspack_mount::MountError>() {
        return Some(ErrorKind::Mount(e.kind()));
    }
    None
}

/// Whether one link of an error chain already says, in the user's terms, what went wrong and
/// what to do: a network failure with a hint ("nothing listens at HOST:PORT", "cannot resolve
/// HOST"). The links below it are the HTTP client's own ("error sending request", "client
/// error (Connect)", "tcp connect error"), which the CLI shows only with `-v` (s12 fresh-eyes
/// pass: five such lines followed a clear first one).
pub fn explains_itself(err: &(dyn std::error::Error + 'static)) -> bool {
    // A context's cause is a `Box<EngineError>` in the chain (thiserror's `#[source]` on a Box).
    let engine = err
        .downcast_ref::<EngineError>()
        .or_else(|| err.downcast_ref::<Box<EngineError>>().map(|b| &**b));
    let registry = match engine {
        Some(EngineError::Registry(e)) => Some(e),
        _ => err.downcast_ref::<fspack_registry::RegistryError>(),
    };
    matches!(
        registry,
        Some(fspack_registry::RegistryError::Network { hint: Some(_), .. })
    )
}

/// Shorthand for wrapping a result's error in [`EngineError::Context`].
pub trait ResultExt<T> {
    /// Wraps the error, if any, with the message `what()` returns.
    fn context_with<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<EngineError>> ResultExt<T> for std::result::Result<T, E> {
    fn context_with<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
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
            EngineError::NotRepaired { kind, .. } => *kind,
            EngineError::Usage(_) => ErrorKind::Usage,
            EngineError::NotFound(_) => ErrorKind::NotFound,
            EngineError::Integrity(_) | EngineError::Refused { .. } => ErrorKind::Integrity,
            EngineError::Trust(TrustError::Refused { .. }) => ErrorKind::Integrity,
            EngineError::Trust(TrustError::Config { .. }) => ErrorKind::Usage,
            EngineError::Trust(TrustError::Missing { .. }) => ErrorKind::NotFound,
            EngineError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ErrorKind::NotFound
            }
            EngineError::Io { .. } => ErrorKind::Io,
            EngineError::ChangedDuringPush { .. } => ErrorKind::Image(kinds::Image::Changed),
            EngineError::Context { source, .. } => source.kind(),
        }
    }

    /// Wraps this error in a [`EngineError::Context`] saying what was being done.
    pub fn context(self, what: impl Into<String>) -> Self {
        EngineError::Context {
            what: what.into(),
            source: Box::new(self),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A store error that reaches the CLI raw, and one under a context, keep the store's kind.
    #[test]
    fn lower_errors_are_classified_raw_and_wrapped() {
        let store_err = || fspack_store::StoreError::CorruptBlob {
            digest: "sha256:aa".into(),
            actual: "sha256:bb".into(),
            path: "/s/blobs/sha256/aa".into(),
        };
        let integrity = Some(ErrorKind::Store(kinds::Store::Integrity));
        assert_eq!(kind_of(&store_err()), integrity);
        let wrapped = EngineError::from(store_err()).context("cannot mount x");
        assert_eq!(wrapped.to_string(), "cannot mount x");
        assert_eq!(kind_of(&wrapped), integrity);
        assert_eq!(kind_of(&std::io::Error::other("x")), None);
    }
}

/// Why an image was refused, or why a policy or key could not be used ([`crate::trust`]). Here,
/// with the other error kinds, so that this module depends on no use case.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A rule refused the image: exit 6, nothing fetched beyond the manifest and signatures.
    #[error("refused {reference} ({digest}) by {rule}: {reason}")]
    Refused {
        /// The reference as the user gave it.
        reference: String,
        /// The manifest digest the reference resolved to.
        digest: String,
        /// The rule that refused it (`default[0] reject`, `--verify-key /k.pub`, ...).
        rule: String,
        /// What was wrong (no signature, another key, another repository, ...).
        reason: String,
    },
    /// A policy or key file that cannot be used as written.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A policy or key file that does not exist: exit 3, as for any path not found.
    #[error("{path}: no such {what}")]
    Missing {
        /// The file.
        path: std::path::PathBuf,
        /// `key file` or `policy file`.
        what: &'static str,
    },
}

impl TrustError {
    /// A [`TrustError::Config`] for `path`.
    pub fn config(path: impl Into<std::path::PathBuf>, reason: impl Into<String>) -> Self {
        TrustError::Config {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The error for `path`, a `what` that could not be read: [`TrustError::Missing`] when it
    /// does not exist, else [`TrustError::Config`] with the I/O error.
    pub fn unreadable(path: &std::path::Path, what: &'static str, e: std::io::Error) -> Self {
        match e.kind() {
            std::io::ErrorKind::NotFound => TrustError::Missing {
                path: path.to_path_buf(),
                what,
            },
            _ => TrustError::config(path, format!("cannot read the {what}: {e}")),
        }
    }
}
