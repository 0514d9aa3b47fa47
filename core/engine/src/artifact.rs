//! The artifact format fspack pushes and pulls: media types, annotations and layer order.
//! `docs/format.md` is the prose version of this module.

/// `artifactType` of fspack manifests.
pub const ARTIFACT_TYPE: &str = "application/vnd.fspack.image.v1";
/// Media type of the empty config blob (image-spec "Guidelines for Artifact Usage").
pub const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
/// The empty config's content.
pub const EMPTY_CONFIG_DATA: &[u8] = b"{}";
/// A complete, mountable EROFS image (IANA-registered; erofs-image-spec draft).
pub const MEDIA_EROFS: &str = "application/vnd.erofs";
/// Data blob of a chunked EROFS image, attached as an extra device (`org.erofs.role: device`).
pub const MEDIA_DEVICE: &str = "application/octet-stream";
/// SquashFS layer prefix (the type stacker/atomfs deploy), suffixed with the compressor.
pub const MEDIA_SQUASHFS_PREFIX: &str = "application/vnd.stacker.image.layer.squashfs";
/// Annotation: file name of a layer.
pub const ANN_TITLE: &str = "org.opencontainers.image.title";
/// Annotation: role of an EROFS layer (erofs-image-spec draft).
pub const ANN_EROFS_ROLE: &str = "org.erofs.role";
/// Annotation: fspack image format (`erofs` or `squashfs`).
pub const ANN_FORMAT: &str = "io.fspack.format";
/// Annotation: fspack layout (`single`, `chunked`, `sharded`).
pub const ANN_LAYOUT: &str = "io.fspack.layout";

/// Layer media types fspack can mount: EROFS images from any tool and SquashFS layers.
pub const MOUNTABLE_EROFS: &[&str] = &[
    MEDIA_EROFS,
    "application/vnd.erofs.layer.v1",
    "application/vnd.oci.image.layer.v1.erofs",
    "application/vnd.oci.image.layer.erofs",
];

/// Whether `media_type` names a SquashFS layer (stacker, legacy OCI or fspack spellings).
pub fn is_squashfs_media_type(media_type: &str) -> bool {
    media_type.starts_with(MEDIA_SQUASHFS_PREFIX)
        || media_type.starts_with("application/vnd.oci.image.layer.squashfs")
        || media_type.starts_with("application/vnd.oci.image.layer.v1.squashfs")
}

use std::collections::BTreeMap;

use fspack_digest::{Algorithm, Digest};

use crate::error::{EngineError, Result};

/// Media type of an OCI image manifest.
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Largest manifest fspack reads (distribution-spec: clients SHOULD handle at least 4 MiB).
pub const MAX_MANIFEST: u64 = 4 << 20;

pub use fspack_registry::manifest::{Descriptor, ImageIndex as Index, ImageManifest as Manifest};

/// A descriptor with the fields fspack sets.
pub fn descriptor(
    media_type: &str,
    digest: &Digest,
    size: u64,
    annotations: BTreeMap<String, String>,
) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: digest.clone(),
        size,
        artifact_type: None,
        urls: Vec::new(),
        annotations,
        data: None,
        platform: None,
    }
}

/// What progress bars call a layer: its `org.opencontainers.image.title`, else the first 12 hex
/// digits of its digest.
pub fn layer_title(d: &Descriptor) -> String {
    d.annotations
        .get(ANN_TITLE)
        .cloned()
        .unwrap_or_else(|| d.digest.hex()[..12].to_string())
}

/// Digest of some bytes, `sha256:<hex>`.
pub fn sha256_digest(bytes: &[u8]) -> Digest {
    fspack_registry::sha256_digest(bytes)
}

/// Descriptor of the empty config.
pub fn empty_config() -> Descriptor {
    descriptor(
        EMPTY_CONFIG,
        &sha256_digest(EMPTY_CONFIG_DATA),
        EMPTY_CONFIG_DATA.len() as u64,
        BTreeMap::new(),
    )
}

/// Serialises a manifest compactly; these bytes are what its digest covers.
pub fn manifest_bytes(m: &Manifest) -> Vec<u8> {
    serde_json::to_vec(m).expect("manifest serialises")
}

/// Parses a manifest with the one manifest parser (`Manifest::from_slice`: an OCI image
/// manifest, schemaVersion 2, every descriptor's digest valid), then applies fspack's own rule:
/// the config and layers must be sha256, the only algorithm the store holds.
///
/// Errors: [`EngineError::Integrity`] naming `what` and the rule broken.
pub fn parse_manifest(bytes: &[u8], what: &str) -> Result<Manifest> {
    let m = Manifest::from_slice(bytes).map_err(|e| match e {
        fspack_registry::RegistryError::InvalidContent { detail, .. } => {
            EngineError::Integrity(format!("{what}: {detail}"))
        }
        e => EngineError::Integrity(format!("{what}: {e}")),
    })?;
    for d in m.layers.iter().chain(std::iter::once(&m.config)) {
        require_sha256(&d.digest).map_err(|e| EngineError::Integrity(format!("{what}: {e}")))?;
    }
    Ok(m)
}

