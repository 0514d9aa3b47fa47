//! The local content store: an OCI image layout with verified, atomic commits. It must never
//! know the network, image formats or mount calls: it keeps verified bytes, tags and records.
//!
//! Layout on disk: `oci-layout`, `index.json` and `blobs/sha256/<hex>` (so skopeo and oras read
//! it as is), plus fspack's own `ingest/` (partial downloads and their journals), `locks/` (file
//! locks, released by the kernel when a process dies) and `mounts/` (one record per mount point).
//! A layout the user asks for (`push … oci:DIR`) ends with only what the OCI image-layout spec
//! names: its writer holds the directory's lock and removes those work directories when done.
//!
//! The rule that everything else relies on: a file under `blobs/` has been checked against its
//! size and sha256, written to disk (fsync) and renamed into place. Only those files are mounted.

mod atomic;
mod digest;
mod error;
mod gc;
mod ingest;
mod layout;
mod reader;
mod records;
mod repair;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fspack_digest::Digest;

pub(crate) use atomic::{sync_dir, write_atomic_mode, write_atomic_via};
pub use digest::{digest_hex, parse_digest, sha256_of};
pub use error::{ErrorKind, Result, StoreError};
pub use gc::{DEFAULT_INGEST_TTL, GcReport};
pub use ingest::Ingest;
pub use layout::Descriptor;
pub use reader::LayoutReader;
pub use records::{LazyRecord, MountRecord};
pub use repair::BlobRepair;

/// Name prefix of the mount-point locks in `locks/` ([`Store::try_lock_mount_point`]).
const MOUNT_LOCK_PREFIX: &str = "mount-";

/// Who may read what a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// fspack's own store: root directory 0700, blobs 0400, records 0600; a world-writable or
    /// foreign-owned root is refused (issue 12).
    Private,
    /// An OCI layout the user asked to write (`push … oci:DIR`), meant for other tools too:
    /// blobs 0444, records 0644, the directory's mode left alone.
    Shared,
}

/// A local store rooted at a directory.
///
/// Cheap to clone: clones share one handle (and one `gc` lock, so a `gc` through any clone does
/// not wait for its siblings).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Shared lock on `locks/gc.lock` for as long as this handle lives: `gc` takes it exclusively,
    /// so it never removes a blob that a running pull has committed but not yet tagged.
    gc_guard: Arc<Mutex<Option<File>>>,
    access: Access,
    /// A shared layout's writer: the layout directory locked for this handle's life, its work
    /// directories removed when the last clone drops.
    layout: Option<Arc<LayoutWriter>>,
}

/// The exclusive lock on a shared layout's directory. Writers of one layout take turns, so the
/// lock files, scratch files and index updates of one writer need no other guard, and the
/// writer can remove them before it lets the next one in: a layout handed to another tool or
/// carried to an air-gapped host holds only `oci-layout`, `index.json` and `blobs/`
/// (report s6 item 22; OCI image-layout spec, "Content").
#[derive(Debug)]
struct LayoutWriter {
    root: PathBuf,
    _dir: File,
}

impl LayoutWriter {
    /// Removes fspack's work directories from the layout: lock files always (nobody else can
    /// hold one while we hold the directory), `ingest/` only when empty (a failed copy leaves its
    /// partial blobs there for the next attempt to resume) and `mounts/` only when empty
    /// (layouts made before this cleanup had one).
    fn tidy(&self) {
        let _ = fs::remove_dir_all(self.root.join("locks"));
        let _ = fs::remove_dir(self.root.join("ingest"));
        let _ = fs::remove_dir(self.root.join("mounts"));
    }
}

impl Drop for LayoutWriter {
    fn drop(&mut self) {
        self.tidy();
    }
}

/// Bytes this process may still write on the filesystem holding `dir` (`statvfs`): the blocks
/// free to anyone, and for root also those the filesystem reserves for root (ext4's 5 %).
///
/// Errors: the `statvfs` error, with `dir` named by the caller.
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    let blocks = if rustix::process::geteuid().is_root() {
        st.f_bfree
    } else {
        st.f_bavail
    };
    Ok(blocks.saturating_mul(st.f_frsize))
}

