//! `fspack sign` and `push --sign-key`: store a cosign-compatible signature of a manifest digest
//! next to the image, so that `cosign verify --key` and fspack's policy both accept it.
//!
//! Signatures accumulate as cosign's do: an existing `sha256-<hex>.sig` manifest keeps its
//! layers and gains one, unless the same payload is already signed by the same key.

use std::sync::Arc;

use base64::Engine as _;
use fspack_digest::Digest;
use fspack_registry::{BytesSource, Client, ErrorKind, NoProgress, Reference, UploadMode};
use serde::Serialize;

use crate::artifact::{MEDIA_MANIFEST, manifest_bytes, sha256_digest};
use crate::error::Result;
use crate::trust::SigningKey;
use crate::trust::simple_signing::*;

/// The manifest digest `r` names: its digest, or what the registry resolves its tag to now. A
/// tag is resolved once, so a signature then names that digest only.
///
/// A digest is fetched too, as cosign does: a signature for a manifest the repository does not
/// hold would be a `sha256-<hex>.sig` tag beside nothing (creating the repository if it did not
/// exist), and a typo in the digest would pass unnoticed until someone verifies.
///
/// Errors: the registry's: not found (naming the manifest digest and the repository), auth,
/// network, and a digest mismatch when the registry answers with other bytes.
pub async fn resolve_digest(client: &Client, r: &Reference) -> Result<Digest> {
    Ok(client.get_manifest(r).await?.2)
}

/// What a signing did.
#[derive(Debug, Clone, Serialize)]
pub struct SignReport {
    /// The signed reference.
    pub reference: String,
    /// The manifest digest that was signed.
    pub manifest_digest: Digest,
    /// Where the signature manifest lives (`repo:sha256-<hex>.sig`).
    pub signature_ref: String,
    /// Digest of the payload blob.
    pub payload_digest: Digest,
    /// False when an identical signature was already there.
    pub added: bool,
}

/// Signs `digest` (a manifest in `r`'s repository) with `key` and pushes the signature.
///
/// Errors: registry failures while reading the existing signature manifest or pushing the
/// payload, config and manifest.
pub async fn sign(
    client: &Client,
    r: &Reference,
    digest: &Digest,
    key: &SigningKey,
) -> Result<SignReport> {
    let payload = payload(r, digest);
    let payload_digest = sha256_digest(&payload);
    let signature = base64::engine::general_purpose::STANDARD.encode(key.sign(&payload));
    let sig_ref = signature_ref(r, digest);
    let mut layers = match client.get_manifest(&sig_ref).await {
        Ok((_, bytes, _)) => {
            serde_json::from_slice::<fspack_registry::manifest::ImageManifest>(&bytes)
                .map(|m| m.layers)
                .unwrap_or_default()
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    // ECDSA signatures are randomised, so "already signed" means: this payload verifies with
    // this key under an existing layer.
    let vk = key.verifying_key();
    let already = layers.iter().any(|l| {
        l.digest == payload_digest
            && l.annotations
                .get(ANN_SIGNATURE)
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .is_some_and(|sig| vk.verify(&payload, &sig))
    });
    if !already {
        push_blob(client, r, &payload).await?;
        layers.push(signature_layer(
            &payload_digest,
            payload.len() as u64,
            &signature,
        ));
        let config = config_bytes(&layers);
        push_blob(client, r, &config).await?;
        let manifest = signature_manifest(layers, &config);
        let tag = sig_ref.tag.clone().expect("signature refs are tagged");
        client
            .push_manifest(r, &tag, MEDIA_MANIFEST, manifest_bytes(&manifest))
            .await?;
    }
    Ok(SignReport {
        reference: r.to_string(),
        manifest_digest: digest.clone(),
        signature_ref: sig_ref.to_string(),
        payload_digest,
        added: !already,
    })
}

async fn push_blob(client: &Client, r: &Reference, bytes: &[u8]) -> Result<()> {
    let digest = sha256_digest(bytes);
    if client.blob_exists(r, &digest).await? == Some(bytes.len() as u64) {
        return Ok(());
    }
    let src = Arc::new(BytesSource(bytes::Bytes::copy_from_slice(bytes)));
    client
        .push_blob(
            r,
            &digest,
            src,
            UploadMode::Monolithic,
            Arc::new(NoProgress),
        )
        .await?;
    Ok(())
}
