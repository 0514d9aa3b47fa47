//! `images` and `rmi`: what the store holds under which name, and removing names so that `gc`
//! can take their blobs (without them the store only ever grew).

use std::path::PathBuf;

use fspack_digest::Digest;
use fspack_store::{MountRecord, Store};
use serde::Serialize;

use crate::artifact::*;
use crate::error::{EngineError, Result};
use crate::target::Target;

/// One tag of the store.
#[derive(Debug, Clone, Serialize)]
pub struct StoredImage {
    /// The name it is tagged under (a registry reference, or `oci:PATH:TAG`).
    pub reference: String,
    /// The manifest it points at.
    pub manifest_digest: Digest,
    /// `erofs`, `squashfs`, `modelpack`, or `?` when the manifest cannot be read.
    pub format: String,
    /// Bytes of its layers (each counted once here, though other tags may share them).
    pub size: u64,
    /// Mount points of fspack mounts made from this manifest.
    pub mounted_at: Vec<PathBuf>,
    /// A lazy mount is still filling it: it is tagged (and `rmi` can name it) once every blob
    /// is in the store.
    pub filling: bool,
}

/// The store's tags, sorted by name, then the images of lazy mounts still filling (untagged
/// until their fill ends: s10 fresh-eyes pass, `images` said the store held none).
///
/// Errors: the store's, when `index.json` or the mount records cannot be read.
pub fn images(store: &Store) -> Result<Vec<StoredImage>> {
    let records = live_records(store)?;
    let mut out = Vec::new();
    let tags = store.tags()?;
    let filling = records
        .iter()
        .filter(|r| r.lazy.is_some() && !tags.iter().any(|(t, _)| *t == r.reference))
        .map(|r| (r.reference.clone(), r.manifest_digest.clone(), true));
    let tagged = tags
        .iter()
        .map(|(t, d)| (t.clone(), d.digest.clone(), false));
    let mut seen = std::collections::HashSet::new();
    for (reference, digest, filling) in tagged.chain(filling) {
        if !seen.insert(reference.clone()) {
            continue;
        }
        let manifest = store
            .read_blob(&digest, MAX_MANIFEST)
            .ok()
            .and_then(|b| parse_manifest(&b, &reference).ok());
        let (format, size) = match &manifest {
            Some(m) => (format_of(m), m.layers.iter().map(|l| l.size).sum()),
            None => ("?".to_string(), 0),
        };
        let mounted_at = mounted_from(&records, &digest);
        out.push(StoredImage {
            reference,
            manifest_digest: digest,
            format,
            size,
            mounted_at,
            filling,
        });
    }
    Ok(out)
}

/// The records of mounts that are still mounted: one unmounted behind fspack's back (a plain
/// `umount(8)`) stays recorded until `gc`, but mounts nothing.
fn live_records(store: &Store) -> Result<Vec<MountRecord>> {
    Ok(crate::mounts::list(store)?
        .into_iter()
        .filter(|m| m.mounted)
        .map(|m| m.record)
        .collect())
}

/// The mount points of the `records` made from the manifest `digest`.
fn mounted_from(records: &[MountRecord], digest: &Digest) -> Vec<PathBuf> {
    records
        .iter()
        .filter(|r| &r.manifest_digest == digest)
        .map(|r| r.target.clone())
        .collect()
}

/// What the manifest says it is: fspack's format annotation, else ModelPack by its artifact or
/// config type.
fn format_of(m: &Manifest) -> String {
    if let Some(f) = m.annotations.get(ANN_FORMAT) {
        return f.clone();
    }
    let typed = m.artifact_type.as_deref().unwrap_or(&m.config.media_type);
    if typed.contains("cncf.model") {
        return "modelpack".into();
    }
    "?".into()
}

/// One tag removed by [`remove`].
#[derive(Debug, Clone, Serialize)]
pub struct Untagged {
    /// The name removed.
    pub reference: String,
    /// The manifest it pointed at.
    pub manifest_digest: Digest,
    /// Mounts that still use that manifest: their blobs stay until they are unmounted.
    pub still_mounted: Vec<PathBuf>,
}

/// Removes the tags `names` from the store; their blobs go at the next `gc` unless another tag
/// or a mount still names them. A name is the store's (as [`images`] lists it) or a reference
/// that normalises to one (`host/repo` means `host/repo:latest`). All names are resolved before
/// any is removed.
///
/// Errors: [`EngineError::NotFound`] naming every name the store does not hold, and saying that
/// nothing was removed; [`EngineError::Usage`] for a name that is no reference at all; the
/// store's for an index that cannot be written.
pub fn remove(store: &Store, names: &[String]) -> Result<Vec<Untagged>> {
    let mut resolved = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        match stored_name(store, name)? {
            Some(n) => resolved.push(n),
            None => missing.push(name.as_str()),
        }
    }
    // An image a lazy mount is filling has no tag yet: say so rather than "not in the store".
    let records = live_records(store)?;
    if let Some(r) = records.iter().find(|r| {
        r.lazy.is_some()
            && missing.iter().any(|m| {
                *m == r.reference
                    || normalised_name(m).is_ok_and(|n| n.as_ref() == Some(&r.reference))
            })
    }) {
        return Err(EngineError::Usage(format!(
            "{} is being filled by the lazy mount at {}; it is tagged once complete (`{} ls --wait`), then rmi can remove it; `{} umount {}` stops the fill",
            r.reference,
            r.target.display(),
            store.command(),
            store.command(),
            crate::shell_word(&r.target)
        )));
    }
    if !missing.is_empty() {
        // All or nothing, and said so: a user who listed several names must not have to guess
        // which of them went (s10 fresh-eyes pass).
        let (what, others) = match (missing.len(), names.len() > missing.len()) {
            (1, true) => (
                "is not in the store",
                "; nothing was removed, the others included",
            ),
            (1, false) => ("is not in the store", ""),
            (_, true) => (
                "are not in the store",
                "; nothing was removed, the others included",
            ),
            (_, false) => ("are not in the store", ""),
        };
        return Err(EngineError::NotFound(format!(
            "{} {what}{others}; `{} images` lists what is",
            missing.join(", "),
            store.command()
        )));
    }
    let mut out = Vec::new();
    for name in resolved {
        let Some(d) = store.untag(&name)? else {
            // Removed meanwhile by another process, or named twice: the wish holds.
            continue;
        };
        let still_mounted = mounted_from(&records, &d.digest);
        out.push(Untagged {
            reference: name,
            manifest_digest: d.digest,
            still_mounted,
        });
    }
    Ok(out)
}

/// The store's name for what the user typed; `None` when the store does not hold it.
fn stored_name(store: &Store, name: &str) -> Result<Option<String>> {
    if store.resolve(name)?.is_some() {
        return Ok(Some(name.to_string()));
    }
    if let Some(n) = normalised_name(name)?
        && store.resolve(&n)?.is_some()
    {
        return Ok(Some(n));
    }
    Ok(None)
}

/// The name a pull of `name` stores under (`host/repo` as `host/repo:latest`, an `oci:` layout
/// by its canonical path); `None` for a layout path that cannot be resolved.
///
/// Errors: [`EngineError::Usage`] when `name` is no reference at all: a typo, said as such.
fn normalised_name(name: &str) -> Result<Option<String>> {
    Ok(match Target::parse(name)? {
        Target::Registry(r) => Some(r.to_string()),
        Target::Layout { path, tag } => crate::import::layout_name(&path, &tag).ok(),
    })
}