/// What a user can do about a full store at `root`, for the hints of both a write that met
/// ENOSPC and a pull refused before fetching: what the store itself can drop first (an
/// interrupted download keeps its partial blobs for a resume), then the way out.
pub fn full_store_advice(root: &Path) -> String {
    let fspack = command_for(root);
    format!(
        "`{fspack} gc --partial` removes interrupted downloads, `{fspack} rmi REF` then `gc` old images; or free space, or point --store at a larger disk"
    )
}

/// The default store: `/var/lib/fspack` for root, `$XDG_DATA_HOME/fspack` (or
/// `~/.local/share/fspack`) otherwise; `FSPACK_STORE` overrides both.
pub fn default_root() -> PathBuf {
    choose_root(
        std::env::var_os("FSPACK_STORE"),
        rustix::process::geteuid().is_root(),
        std::env::var_os("XDG_DATA_HOME"),
        std::env::var_os("HOME"),
    )
}

/// How a hint should spell an fspack command on the store at `root`: `fspack`, or `fspack
/// --store DIR` when it is not the default store ([`default_root`]), so a command copied from a
/// message acts on the same store (s9 fresh-eyes pass: hints named the default store).
pub fn command_for(root: &Path) -> String {
    if root == default_root() {
        "fspack".to_string()
    } else {
        format!("fspack --store {}", shell_word(root))
    }
}

/// `path` as one POSIX shell word, quoted only when it needs to be (`/mnt/a b` becomes
/// `'/mnt/a b'`), for commands that messages offer to copy (s10 fresh-eyes pass: a mount point
/// with a space broke the `umount` hint). A path that cannot be quoted (a NUL byte, which no
/// path holds) is given as it is.
pub fn shell_word(path: &Path) -> String {
    let s = path.to_string_lossy();
    match shlex::try_quote(&s) {
        Ok(q) => q.into_owned(),
        Err(_) => s.into_owned(),
    }
}

/// [`default_root`] without the environment, for tests. Empty variables count as unset.
fn choose_root(
    store: Option<std::ffi::OsString>,
    is_root: bool,
    xdg_data_home: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> PathBuf {
    let set = |v: Option<std::ffi::OsString>| v.filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(p) = set(store) {
        return p;
    }
    if is_root {
        return PathBuf::from("/var/lib/fspack");
    }
    if let Some(p) = set(xdg_data_home) {
        return p.join("fspack");
    }
    set(home)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".local/share/fspack")
}

/// Permission bits of index.json, oci-layout and mount records.
pub(crate) fn record_mode(access: Access) -> u32 {
    match access {
        Access::Private => 0o600,
        Access::Shared => 0o644,
    }
}

/// Checks, without creating or changing anything, that an existing `root` could be fspack's
/// private store: a directory (not a symlink), owned by us, not writable by group or others.
/// Returns its permission bits, or `None` when `root` does not exist. Readers of a store that
/// may not exist yet (`ls`, `gc`, `verify`) call it, so they refuse what `pull` refuses
/// (report s6 item 27).
///
/// Errors: [`StoreError::Insecure`] naming the problem; [`StoreError::Io`] when `root` cannot
/// be examined.
pub fn check_private_root(root: &Path) -> Result<Option<u32>> {
    use std::os::unix::fs::MetadataExt;
    // The store itself, not what a symlink at its path points to.
    let md = match fs::symlink_metadata(root) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StoreError::io(root, e)),
    };
    let insecure = |why: String| StoreError::Insecure {
        path: root.to_path_buf(),
        why,
    };
    if !md.is_dir() {
        return Err(insecure("not a directory (a symlink or a file)".into()));
    }
    let me = rustix::process::geteuid().as_raw();
    if md.uid() != me {
        return Err(insecure(format!(
            "owned by uid {}, not by uid {me}",
            md.uid()
        )));
    }
    let mode = md.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(insecure(format!(
            "writable by {} (mode {mode:04o})",
            if mode & 0o002 != 0 {
                "everyone"
            } else {
                "its group"
            }
        )));
    }
    Ok(Some(mode))
}

