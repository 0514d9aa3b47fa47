//! Trust before mount (issue 12): who signed a manifest, and whether the local policy lets it in.
//!
//! fspack hands registry bytes to the kernel's filesystem parsers as root, and a tag is only a
//! pointer that whoever controls the registry can move. So before a single layer is fetched, the
//! manifest digest that a tag resolved to is checked against the policy for its repository:
//! cosign-style signatures (`sigstoreSigned`), a list of pinned digests, or a plain accept or
//! reject. Nothing here reads layers; [`crate::pull`] calls [`Trust::check`] between fetching the
//! manifest and fetching the first blob.
//!
//! Modules: [`keys`] loads ECDSA P-256 keys and signs or verifies bytes, [`simple_signing`] builds
//! and reads cosign's payload and signature manifest, [`policy`] parses the containers-policy.json
//! shaped file, [`verify`] applies it against a registry.

pub mod keys;
pub mod policy;
pub mod simple_signing;
pub mod verify;

pub use keys::{SigningKey, VerifyingKey};
pub use policy::{Policy, Requirement};
pub use verify::Trust;

/// Default policy file, read when it exists and no `--policy` is given.
pub const DEFAULT_POLICY_PATH: &str = "/etc/fspack/policy.json";

pub use crate::error::TrustError;
