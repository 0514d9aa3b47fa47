//! `fspack mount`, `umount`, `ls`: attach verified blobs from the store and mount them read-only.
//!
//! Only committed blobs (size and sha256 checked) are ever mounted, and only after their magic
//! bytes confirm the format the manifest claims and a userspace walk of their metadata
//! ([`fspack_image::check`], issue 12) found nothing malformed. EROFS mounts file-backed where
//! the kernel can (Linux 6.12+; measured faster than loop devices for many-file trees) and
//! falls back to read-only autoclear loop devices; SquashFS always uses loop devices, and
//! several shards are stacked read-only with overlayfs. Every mount is recorded in the store so
//! `umount` can release everything, also after a crash.

use std::path::{Path, PathBuf};

use fspack_digest::Digest;
use fspack_image::detect::{Format, detect_reader};
use fspack_mount::{LoopDevice, LoopOptions, MountOptions};
use fspack_store::{MountRecord, Store};

use crate::artifact::*;
use crate::error::{EngineError, Result};
use crate::plan::MountPlan;

/// How EROFS images are attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MountMode {
    /// File-backed where supported, loop devices otherwise.
    #[default]
    Auto,
    /// File-backed only.
    File,
    /// Loop devices only.
    Loop,
}

/// Settings of a mount.
#[derive(Debug, Clone, Default)]
pub struct MountSettings {
    /// Add `noexec`.
    pub noexec: bool,
    /// EROFS attachment mode.
    pub mode: MountMode,
}

/// A checked mount point: an existing directory, or one fspack created for this mount.
///
/// Made before anything is fetched, so a bad target fails in a second instead of after a
/// download (issue 11). A missing directory is created as `mount --mkdir` does (mode 0755,
/// parents included) and remembered, so `umount` and a failed mount remove it again.
#[derive(Debug)]
pub struct MountPoint {
    path: PathBuf,
    created: Vec<PathBuf>,
    /// The store's note of `created` until a mount record carries them
    /// ([`Store::record_pending_dirs`]); removed by [`MountPoint::discard`].
    marker: Option<PathBuf>,
    /// The mount point's lock ([`Store::try_lock_mount_point`]), held until the mount is
    /// recorded or given up.
    _lock: std::fs::File,
}