/// Creates `root` with mode 0700, or checks an existing one: it must be owned by us and not
/// writable by others; group or other read bits of a store we own are removed (stores made
/// before issue 12 were 0755).
fn make_private_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
    }
    match fs::DirBuilder::new().mode(0o700).create(root) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(StoreError::io(root, e)),
    }
    let mode = check_private_root(root)?
        .ok_or_else(|| StoreError::io(root, std::io::Error::from(std::io::ErrorKind::NotFound)))?;
    // Only a store, or an empty directory about to become one, is ours to tighten: a user's
    // directory named by mistake (`--store /srv/www`) is refused as it is, not made 0700 first
    // (s10 fresh-eyes pass).
    let ours = root.join("oci-layout").exists()
        || fs::read_dir(root)
            .map_err(|e| StoreError::io(root, e))?
            .next()
            .is_none();
    if ours && mode & 0o077 != 0 {
        tracing::info!("tightening {} from {mode:04o} to 0700", root.display());
        match fs::set_permissions(root, fs::Permissions::from_mode(0o700)) {
            // Nobody can add to a read-only store; reading it stays possible.
            Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {
                tracing::warn!(
                    "cannot tighten {} to 0700: its file system is read-only",
                    root.display()
                );
            }
            r => r.map_err(|e| StoreError::io(root, e))?,
        }
    }
    Ok(())
}

/// Whether opening a file for writing failed because the store cannot be written (a read-only
/// mount, or a directory without write permission for us).
fn is_read_only(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
    )
}

impl Store {
    /// Opens (creating if needed, mode 0700) fspack's private store at `root`.
    ///
    /// Errors: [`StoreError::Insecure`] when `root` is world-writable or owned by another user;
    /// [`StoreError::NotALayout`] for a non-empty directory that is not a layout.
    pub fn open(root: &Path) -> Result<Store> {
        Self::open_with(root, Access::Private)
    }

    /// Opens (creating if needed) an OCI layout that other tools and users may read, for
    /// writing: blocks while another process writes the same layout, and leaves only what the
    /// OCI image-layout spec names once the last clone of the handle drops (its partial blobs
    /// stay under `ingest/` after a failure, for the next attempt).
    pub fn open_shared(root: &Path) -> Result<Store> {
        Self::open_with(root, Access::Shared)
    }

    fn open_with(root: &Path, access: Access) -> Result<Store> {
        let marker = root.join("oci-layout");
        if access == Access::Private {
            make_private_root(root)?;
        } else {
            fs::create_dir_all(root).map_err(|e| StoreError::io(root, e))?;
        }
        // Creation happens under a lock on the directory itself: two processes opening a new
        // store at once must not see each other's half-made layout as a foreign directory, nor
        // write an empty index over one the other has already tagged.
        let dir = File::open(root).map_err(|e| StoreError::io(root, e))?;
        rustix::fs::flock(&dir, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| StoreError::io(root, e.into()))?;
        if !marker.exists() {
            // A creation killed before the marker was renamed into place leaves only the
            // marker's temporary file: that is our own unfinished store, not a foreign directory.
            let mut foreign = false;
            for e in fs::read_dir(root).map_err(|e| StoreError::io(root, e))? {
                let e = e.map_err(|e| StoreError::io(root, e))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".oci-layout.tmp-") {
                    let _ = fs::remove_file(e.path());
                } else if name == "ingest" && e.path().is_dir() {
                    // Scratch a push to a new layout compresses SquashFS shards in.
                } else {
                    foreign = true;
                }
            }
            if foreign {
                return Err(StoreError::NotALayout(root.to_path_buf()));
            }
            write_atomic_mode(
                &marker,
                br#"{"imageLayoutVersion":"1.0.0"}"#,
                record_mode(access),
            )?;
        }
        let is_store = root.join("mounts").is_dir();
        let work: &[&str] = match access {
            Access::Private => &["blobs/sha256", "ingest", "locks", "mounts"],
            Access::Shared => &["blobs/sha256", "ingest", "locks"],
        };
        for d in work {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(|e| StoreError::io(&p, e))?;
        }
        let index = root.join("index.json");
        if !index.exists() {
            write_atomic_mode(&index, &layout::empty_index(), record_mode(access))?;
        }
        let layout = match access {
            // A directory with `mounts/` is an fspack store (or a layout written before
            // layouts were tidied): its lock files may be another process's, so no writer
            // takes it over.
            Access::Shared if is_store => {
                drop(dir);
                None
            }
            Access::Private => {
                drop(dir);
                None
            }
            Access::Shared => {
                let w = LayoutWriter {
                    root: root.to_path_buf(),
                    _dir: dir,
                };
                // Lock files a killed writer left are nobody's now: the lock is ours.
                let _ = fs::remove_dir_all(root.join("locks"));
                let p = root.join("locks");
                fs::create_dir_all(&p).map_err(|e| StoreError::io(&p, e))?;
                Some(Arc::new(w))
            }
        };
        let store = Store {
            root: root.to_path_buf(),
            gc_guard: Arc::new(Mutex::new(None)),
            access,
            layout,
        };
        if store.layout.is_some() {
            // The directory lock already keeps gc-like removals out.
            return Ok(store);
        }
        // Without a lock file on a read-only store there is nothing to guard: no gc can remove
        // a blob from a file system nobody can write.
        match store.lock_file("gc.lock", rustix::fs::FlockOperation::LockShared) {
            Ok(guard) => *store.gc_guard.lock().expect("not poisoned") = Some(guard),
            Err(StoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::ReadOnlyFilesystem => {}
            Err(e) => return Err(e),
        }
        Ok(store)
    }

