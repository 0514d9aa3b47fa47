//! Read-only mounts of EROFS, SquashFS and overlayfs, and unmounting.
//!
//! Every mount is `ro,nodev,nosuid` (and `noexec` on request), the options snapd, atomfs and
//! composefs use for images they did not build themselves (`nosuid` also disables file
//! capabilities inside the image). A mount goes through `mount(2)` when its option string fits
//! in one page and needs no escaping, and through the new mount API otherwise (`newapi.rs`).
//! A refusal carries the kernel's reason: what the filesystem logged to `/dev/kmsg` meanwhile
//! (EROFS and SquashFS explain themselves only there), else the messages of a filesystem
//! context (the new API's log, which overlayfs uses; for `mount(2)` an `EINVAL` is replayed in
//! one, without mounting).
//!
//! The mount point is opened once with `O_PATH | O_NOFOLLOW | O_DIRECTORY` and the mount is
//! made on that fd (`/proc/self/fd/N` for `mount(2)`), so a mount point swapped for a symlink
//! between the check and the mount cannot redirect it.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::mount::{MountAttrFlags, MountFlags, UnmountFlags};

use crate::error::MountError;
use crate::kmsg::KmsgCursor;
use crate::newapi::FsContext;

/// The largest option string `mount(2)` accepts: it copies one page, NUL included.
const MAX_MOUNT_DATA: usize = 4095;

/// Per-mount choices; `ro,nodev,nosuid` are always set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// Also forbid executing files from the mount (`noexec`).
    pub noexec: bool,
}

