//! Digests: the parse (`fspack_digest`'s) for digests that arrive as text (a header, a
//! reference), and the hashers that verify content. We fail closed: only algorithms we can
//! verify (sha256, sha512) pass.

use fspack_digest::Digest;
use sha2::Digest as _;

use crate::error::RegistryError;

/// A digest algorithm we can verify.
pub(crate) use fspack_digest::Algorithm;

/// Parses a digest that arrived as text (the one rule, in `fspack_digest`).
///
/// Errors: [`RegistryError::InvalidDigest`] naming the text (truncated) and the rule it breaks.
pub fn parse_digest(d: &str) -> Result<Digest, RegistryError> {
    Digest::parse(d).map_err(|e| RegistryError::InvalidDigest {
        input: d.chars().take(80).collect(),
        reason: e.to_string(),
    })
}

/// The `sha256:` digest of some bytes.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    let mut h = Hasher::new(Algorithm::Sha256);
    h.update(bytes);
    h.finish()
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

    /// The digest of what was hashed.
    pub(crate) fn finish(self) -> Digest {
        let text = match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        };
        Digest::parse(&text).expect("a hash in lowercase hex is a digest")
    }
}

/// Hashes bytes with the algorithm of `expected` and compares.
pub(crate) fn verify_bytes(
    what: &str,
    expected: &Digest,
    bytes: &[u8],
) -> Result<(), RegistryError> {
    let mut h = Hasher::new(expected.algorithm());
    h.update(bytes);
    let actual = h.finish();
    if &actual != expected {
        return Err(RegistryError::DigestMismatch {
            what: what.into(),
            expected: expected.to_string(),
            actual: actual.to_string(),
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
        assert_eq!(parse_digest(EMPTY).unwrap().algorithm(), Algorithm::Sha256);
        assert_eq!(
            parse_digest(&format!("sha512:{}", "a".repeat(128)))
                .unwrap()
                .algorithm(),
            Algorithm::Sha512
        );
        assert_eq!(sha256_digest(b"{}").as_str(), EMPTY);
        verify_bytes("config", &parse_digest(EMPTY).unwrap(), b"{}").unwrap();
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
        let e = verify_bytes("manifest x", &parse_digest(EMPTY).unwrap(), b"{ }")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("manifest x does not match its digest: expected sha256:4413"),
            "{e}"
        );
    }
}
