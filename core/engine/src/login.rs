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

/// Checks credentials against `registry` before they are stored (`client` carries them): an
/// authenticated `GET /v2/`, following the registry's token flow.
///
/// Errors: the registry crate's `Auth` (refused, exit 4), `Network` (unreachable, exit 5),
/// `Protocol` (not a registry).
pub async fn check(client: &fspack_registry::Client, registry: &str) -> Result<()> {
    Ok(client.check_credentials(registry).await?)
}

/// Removes the credentials stored for `registry`; returns whether there were any.
///
/// Errors: as [`login`].
pub fn logout(registry: &str) -> Result<bool> {
    Ok(fspack_registry::logout(registry, None)?)
}
