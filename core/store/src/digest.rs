//! Digests as fspack accepts them: `sha256:` and 64 lowercase hex digits, checked before any
//! path is derived from one (a digest from a registry is untrusted input).

use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};

/// Checks that `digest` is `sha256:` and 64 lowercase hex digits; returns the hex part.
pub fn digest_hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(h)
            if h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            Ok(h)
        }
        _ => Err(StoreError::InvalidDigest(digest.to_string())),
    }
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
