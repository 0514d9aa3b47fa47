//! cosign's storage of a signature: the "simple signing" payload (containers-signature(5) JSON
//! with cosign's `critical.type`) uploaded as a blob, listed as a layer of an OCI image manifest
//! tagged `sha256-<hex>.sig` in the image's repository, with the base64 DER signature in the
//! layer annotation `dev.cosignproject.cosign/signature` (cosign `specs/SIGNATURE_SPEC.md`,
//! "Tag-based Discovery" and "OCI Image Manifest V1").

use std::collections::BTreeMap;

use fspack_digest::Digest;
use fspack_registry::Reference;
use fspack_registry::manifest::{Descriptor, ImageManifest};
use serde_json::json;

/// Media type of the payload layer.
pub const MEDIA_SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 DER signature.
pub const ANN_SIGNATURE: &str = "dev.cosignproject.cosign/signature";
/// `critical.type` of cosign signatures.
pub const COSIGN_TYPE: &str = "cosign container image signature";
/// Media type of the signature manifest's config (cosign writes an OCI image config).
pub const MEDIA_IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Largest payload fspack reads; cosign's are a few hundred bytes.
pub const MAX_PAYLOAD: usize = 64 << 10;

/// The tag under which signatures of `digest` live: `sha256:<hex>` becomes `sha256-<hex>.sig`,
/// cosign's suffix on the referrers tag schema's form of the digest.
pub fn signature_tag(digest: &Digest) -> String {
    format!("{}.sig", crate::referrers::referrers_tag(digest))
}

/// The reference of the signature manifest of `digest` in `r`'s repository.
pub fn signature_ref(r: &Reference, digest: &Digest) -> Reference {
    Reference {
        tag: Some(signature_tag(digest)),
        digest: None,
        ..r.clone()
    }
}

/// The payload fspack signs: `docker-reference` is the repository (no tag: the digest is what
/// is signed, as cosign does), `docker-manifest-digest` the manifest digest.
pub fn payload(r: &Reference, digest: &Digest) -> Vec<u8> {
    let v = json!({
        "critical": {
            "identity": { "docker-reference": r.repo_display() },
            "image": { "docker-manifest-digest": digest },
            "type": COSIGN_TYPE,
        },
        "optional": null,
    });
    serde_json::to_vec(&v).expect("payload serialises")
}

/// What a payload claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `critical.identity.docker-reference`.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`, as claimed (compared, never used as a digest).
    pub manifest_digest: String,
    /// `critical.type`.
    pub kind: String,
}

/// Looks a key up case-insensitively: containers/image and cosign decode with Go's
/// `encoding/json`, which matches keys that way, and older cosign wrote `Docker-manifest-digest`.
fn get<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    v.as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

/// Reads the claims of a payload; `None` when a required field is missing or not a string.
pub fn parse_claims(bytes: &[u8]) -> Option<Claims> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let critical = get(&v, "critical")?;
    let s = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    Some(Claims {
        docker_reference: s(get(get(critical, "identity")?, "docker-reference"))?,
        manifest_digest: s(get(get(critical, "image")?, "docker-manifest-digest"))?,
        kind: s(get(critical, "type"))?,
    })
}

/// A signature layer: payload descriptor with the base64 signature annotation.
pub fn signature_layer(payload_digest: &Digest, payload_size: u64, sig_b64: &str) -> Descriptor {
    let mut annotations = BTreeMap::new();
    annotations.insert(ANN_SIGNATURE.to_string(), sig_b64.to_string());
    crate::artifact::descriptor(
        MEDIA_SIMPLE_SIGNING,
        payload_digest,
        payload_size,
        annotations,
    )
}

/// The config blob of a signature manifest: an OCI image config whose `rootfs.diff_ids` are
/// the payload digests, as cosign writes it (the payloads are uncompressed, so diff_id = digest).
pub fn config_bytes(layers: &[Descriptor]) -> Vec<u8> {
    let diff_ids: Vec<&str> = layers.iter().map(|d| d.digest.as_str()).collect();
    serde_json::to_vec(&json!({
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .expect("config serialises")
}

/// The signature manifest listing `layers`, with `config` as its config blob.
pub fn signature_manifest(layers: Vec<Descriptor>, config: &[u8]) -> ImageManifest {
    ImageManifest {
        schema_version: 2,
        media_type: Some(crate::artifact::MEDIA_MANIFEST.into()),
        artifact_type: None,
        config: crate::artifact::descriptor(
            MEDIA_IMAGE_CONFIG,
            &crate::artifact::sha256_digest(config),
            config.len() as u64,
            BTreeMap::new(),
        ),
        layers,
        subject: None,
        annotations: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_names_repository_and_digest() {
        let r: Reference = "localhost:5000/models/llama:v1".parse().unwrap();
        let d = Digest::from_sha256([0xab; 32]);
        let c = parse_claims(&payload(&r, &d)).unwrap();
        assert_eq!(c.docker_reference, "localhost:5000/models/llama");
        assert_eq!(c.manifest_digest, d);
        assert_eq!(c.kind, COSIGN_TYPE);
        assert_eq!(signature_tag(&d), format!("sha256-{}.sig", "ab".repeat(32)));
    }

    #[test]
    fn claims_keys_match_case_insensitively_and_missing_fields_fail() {
        let old = br#"{"critical":{"identity":{"docker-reference":"r/x"},"image":{"Docker-manifest-digest":"sha256:00"},"type":"t"},"optional":null}"#;
        assert_eq!(parse_claims(old).unwrap().manifest_digest, "sha256:00");
        assert!(parse_claims(br#"{"critical":{"identity":{},"image":{},"type":"t"}}"#).is_none());
        assert!(parse_claims(b"not json").is_none());
    }
}
