//! `mount REF DIR` and `pull REF --mount DIR`: mount what the store holds under a reference,
//! pulling it from the registry or copying it from an OCI layout first when it is missing, or
//! mounting it lazily (issue 10). The CLI prepares the mount point and renders the outcome; the
//! decisions (which name in the store, whether trust is checked again, lazy or not) live here.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;

use fspack_digest::Digest;
use fspack_registry::{ClientOptions, Reference};
use fspack_store::Store;

use crate::error::{Result, ResultExt};
use crate::lazy::{LazyReport, LazySettings};
use crate::mount::{MountPoint, MountSettings};
use crate::pull::{PullSettings, pull};
use crate::report::Reporter;
use crate::target::Target;

/// Checks that this process may attach loop devices and mount (`CAP_SYS_ADMIN` and
/// `/dev/loop-control`); the error names everything that is missing.
pub use fspack_mount::privileges;

/// What mounting a reference needs besides the store and the mount point.
#[derive(Debug, Clone)]
pub struct MountRefSettings {
    /// Trust checks and fetch concurrency of a pull, when the reference must be fetched.
    pub pull: PullSettings,
    /// Mount options.
    pub mount: MountSettings,
    /// Options of the registry client, built only when the registry is needed.
    pub client: ClientOptions,
    /// `Some(command that starts a lazy server)` to mount a registry reference lazily when the
    /// store does not hold it complete; `None` for an eager mount.
    pub lazy: Option<Vec<OsString>>,
}

/// What was mounted.
#[derive(Debug, Clone)]
pub enum Mounted {
    /// The complete artifact in the store, mounted.
    Eager {
        /// The store's name of the artifact.
        name: String,
        /// Its manifest digest.
        digest: Digest,
        /// Notes for the user (a fallback taken, a model layer expanded).
        notes: Vec<String>,
        /// The signature and policy rules the manifest passed before the mount, one line each
        /// (issue 12); empty when none is configured.
        trust_checks: Vec<String>,
    },
    /// A lazy mount: data arrives on first read and in the background.
    Lazy {
        /// The reference as mounted (normalised, with its tag).
        name: String,
        /// What the lazy mount did.
        report: LazyReport,
    },
}

/// Mounts `reference` on `point`: the store's copy (a name as tagged in the store comes first
/// unless trust checks apply), else the registry's or the layout's, fetched into the store first,
/// or mounted lazily when `settings.lazy` says so. A failure removes the directories `point`
/// created. `dir` is the mount point as the user named it, for messages.
///
/// Errors: a usage error for a reference that does not parse; "refusing to mount NAME" over a
/// trust refusal of a stored artifact; "NAME is not in the store and pulling it failed" and
/// "cannot copy REF into the store" over fetch errors; "failed to mount NAME on DIR" over mount
/// errors; the lazy mount's errors (see [`mount_lazily`]).
pub async fn mount_ref(
    store: &Arc<Store>,
    reference: &str,
    dir: &Path,
    point: MountPoint,
    settings: &MountRefSettings,
    reporter: Arc<dyn Reporter>,
) -> Result<Mounted> {
    if let Some(server) = &settings.lazy {
        let trust = &settings.pull.trust;
        let in_store = trust.is_empty() && store.resolve(reference)?.is_some()
            || store
                .resolve(&crate::open::store_name(reference))?
                .is_some();
        if let (false, Target::Registry(r)) = (in_store, Target::parse(reference)?) {
            let lazy = LazySettings {
                pull: settings.pull.clone(),
                mount: settings.mount.clone(),
                client: settings.client.clone(),
                server: server.clone(),
            };
            let report = mount_lazily(store, &r, dir, point, &lazy, reporter).await?;
            return Ok(Mounted::Lazy {
                name: r.to_string(),
                report,
            });
        }
    }
    let (name, digest, trust_checks) = match resolve(store, reference, settings, reporter).await {
        Ok(r) => r,
        Err(e) => {
            point.discard();
            return Err(e);
        }
    };
    let notes = mount_stored(store, &name, &digest, point, &settings.mount)
        .await
        .context_with(|| format!("failed to mount {name} on {}", dir.display()))?;
    Ok(Mounted::Eager {
        name,
        digest,
        notes,
        trust_checks,
    })
}