/// Where an EROFS image (or one of its extra devices) is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErofsSource<'a> {
    /// A regular file, mounted without a loop device (Linux 6.12+,
    /// `CONFIG_EROFS_FS_BACKED_BY_FILE`).
    FileBacked(&'a Path),
    /// A block device, such as a loop device.
    Block(&'a Path),
}

impl<'a> ErofsSource<'a> {
    /// Looks at `path` (following symlinks) and says which kind of source it is.
    pub fn classify(path: &'a Path) -> Result<ErofsSource<'a>, MountError> {
        use std::os::unix::fs::FileTypeExt;
        let meta = std::fs::metadata(path).map_err(|e| MountError::open(path, e))?;
        if meta.file_type().is_block_device() {
            Ok(ErofsSource::Block(path))
        } else {
            Ok(ErofsSource::FileBacked(path))
        }
    }

    /// The path of the source.
    pub fn path(&self) -> &'a Path {
        match self {
            ErofsSource::FileBacked(p) | ErofsSource::Block(p) => p,
        }
    }
}

/// Mounts an EROFS image on `target`, read-only.
///
/// `primary` holds the metadata (and inline data); `devices` are the extra blob devices of a
/// multi-device image, in the order of its device table. Each may be a regular file
/// (file-backed, Linux 6.12+) or a block device. Paths are made absolute and canonical first:
/// the mount table shows them as given.
pub fn mount_erofs(
    primary: &Path,
    devices: &[PathBuf],
    target: &Path,
    opts: &MountOptions,
) -> Result<(), MountError> {
    let primary = canonical(primary)?;
    let devices = devices
        .iter()
        .map(|d| canonical(d))
        .collect::<Result<Vec<_>, _>>()?;
    // The kernel reads all devices the way it reads the primary (files with a file-backed
    // primary, block devices otherwise) and answers a mix with a bare EINVAL (6.18): say so.
    let file_backed = matches!(ErofsSource::classify(&primary)?, ErofsSource::FileBacked(_));
    for d in &devices {
        if matches!(ErofsSource::classify(d)?, ErofsSource::FileBacked(_)) != file_backed {
            return Err(MountError::MixedErofsSources {
                primary,
                device: d.clone(),
            });
        }
    }
    let params: Vec<(&str, OsString)> = devices
        .iter()
        .map(|d| ("device", d.clone().into_os_string()))
        .collect();
    let classic = classic_data(&params, b',');
    let mut desc = primary.display().to_string();
    if !devices.is_empty() {
        desc.push_str(&format!(" with {} device(s)", devices.len()));
    }
    let req = Request {
        fstype: "erofs",
        source: primary.as_os_str(),
        classic,
        params,
        target,
        opts,
        desc,
    };
    req.run()
}

/// Mounts the SquashFS image on block device `dev` (a loop device) on `target`, read-only.
///
/// SquashFS cannot be mounted from a regular file (`ENOTBLK`): attach it to a
/// [`LoopDevice`](crate::LoopDevice) first.
pub fn mount_squashfs(dev: &Path, target: &Path, opts: &MountOptions) -> Result<(), MountError> {
    let dev = canonical(dev)?;
    let req = Request {
        fstype: "squashfs",
        source: dev.as_os_str(),
        classic: Some(Vec::new()),
        params: Vec::new(),
        target,
        opts,
        desc: dev.display().to_string(),
    };
    req.run()
}

/// Stacks `lowers` read-only with overlayfs on `target`; the first is the top layer.
///
/// There is no upper layer, so the result is read-only by construction. A `lowerdir=a:b:c`
/// option through `mount(2)` where it fits; otherwise one `lowerdir+` per layer through the new
/// mount API (Linux 6.8+), which also carries paths with `:` or `,` without escaping.
pub fn mount_overlay_ro(
    lowers: &[PathBuf],
    target: &Path,
    opts: &MountOptions,
) -> Result<(), MountError> {
    let lowers = lowers
        .iter()
        .map(|d| canonical(d))
        .collect::<Result<Vec<_>, _>>()?;
    let params: Vec<(&str, OsString)> = lowers
        .iter()
        .map(|d| ("lowerdir+", d.clone().into_os_string()))
        .collect();
    let classic = if lowers
        .iter()
        .any(|l| l.as_os_str().as_bytes().iter().any(|b| b":,\\".contains(b)))
    {
        None
    } else {
        let joined = lowers
            .iter()
            .map(|l| l.as_os_str().as_bytes())
            .collect::<Vec<_>>()
            .join(&b':');
        let mut data = b"lowerdir=".to_vec();
        data.extend_from_slice(&joined);
        Some(data).filter(|d| d.len() <= MAX_MOUNT_DATA)
    };
    let desc = format!(
        "of {} layer(s) ({}, …)",
        lowers.len(),
        lowers
            .first()
            .map_or(String::new(), |l| l.display().to_string())
    );
    let req = Request {
        fstype: "overlay",
        source: OsStr::new("fspack"),
        classic,
        params,
        target,
        opts,
        desc,
    };
    req.run()
}

/// Stacks the SquashFS images on block devices `devs` (lowest layer first) read-only with
/// overlayfs on `target`, with every shard mounted *detached* (`fsmount` without `move_mount`)
/// and handed to overlayfs as an fd (`lowerdir+`, Linux 6.13+; detached layers 6.15+).
///
/// Why: the lower mounts then live only inside the overlay, so a plain `umount(8)` of `target`
/// releases them, and with them the autoclear loop devices; nothing of fspack's outlives the
/// visible mount (issue 11). Returns [`StackError::Unsupported`] when this kernel refuses
/// fd layers, so the caller can fall back to attached lower mounts.
pub fn mount_squashfs_stack(
    devs: &[PathBuf],
    target: &Path,
    opts: &MountOptions,
) -> Result<(), StackError> {
    let target_fd = open_target(target)?;
    let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NODEV
        | MountAttrFlags::MOUNT_ATTR_NOSUID;
    let mut lowers = Vec::with_capacity(devs.len());
    for dev in devs {
        let dev = canonical(dev)?;
        let fail = |ctx: Option<&FsContext>, e: std::io::Error| MountError::Mount {
            fstype: "squashfs".into(),
            source_desc: dev.display().to_string(),
            target: target.to_path_buf(),
            kernel: ctx.map(|c| c.messages()).unwrap_or_default(),
            source: e,
        };
        let ctx = FsContext::open("squashfs").map_err(|e| fail(None, e))?;
        let made = (|| {
            ctx.set_string("source", dev.as_os_str())?;
            ctx.set_flag("ro")?;
            ctx.create()?;
            ctx.detached(attrs)
        })();
        lowers.push(made.map_err(|e| fail(Some(&ctx), e))?);
    }
    let desc = format!("of {} detached SquashFS layer(s)", devs.len());
    let fail = |ctx: &FsContext, e: std::io::Error| MountError::Mount {
        fstype: "overlay".into(),
        source_desc: desc.clone(),
        target: target.to_path_buf(),
        kernel: ctx.messages(),
        source: e,
    };
    let ctx = FsContext::open("overlay").map_err(|e| MountError::Mount {
        fstype: "overlay".into(),
        source_desc: desc.clone(),
        target: target.to_path_buf(),
        kernel: Vec::new(),
        source: e,
    })?;
    ctx.set_string("source", OsStr::new("fspack"))
        .map_err(|e| fail(&ctx, e))?;
    // overlayfs lists the top layer first.
    for l in lowers.iter().rev() {
        if let Err(e) = ctx.set_fd("lowerdir+", l) {
            // EINVAL: no fd layers (before 6.13), or detached mounts refused as layers (before
            // 6.15): the caller stacks attached mounts instead.
            return Err(match e.raw_os_error() {
                Some(libc::EINVAL) | Some(libc::EBADF) => StackError::Unsupported(fail(&ctx, e)),
                _ => StackError::Mount(fail(&ctx, e)),
            });
        }
    }
    ctx.set_flag("ro").map_err(|e| fail(&ctx, e))?;
    if let Err(e) = ctx.create() {
        let err = fail(&ctx, e);
        return Err(if err.errno() == Some(libc::EINVAL) {
            StackError::Unsupported(err)
        } else {
            StackError::Mount(err)
        });
    }
    let mut attrs = attrs;
    if opts.noexec {
        attrs |= MountAttrFlags::MOUNT_ATTR_NOEXEC;
    }
    ctx.mount_on(attrs, &target_fd)
        .map_err(|e| StackError::Mount(fail(&ctx, e)))?;
    // The detached layer fds close here; the overlay keeps its own references to the layers.
    drop(lowers);
    Ok(())
}

/// Why [`mount_squashfs_stack`] did not mount.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// This kernel does not take detached mounts as overlayfs layers; stack attached mounts.
    #[error(transparent)]
    Unsupported(MountError),
    /// Mounting failed for another reason.
    #[error(transparent)]
    Mount(#[from] MountError),
}

/// Unmounts `target`; with `detach` lazily (`MNT_DETACH`: gone from the tree now, released when
/// the last open file under it closes). Symlinks are not followed (`UMOUNT_NOFOLLOW`).
pub fn unmount(target: &Path, detach: bool) -> Result<(), MountError> {
    let mut flags = UnmountFlags::NOFOLLOW;
    if detach {
        flags |= UnmountFlags::DETACH;
    }
    rustix::mount::unmount(target, flags).map_err(|e| MountError::Unmount {
        target: target.to_path_buf(),
        source: e.into(),
    })
}

/// `key=value,key=value` for `mount(2)`, or `None` when a value contains `sep` (the kernel's
/// option splitter has no escape for it) or the string does not fit in a page.
fn classic_data(params: &[(&str, OsString)], sep: u8) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    for (k, v) in params {
        if v.as_bytes().contains(&sep) {
            return None;
        }
        if !data.is_empty() {
            data.push(b',');
        }
        data.extend_from_slice(k.as_bytes());
        data.push(b'=');
        data.extend_from_slice(v.as_bytes());
    }
    (data.len() <= MAX_MOUNT_DATA).then_some(data)
}

