//! `fspack pull oci:PATH:TAG` (and `mount` of one): an air-gapped layout copied into the store.
//!
//! Why copy rather than mount from the layout in place: the store is what mount records, `gc`
//! and `umount` know; a layout on removable media or a shared directory can change or vanish
//! under a mounted image, and its blobs are nobody's to keep. Copying checks every blob against
//! its digest once, at the copy, exactly as a registry pull does, so only verified blobs are ever
//! mounted. The layout itself is only read (see [`LayoutReader`]); nothing is written into it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use fspack_digest::Digest;
use fspack_store::{LayoutReader, Store};

use crate::artifact::*;
use crate::error::{EngineError, Result};
use crate::plan::MountPlan;
use crate::pull::{PullReport, PulledLayer};
use crate::report::Reporter;
use crate::trust::Trust;

/// The store tag of an `oci:` layout's tag: `oci:<canonical path>:<tag>`, so the same layout
/// named by two relative paths is one entry.
///
/// Errors: [`EngineError::NotFound`] when `path` does not exist; an I/O error naming `path`
/// when it cannot be resolved otherwise.
pub fn layout_name(path: &Path, tag: &str) -> Result<String> {
    Ok(name_of(&canonical(path)?, tag))
}

/// [`layout_name`] of a path already canonical.
fn name_of(canonical: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", canonical.display())
}

/// `path` made absolute and canonical, what names a layout in the store and in a policy.
///
/// Errors: as [`layout_name`].
fn canonical(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => missing_layout(path, "the directory does not exist"),
        _ => EngineError::io(path, e),
    })
}

/// Checks the manifest `digest` that `tag` of the layout at `path` names against `trust`
/// before anything is copied or mounted; logs each rule that passed and returns them, one line
/// each (empty when nothing is configured).
///
/// Errors: [`crate::trust::TrustError::Refused`] naming the layout and the rule; as
/// [`layout_name`] for a path that does not resolve.
pub fn check_trust(trust: &Trust, path: &Path, tag: &str, digest: &Digest) -> Result<Vec<String>> {
    if trust.is_empty() {
        return Ok(Vec::new());
    }
    let canonical = canonical(path)?;
    let name = name_of(&canonical, tag);
    let verdict = trust.check_layout(&canonical, tag, &name, digest)?;
    for rule in &verdict.passed {
        tracing::info!(reference = %name, %digest, "passed {rule}");
    }
    Ok(verdict.passed)
}

/// The error for an `oci:` path that holds no layout, with how to make one.
fn missing_layout(path: &Path, why: &str) -> EngineError {
    EngineError::NotFound(format!(
        "no OCI image layout at {} ({why}); check the path, or write a layout there with \
         `skopeo copy docker://REF oci:{}:TAG`",
        path.display(),
        path.display()
    ))
}

/// Copies the artifact tagged `tag` in the layout at `path` into `store`, verifying each blob,
/// and tags it there as [`layout_name`]. Blobs the store already has are not copied. The
/// manifest digest is checked against `trust` first ([`check_trust`]).
///
/// Errors: [`EngineError::NotFound`] for a missing layout or tag; a trust refusal, or a
/// mount-plan error for an artifact fspack cannot mount, before any blob is copied; a store
/// integrity error when a blob does not match its digest.
pub fn import(
    path: &Path,
    tag: &str,
    store: &Store,
    trust: &Trust,
    reporter: Arc<dyn Reporter>,
) -> Result<PullReport> {
    let started = Instant::now();
    let layout = LayoutReader::open(path).map_err(|_| {
        let why = if path.exists() {
            "it has no oci-layout file"
        } else {
            "the directory does not exist"
        };
        missing_layout(path, why)
    })?;
    let name = layout_name(path, tag)?;
    let d = layout
        .resolve(tag)?
        .ok_or_else(|| EngineError::NotFound(layout.missing_tag(tag)))?;
    let trust_checks = check_trust(trust, path, tag, &d.digest)?;
    let bytes = layout.read_blob(&d.digest, MAX_MANIFEST)?;
    let manifest = parse_manifest(&bytes, &name)?;
    let plan = MountPlan::from_manifest(&manifest, &name)?;
    let mut wanted: Vec<&Descriptor> = Vec::new();
    for b in plan.blobs() {
        if !wanted.iter().any(|w| w.digest == b.digest) {
            wanted.push(b);
        }
    }
    reporter.plan_total(wanted.iter().map(|d| d.size).sum());
    let mut layers = Vec::new();
    for b in wanted {
        let cached = store.has_blob_sized(&b.digest, b.size);
        if cached {
            reporter.skipped(b.size);
        } else {
            copy_blob(&layout, b, store, &reporter)?;
        }
        layers.push(PulledLayer {
            digest: b.digest.clone(),
            title: crate::artifact::layer_title(b),
            media_type: b.media_type.clone(),
            size: b.size,
            cached,
            // Verified whole (sha256 of the copy) rather than chunk by chunk: a local copy
            // has no partial fetches to resume or chunks to fetch again.
            chunk_verified: false,
            bytes_received: if cached { 0 } else { b.size },
            chunks_refetched: 0,
        });
    }
    if manifest.config.digest == empty_config().digest {
        store.put_blob_bytes(EMPTY_CONFIG_DATA)?;
    }
    let digest = store.put_blob_bytes(&bytes)?;
    store.tag(&name, &digest, MEDIA_MANIFEST, bytes.len() as u64)?;
    let bytes_fetched = layers.iter().filter(|l| !l.cached).map(|l| l.size).sum();
    Ok(PullReport {
        reference: name,
        manifest_digest: digest,
        format: plan.format().into(),
        bytes_fetched,
        bytes_received: bytes_fetched,
        chunks_refetched: 0,
        layers,
        blobs_repaired: 0,
        seconds: started.elapsed().as_secs_f64(),
        mounted_at: None,
        notes: Vec::new(),
        trust_checks,
    })
}

/// Copies one blob through the store's ingest, which commits it only when size and sha256 match.
fn copy_blob(
    layout: &LayoutReader,
    d: &Descriptor,
    store: &Store,
    reporter: &Arc<dyn Reporter>,
) -> Result<()> {
    let src_path = layout.blob_path(&d.digest)?;
    let mut src = std::fs::File::open(&src_path).map_err(|e| EngineError::io(&src_path, e))?;
    let ingest = store.ingest(&d.digest, d.size)?;
    if store.has_blob_sized(&d.digest, d.size) {
        ingest.abort();
        return Ok(());
    }
    let title = layer_title(d);
    let id = reporter.start(&title, d.size);
    ingest
        .copy_from(&mut src, &mut |n| reporter.advance(id, n))
        .map_err(|e| EngineError::io(&src_path, e))?;
    ingest.commit()?;
    reporter.finish(id);
    Ok(())
}
