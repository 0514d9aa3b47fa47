//! Digests as the store accepts them: `sha256:` and 64 lowercase hex digits (the rule is
//! `fspack_digest`'s), checked before any path is derived from one (a digest from a registry is
//! untrusted input).

use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};

/// Checks that `digest` is `sha256:` and 64 lowercase hex digits; returns the hex part.
pub fn digest_hex(digest: &str) -> Result<&str> {
    fspack_digest::sha256_hex(digest).map_err(|_| StoreError::InvalidDigest(digest.to_string()))
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// `sha256:<hex>` of a whole file, read in 1 MiB pieces. Errors name the path.
pub(crate) fn sha256_of_file(path: &std::path::Path) -> Result<String> {
    use std::io::Read;
    let mut h = Sha256::new();
    let mut r = std::fs::File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(|e| StoreError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}