fn canonical(p: &Path) -> Result<PathBuf, MountError> {
    std::fs::canonicalize(p).map_err(|e| MountError::open(p, e))
}

/// One mount, expressible both ways.
struct Request<'a> {
    fstype: &'a str,
    source: &'a OsStr,
    /// The `mount(2)` option string, when one can express the mount.
    classic: Option<Vec<u8>>,
    /// The same options as separate parameters, for the new API.
    params: Vec<(&'a str, OsString)>,
    target: &'a Path,
    opts: &'a MountOptions,
    desc: String,
}

impl Request<'_> {
    fn run(&self) -> Result<(), MountError> {
        let target_fd = open_target(self.target)?;
        match &self.classic {
            Some(data) => self.run_classic(data, &target_fd),
            None => self.run_new_api(&target_fd),
        }
    }

    fn run_classic(&self, data: &[u8], target_fd: &File) -> Result<(), MountError> {
        let mut flags = MountFlags::RDONLY | MountFlags::NODEV | MountFlags::NOSUID;
        if self.opts.noexec {
            flags |= MountFlags::NOEXEC;
        }
        let data = std::ffi::CString::new(data.to_vec())
            .map_err(|_| self.error(std::io::Error::from_raw_os_error(libc::EINVAL), Vec::new()))?;
        let at = format!("/proc/self/fd/{}", target_fd.as_raw_fd());
        tracing::debug!(fstype = self.fstype, source = %Path::new(self.source).display(), target = %self.target.display(), options = %data.to_string_lossy(), "mount(2)");
        let log = KmsgCursor::here();
        match rustix::mount::mount(
            self.source,
            at.as_str(),
            self.fstype,
            flags,
            Some(data.as_c_str()),
        ) {
            Ok(()) => Ok(()),
            Err(e) => {
                let mut kernel = log.map(|l| l.messages_of(self.fstype)).unwrap_or_default();
                if kernel.is_empty() && e == rustix::io::Errno::INVAL {
                    kernel = self.diagnose();
                }
                Err(self.error(e.into(), kernel))
            }
        }
    }

    fn configure(&self) -> std::io::Result<FsContext> {
        let ctx = FsContext::open(self.fstype)?;
        ctx.set_string("source", self.source)?;
        for (k, v) in &self.params {
            ctx.set_string(k, v)?;
        }
        ctx.set_flag("ro")?;
        Ok(ctx)
    }

    fn run_new_api(&self, target_fd: &File) -> Result<(), MountError> {
        tracing::debug!(fstype = self.fstype, source = %Path::new(self.source).display(), target = %self.target.display(), params = self.params.len(), "new mount API");
        let ctx = match FsContext::open(self.fstype) {
            Ok(c) => c,
            Err(e) => return Err(self.error(e, Vec::new())),
        };
        // Keeps the O_PATH fds behind `/proc/self/fd/N` stand-ins open until the mount exists.
        let mut held = Vec::new();
        let mut steps = || -> std::io::Result<()> {
            ctx.set_string("source", &short_path(self.source, &mut held)?)?;
            for (k, v) in &self.params {
                ctx.set_string(k, &short_path(v, &mut held)?)?;
            }
            ctx.set_flag("ro")?;
            ctx.create()?;
            let mut attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
                | MountAttrFlags::MOUNT_ATTR_NODEV
                | MountAttrFlags::MOUNT_ATTR_NOSUID;
            if self.opts.noexec {
                attrs |= MountAttrFlags::MOUNT_ATTR_NOEXEC;
            }
            ctx.mount_on(attrs, target_fd)
        };
        let log = KmsgCursor::here();
        steps().map_err(|e| {
            let mut kernel = ctx.messages();
            if kernel.is_empty() {
                kernel = log.map(|l| l.messages_of(self.fstype)).unwrap_or_default();
            }
            self.error(e, kernel)
        })
    }

    /// Replays the configuration in a filesystem context, without mounting, for the kernel's
    /// reason of a refusal. Best effort: an empty list when that fails differently.
    fn diagnose(&self) -> Vec<String> {
        match self.configure() {
            Ok(ctx) => {
                let _ = ctx.create();
                ctx.messages()
            }
            Err(_) => Vec::new(),
        }
    }

    fn error(&self, source: std::io::Error, kernel: Vec<String>) -> MountError {
        MountError::Mount {
            fstype: self.fstype.to_string(),
            source_desc: self.desc.clone(),
            target: self.target.to_path_buf(),
            kernel,
            source,
        }
    }
}

