//! Digests: the grammar check (`fspack_digest`'s) that runs before a digest reaches a URL or a
//! path, and the hashers that verify content. We fail closed: only algorithms we can verify
//! (sha256, sha512) pass.

use sha2::Digest as _;

use crate::error::RegistryError;

/// A digest algorithm we can verify.
pub(crate) use fspack_digest::Algorithm;

/// Checks a digest against the OCI grammar and our supported algorithms (the one rule, in
/// `fspack_digest`); returns the algorithm.
pub(crate) fn parse_digest(d: &str) -> Result<Algorithm, RegistryError> {
    fspack_digest::check(d).map_err(|e| RegistryError::InvalidDigest {
        input: d.chars().take(80).collect(),
        reason: e.to_string(),
    })
}

/// Checks that `d` is a digest we can verify (`sha256:` or `sha512:` and lowercase hex).
pub fn validate_digest(d: &str) -> Result<(), RegistryError> {
    parse_digest(d).map(|_| ())
}

/// The `sha256:` digest of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// An incremental hasher for one of the supported algorithms.
pub(crate) enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(crate) fn new(a: Algorithm) -> Self {
        match a {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub(crate) fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }

    /// The digest in `algorithm:hex` form.
    pub(crate) fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// Hashes bytes with the algorithm of `expected` and compares.
pub(crate) fn verify_bytes(what: &str, expected: &str, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut h = Hasher::new(parse_digest(expected)?);
    h.update(bytes);
    let actual = h.finish();
    if actual != expected {
        return Err(RegistryError::DigestMismatch {
            what: what.into(),
            expected: expected.into(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

    #[test]
    fn accepts_sha256_and_sha512() {
        assert_eq!(parse_digest(EMPTY).unwrap(), Algorithm::Sha256);
        assert_eq!(
            parse_digest(&format!("sha512:{}", "a".repeat(128))).unwrap(),
            Algorithm::Sha512
        );
        assert_eq!(sha256_digest(b"{}"), EMPTY);
        verify_bytes("config", EMPTY, b"{}").unwrap();
    }

    #[test]
    fn rejects_bad_digests() {
        for d in [
            "",
            "sha256",
            "sha256:",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
            "sha256:../../etc/passwd",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "SHA256:abc",
            &format!("sha256:{}\0", "a".repeat(63)),
        ] {
            assert!(parse_digest(d).is_err(), "{d:?} accepted");
        }
        let e = parse_digest("blake3:abcd").unwrap_err().to_string();
        assert!(e.contains("unsupported algorithm"), "{e}");
    }

    #[test]
    fn mismatch_names_both_digests() {
        let e = verify_bytes("manifest x", EMPTY, b"{ }")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("manifest x does not match its digest: expected sha256:4413"),
            "{e}"
        );
    }
}
