//! `inspect`: what an artifact is (manifest, layers, sizes, the format fspack would mount) read
//! from a registry or an OCI layout without downloading any layer, and without writing anything.

use fspack_chunkindex::{ChunkIndexError, IndexAt};
use fspack_digest::Digest;
use fspack_registry::Client;
use fspack_store::LayoutReader;
use serde::Serialize;

use crate::artifact::{ANN_EROFS_ROLE, ANN_TITLE, MAX_MANIFEST, Manifest};
use crate::error::{EngineError, Result, ResultExt};
use crate::modelpack;
use crate::plan::MountPlan;
use crate::target::Target;

/// What `inspect` found; serialised as is for `--json`, where the manifest's digest appears
/// twice: as `manifest_digest`, the name `push`, `pull`, `mount`, `images` and `sign` use, and as
/// `digest`, the name `inspect` used alone before (kept so that older scripts still work).
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The reference as the user typed it.
    pub reference: String,
    /// The manifest's digest (`sha256:…`).
    pub manifest_digest: Digest,
    /// The same digest under the name older `inspect --json` output gave it.
    #[serde(rename = "digest")]
    digest_alias: Digest,
    /// The digest of the image index the reference named, when the manifest shown is the one
    /// it lists for fspack (else its first entry); absent when the reference named a manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    /// `erofs`, `squashfs` or `model`; `None` when fspack cannot mount the artifact.
    pub format: Option<String>,
    /// Sum of the layers' sizes, in bytes.
    pub size: u64,
    /// The manifest itself.
    pub manifest: Manifest,
}

/// One layer as `inspect` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    /// The file path of a model layer, else the layer's title annotation, else empty; escaped
    /// for a terminal.
    pub title: String,
    /// Bytes.
    pub size: u64,
    /// How the layer is used: `file`, `tar` or `tar+z` for model layers (issue 15), else the
    /// erofs-image-spec role annotation, else `-`.
    pub role: String,
    /// The layer's media type.
    pub media_type: String,
    /// The layer's digest.
    pub digest: Digest,
    /// Where its chunk index is (erofs-image-spec annotations, issue 9): `tail` (embedded at
    /// the end of the blob), `blob` (a blob of its own, as `push --modelpack` makes), `bad`
    /// (announced but unusable: a pull refuses the layer), or `-` (none: the layer is verified
    /// as a whole only).
    pub chunk_index: &'static str,
}

impl Inspection {
    /// The layers in manifest order, each with its title and role.
    pub fn layer_rows(&self) -> Vec<LayerRow> {
        // Model artifacts are listed file by file: the layer's file path, and how the layer holds
        // it (raw, or a tar whose members show once pulled and mounted).
        let flavor = modelpack::detect(&self.manifest);
        self.manifest
            .layers
            .iter()
            .map(|l| {
                let title = l
                    .annotations
                    .get(modelpack::ANN_FILEPATH)
                    .filter(|_| flavor.is_some())
                    .or_else(|| l.annotations.get(ANN_TITLE))
                    .map(|s| s.escape_default().to_string())
                    .unwrap_or_default();
                let role = match flavor.and_then(|f| modelpack::packing(f, &l.media_type)) {
                    Some(modelpack::Packing::Raw) => "file",
                    Some(modelpack::Packing::Tar) => "tar",
                    Some(_) => "tar+z",
                    None => l
                        .annotations
                        .get(ANN_EROFS_ROLE)
                        .map(String::as_str)
                        .unwrap_or("-"),
                };
                let chunk_index = match IndexAt::from_annotations(&l.annotations, l.size) {
                    Ok(Some(IndexAt::Embedded(_))) => "tail",
                    Ok(Some(IndexAt::Standalone(_))) => "blob",
                    Ok(None) | Err(ChunkIndexError::Unsupported(_)) => "-",
                    Err(_) => "bad",
                };
                LayerRow {
                    title,
                    size: l.size,
                    role: role.to_string(),
                    media_type: l.media_type.clone(),
                    digest: l.digest.clone(),
                    chunk_index,
                }
            })
            .collect()
    }
}

/// Reads the manifest `reference` names: from the registry with `client` (which a registry
/// target needs), or from an OCI layout, read-only (issue 11).
///
/// Errors: for a registry, the fetch error under "cannot read the manifest of REF";
/// [`EngineError::NotFound`] for a missing layout or tag; an integrity error for a malformed
/// manifest; [`EngineError::Usage`] for a registry target without a client.
pub async fn inspect(
    reference: &str,
    target: &Target,
    client: Option<&Client>,
) -> Result<Inspection> {
    let (digest, manifest, index_digest) = match target {
        Target::Registry(r) => {
            let client = client.ok_or_else(|| {
                EngineError::Usage(format!("inspecting {reference} needs a registry client"))
            })?;
            let f = crate::pull::fetch_manifest(client, r)
                .await
                .context_with(|| format!("cannot read the manifest of {reference}"))?;
            (f.digest, f.manifest, f.index)
        }
        Target::Layout { path, tag } => {
            let layout = LayoutReader::open(path).map_err(|_| {
                EngineError::NotFound(format!(
                    "no OCI image layout at {} (no oci-layout file)",
                    path.display()
                ))
            })?;
            let d = layout
                .resolve(tag)?
                .ok_or_else(|| EngineError::NotFound(layout.missing_tag(tag)))?;
            let bytes = layout.read_blob(&d.digest, MAX_MANIFEST)?;
            (
                d.digest.clone(),
                crate::artifact::parse_manifest(&bytes, reference)?,
                None,
            )
        }
    };
    let format = MountPlan::from_manifest(&manifest, reference)
        .ok()
        .map(|p| p.format().to_string());
    let size = manifest.layers.iter().map(|l| l.size).sum();
    Ok(Inspection {
        reference: reference.to_string(),
        digest_alias: digest.clone(),
        manifest_digest: digest,
        index_digest,
        format,
        size,
        manifest,
    })
}