/// `fsconfig` copies at most 255 bytes of a string value (`strndup_user(value, 256)` in
/// `fs/fsopen.c`); a longer path is passed as `/proc/self/fd/N` of an `O_PATH` fd instead, which
/// the kernel resolves to the same file.
fn short_path(value: &OsStr, held: &mut Vec<File>) -> std::io::Result<OsString> {
    if value.len() < 256 || !value.as_bytes().starts_with(b"/") {
        return Ok(value.to_os_string());
    }
    let f = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
        .open(value)?;
    let alias = OsString::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
    held.push(f);
    Ok(alias)
}

/// Opens the mount point without following a final symlink; refuses anything but a directory.
fn open_target(target: &Path) -> Result<File, MountError> {
    let bad = |why| MountError::BadTarget {
        target: target.to_path_buf(),
        why,
    };
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(bad("it does not exist")),
        Err(e) => return Err(MountError::open(target, e)),
        Ok(m) if m.file_type().is_symlink() => return Err(bad("it is a symlink")),
        Ok(m) if !m.is_dir() => return Err(bad("it is not a directory")),
        Ok(_) => {}
    }
    File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(target)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTDIR) => bad("it is not a directory"),
            Some(libc::ELOOP) => bad("it is a symlink"),
            _ => MountError::open(target, e),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_data_joins_and_refuses_what_it_cannot_express() {
        let p = |v: &str| ("device", OsString::from(v));
        assert_eq!(
            classic_data(&[p("/a"), p("/b")], b',').unwrap(),
            b"device=/a,device=/b"
        );
        assert_eq!(classic_data(&[], b',').unwrap(), b"");
        assert!(classic_data(&[p("/a,b")], b',').is_none());
        let long = "/x".repeat(1000);
        assert!(classic_data(&[p(&long), p(&long), p(&long)], b',').is_none());
        let exact = "x".repeat(MAX_MOUNT_DATA - "device=".len());
        assert!(classic_data(&[p(&exact)], b',').is_some());
        let over = "x".repeat(MAX_MOUNT_DATA - "device=".len() + 1);
        assert!(classic_data(&[p(&over)], b',').is_none());
    }

    #[test]
    fn bad_targets_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        for (t, why) in [
            (file.clone(), "not a directory"),
            (link, "symlink"),
            (dir.path().join("missing"), "does not exist"),
        ] {
            let e = open_target(&t).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains(&*t.to_string_lossy()), "{e}");
        }
        assert!(open_target(dir.path()).is_ok());
    }

    #[test]
    fn erofs_sources_are_classified() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("img");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(
            ErofsSource::classify(&file).unwrap(),
            ErofsSource::FileBacked(&file)
        );
        assert!(ErofsSource::classify(&dir.path().join("nope")).is_err());
    }
}