impl MountPoint {
    /// Checks `target` and creates it when missing.
    ///
    /// Errors: [`EngineError::Usage`] when `target` (or a parent) exists but is not a directory,
    /// or is already an fspack mount; [`EngineError::Io`] when it cannot be created.
    pub fn prepare(store: &Store, target: &Path) -> Result<MountPoint> {
        let not_dir = |p: &Path, what: &str| {
            EngineError::Usage(format!(
                "mount point {} is {what}, not a directory\nhint: name a directory (fspack creates a missing one)",
                p.display()
            ))
        };
        let mut created = Vec::new();
        let mut missing = Vec::new();
        let mut probe = absolute(target);
        loop {
            match std::fs::metadata(&probe) {
                Ok(m) if m.is_dir() => break,
                Ok(m) => {
                    let what = if m.is_file() {
                        "a regular file"
                    } else {
                        "a special file"
                    };
                    return Err(not_dir(&probe, what));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    missing.push(probe.clone());
                    if !probe.pop() {
                        break;
                    }
                }
                Err(e) if e.raw_os_error() == Some(ENOTDIR) => {
                    return Err(not_dir(target, "below a file"));
                }
                Err(e) => return Err(EngineError::io(&probe, e)),
            }
        }
        for dir in missing.iter().rev() {
            use std::os::unix::fs::DirBuilderExt;
            match std::fs::DirBuilder::new().mode(0o755).create(dir) {
                Ok(()) => created.push(dir.clone()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {}
                // A missing mount point under a read-only mount (another image, say) is a
                // choice of directory to change, not a failure of fspack (s10 fresh-eyes pass).
                Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
                    remove_created(&created);
                    return Err(EngineError::Usage(format!(
                        "cannot create the mount point {}: {} is on a read-only file system\nhint: choose a mount point on a writable file system, or a directory that already exists there",
                        target.display(),
                        dir.parent().unwrap_or(dir).display()
                    )));
                }
                Err(e) => {
                    remove_created(&created);
                    return Err(EngineError::io(dir, e));
                }
            }
        }
        created.reverse();
        let path = match std::fs::canonicalize(target) {
            Ok(p) => p,
            Err(e) => {
                remove_created(&created);
                return Err(EngineError::io(target, e));
            }
        };
        // A mount on the store, inside it or above it would hide the store, and with it the
        // record that lets `umount` undo the mount (s10 fresh-eyes pass: a stuck mount).
        if let Err(e) = refuse_over_store(store, &path) {
            remove_created(&created);
            return Err(e);
        }
        let lock = match store.try_lock_mount_point(&path) {
            Ok(Some(lock)) => lock,
            Ok(None) => {
                // Directories this run created stay: the other command may be about to mount
                // on them (at worst an empty directory is left when both created a part).
                return Err(EngineError::Usage(format!(
                    "another fspack command is mounting on {} now\nhint: wait for it to finish, then see `{} ls`",
                    path.display(),
                    store.command()
                )));
            }
            Err(e) => {
                remove_created(&created);
                return Err(e.into());
            }
        };
        // A run killed between creating the directories and recording its mount left a note:
        // they are still fspack's to remove, so this run takes them over.
        if created.is_empty() {
            let pending = store.pending_dirs(&path);
            if pending.first() == Some(&path) {
                created = pending.into_iter().filter(|d| d.is_dir()).collect();
            }
        }
        let marker = match created.is_empty() {
            true => None,
            false => match store.record_pending_dirs(&path, &created) {
                Ok(m) => Some(m),
                Err(e) => {
                    remove_created(&created);
                    return Err(e.into());
                }
            },
        };
        let mut point = MountPoint {
            path,
            created,
            marker,
            _lock: lock,
        };
        if let Some(rec) = store
            .mount_records()?
            .into_iter()
            .find(|r| r.target == point.path)
        {
            let live = fspack_mount::mountinfo()?
                .iter()
                .any(|m| m.mount_point == point.path);
            if live {
                let p = point.path.clone();
                point.discard();
                return Err(EngineError::Usage(format!(
                    "{} is already an fspack mount; run `{} umount {}` first",
                    p.display(),
                    store.command(),
                    fspack_store::shell_word(&p)
                )));
            }
            // Unmounted behind fspack's back (umount(8)): release what is left and take the
            // mount point over, with the directories fspack made for it.
            release(store, &rec)?;
            point.created.extend(rec.created_dirs);
        }
        Ok(point)
    }

    /// The canonical mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Directories created for this mount point, innermost first.
    pub fn created(&self) -> &[PathBuf] {
        &self.created
    }

    /// Removes the directories this mount point created (after a failed pull or mount).
    pub fn discard(self) {
        remove_created(&self.created);
        if let Some(m) = &self.marker
            && let Err(e) = std::fs::remove_file(m)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("left {} in place: {e}", m.display());
        }
    }
}

/// Removes directories fspack created, innermost first, stopping at the first that is not
/// empty (someone put something there: it is theirs now) or is mounted on.
pub fn remove_created(dirs: &[PathBuf]) {
    for d in dirs {
        if let Err(e) = std::fs::remove_dir(d)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("left {} in place: {e}", d.display());
            return;
        }
    }
}