/// Mounts the manifest `digest`, already in the store under `name`, on `point`; returns the
/// notes for the user. A failed mount removes the directories `point` created.
pub async fn mount_stored(
    store: &Arc<Store>,
    name: &str,
    digest: &Digest,
    point: MountPoint,
    settings: &MountSettings,
) -> Result<Vec<String>> {
    let (s, n, d, settings) = (
        store.clone(),
        name.to_string(),
        digest.clone(),
        settings.clone(),
    );
    tokio::task::spawn_blocking(move || {
        let mut notes = Vec::new();
        crate::mount::mount_at(&s, &n, &d, point, &settings, &mut notes).map(|_| notes)
    })
    .await
    .expect("no panic")
}

/// The store's name and manifest digest of `reference`, pulling or copying it in when missing,
/// and the trust rules it passed.
async fn resolve(
    store: &Arc<Store>,
    reference: &str,
    settings: &MountRefSettings,
    reporter: Arc<dyn Reporter>,
) -> Result<(String, Digest, Vec<String>)> {
    let trust = &settings.pull.trust;
    // A name in the store as it was tagged (what completion offers) comes first, unless keys or
    // a policy apply: those are checked on the reference below. Anything else is a reference,
    // pulled or copied into the store when missing.
    if trust.is_empty()
        && let Some(d) = store.resolve(reference)?
    {
        return Ok((reference.to_string(), d.digest, Vec::new()));
    }
    Ok(match Target::parse(reference)? {
        Target::Registry(r) => {
            let name = r.to_string();
            match store.resolve(&name)? {
                Some(d) => {
                    // Pulled earlier, maybe under another policy: the rules of today apply.
                    let mut passed = Vec::new();
                    if !trust.is_empty() {
                        let client = crate::open::client(settings.client.clone())?;
                        passed = trust
                            .check(&client, &r, &d.digest)
                            .await
                            .context_with(|| format!("refusing to mount {name}"))?
                            .passed;
                    }
                    (name, d.digest, passed)
                }
                None => {
                    let client = crate::open::client(settings.client.clone())?;
                    let (report, _) = pull(&client, &r, store.clone(), &settings.pull, reporter)
                        .await
                        .context_with(|| {
                            format!("{name} is not in the store and pulling it failed")
                        })?;
                    (name, report.manifest_digest, report.trust_checks)
                }
            }
        }
        Target::Layout { path, tag } => {
            // Copied into the store (verified) unless it is there already: see engine::import.
            let name = crate::import::layout_name(&path, &tag)?;
            match store.resolve(&name)? {
                Some(d) => {
                    // Copied earlier, maybe under another policy: the rules of today apply.
                    let passed = crate::import::check_trust(trust, &path, &tag, &d.digest)
                        .context_with(|| format!("refusing to mount {name}"))?;
                    (name, d.digest, passed)
                }
                None => {
                    let (s, trust) = (store.clone(), trust.clone());
                    let report = tokio::task::spawn_blocking(move || {
                        crate::import::import(&path, &tag, &s, &trust, reporter)
                    })
                    .await
                    .expect("no panic")
                    .context_with(|| format!("cannot copy {reference} into the store"))?;
                    (name, report.manifest_digest, report.trust_checks)
                }
            }
        }
    })
}

/// Mounts `r` lazily (issue 10): only the EROFS metadata is fetched before the mount, a server
/// started with `settings.server` fills the rest. A failure before the mount removes the
/// directories `point` created. `dir` is the mount point as the user named it, for messages.
///
/// Errors: "cannot mount REF lazily" over a missing FUSE or loop support; the client's setup
/// error; "failed to mount REF lazily on DIR" over everything else.
pub async fn mount_lazily(
    store: &Arc<Store>,
    r: &Reference,
    dir: &Path,
    point: MountPoint,
    settings: &LazySettings,
    reporter: Arc<dyn Reporter>,
) -> Result<LazyReport> {
    let name = r.to_string();
    if let Err(e) = crate::lazy::backend::detect() {
        point.discard();
        return Err(e.context(format!("cannot mount {name} lazily")));
    }
    let client = match crate::open::client(settings.client.clone()) {
        Ok(c) => c,
        Err(e) => {
            point.discard();
            return Err(e);
        }
    };
    crate::lazy::mount_lazy(&client, r, store.clone(), point, settings, reporter)
        .await
        .context_with(|| format!("failed to mount {name} lazily on {}", dir.display()))
}