    /// Permission bits of committed blobs: 0400 in a private store, 0444 in a shared layout.
    pub fn blob_mode(&self) -> u32 {
        match self.access {
            Access::Private => 0o400,
            Access::Shared => 0o444,
        }
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How a hint should spell an fspack command on this store ([`command_for`]).
    pub fn command(&self) -> String {
        command_for(&self.root)
    }

    /// A temporary file on the store's file system (under `ingest/`, so renaming or copying it
    /// over a blob stays on one device), removed when dropped. For callers that need scratch
    /// space beside the blobs without knowing the store's layout.
    ///
    /// Errors: [`StoreError::Io`] naming the directory.
    pub fn temp_file(&self) -> Result<tempfile::NamedTempFile> {
        let dir = self.root.join("ingest");
        tempfile::NamedTempFile::new_in(&dir).map_err(|e| StoreError::io(&dir, e))
    }

    /// The directory for the lower mounts of an overlay stacked on mount point `target`, on
    /// kernels that cannot stack detached mounts (before 6.15): `mounts/lower/<16 hex digits of
    /// the path's sha256>`. Mount records list what is mounted there, so `gc` can release it.
    pub fn lower_mounts_dir(&self, target: &Path) -> PathBuf {
        use sha2::Digest as _;
        use std::os::unix::ffi::OsStrExt;
        let key = hex::encode(&sha2::Sha256::digest(target.as_os_str().as_bytes())[..8]);
        self.root.join("mounts").join("lower").join(key)
    }

    /// Where blob `digest` lives once committed. The digest must be sha256 (see [`digest_hex`]).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest_hex(digest).unwrap_or("invalid");
        self.root.join("blobs/sha256").join(hex)
    }