/// `FSPACK_TEST_HOLD_MOUNT_MS`: a pause after a mount is recorded, so tests can interrupt a
/// command whose mount is made but not yet reported.
fn hold_for_tests() {
    if let Some(ms) = std::env::var("FSPACK_TEST_HOLD_MOUNT_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Unmounts what `record` describes (the mount point, then the mounts stacked under it) for a
/// mount whose record could not be written; loop devices detach with their last unmount
/// (autoclear). Failures are logged: the caller is already returning the record's error.
fn unmount_unrecorded(record: &MountRecord) {
    let targets = std::iter::once(&record.target).chain(record.lower_mounts.iter().rev());
    for t in targets {
        if let Err(e) = fspack_mount::unmount(t, true) {
            tracing::warn!("left {} mounted: {e}", t.display());
        }
    }
}

/// Taken by a mount from its first loop device to its record, and by [`abandon`].
static MOUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Undoes what an interrupted `mount` or `pull --mount` (report item 24) left on `target`, for a
/// process about to exit: waits for a mount under way to finish (or to fail and clean up after
/// itself), unmounts it when it was made (loop devices, lower mounts and a lazy server go with
/// it, as with `fspack umount`), then removes the directories in `created`. Any later mount of
/// this process blocks for good: it must exit after this returns.
///
/// Returns false when it had to leave the mount in place, for the one line the interrupted
/// command prints (s12 fresh-eyes pass: an interrupted `mount` printed a blank line where `pull`
/// says what is kept). Failures are logged as warnings: there is no one left to return them to.
pub fn abandon(store: &Store, target: &Path, created: &[PathBuf]) -> bool {
    std::mem::forget(MOUNTING.lock().unwrap_or_else(|e| e.into_inner()));
    let recorded = store
        .mount_records()
        .is_ok_and(|rs| rs.iter().any(|r| r.target == target));
    if recorded && let Err(e) = crate::mounts::umount(store, target) {
        tracing::warn!("left {} mounted: {e}", target.display());
        return false;
    }
    remove_created(created);
    store.forget_pending_dirs(target);
    true
}

/// Refuses a mount point `path` (canonical) that is the store's root, lies inside the store, or
/// holds the store below it: the mount would hide the store's blobs and mount records.
///
/// Errors: [`EngineError::Usage`] naming both paths.
fn refuse_over_store(store: &Store, path: &Path) -> Result<()> {
    let root = std::fs::canonicalize(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
    let how = if path == root {
        "is the fspack store"
    } else if path.starts_with(&root) {
        "lies inside the fspack store"
    } else if root.starts_with(path) {
        "holds the fspack store"
    } else {
        return Ok(());
    };
    Err(EngineError::Usage(format!(
        "cannot mount on {}: it {how} ({}), which the mount would hide\nhint: choose a mount point outside {}, or use another store with `--store DIR`",
        path.display(),
        root.display(),
        root.display()
    )))
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Linux `ENOTDIR`.
const ENOTDIR: i32 = 20;

/// Mounts the manifest `digest` (already in `store`) on `target`, creating a missing `target`
/// (see [`MountPoint::prepare`]) and removing it again when the mount fails.
pub fn mount(
    store: &Store,
    reference: &str,
    digest: &Digest,
    target: &Path,
    settings: &MountSettings,
) -> Result<MountRecord> {
    let mut notes = Vec::new();
    let record = mount_noted(store, reference, digest, target, settings, &mut notes)?;
    for n in notes {
        tracing::info!("{n}");
    }
    Ok(record)
}

/// [`mount`], adding to `notes` what the user should hear about (a compressed model layer
/// expanded into the store, issue 15).
pub fn mount_noted(
    store: &Store,
    reference: &str,
    digest: &Digest,
    target: &Path,
    settings: &MountSettings,
    notes: &mut Vec<String>,
) -> Result<MountRecord> {
    let point = MountPoint::prepare(store, target)?;
    mount_at(store, reference, digest, point, settings, notes)
}

/// Mounts the manifest `digest` (already in `store`) on a prepared mount point; a failed mount
/// removes the directories the mount point created. Notes for the user go to `notes`.
pub fn mount_at(
    store: &Store,
    reference: &str,
    digest: &Digest,
    point: MountPoint,
    settings: &MountSettings,
    notes: &mut Vec<String>,
) -> Result<MountRecord> {
    mount_from(
        store,
        reference,
        digest,
        point,
        settings,
        notes,
        &Source::Store,
    )
}

/// Where the blobs of a mount are read from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// Committed blobs in the store only.
    Store,
    /// Committed blobs from the store, the others from a lazy server's FUSE directory, always
    /// through loop devices (which a finished blob's device is switched away from, issue 10).
    Lazy {
        /// The server's FUSE mount point, one file per blob named by its hex digest.
        fuse_dir: PathBuf,
        /// What the record says about the server.
        record: fspack_store::LazyRecord,
    },
}

pub(crate) fn mount_from(
    store: &Store,
    reference: &str,
    digest: &Digest,
    point: MountPoint,
    settings: &MountSettings,
    notes: &mut Vec<String>,
    source: &Source,
) -> Result<MountRecord> {
    // Held until the record is written: an interrupt waits here for a mount under way, so it
    // finds the mount recorded or not started (see [`abandon`]).
    let _busy = MOUNTING.lock().unwrap_or_else(|e| e.into_inner());
    let created = point.created.clone();
    match mount_inner(store, reference, digest, &point, settings, notes, source) {
        Ok(mut record) => {
            record.created_dirs = created;
            if let Source::Lazy { record: lazy, .. } = source {
                record.lazy = Some(lazy.clone());
            }
            // Recorded after the mount succeeded; a crash in between leaves a mount that
            // `umount` still finds through the mount table (its source lies in the store).
            // A record that cannot be written undoes the mount: without it, nothing would.
            if let Err(e) = store.record_mount(&record) {
                unmount_unrecorded(&record);
                point.discard();
                return Err(e.into());
            }
            drop(_busy);
            hold_for_tests();
            Ok(record)
        }
        Err(e) => {
            point.discard();
            Err(e)
        }
    }
}

fn mount_inner(
    store: &Store,
    reference: &str,
    digest: &Digest,
    point: &MountPoint,
    settings: &MountSettings,
    notes: &mut Vec<String>,
    source: &Source,
) -> Result<MountRecord> {
    let bytes = store.read_blob(digest, MAX_MANIFEST)?;
    let manifest = parse_manifest(&bytes, reference)?;
    let plan = MountPlan::from_manifest(&manifest, reference)?;
    let target = point.path.clone();
    let mut record = MountRecord {
        target: target.clone(),
        reference: reference.to_string(),
        manifest_digest: digest.clone(),
        format: plan.format().to_string(),
        blobs: plan.blobs().iter().map(|d| d.digest.clone()).collect(),
        loop_devices: Vec::new(),
        lower_mounts: Vec::new(),
        created_dirs: Vec::new(),
        lazy: None,
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let m = PlanMount {
        store,
        reference,
        settings,
        source,
        target,
        opts: MountOptions {
            noexec: settings.noexec,
        },
    };
    match &plan {
        MountPlan::Erofs { primary, devices } => m.erofs(primary, devices, &mut record)?,
        MountPlan::Model(model) => m.model(model, notes, &mut record)?,
        MountPlan::Squashfs { shards } => m.squashfs(shards, &mut record)?,
    }
    Ok(record)
}

/// One mount of a plan's blobs on `target`, each format's way, from `source`.
struct PlanMount<'a> {
    store: &'a Store,
    reference: &'a str,
    settings: &'a MountSettings,
    source: &'a Source,
    target: PathBuf,
    opts: MountOptions,
}

impl PlanMount<'_> {
    /// Where blob `d` is read from: the store, or for a lazy mount the server's FUSE file
    /// while the store lacks it.
    ///
    /// Errors: [`EngineError::NotFound`] when the store lacks it and no server serves it.
    fn path_of(&self, d: &Descriptor) -> Result<PathBuf> {
        let store = self.store;
        let p = store.blob_path(&d.digest);
        if let Source::Lazy { fuse_dir, .. } = self.source
            && !store.has_blob(&d.digest)
        {
            return Ok(fuse_dir.join(served_file_name(&d.digest)));
        }
        if !store.has_blob(&d.digest) {
            return Err(EngineError::NotFound(format!(
                "blob {} of {} is not in the store",
                d.digest, self.reference
            )));
        }
        Ok(p)
    }

    /// An EROFS image with its devices, each checked to be the blob the image was built with,
    /// and the metadata walked before the kernel sees it.
    fn erofs(
        &self,
        primary: &Descriptor,
        descriptors: &[Descriptor],
        record: &mut MountRecord,
    ) -> Result<()> {
        let reference = self.reference;
        if !descriptors.is_empty() {
            // The metadata image of a chunked layout is small (inodes, directories, chunk
            // indexes) and says where every byte comes from: it is hashed again before each
            // mount, so a copy damaged on disk since its pull is refused, not mounted (s9
            // fresh-eyes pass: one flipped byte showed "jello" for "hello"). Data devices and
            // single-layout images are whole-model sized; `fspack verify` checks those.
            self.store.check_blob(&primary.digest)?;
        }
        let primary = self.path_of(primary)?;
        check_format(&primary, Format::Erofs)?;
        let devices: Vec<PathBuf> = descriptors
            .iter()
            .map(|d| self.path_of(d))
            .collect::<Result<_>>()?;
        // The kernel pairs an image with whatever devices it is given; fspack checks that
        // each blob is the one the image was built with (issue 13).
        let pairs: Vec<(PathBuf, Digest)> = devices
            .iter()
            .cloned()
            .zip(descriptors.iter().map(|d| d.digest.clone()))
            .collect();
        fspack_image::erofs::check_devices(&primary, &pairs)?;
        // Issue 12: the kernel parses only what this walk accepted.
        let seen = fspack_image::check::check_erofs(&primary, &devices)?;
        tracing::info!(reference, ?seen, "EROFS metadata checked before mount");
        // A lazy device must be a loop device: only those can be switched to the store.
        let mode = match self.source {
            Source::Lazy { .. } => MountMode::Loop,
            Source::Store => self.settings.mode,
        };
        mount_erofs(&primary, &devices, &self.target, &self.opts, mode, record)
    }

    /// A model artifact through its mapped EROFS view (issue 15); the view's notes go to
    /// `notes`, its metadata image and mapped blobs into the record.
    ///
    /// Errors: [`EngineError::Usage`] for `--mount-mode loop` on a view read from the store.
    fn model(
        &self,
        model: &crate::modelpack::ModelPlan,
        notes: &mut Vec<String>,
        record: &mut MountRecord,
    ) -> Result<()> {
        let (target, opts) = (&self.target, &self.opts);
        let fuse = match self.source {
            Source::Lazy { fuse_dir, .. } => Some(fuse_dir.as_path()),
            Source::Store => None,
        };
        let view = crate::modelpack::build_view(self.store, model, self.reference, fuse)?;
        notes.extend(view.notes.iter().cloned());
        let primary = self.store.blob_path(&view.meta_digest);
        check_format(&primary, Format::Erofs)?;
        let devices: Vec<PathBuf> = view.devices.iter().map(|d| d.1.clone()).collect();
        if fuse.is_some() {
            // Lazy: loop devices (switched to the store when complete, issue 10) with the
            // image's block size, 512 bytes when tar members are mapped.
            mount_erofs_loop(
                &primary,
                &devices,
                target,
                opts,
                view.block_size as u32,
                record,
            )?;
        } else {
            // A mapped image may use 512-byte blocks, which the 4 KiB loop devices fspack
            // attaches cannot carry; file-backed mounts (Linux 6.12+) take any block size.
            if self.settings.mode == MountMode::Loop {
                return Err(EngineError::Usage(format!(
                    "{} is a {} artifact, mounted file-backed only (Linux 6.12+); drop --mount-mode loop",
                    self.reference,
                    model.flavor.name()
                )));
            }
            mount_erofs(&primary, &devices, target, opts, MountMode::File, record)?;
        }
        for (digest, _) in &view.devices {
            if !record.blobs.contains(digest) {
                record.blobs.push(digest.clone());
            }
        }
        record.blobs.push(view.meta_digest.clone());
        Ok(())
    }

    /// SquashFS shards, each walked before the kernel sees it, stacked with overlayfs when
    /// there are several.
    ///
    /// Errors: [`EngineError::Usage`] for `--mount-mode file`, which the kernel's SquashFS
    /// cannot honour (it mounts block devices only; file-backed mounts are EROFS's, Linux 6.12):
    /// the flag was silently ignored before (s12 fresh-eyes pass).
    fn squashfs(&self, shards: &[Descriptor], record: &mut MountRecord) -> Result<()> {
        let reference = self.reference;
        if self.settings.mode == MountMode::File {
            return Err(EngineError::Usage(format!(
                "{reference} is a SquashFS artifact, which the kernel mounts from loop devices only; drop --mount-mode file (it is in the store now: `{} mount {reference} DIR`)",
                self.store.command()
            )));
        }
        let paths: Vec<PathBuf> = shards
            .iter()
            .map(|d| self.path_of(d))
            .collect::<Result<_>>()?;
        for p in &paths {
            check_format(p, Format::Squashfs)?;
            let seen = fspack_image::check::check_squashfs(p)?;
            tracing::info!(reference, ?seen, "SquashFS metadata checked before mount");
        }
        mount_squashfs(self.store, &paths, &self.target, &self.opts, record)
    }
}

/// Checks that the blob at `p` is the `want` image its media type says it is.
///
/// Errors: [`EngineError::Integrity`] when its magic bytes say otherwise.
fn check_format(p: &Path, want: Format) -> Result<()> {
    let f = std::fs::File::open(p).map_err(|e| EngineError::io(p, e))?;
    match detect_reader(f).map_err(|e| EngineError::io(p, e))? {
        Some(got) if got == want => Ok(()),
        got => Err(EngineError::Integrity(format!(
            "blob {} is labelled {} but its bytes are {}; refusing to mount it",
            p.display(),
            want.name(),
            got.map_or("not a known filesystem image", |f| f.name())
        ))),
    }
}

fn loop_opts() -> LoopOptions {
    // Buffered: direct I/O measured slower for many-file trees here (issue #5 numbers).
    LoopOptions {
        direct_io: false,
        block_size: 4096,
    }
}

/// Mounts EROFS from read-only loop devices of `block_size`-byte sectors (a mapped model image
/// may use 512-byte blocks, which 4 KiB sectors cannot carry).
fn mount_erofs_loop(
    primary: &Path,
    devices: &[PathBuf],
    target: &Path,
    opts: &MountOptions,
    block_size: u32,
    record: &mut MountRecord,
) -> Result<()> {
    let lo = LoopOptions {
        block_size,
        ..loop_opts()
    };
    let main = LoopDevice::attach(primary, lo)?;
    let extra: Vec<LoopDevice> = devices
        .iter()
        .map(|d| LoopDevice::attach(d, lo))
        .collect::<std::result::Result<_, _>>()?;
    let extra_paths: Vec<PathBuf> = extra.iter().map(|l| l.path().to_path_buf()).collect();
    fspack_mount::mount_erofs(main.path(), &extra_paths, target, opts)?;
    record.loop_devices.push(main.path().to_path_buf());
    record.loop_devices.extend(extra_paths);
    Ok(())
}

fn mount_erofs(
    primary: &Path,
    devices: &[PathBuf],
    target: &Path,
    opts: &MountOptions,
    mode: MountMode,
    record: &mut MountRecord,
) -> Result<()> {
    if mode != MountMode::Loop {
        match fspack_mount::mount_erofs(primary, devices, target, opts) {
            Ok(()) => return Ok(()),
            Err(e) if mode == MountMode::Auto && e.is_not_block_device() => {
                tracing::info!("file-backed EROFS mount unsupported ({e}); using loop devices");
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Dropping the guards closes our fds; autoclear detaches the devices when the mount goes.
    mount_erofs_loop(primary, devices, target, opts, 4096, record)
}

fn mount_squashfs(
    store: &Store,
    shards: &[PathBuf],
    target: &Path,
    opts: &MountOptions,
    record: &mut MountRecord,
) -> Result<()> {
    if let [single] = shards {
        let dev = LoopDevice::attach(single, loop_opts())?;
        fspack_mount::mount_squashfs(dev.path(), target, opts)?;
        record.loop_devices.push(dev.path().to_path_buf());
        return Ok(());
    }
    // Detached lower mounts first: then the overlay is the only thing holding them, and a
    // plain umount(8) of the target releases every shard and loop device (issue 11).
    let devs: Vec<LoopDevice> = shards
        .iter()
        .map(|s| LoopDevice::attach(s, loop_opts()))
        .collect::<std::result::Result<_, _>>()?;
    let dev_paths: Vec<PathBuf> = devs.iter().map(|d| d.path().to_path_buf()).collect();
    match fspack_mount::mount_squashfs_stack(&dev_paths, target, opts) {
        Ok(()) => {
            record.loop_devices = dev_paths;
            return Ok(());
        }
        Err(fspack_mount::StackError::Mount(e)) => return Err(e.into()),
        Err(fspack_mount::StackError::Unsupported(e)) => {
            tracing::info!(
                "this kernel does not stack detached mounts ({e}); mounting shards under the store"
            );
        }
    }
    drop(devs);
    // Fallback (kernels before 6.15): attached lower mounts under the store. A plain umount(8)
    // of the target leaves them behind; `fspack ls` shows them and `fspack gc` releases them.
    let base = store.lower_mounts_dir(target);
    let mut lowers: Vec<PathBuf> = Vec::new();
    let undo = |lowers: &[PathBuf]| {
        for l in lowers.iter().rev() {
            let _ = fspack_mount::unmount(l, true);
        }
    };
    for (i, shard) in shards.iter().enumerate() {
        let dir = base.join(format!("{i:03}"));
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io(&dir, e))?;
        let dev = LoopDevice::attach(shard, loop_opts()).inspect_err(|_| undo(&lowers))?;
        if let Err(e) = fspack_mount::mount_squashfs(dev.path(), &dir, opts) {
            undo(&lowers);
            return Err(e.into());
        }
        record.loop_devices.push(dev.path().to_path_buf());
        lowers.push(dir);
    }
    // overlayfs lists the top layer first; shards are stored lowest first.
    let top_first: Vec<PathBuf> = lowers.iter().rev().cloned().collect();
    if let Err(e) = fspack_mount::mount_overlay_ro(&top_first, target, opts) {
        undo(&lowers);
        return Err(e.into());
    }
    record.lower_mounts = lowers;
    Ok(())
}

/// Unmounts the lower mounts of an unmounted record that are still attached, and forgets it.
pub(crate) fn release(store: &Store, rec: &MountRecord) -> Result<()> {
    let live = fspack_mount::mountinfo()?;
    for l in rec.lower_mounts.iter().rev() {
        if live.iter().any(|m| &m.mount_point == l) {
            fspack_mount::unmount(l, true)?;
        }
    }
    if let Some(lazy) = &rec.lazy {
        crate::lazy_process::stop_server(lazy);
    }
    Ok(store.remove_mount_record(&rec.target)?)
}
