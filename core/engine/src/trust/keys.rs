//! ECDSA P-256 keys in PEM, and signatures over raw bytes in ASN.1 DER: what cosign's
//! `--key` signing uses (cosign `specs/SIGNATURE_SPEC.md`, "Signature Schemes": ECDSA-P256 over
//! the SHA-256 of the payload). The arithmetic is RustCrypto's `p256`; nothing here is own crypto.

use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer, Verifier};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};

use super::TrustError;

/// A private key that signs payloads, with the file it came from (for messages).
#[derive(Clone)]
pub struct SigningKey {
    key: p256::ecdsa::SigningKey,
    /// The PEM file.
    pub path: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A public key that verifies signatures, with the file it came from.
#[derive(Debug, Clone)]
pub struct VerifyingKey {
    key: p256::ecdsa::VerifyingKey,
    /// The PEM file, or a label for inline key data.
    pub path: PathBuf,
}

fn read_pem(path: &Path) -> Result<String, TrustError> {
    std::fs::read_to_string(path).map_err(|e| TrustError::unreadable(path, "key file", e))
}

impl SigningKey {
    /// Loads an unencrypted P-256 private key: PKCS#8 (`BEGIN PRIVATE KEY`, what
    /// `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256` writes) or SEC1
    /// (`BEGIN EC PRIVATE KEY`).
    ///
    /// Errors: [`TrustError::Missing`] when the file does not exist; [`TrustError::Config`]
    /// naming the file when it is unreadable, encrypted, or not a P-256 key.
    pub fn from_pem_file(path: &Path) -> Result<SigningKey, TrustError> {
        let pem = read_pem(path)?;
        if pem.contains("ENCRYPTED") {
            return Err(TrustError::config(
                path,
                "encrypted private keys are not supported; give an unencrypted PKCS#8 PEM \
                 P-256 key (openssl pkcs8 -topk8 -nocrypt)",
            ));
        }
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(&pem)
            .or_else(|_| p256::SecretKey::from_sec1_pem(&pem).map(Into::into))
            .map_err(|_| {
                TrustError::config(
                    path,
                    "not an ECDSA P-256 private key in PEM (PKCS#8 `PRIVATE KEY` or SEC1 \
                     `EC PRIVATE KEY`)",
                )
            })?;
        Ok(SigningKey {
            key,
            path: path.to_path_buf(),
        })
    }

    /// Signs `payload` (ECDSA P-256 with SHA-256); returns the ASN.1 DER signature.
    pub fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.key.sign(payload);
        sig.to_der().as_bytes().to_vec()
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            key: *self.key.verifying_key(),
            path: self.path.clone(),
        }
    }
}

impl VerifyingKey {
    /// Loads a P-256 public key in PEM (`BEGIN PUBLIC KEY`, SubjectPublicKeyInfo: what
    /// `cosign generate-key-pair` writes to `cosign.pub` and `openssl pkey -pubout` prints).
    ///
    /// Errors: [`TrustError::Missing`] when the file does not exist; [`TrustError::Config`]
    /// naming the file otherwise.
    pub fn from_pem_file(path: &Path) -> Result<VerifyingKey, TrustError> {
        let pem = read_pem(path)?;
        Self::from_pem(&pem, path)
    }

    /// Parses a PEM public key; `label` names it in messages.
    pub fn from_pem(pem: &str, label: &Path) -> Result<VerifyingKey, TrustError> {
        let key = p256::ecdsa::VerifyingKey::from_public_key_pem(pem).map_err(|_| {
            TrustError::config(
                label,
                "not an ECDSA P-256 public key in PEM (`BEGIN PUBLIC KEY`)",
            )
        })?;
        Ok(VerifyingKey {
            key,
            path: label.to_path_buf(),
        })
    }

    /// Whether `der` is a valid signature of `payload` by this key.
    pub fn verify(&self, payload: &[u8], der: &[u8]) -> bool {
        match p256::ecdsa::Signature::from_der(der) {
            Ok(sig) => self.key.verify(payload, &sig).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey {
            key: p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap(),
            path: "k.pem".into(),
        }
    }

    #[test]
    fn signatures_verify_only_for_their_payload_and_key() {
        let k = key();
        let sig = k.sign(b"payload");
        assert!(k.verifying_key().verify(b"payload", &sig));
        assert!(!k.verifying_key().verify(b"payloae", &sig));
        let other = SigningKey {
            key: p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap(),
            path: "o.pem".into(),
        };
        assert!(!other.verifying_key().verify(b"payload", &sig));
        assert!(!k.verifying_key().verify(b"payload", b"not der"));
    }
}