    /// Whether blob `digest` is committed.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        digest_hex(digest).is_ok() && self.blob_path(digest).is_file()
    }

    /// Bytes a pull of blob `digest` (`size` bytes) still has to write into the store: `size`
    /// less what a partial download under `ingest/` already holds on disk (its allocated
    /// blocks: a download written out of order is sparse); 0 when the blob is committed.
    pub fn bytes_to_write(&self, digest: &Digest, size: u64) -> u64 {
        if self.has_blob(digest) {
            return 0;
        }
        let Ok(hex) = digest_hex(digest) else {
            return size;
        };
        let held = fs::metadata(self.root.join("ingest").join(format!("{hex}.data")))
            .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
            .unwrap_or(0);
        size.saturating_sub(held)
    }

    /// Whether blob `digest` is committed with `size` bytes.
    pub fn has_blob_sized(&self, digest: &Digest, size: u64) -> bool {
        self.has_blob(digest) && fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.len() == size)
    }

    /// Starts (or resumes) writing blob `digest` of `size` bytes; blocks while another process
    /// holds the same ingest. Re-check [`Store::has_blob`] after it returns.
    pub fn ingest(&self, digest: &Digest, size: u64) -> Result<Ingest> {
        Ingest::open(self, digest, size)
    }

    /// Opens committed blob `digest` for an in-place repair, under its ingest lock (blocks while
    /// a pull works on the same digest).
    pub fn repair_blob(&self, digest: &Digest) -> Result<BlobRepair> {
        BlobRepair::open(self, digest)
    }

    /// Removes committed blob `digest` when it no longer hashes to its digest (truncated,
    /// extended or overwritten on disk), so that a pull fetches it again; under its ingest lock,
    /// so no pull or repair works on it meanwhile. Returns whether it was removed: `false` means
    /// the blob is intact. Mounts holding the old file keep reading it until remounted.
    ///
    /// Errors: [`StoreError::Io`] naming the blob when it cannot be read or removed.
    pub fn discard_if_damaged(&self, digest: &Digest) -> Result<bool> {
        let hex = digest_hex(digest)?;
        let _lock = self.lock_file(
            &format!("{hex}.lock"),
            rustix::fs::FlockOperation::LockExclusive,
        )?;
        let path = self.blob_path(digest);
        match self.check_blob(digest) {
            Ok(()) => return Ok(false),
            Err(StoreError::CorruptBlob { .. }) => {}
            // Another process found it damaged first and removed it: fetch it as missing.
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(true);
            }
            Err(e) => return Err(e),
        }
        fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
        let dir = self.root.join("blobs/sha256");
        fspack_atomic::sync_dir(&dir).map_err(|e| StoreError::io(&dir, e))?;
        Ok(true)
    }

    /// Every committed blob: `(digest, size in bytes)`, sorted by digest.
    pub fn blobs(&self) -> Result<Vec<(Digest, u64)>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(|e| StoreError::io(&dir, e))? {
            let e = e.map_err(|e| StoreError::io(&dir, e))?;
            let Ok(digest) = Digest::sha256_from_hex(&e.file_name().to_string_lossy()) else {
                continue;
            };
            let len = e
                .metadata()
                .map_err(|err| StoreError::io(&e.path(), err))?
                .len();
            out.push((digest, len));
        }
        out.sort();
        Ok(out)
    }

    /// Stores small content (manifests, configs) after hashing it; returns its digest. The blob
    /// is written like a commit: temporary file, fsync, read-only, rename, fsync of the directory.
    pub fn put_blob_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = sha256_of(bytes);
        if !self.has_blob_sized(&digest, bytes.len() as u64) {
            // The temporary file goes in ingest/: blobs/ holds verified blobs only, also
            // after a kill in the middle of this write.
            write_atomic_via(
                &self.root.join("ingest"),
                &self.blob_path(&digest),
                bytes,
                self.blob_mode(),
            )?;
        }
        Ok(digest)
    }

    /// Stores a blob streamed from `r` (an expanded tar+gzip layer: too large for memory, digest
    /// unknown until the end); returns its digest and size. Written like a commit: a temporary
    /// file under `ingest/` hashed while written, fsync, read-only, rename, fsync of the directory.
    ///
    /// Errors: [`StoreError::Io`] naming the temporary file or the reader's failure.
    pub fn put_blob_reader(&self, r: &mut dyn std::io::Read) -> Result<(Digest, u64)> {
        use sha2::Digest as _;
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = self.root.join("ingest").join(format!(
            "stream-{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let result = (|| {
            let mut f = File::create(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
            let mut h = sha2::Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut size = 0u64;
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(StoreError::io(&tmp, e)),
                };
                h.update(&buf[..n]);
                f.write_all(&buf[..n])
                    .map_err(|e| StoreError::io(&tmp, e))?;
                size += n as u64;
            }
            f.sync_all().map_err(|e| StoreError::io(&tmp, e))?;
            f.set_permissions(fs::Permissions::from_mode(0o444))
                .map_err(|e| StoreError::io(&tmp, e))?;
            let digest = Digest::sha256_from_hex(&hex::encode(h.finalize()))
                .expect("a sha256 in hex is a digest");
            let path = self.blob_path(&digest);
            fs::rename(&tmp, &path).map_err(|e| StoreError::io(&path, e))?;
            sync_dir(path.parent().expect("blob paths have a parent"))?;
            Ok((digest, size))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Checks that committed blob `digest` still hashes to its name (read whole: for small blobs
    /// that steer a mount, such as an EROFS metadata image).
    ///
    /// Errors: [`StoreError::CorruptBlob`] naming the blob when it changed on disk;
    /// [`StoreError::Io`] when it cannot be read.
    pub fn check_blob(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        let actual = crate::digest::sha256_of_file(&path)?;
        if &actual != digest {
            return Err(StoreError::CorruptBlob {
                digest: digest.to_string(),
                actual: actual.to_string(),
                path,
            });
        }
        Ok(())
    }

    /// Reads a committed blob of at most `max` bytes, checking that it still hashes to `digest`
    /// (manifests and configs are small, and steer what gets mounted).
    pub fn read_blob(&self, digest: &Digest, max: u64) -> Result<Vec<u8>> {
        digest_hex(digest)?;
        let path = self.blob_path(digest);
        let size = fs::metadata(&path)
            .map_err(|e| StoreError::io(&path, e))?
            .len();
        if size > max {
            return Err(StoreError::TooLarge {
                digest: digest.to_string(),
                size,
                max,
            });
        }
        let bytes = fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        let actual = sha256_of(&bytes);
        if &actual != digest {
            return Err(StoreError::CorruptBlob {
                digest: digest.to_string(),
                actual: actual.to_string(),
                path,
            });
        }
        Ok(bytes)
    }

    /// Points tag `name` at a manifest (replacing an earlier entry of that name).
    pub fn tag(
        &self,
        name: &str,
        manifest_digest: &Digest,
        media_type: &str,
        size: u64,
    ) -> Result<()> {
        digest_hex(manifest_digest)?;
        let _lock = self.lock_file("index.lock", rustix::fs::FlockOperation::LockExclusive)?;
        let mut index = self.read_index()?;
        index.set(name, Descriptor::new(media_type, manifest_digest, size));
        write_atomic_mode(
            &self.root.join("index.json"),
            &index.to_bytes(),
            record_mode(self.access),
        )
    }

    /// Removes tag `name` from `index.json` (atomically, under the index lock); returns the
    /// manifest it pointed at, or `None` when there was no such tag. Blobs stay until
    /// [`Store::gc`], which keeps whatever another tag or a mount record still names.
    ///
    /// Errors: [`StoreError`] for an index that cannot be read or written.
    pub fn untag(&self, name: &str) -> Result<Option<Descriptor>> {
        let _lock = self.lock_file("index.lock", rustix::fs::FlockOperation::LockExclusive)?;
        let mut index = self.read_index()?;
        let Some(removed) = index.remove(name) else {
            return Ok(None);
        };
        write_atomic_mode(
            &self.root.join("index.json"),
            &index.to_bytes(),
            record_mode(self.access),
        )?;
        Ok(Some(removed))
    }

    /// The manifest tag `name` points at.
    pub fn resolve(&self, name: &str) -> Result<Option<Descriptor>> {
        Ok(self.read_index()?.get(name))
    }

    /// All tags and their manifests.
    pub fn tags(&self) -> Result<Vec<(String, Descriptor)>> {
        Ok(self.read_index()?.tagged())
    }

    fn read_index(&self) -> Result<layout::Index> {
        layout::Index::read(&self.root.join("index.json"))
    }

    /// Records a mount so `umount`, `ls` and `gc` know about it.
    pub fn record_mount(&self, rec: &MountRecord) -> Result<()> {
        records::write(&self.root, rec)
    }

    /// All mount records that can be read; a damaged one is skipped with a warning naming it.
    ///
    /// Errors: [`StoreError::Io`] when `mounts/` or a record cannot be read.
    pub fn mount_records(&self) -> Result<Vec<MountRecord>> {
        records::read_all(&self.root, false)
    }

    /// All mount records, for callers that must not miss one (gc keeps the blobs they name).
    ///
    /// Errors: as [`Store::mount_records`], and [`StoreError::Corrupt`] for a damaged record,
    /// with a hint on how to recover.
    pub fn mount_records_strict(&self) -> Result<Vec<MountRecord>> {
        records::read_all(&self.root, true)
    }

    /// Notes the directories created for the mount point `target` (innermost first) before
    /// anything is mounted there, so a run killed before [`Store::record_mount`] does not leave
    /// them unowned; returns the marker's path, which the caller removes when it gives up the
    /// point, and which [`Store::record_mount`] removes when the record takes over.
    ///
    /// Errors: [`StoreError::Io`] when `mounts/` cannot be written.
    pub fn record_pending_dirs(&self, target: &Path, dirs: &[PathBuf]) -> Result<PathBuf> {
        records::write_pending_dirs(&self.root, target, dirs)
    }

    /// The directories an earlier run created for `target` and never recorded a mount on
    /// (killed in between), innermost first; empty when there is no such run.
    pub fn pending_dirs(&self, target: &Path) -> Vec<PathBuf> {
        records::read_pending_dirs(&self.root, target)
    }

    /// Removes the note [`Store::record_pending_dirs`] made for `target`, if any (a mount
    /// given up after its directories were removed). Failures are logged: the note only ever
    /// names directories, and a later run adopts only those that still exist.
    pub fn forget_pending_dirs(&self, target: &Path) {
        let p = records::pending_dirs_path(&self.root, target);
        if let Err(e) = records::remove_file_if_present(&p) {
            tracing::warn!("{e}");
        }
    }

    /// Stores the manifest `bytes` (digest `digest`, verified) untagged and notes that a pull of
    /// it is under way (`pulls/<hex>`), so that `gc` keeps the blobs it names while the note is
    /// younger than the partial-download TTL: an interrupted pull's finished blobs then wait
    /// for its resume as its partial downloads do (s10 fresh-eyes pass: gc removed them and
    /// the re-run fetched them again). [`Store::pull_done`] removes the note.
    ///
    /// Errors: [`StoreError::DigestMismatch`] when `bytes` do not hash to `digest`; I/O errors.
    pub fn note_pull(&self, digest: &Digest, bytes: &[u8]) -> Result<()> {
        let stored = self.put_blob_bytes(bytes)?;
        if &stored != digest {
            return Err(StoreError::DigestMismatch {
                digest: digest.to_string(),
                actual: stored.to_string(),
            });
        }
        let dir = self.root.join("pulls");
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let note = dir.join(digest_hex(digest)?);
        // A fresh time on every attempt: the TTL counts from the last one.
        write_atomic_mode(&note, b"", record_mode(self.access))
    }

    /// Removes the note [`Store::note_pull`] made, once the pull's tag is written. Failures are
    /// logged: a stale note only keeps blobs until it expires.
    pub fn pull_done(&self, digest: &Digest) {
        let Ok(hex) = digest_hex(digest) else { return };
        let note = self.root.join("pulls").join(hex);
        if let Err(e) = fs::remove_file(&note)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("cannot remove {}: {e}", note.display());
        }
    }

    /// Takes the lock of the mount point `target` (canonical) without waiting: `Ok(None)` when
    /// another process holds it. A command holds it from checking the mount point until its
    /// mount is recorded (or given up), so two mounts on one directory cannot both pass the
    /// "already an fspack mount" check and stack (s10 fresh-eyes pass). The lock goes with the
    /// returned file, also when the process dies.
    ///
    /// Errors: [`StoreError::Io`] when `locks/` cannot be written.
    pub fn try_lock_mount_point(&self, target: &Path) -> Result<Option<File>> {
        match self.lock_file(
            &format!("{MOUNT_LOCK_PREFIX}{}.lock", records::target_key(target)),
            rustix::fs::FlockOperation::NonBlockingLockExclusive,
        ) {
            Ok(f) => Ok(Some(f)),
            Err(StoreError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::WouldBlock =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets the mount record of `target`.
    pub fn remove_mount_record(&self, target: &Path) -> Result<()> {
        records::remove(&self.root, target)
    }

    /// Opens `locks/<name>` and takes a kernel file lock on it (released when the file closes,
    /// also when the process dies). On a read-only store (report item 8: a store on a read-only
    /// mount) an existing lock file is opened for reading, which `flock` accepts as well.
    fn lock_file(&self, name: &str, op: rustix::fs::FlockOperation) -> Result<File> {
        let path = self.root.join("locks").join(name);
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .or_else(|e| {
                if is_read_only(&e) {
                    File::open(&path).map_err(|_| e)
                } else {
                    Err(e)
                }
            })
            .map_err(|e| StoreError::io(&path, e))?;
        rustix::fs::flock(&f, op).map_err(|e| StoreError::io(&path, e.into()))?;
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_in_offered_commands_are_one_shell_word() {
        assert_eq!(shell_word(Path::new("/mnt/llama")), "/mnt/llama");
        assert_eq!(shell_word(Path::new("/mnt/a b")), "'/mnt/a b'");
        assert_eq!(shell_word(Path::new("/mnt/it's")), r#""/mnt/it's""#);
        assert_eq!(
            command_for(Path::new("/srv/my store")),
            "fspack --store '/srv/my store'"
        );
    }

    #[test]
    fn default_root_follows_the_documented_order() {
        let s = |v: &str| Some(std::ffi::OsString::from(v));
        assert_eq!(
            choose_root(s("/x"), true, s("/d"), s("/h")),
            Path::new("/x")
        );
        assert_eq!(
            choose_root(s(""), true, s("/d"), s("/h")),
            Path::new("/var/lib/fspack")
        );
        assert_eq!(
            choose_root(None, false, s("/d"), s("/h")),
            Path::new("/d/fspack")
        );
        assert_eq!(
            choose_root(None, false, s(""), s("/h")),
            Path::new("/h/.local/share/fspack")
        );
    }

    #[test]
    fn digests_are_validated_before_any_path_is_built() {
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            digest_hex(&parse_digest(&good).unwrap()).unwrap(),
            "a".repeat(64)
        );
        let long = format!("sha256:{}", "a".repeat(10_000));
        let upper = format!("sha256:{}", "A".repeat(64));
        let short = format!("sha256:{}", "a".repeat(63));
        let nul = format!("sha256:{}\0", "a".repeat(63));
        let sha512 = format!("sha512:{}", "a".repeat(128));
        for bad in [
            long.as_str(),
            &upper,
            &short,
            &nul,
            &sha512,
            "sha256:../../etc/passwd",
            "",
            "sha256:",
        ] {
            let e = parse_digest(bad).unwrap_err();
            assert!(e.to_string().contains("sha256:<64 hex digits>"), "{e}");
        }
        // A valid digest of another algorithm gets no path under blobs/sha256 either.
        let e = digest_hex(&Digest::parse(&sha512).unwrap()).unwrap_err();
        assert!(e.to_string().contains("sha256:<64 hex digits>"), "{e}");
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let p = store.blob_path(&Digest::parse(&sha512).unwrap());
        assert!(
            p.starts_with(tmp.path().join("blobs/sha256")) && !p.to_string_lossy().contains("aaaa")
        );
    }

    /// The engine asks for scratch space and overlay lower dirs; both stay inside the store, and
    /// a lower dir is one per mount point, the same on every call.
    #[test]
    fn scratch_and_lower_dirs_live_in_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let f = store.temp_file().unwrap();
        assert!(f.path().starts_with(tmp.path().join("ingest")));
        let (a, b) = (Path::new("/mnt/a"), Path::new("/mnt/b"));
        let lower = store.lower_mounts_dir(a);
        assert!(lower.starts_with(tmp.path().join("mounts/lower")));
        assert_eq!(lower, store.lower_mounts_dir(a));
        assert_ne!(lower, store.lower_mounts_dir(b));
        assert_eq!(lower.file_name().unwrap().len(), 16);
    }
}
