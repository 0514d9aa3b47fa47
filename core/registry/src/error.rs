//! The crate's one error type. Each variant is a kind the CLI maps to a documented exit code
//! (see [`RegistryError::kind`]); messages name the reference, digest or redacted URL involved and
//! never repeat the text of their source, which the CLI's printer walks on its own.

/// A boxed error used as the `source` of network failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The text is not a valid `host[:port]/repo[:tag][@digest]` reference.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference {
        /// What the user gave.
        input: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// A digest is malformed or uses an algorithm we cannot verify.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// The digest text (truncated when very long).
        input: String,
        /// Which rule it breaks.
        reason: String,
    },
    /// The registry refused our (possibly absent) credentials.
    #[error(
        "access to {repository} on {registry} was refused ({detail}); run `fspack login {registry}` or pass --username and --password"
    )]
    Auth {
        /// Registry host.
        registry: String,
        /// Repository path.
        repository: String,
        /// What was refused, without secrets.
        detail: String,
    },
    /// A manifest, blob or repository does not exist.
    #[error("{what} not found in {reference}")]
    NotFound {
        /// What was looked up (`manifest latest`, `blob sha256:…`).
        what: String,
        /// The reference (registry/repository) searched.
        reference: String,
    },
    /// The network or the registry failed, also after retries.
    #[error("cannot {action} {url}{}{}", attempts_suffix(*.attempts), hint_suffix(.hint))]
    Network {
        /// What we tried (`GET`, `upload to`).
        action: String,
        /// The URL, with query values redacted.
        url: String,
        /// How many attempts were made.
        attempts: u32,
        /// A hint for the user, such as passing `--plain-http`.
        hint: Option<String>,
        /// The last failure.
        #[source]
        source: BoxError,
    },
    /// Content did not hash to its digest.
    #[error("{what} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked.
        what: String,
        /// The digest we asked for.
        expected: String,
        /// The digest of what arrived (or what the registry claimed).
        actual: String,
    },
    /// A chunk of a blob did not match its digest in the blob's chunk index, on every try.
    #[error(
        "chunk {chunk} (bytes {start}-{end}) of {what} failed verification {attempts} times: expected {expected}; the registry {registry} serves corrupt data"
    )]
    ChunkMismatch {
        /// The blob and repository.
        what: String,
        /// Chunk number in the index (0-based).
        chunk: usize,
        /// First byte of the chunk.
        start: u64,
        /// End of the chunk (exclusive).
        end: u64,
        /// The chunk's digest in the index.
        expected: String,
        /// How many fetches failed.
        attempts: u32,
        /// The registry host.
        registry: String,
    },
    /// Content had the wrong length.
    #[error("{what} has the wrong size: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was checked.
        what: String,
        /// The size from the descriptor.
        expected: u64,
        /// What arrived (`12`, `at least 13`).
        actual: String,
    },
    /// The registry sent content fspack refuses: a manifest or index that does not parse, names a
    /// malformed digest, or is over a size limit. Retrying will not help, and it is not the
    /// user's mistake (issue 13).
    #[error("{what} from {reference} is unusable: {detail}")]
    InvalidContent {
        /// What was refused (`manifest v1`, `Docker-Content-Digest header`).
        what: String,
        /// The registry/repository it came from.
        reference: String,
        /// Which rule it breaks.
        detail: String,
    },
    /// The registry answered something the protocol does not allow here.
    #[error("unexpected answer from {url}: {detail}")]
    Protocol {
        /// The URL, with query values redacted.
        url: String,
        /// Status and the registry's error code and message, capped.
        detail: String,
    },
    /// Reading a source, writing a destination or a credentials file failed.
    #[error("cannot {context}")]
    Io {
        /// What was being done, naming the path or digest.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The client options or a credentials file are unusable.
    #[error("{0}")]
    Config(String),
}

/// Broad classes of [`RegistryError`], for mapping to exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: a reference, digest or option.
    Usage,
    /// Credentials refused.
    Auth,
    /// Something does not exist.
    NotFound,
    /// Network or server trouble; trying again later may work.
    Network,
    /// Content failed verification: digest or size mismatch, malformed or oversized content.
    Integrity,
    /// The registry broke the protocol.
    Protocol,
    /// Local I/O failed.
    Io,
}

impl RegistryError {
    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::InvalidReference { .. }
            | RegistryError::InvalidDigest { .. }
            | RegistryError::Config(_) => ErrorKind::Usage,
            RegistryError::Auth { .. } => ErrorKind::Auth,
            RegistryError::NotFound { .. } => ErrorKind::NotFound,
            RegistryError::Network { .. } => ErrorKind::Network,
            RegistryError::DigestMismatch { .. }
            | RegistryError::SizeMismatch { .. }
            | RegistryError::ChunkMismatch { .. }
            | RegistryError::InvalidContent { .. } => ErrorKind::Integrity,
            RegistryError::Protocol { .. } => ErrorKind::Protocol,
            RegistryError::Io { .. } => ErrorKind::Io,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        RegistryError::Io {
            context: context.into(),
            source,
        }
    }
}

fn attempts_suffix(n: u32) -> String {
    if n > 1 {
        format!(" (after {n} attempts)")
    } else {
        String::new()
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_deref()
        .map(|h| format!("; {h}"))
        .unwrap_or_default()
}

/// A plain-text failure used as the `source` of a [`RegistryError::Network`].
#[derive(Debug)]
pub(crate) struct Failure(pub String);

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}
