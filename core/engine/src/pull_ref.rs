//! `pull REF [--verify] [--mount DIR]`: a registry pull or an OCI layout import into the store,
//! then the optional check of what arrived and the optional mount, as one use case. The CLI
//! prepares the mount point (before any byte is fetched) and renders the outcome.

use std::path::Path;
use std::sync::Arc;

use fspack_registry::ClientOptions;
use fspack_store::Store;

use crate::error::{ErrorKind, Result, ResultExt, kinds};
use crate::mount::{MountPoint, MountSettings};
use crate::pull::{PullReport, PullSettings, pull};
use crate::report::Reporter;
use crate::target::Target;
use crate::verify::{BlobStatus, Scope, VerifyReport, VerifySettings, verify};

/// What `pull_ref` needs besides the store and the target.
#[derive(Debug, Clone)]
pub struct PullRefSettings {
    /// Trust checks and fetch concurrency.
    pub pull: PullSettings,
    /// Options of the registry client (for a registry target only).
    pub client: ClientOptions,
    /// Check every pulled blob against its digest and chunk index afterwards (repairing from the
    /// registry; a layout has nothing to repair from).
    pub verify: bool,
    /// Mount options, used when a mount point is given.
    pub mount: MountSettings,
}

/// What `pull_ref` did.
#[derive(Debug)]
pub struct Pulled {
    /// The pull (or import); `mounted_at` is set when mounted.
    pub report: PullReport,
    /// The check's report, when asked. A report with bad blobs means nothing was mounted.
    pub verified: Option<VerifyReport>,
}

/// Pulls `target` (`reference` as the user typed it, for messages) into `store`; with
/// `settings.verify` checks it; with `mount` (the directory as the user named it, and its
/// prepared mount point) mounts it unless the check found bad blobs. Every failure, and a check
/// that found bad blobs, removes the directories the mount point created.
///
/// Errors: "failed to pull REF" over the pull's or import's error; "pulled REF but could not
/// verify it"; "pulled REF but could not mount it on DIR".
pub async fn pull_ref(
    store: &Arc<Store>,
    reference: &str,
    target: &Target,
    mount: Option<(&Path, MountPoint)>,
    settings: &PullRefSettings,
    reporter: Arc<dyn Reporter>,
) -> Result<Pulled> {
    let (dir, point) = match mount {
        Some((dir, point)) => (Some(dir), Some(point)),
        None => (None, None),
    };
    let discard = |point: Option<MountPoint>| {
        if let Some(point) = point {
            point.discard();
        }
    };
    let mut client = None;
    let pulled = fetch(store, target, settings, &mut client, reporter).await;
    let mut report = match pulled {
        Ok(p) => p,
        Err(e) => {
            discard(point);
            let mut what = format!("failed to pull {reference}");
            // Offline with the image already here: say that it mounts without the registry
            // (s12 fresh-eyes pass: the pull exited 5 and said nothing of the stored copy).
            if e.kind() == ErrorKind::Registry(kinds::Registry::Network)
                && let Target::Registry(r) = target
                && store.resolve(&r.to_string()).ok().flatten().is_some()
            {
                what.push_str(&format!(
                    "\nhint: {r} is in the store from an earlier pull; `{} mount {r} DIR` mounts that copy without the registry",
                    store.command()
                ));
            }
            return Err(e.context(what));
        }
    };
    let mut verified = None;
    if settings.verify {
        // A layout is verified without repair: there is no registry to fetch good bytes from.
        let checked = verify(
            store,
            &Scope::Refs(vec![report.reference.clone()]),
            &VerifySettings {
                repair: client.is_some(),
                ranges: settings.pull.ranges,
            },
            client.as_ref(),
        )
        .await
        .context_with(|| format!("pulled {reference} but could not verify it"));
        let checked = match checked {
            Ok(c) => c,
            Err(e) => {
                discard(point);
                return Err(e);
            }
        };
        // A repair is part of what this pull fetched: its bytes count in the pull's report.
        for b in checked
            .blobs
            .iter()
            .filter(|b| b.status == BlobStatus::Repaired)
        {
            report.blobs_repaired += 1;
            report.bytes_received += b.bytes_received;
            if let Some(l) = report.layers.iter_mut().find(|l| l.digest == b.digest) {
                l.bytes_received += b.bytes_received;
            }
        }
        let bad = checked.bad > 0;
        verified = Some(checked);
        if bad {
            discard(point);
            return Ok(Pulled { report, verified });
        }
    }
    if let (Some(dir), Some(point)) = (dir, point) {
        // The canonical mount point, as `ls` and `images` show it, whatever the command line said.
        let at = point.path().to_path_buf();
        report.notes = crate::mount_ref::mount_stored(
            store,
            &report.reference,
            &report.manifest_digest,
            point,
            &settings.mount,
        )
        .await
        .context_with(|| {
            format!(
                "pulled {reference} but could not mount it on {}",
                dir.display()
            )
        })?;
        report.mounted_at = Some(at);
    }
    Ok(Pulled { report, verified })
}

/// The pull or import itself; sets `client` for a registry target (the check repairs with it).
async fn fetch(
    store: &Arc<Store>,
    target: &Target,
    settings: &PullRefSettings,
    client: &mut Option<fspack_registry::Client>,
    reporter: Arc<dyn Reporter>,
) -> Result<PullReport> {
    Ok(match target {
        Target::Registry(r) => {
            let c = client.insert(crate::open::client(settings.client.clone())?);
            pull(c, r, store.clone(), &settings.pull, reporter).await?.0
        }
        Target::Layout { path, tag } => {
            let (s, path, tag) = (store.clone(), path.clone(), tag.clone());
            let trust = settings.pull.trust.clone();
            tokio::task::spawn_blocking(move || {
                crate::import::import(&path, &tag, &s, &trust, reporter)
            })
            .await
            .expect("no panic")?
        }
    })
}
