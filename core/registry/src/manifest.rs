//! Our own serde types for OCI image manifests v1.1 (with `artifactType`, `subject`,
//! `annotations`), descriptors and indexes, plus the media types fspack needs. Field names follow
//! image-spec `manifest.md`, `descriptor.md` and `image-index.md`; unknown fields are ignored.
//! Digests are [`Digest`]s, so a document with a bad digest anywhere fails to parse, and the
//! error names where (`layers[1].digest`).

use std::collections::BTreeMap;

use fspack_digest::Digest;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::digest::sha256_digest;
use crate::error::RegistryError;

/// OCI image manifest.
pub const MEDIA_TYPE_IMAGE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const MEDIA_TYPE_IMAGE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The empty JSON blob `{}` used as the config of artifacts.
pub const MEDIA_TYPE_EMPTY_JSON: &str = "application/vnd.oci.empty.v1+json";
/// Docker schema 2 manifest.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// The bytes of the empty JSON blob.
pub const EMPTY_JSON: &[u8] = b"{}";
/// The digest of [`EMPTY_JSON`].
pub const EMPTY_JSON_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
/// The annotation naming a layer's file.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// The `Accept` header for manifest fetches.
pub(crate) const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the content.
    pub media_type: String,
    /// Digest of the content (parsed when the descriptor is).
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Artifact type, when this points at an artifact manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Other places the content may be found (never fetched by this crate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Inline content, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Platform, in indexes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// A platform in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`).
    pub architecture: String,
    /// Operating system (`linux`).
    pub os: String,
    /// OS version.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required OS features (`erofs`).
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An OCI image manifest (v1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact's type, for artifacts with an empty config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// Layers, in order.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An OCI image index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The manifests listed.
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor of some bytes.
    pub fn of_bytes(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest: sha256_digest(bytes),
            size: bytes.len() as u64,
            artifact_type: None,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            data: None,
            platform: None,
        }
    }

    /// The empty JSON config descriptor artifacts use.
    pub fn empty_config() -> Self {
        Descriptor::of_bytes(MEDIA_TYPE_EMPTY_JSON, EMPTY_JSON)
    }
}

/// Parses JSON whose errors name the path of the bad field (`layers[1].digest: invalid digest
/// …`), so a refused digest says which descriptor held it.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(bytes))
        .map_err(|e| e.to_string())
}

/// Content that came from elsewhere (a registry, a store) and does not parse: an integrity
/// failure, never a usage error (issue 13).
fn invalid(what: &str, detail: String) -> RegistryError {
    RegistryError::InvalidContent {
        what: what.to_string(),
        reference: "the bytes given".into(),
        detail,
    }
}

impl ImageManifest {
    /// An artifact manifest: the empty config, `artifact_type` and these layers.
    pub fn artifact(artifact_type: &str, layers: Vec<Descriptor>) -> Self {
        ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_IMAGE_MANIFEST.into()),
            artifact_type: Some(artifact_type.into()),
            config: Descriptor::empty_config(),
            layers,
            subject: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The JSON bytes to push.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("manifests serialise")
    }

    /// Parses a manifest, checking the schema version; every digest is parsed with it.
    ///
    /// Errors: [`RegistryError::InvalidContent`] naming the field at fault.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, RegistryError> {
        let m: ImageManifest = parse_json(bytes)
            .map_err(|e| invalid("manifest", format!("not a valid OCI image manifest: {e}")))?;
        if m.schema_version != 2 {
            return Err(invalid(
                "manifest",
                format!("unsupported manifest schemaVersion {}", m.schema_version),
            ));
        }
        Ok(m)
    }
}

impl ImageIndex {
    /// The JSON bytes to push.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("indexes serialise")
    }

    /// Parses an index, checking the schema version; every digest is parsed with it.
    ///
    /// Errors: [`RegistryError::InvalidContent`] naming the field at fault.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, RegistryError> {
        let m: ImageIndex = parse_json(bytes)
            .map_err(|e| invalid("index", format!("not a valid OCI image index: {e}")))?;
        if m.schema_version != 2 {
            return Err(invalid(
                "index",
                format!("unsupported index schemaVersion {}", m.schema_version),
            ));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_manifest_round_trips_with_camel_case_fields() {
        let mut layer = Descriptor::of_bytes("application/vnd.erofs", b"image");
        layer
            .annotations
            .insert(ANNOTATION_TITLE.into(), "image.erofs".into());
        let mut m = ImageManifest::artifact("application/vnd.fspack.image.v1", vec![layer]);
        m.subject = Some(Descriptor::of_bytes(MEDIA_TYPE_IMAGE_MANIFEST, b"{}"));
        let json = m.to_json();
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["schemaVersion"], 2);
        assert_eq!(v["artifactType"], "application/vnd.fspack.image.v1");
        assert_eq!(v["config"]["mediaType"], MEDIA_TYPE_EMPTY_JSON);
        assert_eq!(v["config"]["digest"], EMPTY_JSON_DIGEST);
        assert_eq!(v["config"]["size"], 2);
        assert_eq!(
            v["layers"][0]["annotations"][ANNOTATION_TITLE],
            "image.erofs"
        );
        assert!(
            v["config"].get("annotations").is_none(),
            "empty maps are omitted"
        );
        assert_eq!(ImageManifest::from_slice(&json).unwrap(), m);
    }

    #[test]
    fn hostile_manifests_are_refused() {
        assert!(ImageManifest::from_slice(br#"{"schemaVersion":1,"config":{"mediaType":"x","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}}"#).is_err());
        assert!(ImageManifest::from_slice(br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:../x","size":2}}"#).is_err());
        assert!(ImageManifest::from_slice(br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":-1}}"#).is_err());
        assert!(ImageManifest::from_slice(br#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":1.5}}"#).is_err());
        let idx = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"platform":{"architecture":"amd64","os":"linux","os.features":["erofs"]}}]}"#;
        let i = ImageIndex::from_slice(idx.as_bytes()).unwrap();
        let bad = idx.replace("sha256:4413", "sha256:F413");
        let e = ImageIndex::from_slice(bad.as_bytes()).unwrap_err();
        assert!(
            e.to_string()
                .contains("manifests[0].digest: invalid digest"),
            "{e}"
        );
        assert_eq!(
            i.manifests[0].platform.as_ref().unwrap().os_features,
            ["erofs"]
        );
    }

    #[test]
    fn a_bad_layer_digest_is_refused_naming_the_layer() {
        let good = EMPTY_JSON_DIGEST;
        let upper = format!("sha256:{}", good[7..].to_uppercase());
        for bad in ["sha256:../../etc/passwd", upper.as_str()] {
            let json = format!(
                r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{good}","size":2}},"layers":[{{"mediaType":"x","digest":"{good}","size":2}},{{"mediaType":"x","digest":"{bad}","size":2}}]}}"#
            );
            let e = ImageManifest::from_slice(json.as_bytes()).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::Integrity, "{e}");
            assert!(matches!(e, RegistryError::InvalidContent { .. }), "{e}");
            let want = format!(
                "layers[1].digest: invalid digest {bad:?}: expected 64 lowercase hex digits"
            );
            assert!(e.to_string().contains(&want), "{e}");
        }
    }
}
