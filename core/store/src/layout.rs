//! `index.json` of the OCI image layout: tags are entries annotated with
//! `org.opencontainers.image.ref.name`, as skopeo and oras expect.

use std::collections::BTreeMap;
use std::path::Path;

use fspack_digest::Digest;
use serde::{Deserialize, Serialize};

use crate::error::{Result, StoreError};

/// The annotation that names a tag in an OCI image layout.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI content descriptor as stored in `index.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// The content's digest (parsed with `index.json`).
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Annotations (the tag name among them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Artifact type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Fields fspack does not interpret (`platform`, `urls`, `data`, …), kept as they are so a
    /// layout shared with skopeo or oras loses nothing when fspack rewrites `index.json`.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

impl Descriptor {
    /// A descriptor without annotations.
    pub fn new(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest: digest.clone(),
            size,
            annotations: BTreeMap::new(),
            artifact_type: None,
            other: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_json::Value>,
}

pub(crate) fn empty_index() -> Vec<u8> {
    Index {
        schema_version: 2,
        media_type: Some("application/vnd.oci.image.index.v1+json".into()),
        manifests: Vec::new(),
        other: BTreeMap::new(),
    }
    .to_bytes()
}

impl Index {
    pub(crate) fn read(path: &Path) -> Result<Index> {
        let bytes = std::fs::read(path).map_err(|e| StoreError::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            path: path.to_path_buf(),
            why: format!(
                "{e}\nhint: the store's tags are in this file; restore it from a backup, or move it aside and pull the references again (blobs already in the store are not fetched again); do not run `fspack gc` while it is missing, which would remove every untagged blob"
            ),
        })
    }

    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("index serialises");
        v.push(b'\n');
        v
    }

    pub(crate) fn get(&self, name: &str) -> Option<Descriptor> {
        self.manifests
            .iter()
            .find(|d| d.annotations.get(REF_NAME).map(String::as_str) == Some(name))
            .cloned()
    }

    pub(crate) fn set(&mut self, name: &str, mut d: Descriptor) {
        self.manifests
            .retain(|m| m.annotations.get(REF_NAME).map(String::as_str) != Some(name));
        d.annotations.insert(REF_NAME.into(), name.into());
        self.manifests.push(d);
        self.manifests.sort_by(|a, b| {
            a.annotations
                .get(REF_NAME)
                .cmp(&b.annotations.get(REF_NAME))
        });
    }

    /// Removes the entry named `name`; returns it, or `None` when there was none.
    pub(crate) fn remove(&mut self, name: &str) -> Option<Descriptor> {
        let at = self
            .manifests
            .iter()
            .position(|m| m.annotations.get(REF_NAME).map(String::as_str) == Some(name))?;
        Some(self.manifests.remove(at))
    }

    pub(crate) fn tagged(&self) -> Vec<(String, Descriptor)> {
        self.manifests
            .iter()
            .filter_map(|d| d.annotations.get(REF_NAME).map(|n| (n.clone(), d.clone())))
            .collect()
    }
}
