//! Digests as the store accepts them: parsed [`Digest`]s (the rule is `fspack_digest`'s) of
//! the sha256 algorithm, the one the store's `blobs/sha256/` holds; paths are derived from the
//! hex part only.

use fspack_digest::{Algorithm, Digest};
use sha2::{Digest as _, Sha256};

use crate::error::{Result, StoreError};

/// The hex part of `digest`, the name of its blob file.
///
/// Errors: [`StoreError::InvalidDigest`] for a digest of another algorithm than sha256.
pub fn digest_hex(digest: &Digest) -> Result<&str> {
    match digest.algorithm() {
        Algorithm::Sha256 => Ok(digest.hex()),
        Algorithm::Sha512 => Err(StoreError::InvalidDigest(digest.to_string())),
    }
}

/// Parses a digest that arrived as text (an argument, a file name) for use with the store.
///
/// Errors: [`StoreError::InvalidDigest`] unless it is `sha256:` and 64 lowercase hex digits.
pub fn parse_digest(digest: &str) -> Result<Digest> {
    let d = Digest::parse(digest).map_err(|_| StoreError::InvalidDigest(digest.to_string()))?;
    digest_hex(&d)?;
    Ok(d)
}

fn from_hash(hash: &[u8]) -> Digest {
    Digest::sha256_from_hex(&hex::encode(hash)).expect("a sha256 in hex is a digest")
}

/// `sha256:<hex>` of some bytes.
pub fn sha256_of(bytes: &[u8]) -> Digest {
    from_hash(&Sha256::digest(bytes))
}

/// `sha256:<hex>` of a whole file, read in 1 MiB pieces. Errors name the path.
pub(crate) fn sha256_of_file(path: &std::path::Path) -> Result<Digest> {
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
    Ok(from_hash(&h.finalize()))
}
