//! Named exit codes (documented in `fspack(1)`) and the mapping from error kinds to them.

use fspack_engine::EngineError;
use fspack_engine::trust::TrustError;

/// Success.
#[allow(dead_code)]
pub const SUCCESS: u8 = 0;
/// Any failure not covered by a more specific code.
pub const FAILURE: u8 = 1;
/// Bad usage: unknown flag, invalid reference or option value (clap also exits with 2).
pub const USAGE: u8 = 2;
/// A reference, tag, blob, path or mount point does not exist.
pub const NOT_FOUND: u8 = 3;
/// The registry refused our credentials.
pub const AUTH: u8 = 4;
/// The network or the registry failed after retries; trying again later may work.
pub const NETWORK: u8 = 5;
/// Content did not match its digest or size, or a model artifact's paths or tar members are unsafe
/// (issue 15), or a signature, the policy or the image check refused it (issue 12); nothing was
/// committed or mounted.
pub const INTEGRITY: u8 = 6;
/// Mounting failed, or privileges/kernel support are missing.
pub const MOUNT: u8 = 7;

/// Table of exit codes for the man page.
pub const TABLE: &[(u8, &str)] = &[
    (SUCCESS, "success"),
    (
        FAILURE,
        "failure not covered below (I/O error, bad image, ...)",
    ),
    (
        USAGE,
        "bad usage: unknown flag, invalid reference or option value",
    ),
    (
        NOT_FOUND,
        "reference, tag, blob, path or mount point not found",
    ),
    (
        AUTH,
        "authentication or authorization refused by the registry",
    ),
    (
        NETWORK,
        "network or registry failure after retries (temporary)",
    ),
    (
        INTEGRITY,
        "digest or size mismatch, or refused as unsafe, by signature, policy or image check; nothing was committed or mounted",
    ),
    (
        MOUNT,
        "mount failed, or root privileges or kernel support are missing",
    ),
];

/// Maps an error chain to an exit code, using the most specific typed error found in it.
pub fn classify(err: &anyhow::Error) -> u8 {
    use fspack_registry::RegistryError;
    use fspack_store::StoreError;
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<RegistryError>() {
            return registry_code(e);
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return store_code(e);
        }
        if cause.downcast_ref::<fspack_mount::MountError>().is_some() {
            return MOUNT;
        }
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            let code = match e {
                EngineError::Usage(_) => USAGE,
                EngineError::NotFound(_) => NOT_FOUND,
                EngineError::Integrity(_) => INTEGRITY,
                EngineError::Refused { .. } => INTEGRITY,
                EngineError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    NOT_FOUND
                }
                EngineError::Image(fspack_image::Error::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    NOT_FOUND
                }
                EngineError::Image(fspack_image::Error::Check { .. }) => INTEGRITY,
                EngineError::Image(
                    fspack_image::Error::InvalidOption(_)
                    | fspack_image::Error::OutputInsideSource { .. }
                    | fspack_image::Error::NotADirectory(_),
                ) => USAGE,
                // Transparent wrappers: the inner error is not a separate link of the chain.
                EngineError::Registry(e) => registry_code(e),
                EngineError::Store(e) => store_code(e),
                EngineError::Mount(_) => MOUNT,
                EngineError::Trust(TrustError::Refused { .. }) => INTEGRITY,
                EngineError::Trust(TrustError::Config { .. }) => USAGE,
                _ => FAILURE,
            };
            return code;
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>()
            && e.kind() == std::io::ErrorKind::NotFound
        {
            return NOT_FOUND;
        }
    }
    FAILURE
}

fn registry_code(e: &fspack_registry::RegistryError) -> u8 {
    use fspack_registry::ErrorKind;
    match e.kind() {
        ErrorKind::Usage => USAGE,
        ErrorKind::Auth => AUTH,
        ErrorKind::NotFound => NOT_FOUND,
        ErrorKind::Network | ErrorKind::Protocol => NETWORK,
        ErrorKind::Integrity => INTEGRITY,
        ErrorKind::Io => FAILURE,
    }
}

fn store_code(e: &fspack_store::StoreError) -> u8 {
    use fspack_store::StoreError;
    match e {
        StoreError::DigestMismatch { .. }
        | StoreError::SizeMismatch { .. }
        | StoreError::CorruptBlob { .. } => INTEGRITY,
        StoreError::InvalidDigest(_) | StoreError::NotALayout(_) => USAGE,
        StoreError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => NOT_FOUND,
        _ => FAILURE,
    }
}

/// Whether the error is a closed stdout (`fspack ls | head`), which exits quietly.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