/// Parses an index with the one index parser (`Index::from_slice`).
///
/// Errors: [`EngineError::Integrity`] naming `what` and the rule broken.
pub fn parse_index(bytes: &[u8], what: &str) -> Result<Index> {
    Index::from_slice(bytes).map_err(|e| match e {
        fspack_registry::RegistryError::InvalidContent { detail, .. } => {
            EngineError::Integrity(format!("{what}: {detail}"))
        }
        e => EngineError::Integrity(format!("{what}: {e}")),
    })
}

/// fspack's own rule on top of the digest grammar: content it stores and mounts is sha256.
///
/// Errors: the reason, naming the digest.
pub fn require_sha256(d: &Digest) -> std::result::Result<(), String> {
    match d.algorithm() {
        Algorithm::Sha256 => Ok(()),
        Algorithm::Sha512 => Err(format!(
            "unsupported digest {d:?} (fspack handles sha256 only)",
            d = d.as_str()
        )),
    }
}

/// Parses a digest given as text (a policy file, a note in the store) that must be sha256.
///
/// Errors: the reason, naming the text.
pub fn parse_sha256(d: &str) -> std::result::Result<Digest, String> {
    let digest = Digest::parse(d)
        .map_err(|e| format!("malformed digest {d:?}: {e} (fspack handles sha256 only)"))?;
    require_sha256(&digest)?;
    Ok(digest)
}

/// The file name under which a lazy mount's FUSE server serves blob `digest` (issue 10): the
/// digest's hex, without the algorithm. Here, with the format's names, so that mounting a
/// lazy source or mapping a model view needs nothing from the server.
pub fn served_file_name(digest: &Digest) -> String {
    digest.hex().to_string()
}

/// Descriptors and manifests for unit tests across the engine.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub(crate) fn layer(mt: &str, role: Option<&str>, n: u8) -> Descriptor {
        let mut annotations = BTreeMap::new();
        if let Some(r) = role {
            annotations.insert(ANN_EROFS_ROLE.to_string(), r.to_string());
        }
        descriptor(
            mt,
            &Digest::sha256_from_hex(&hex::encode([n; 32])).unwrap(),
            4096,
            annotations,
        )
    }

    pub(crate) fn manifest(layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            artifact_type: Some(ARTIFACT_TYPE.into()),
            config: empty_config(),
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{layer, manifest};
    use super::*;

    #[test]
    fn digests_are_validated() {
        assert!(require_sha256(&empty_config().digest).is_ok());
        assert!(parse_sha256(empty_config().digest.as_str()).is_ok());
        assert!(parse_sha256("sha256:../../etc/passwd").is_err());
        assert!(parse_sha256("md5:abc").is_err());
        assert!(parse_sha256(&format!("sha512:{}", "a".repeat(128))).is_err());
    }

    /// The registry's parser decides what a manifest is; the engine adds only its sha256 rule.
    #[test]
    fn manifests_are_parsed_by_the_one_parser_plus_the_sha256_rule() {
        let good = manifest(vec![layer(MEDIA_EROFS, None, 1)]);
        let bytes = manifest_bytes(&good);
        assert_eq!(parse_manifest(&bytes, "r").unwrap(), good);
        let integrity = |b: &[u8]| match parse_manifest(b, "r") {
            Err(e @ EngineError::Integrity(_)) => e.to_string(),
            other => panic!("{other:?}"),
        };
        let v1 = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\"schemaVersion\":2", "\"schemaVersion\":1");
        assert!(integrity(v1.as_bytes()).contains("schemaVersion 1"));
        let mut sha512 = good.clone();
        sha512.layers[0].digest = Digest::parse(&format!("sha512:{}", "a".repeat(128))).unwrap();
        assert!(integrity(&manifest_bytes(&sha512)).contains("sha256 only"));
        // A subject with a malformed digest: the registry parser's rule, now the engine's too.
        let mut subject = good.clone();
        subject.subject = Some(empty_config());
        let mut text = String::from_utf8(manifest_bytes(&subject)).unwrap();
        let empty = empty_config().digest.to_string();
        let at = text.rfind(&empty).expect("the subject comes last");
        text.replace_range(at..at + empty.len(), "sha256:../x");
        let e = integrity(text.as_bytes());
        assert!(e.starts_with("r: ") && e.contains("subject.digest"), "{e}");
        assert!(integrity(b"{").starts_with("r: not a valid OCI image manifest"));
    }
}
