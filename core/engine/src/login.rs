//! `login` and `logout`: registry credentials in the Docker config file other tools read too,
//! or in the credential helper it names (the rules live in `fspack_registry::auth`).

use crate::error::Result;

pub use fspack_registry::Stored;

/// Stores `username` and `password` for `registry` (a host, `host:port`), in the configured
/// credential helper if the Docker config names one, else inline in the config file (mode 0600).
///
/// Errors: the registry crate's `Config` error for an unusable file, a user name with ':', or a
/// failing helper.
pub fn login(registry: &str, username: &str, password: &str) -> Result<Stored> {
    Ok(fspack_registry::login_store(
        registry, username, password, None,
    )?)
}

/// Removes the credentials stored for `registry`; returns whether there were any.
///
/// Errors: as [`login`].
pub fn logout(registry: &str) -> Result<bool> {
    Ok(fspack_registry::logout(registry, None)?)
}
