//! Writing a push to its destination, a registry or an `oci:` layout: the one place that
//! knows both, so the use case in [`super::push`] reads as its order of operations.

use std::collections::BTreeMap;
use std::sync::Arc;

use fspack_digest::Digest;
use fspack_registry::{BlobSource, Client, UploadSession};
use fspack_store::Store;

use super::PushSettings;
use crate::artifact::*;
use crate::error::{EngineError, Result};
use crate::report::{Reporter, TransferProgress};
use crate::target::Target;

/// Where a push writes: a registry through `client`, or an `oci:` layout through `store`; the
/// one that `target` needs is set.
pub(super) struct Destination<'a> {
    pub target: &'a Target,
    pub client: Option<&'a Client>,
    pub store: Option<Arc<Store>>,
}

impl Destination<'_> {
    /// Writes the manifest `body` last, with the tag in the same request (or, for an `oci:` layout,
    /// as a blob then the tag); returns its digest.
    pub(super) async fn put_manifest(&self, body: &[u8]) -> Result<Digest> {
        let (client, store) = (self.client, self.store.as_deref());
        Ok(match self.target {
            Target::Registry(r) => {
                let tag = r
                    .tag
                    .clone()
                    .unwrap_or_else(|| sha256_digest(body).to_string());
                client
                    .expect("set for registries")
                    .push_manifest(r, &tag, MEDIA_MANIFEST, body.to_vec())
                    .await?
            }
            Target::Layout { tag, .. } => {
                let store = store.expect("set for layouts");
                let digest = store.put_blob_bytes(body)?;
                store.tag(tag, &digest, MEDIA_MANIFEST, body.len() as u64)?;
                digest
            }
        })
    }

    /// Pushes the OCI 1.1 referrer that keeps the standalone chunk indexes of a ModelPack push
    /// reachable (registry garbage collection keeps blobs a manifest names; `oras cp -r` copies
    /// referrers with their subject): `subject` is the model manifest, and the layers are each
    /// indexed layer followed by its index, the order erofs-image-spec §3.4.3 gives a standalone
    /// index. Pushed by digest and, on a registry without the referrers API, listed under the
    /// referrers tag of the model manifest ([`crate::referrers`]). Returns its digest.
    ///
    /// The model manifest itself names each index by digest (`org.erofs.chunk-index.digest` on the
    /// layer), so a pull never needs this manifest, and its layers stay the files alone, which is
    /// all modctl can read (issue 15).
    ///
    /// The caller has sent the empty config. Errors: the registry's or the store's.
    pub(super) async fn push_index_referrer(
        &self,
        subject: Descriptor,
        pairs: Vec<(Descriptor, Descriptor)>,
    ) -> Result<Digest> {
        let (client, store) = (self.client, self.store.as_deref());
        let layers = pairs.into_iter().flat_map(|(d, ix)| [d, ix]).collect();
        let subject_digest = subject.digest.clone();
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_MANIFEST.into()),
            artifact_type: Some(fspack_chunkindex::MEDIA_TYPE.into()),
            config: empty_config(),
            layers,
            subject: Some(subject),
            annotations: BTreeMap::new(),
        };
        let body = manifest_bytes(&manifest);
        let digest = sha256_digest(&body);
        match self.target {
            Target::Registry(r) => {
                let client = client.expect("set for registries");
                let mut listed =
                    descriptor(MEDIA_MANIFEST, &digest, body.len() as u64, BTreeMap::new());
                listed.artifact_type = manifest.artifact_type.clone();
                if !client
                    .push_referrer(r, &digest, MEDIA_MANIFEST, body)
                    .await?
                {
                    crate::referrers::add_to_referrers_tag(client, r, &subject_digest, listed)
                        .await?;
                }
            }
            Target::Layout { .. } => {
                store.expect("set for layouts").put_blob_bytes(&body)?;
            }
        }
        Ok(digest)
    }

    /// Sends one blob unless the destination has it; returns whether it was skipped.
    pub(super) async fn send(
        &self,
        src: &Arc<dyn BlobSource>,
        d: &Descriptor,
        settings: &PushSettings,
        reporter: &Arc<dyn Reporter>,
    ) -> Result<bool> {
        let ready = self.prepare(d, reporter).await?;
        self.upload(src, d, ready, settings, reporter).await
    }

    /// Readies the destination for the blob `d` before its bytes go: asks whether it is there
    /// (a `HEAD`, counted as skipped on the bars when it is) and, for a registry, opens the
    /// upload session. Run while other blobs upload, it takes those round trips off the
    /// critical path (issue 14).
    ///
    /// Errors: the registry's.
    pub(super) async fn prepare(
        &self,
        d: &Descriptor,
        reporter: &Arc<dyn Reporter>,
    ) -> Result<Ready> {
        let present = match self.target {
            Target::Registry(r) => {
                let client = self.client.expect("set for registries");
                if client.blob_exists(r, &d.digest).await? == Some(d.size) {
                    true
                } else {
                    return Ok(Ready::Upload(Some(client.open_upload(r).await?)));
                }
            }
            Target::Layout { .. } => self
                .store
                .as_deref()
                .expect("set for layouts")
                .has_blob_sized(&d.digest, d.size),
        };
        if present {
            reporter.skipped(d.size);
            return Ok(Ready::Present);
        }
        Ok(Ready::Upload(None))
    }

    /// Sends the bytes of blob `d` from `src` as [`Destination::prepare`] readied it; returns
    /// whether it was skipped (there already).
    ///
    /// Errors: the registry's; for a layout, an I/O error naming the layout, or the store's
    /// when the bytes do not match `d`.
    pub(super) async fn upload(
        &self,
        src: &Arc<dyn BlobSource>,
        d: &Descriptor,
        ready: Ready,
        settings: &PushSettings,
        reporter: &Arc<dyn Reporter>,
    ) -> Result<bool> {
        let session = match ready {
            Ready::Present => return Ok(true),
            Ready::Upload(session) => session,
        };
        let name = d
            .annotations
            .get(ANN_TITLE)
            .cloned()
            .unwrap_or_else(|| "config".into());
        match self.target {
            Target::Registry(r) => {
                let client = self.client.expect("set for registries");
                let session = match session {
                    Some(s) => s,
                    None => client.open_upload(r).await?,
                };
                let id = reporter.start(&name, d.size);
                let progress = Arc::new(TransferProgress {
                    reporter: reporter.clone(),
                    id,
                });
                client
                    .push_blob_to(
                        session,
                        r,
                        &d.digest,
                        src.clone(),
                        settings.upload,
                        progress,
                    )
                    .await?;
                reporter.finish(id);
                Ok(false)
            }
            Target::Layout { path, .. } => {
                let store = self.store.as_deref().expect("set for layouts");
                let ingest = store.ingest(&d.digest, d.size)?;
                // Another push into the same layout may have committed it meanwhile.
                if store.has_blob_sized(&d.digest, d.size) {
                    reporter.skipped(d.size);
                    return Ok(true);
                }
                let (src, bars, path) = (src.clone(), reporter.clone(), path.clone());
                let id = reporter.start(&name, d.size);
                tokio::task::spawn_blocking(move || -> Result<()> {
                    let mut r = src.open_at(0).map_err(|e| EngineError::io(&path, e))?;
                    ingest
                        .copy_from(&mut r, &mut |n| bars.advance(id, n))
                        .map_err(|e| EngineError::io(&path, e))?;
                    ingest.commit()?;
                    Ok(())
                })
                .await
                .expect("layout write does not panic")?;
                reporter.finish(id);
                Ok(false)
            }
        }
    }
}

/// What a blob needs once [`Destination::prepare`] ran: nothing, or its bytes sent, into the
/// registry's upload session when one was opened.
pub(super) enum Ready {
    /// The destination has the blob.
    Present,
    /// The blob must be sent; `Some` holds the open session of a registry.
    Upload(Option<UploadSession>),
}

/// Descriptor of the standalone chunk index `bytes` of layer `target` (erofs-image-spec §3.4.3:
/// a layer of type `application/vnd.erofs.chunk-index.v1` naming its target's digest).
pub(super) fn standalone_descriptor(target: &Descriptor, bytes: &[u8]) -> Descriptor {
    let mut annotations = BTreeMap::from([(
        fspack_chunkindex::ANN_TARGET.to_string(),
        target.digest.to_string(),
    )]);
    if let Some(title) = target.annotations.get(ANN_TITLE) {
        annotations.insert(ANN_TITLE.into(), format!("{title}.chunk-index"));
    }
    descriptor(
        fspack_chunkindex::MEDIA_TYPE,
        &sha256_digest(bytes),
        bytes.len() as u64,
        annotations,
    )
}
