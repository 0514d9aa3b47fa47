//! Opening what every use case works on: the registry client and the local store. Kept here so
//! the CLI resolves flags into [`ClientOptions`] and a store root, and never names the registry
//! or store crates itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fspack_registry::{Client, ClientOptions, Reference};
use fspack_store::Store;

use crate::error::{Result, ResultExt};

/// A registry client with these options.
///
/// Errors: [`crate::EngineError::Context`] over the registry's error when the HTTP client cannot
/// be set up (a TLS backend that fails to start).
pub fn client(opts: ClientOptions) -> Result<Client> {
    Client::new(opts).context_with(|| "cannot set up the registry client")
}

/// The store root used without `--store`: `FSPACK_STORE`, else `/var/lib/fspack` for root and
/// the XDG data directory for others (see `fspack_store::default_root`).
pub fn default_store_root() -> PathBuf {
    fspack_store::default_root()
}

/// Opens (creating when missing) the store at `root`, or at [`default_store_root`].
///
/// Errors: the store's error, under "cannot open the store at ROOT".
pub fn open_store(root: Option<&Path>) -> Result<Arc<Store>> {
    let root = root
        .map(Path::to_path_buf)
        .unwrap_or_else(default_store_root);
    let store = Store::open(&root)
        .context_with(|| format!("cannot open the store at {}", root.display()))?;
    Ok(Arc::new(store))
}

/// The store, only if one exists already: commands that only read (ls, gc, umount, verify,
/// completion) must not create `/var/lib/fspack` as a side effect.
pub fn existing_store(root: Option<&Path>) -> Result<Option<Arc<Store>>> {
    let dir = root
        .map(Path::to_path_buf)
        .unwrap_or_else(default_store_root);
    if !dir.join("oci-layout").exists() {
        // No store yet; but a directory that `pull` would refuse as a store is refused here
        // too, not reported as empty (report s6 item 27).
        fspack_store::check_private_root(&dir)
            .context_with(|| format!("cannot open the store at {}", dir.display()))?;
        return Ok(None);
    }
    open_store(Some(&dir)).map(Some)
}

/// The store's tag for a reference the user typed: its normalised form (what pull tags with), or
/// the text as given when it does not parse.
pub fn store_name(text: &str) -> String {
    text.parse::<Reference>()
        .map(|r| r.to_string())
        .unwrap_or_else(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_are_normalised_references_or_the_text() {
        assert_eq!(store_name("localhost:5000/a/b:v1"), "localhost:5000/a/b:v1");
        assert_eq!(store_name("Not A Ref"), "Not A Ref");
    }

    #[test]
    fn a_missing_store_is_not_created_by_readers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        assert!(existing_store(Some(&root)).unwrap().is_none());
        assert!(!root.exists());
        open_store(Some(&root)).unwrap();
        assert!(existing_store(Some(&root)).unwrap().is_some());
    }
}
