//! Loop devices and mounts on the real kernel. Tests named `privileged_*` need root and
//! `/dev/loop-control` and skip (with a message) elsewhere. `mkfs.erofs` and `mksquashfs` make the
//! images: independent tools, used as test oracles only, never by the library.
//!
//! Every mount is undone by a guard, also when an assertion fails; loop devices are autoclear, so
//! they go with the last mount or fd. Other tests (and other engineers) may mount and attach at
//! the same time, so checks look only at this test's own paths.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fspack_mount::*;

#[path = "../../../tests/support/privileged.rs"]
mod privileged;

/// Whether a privileged test can run (skips, or fails under `FSPACK_REQUIRE_PRIVILEGED=1`);
/// loads the kernel modules the tests use first, as the kernel would on a first mount.
fn ready(tools: &[&str]) -> bool {
    for m in ["loop", "erofs", "squashfs", "overlay"] {
        if !filesystem_loaded(m) {
            privileged::modprobe(m);
        }
    }
    if let Err(e) = privileges() {
        return privileged::skip(&e.to_string());
    }
    for t in tools {
        if Command::new(t).arg("--help").output().is_err() {
            return privileged::skip(&format!("{t} is not installed"));
        }
    }
    privileged::ran();
    true
}

fn filesystem_loaded(m: &str) -> bool {
    m == "loop" && Path::new("/dev/loop-control").exists()
        || fs::read_to_string("/proc/filesystems")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().last() == Some(m))
}

/// Unmounts (lazily, so a failing test cannot wedge the next) when dropped.
struct Mounted(PathBuf);
impl Drop for Mounted {
    fn drop(&mut self) {
        if mounts_under(&self.0) > 0 {
            let _ = unmount(&self.0, true);
        }
    }
}

fn source_tree(dir: &Path, tag: &str) -> PathBuf {
    let src = dir.join(format!("src-{tag}"));
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/hello.txt"), format!("hello from {tag}\n")).unwrap();
    fs::write(src.join(format!("only-{tag}")), vec![7u8; 100_000]).unwrap();
    src
}

fn mkfs_erofs(args: &[&str], img: &Path, src: &Path) {
    let out = Command::new("mkfs.erofs")
        .arg("--quiet")
        .args(args)
        .arg(img)
        .arg(src)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mkfs.erofs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mksquashfs(src: &Path, img: &Path) {
    let out = Command::new("mksquashfs")
        .arg(src)
        .arg(img)
        .args(["-noappend", "-quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mksquashfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn mkdir(p: PathBuf) -> PathBuf {
    fs::create_dir_all(&p).unwrap();
    p
}

/// How many mounts sit at or below `dir`.
fn mounts_under(dir: &Path) -> usize {
    mountinfo()
        .unwrap()
        .iter()
        .filter(|m| m.mount_point.starts_with(dir))
        .count()
}

fn attached_to(file: &Path) -> bool {
    loop_devices().unwrap().iter().any(|(_, b)| b == file)
}

/// Unmounts `target`, giving the kernel a moment when it answers EBUSY: a file just read can
/// hold the superblock briefly while other tests run (seen once in a full run, s10), as
/// `fspack umount` allows too. A mount still busy after that fails the test.
fn unmount_settled(target: &Path) {
    for tries in 1..=10u64 {
        match unmount(target, false) {
            Err(e) if e.errno() == Some(16) && tries < 10 => {
                std::thread::sleep(Duration::from_millis(50 * tries));
            }
            other => return other.unwrap(),
        }
    }
}

/// Autoclear runs when the last user goes, which the kernel finishes asynchronously: poll.
fn wait_detached(file: &Path) -> Duration {
    let start = Instant::now();
    while attached_to(file) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} is still attached",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    start.elapsed()
}

fn dmesg_tail(lines: usize) -> Vec<String> {
    let out = Command::new("dmesg")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let text = out.unwrap_or_default();
    let all: Vec<String> = text.lines().map(str::to_string).collect();
    all[all.len().saturating_sub(lines)..].to_vec()
}

#[test]
fn privileged_erofs_through_a_loop_device_detaches_on_unmount() {
    if !ready(&["mkfs.erofs"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("a.erofs");
    mkfs_erofs(&[], &img, &source_tree(tmp.path(), "a"));
    let mnt = mkdir(tmp.path().join("mnt"));
    assert_eq!(mounts_under(tmp.path()), 0);
    let dev = LoopDevice::attach(&img, LoopOptions::default()).unwrap();
    assert_eq!(dev.backing_file(), img);
    assert!(dev.autoclear(), "LOOP_CONFIGURE set autoclear");
    assert!(attached_to(&img));
    mount_erofs(dev.path(), &[], &mnt, &MountOptions { noexec: true }).unwrap();
    let guard = Mounted(mnt.clone());
    let dev_path = dev.path().to_path_buf();
    drop(dev); // the mount now holds the device
    assert!(attached_to(&img), "the mount keeps the device bound");
    assert_eq!(
        fs::read_to_string(mnt.join("sub/hello.txt")).unwrap(),
        "hello from a\n"
    );
    let entry = mountinfo()
        .unwrap()
        .into_iter()
        .find(|m| m.mount_point == mnt)
        .unwrap();
    assert_eq!(entry.fstype, "erofs");
    assert_eq!(entry.source, dev_path);
    for opt in ["ro", "nodev", "nosuid", "noexec"] {
        assert!(
            entry.has_option(opt),
            "{opt} missing from {}",
            entry.mount_options
        );
    }
    unmount_settled(&mnt);
    drop(guard);
    let took = wait_detached(&img);
    eprintln!("loop device detached {took:?} after unmount");
    assert_eq!(mounts_under(tmp.path()), 0, "mountinfo is back to before");
}

#[test]
fn privileged_squashfs_through_a_loop_device() {
    if !ready(&["mksquashfs"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("s.sqfs");
    mksquashfs(&source_tree(tmp.path(), "s"), &img);
    let mnt = mkdir(tmp.path().join("mnt"));
    // A regular file is refused with a hint (squashfs has no file-backed mode).
    let err = mount_squashfs(&img, &mnt, &MountOptions::default()).unwrap_err();
    assert!(err.is_not_block_device(), "{err}");
    assert!(err.to_string().contains("loop device"), "{err}");
    {
        let dev = LoopDevice::attach(&img, LoopOptions::default()).unwrap();
        mount_squashfs(dev.path(), &mnt, &MountOptions::default()).unwrap();
    }
    let _g = Mounted(mnt.clone());
    assert_eq!(fs::read(mnt.join("only-s")).unwrap(), vec![7u8; 100_000]);
    let entry = mountinfo()
        .unwrap()
        .into_iter()
        .find(|m| m.mount_point == mnt)
        .unwrap();
    assert!(entry.read_only() && entry.has_option("nodev") && entry.has_option("nosuid"));
    assert!(!entry.has_option("noexec"));
    unmount_settled(&mnt);
    wait_detached(&img);
    assert_eq!(mounts_under(tmp.path()), 0);
}

#[test]
fn privileged_erofs_file_backed() {
    if !ready(&["mkfs.erofs"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("f.erofs");
    mkfs_erofs(&[], &img, &source_tree(tmp.path(), "f"));
    let mnt = mkdir(tmp.path().join("mnt"));
    let before = dmesg_tail(100_000).len();
    mount_erofs(&img, &[], &mnt, &MountOptions::default()).unwrap();
    let _g = Mounted(mnt.clone());
    assert_eq!(
        fs::read_to_string(mnt.join("sub/hello.txt")).unwrap(),
        "hello from f\n"
    );
    let entry = mountinfo()
        .unwrap()
        .into_iter()
        .find(|m| m.mount_point == mnt)
        .unwrap();
    assert_eq!(
        entry.source, img,
        "file-backed: the mount table names the file"
    );
    assert!(!attached_to(&img), "no loop device");
    let after = dmesg_tail(100_000);
    for line in after
        .iter()
        .skip(before)
        .filter(|l| l.contains("erofs") || l.contains("EXT4"))
    {
        eprintln!("dmesg: {line}");
    }
    unmount_settled(&mnt);
    assert_eq!(mounts_under(tmp.path()), 0);
}

#[test]
fn privileged_erofs_multi_device_from_files_and_loop_devices() {
    if !ready(&["mkfs.erofs"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = source_tree(tmp.path(), "m");
    let (meta, blob) = (tmp.path().join("meta.erofs"), tmp.path().join("blob"));
    mkfs_erofs(
        &[&format!("--blobdev={}", blob.display()), "--chunksize=4096"],
        &meta,
        &src,
    );
    let mnt = mkdir(tmp.path().join("mnt"));
    let want = vec![7u8; 100_000];

    // Regular files for the image and its device.
    mount_erofs(
        &meta,
        std::slice::from_ref(&blob),
        &mnt,
        &MountOptions::default(),
    )
    .unwrap();
    let g = Mounted(mnt.clone());
    assert_eq!(fs::read(mnt.join("only-m")).unwrap(), want);
    // EROFS does not show its extra devices in mountinfo (observed on 6.18): only the primary.
    let entry = mountinfo()
        .unwrap()
        .into_iter()
        .find(|m| m.mount_point == mnt)
        .unwrap();
    assert_eq!(entry.source, meta);
    unmount_settled(&mnt);
    drop(g);

    // A file-backed primary with a loop device, or the other way round, is refused clearly.
    {
        let b = LoopDevice::attach(&blob, LoopOptions::default()).unwrap();
        let err = mount_erofs(
            &meta,
            &[b.path().to_path_buf()],
            &mnt,
            &MountOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, MountError::MixedErofsSources { .. }), "{err}");
        let a = LoopDevice::attach(&meta, LoopOptions::default()).unwrap();
        let err = mount_erofs(
            a.path(),
            std::slice::from_ref(&blob),
            &mnt,
            &MountOptions::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("all be regular files or all be block devices"),
            "{err}"
        );
    }
    wait_detached(&blob);
    wait_detached(&meta);

    // Both through loop devices.
    {
        let a = LoopDevice::attach(&meta, LoopOptions::default()).unwrap();
        let b = LoopDevice::attach(&blob, LoopOptions::default()).unwrap();
        mount_erofs(
            a.path(),
            &[b.path().to_path_buf()],
            &mnt,
            &MountOptions::default(),
        )
        .unwrap();
    }
    let g = Mounted(mnt.clone());
    assert_eq!(fs::read(mnt.join("only-m")).unwrap(), want);
    unmount_settled(&mnt);
    drop(g);
    wait_detached(&meta);
    wait_detached(&blob);

    // Observed on 6.18: without its device the image still mounts, and only reading chunked
    // data fails. Callers must pass every device; the kernel does not check the count.
    mount_erofs(&meta, &[], &mnt, &MountOptions::default()).unwrap();
    let g = Mounted(mnt.clone());
    let read = fs::read(mnt.join("only-m"));
    eprintln!(
        "reading without the blob device: {:?}",
        read.as_ref().map(Vec::len)
    );
    assert!(read.is_err());
    // A failed read can leave readahead in flight for a moment (EBUSY seen under load in CI):
    // detach lazily, the mount leaves the namespace at once either way.
    unmount(&mnt, true).unwrap();
    drop(g);
    assert_eq!(mounts_under(tmp.path()), 0);
}

#[test]
fn privileged_erofs_paths_with_commas_go_through_the_new_mount_api() {
    if !ready(&["mkfs.erofs"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = mkdir(tmp.path().join("a,b"));
    let src = source_tree(tmp.path(), "c");
    let (meta, blob) = (dir.join("meta,1.erofs"), dir.join("blob,2"));
    mkfs_erofs(
        &[&format!("--blobdev={}", blob.display()), "--chunksize=4096"],
        &meta,
        &src,
    );
    let mnt = mkdir(tmp.path().join("mnt"));
    mount_erofs(
        &meta,
        std::slice::from_ref(&blob),
        &mnt,
        &MountOptions { noexec: true },
    )
    .unwrap();
    let _g = Mounted(mnt.clone());
    assert_eq!(
        fs::read_to_string(mnt.join("sub/hello.txt")).unwrap(),
        "hello from c\n"
    );
    let entry = mountinfo()
        .unwrap()
        .into_iter()
        .find(|m| m.mount_point == mnt)
        .unwrap();
    for opt in ["ro", "nodev", "nosuid", "noexec"] {
        assert!(
            entry.has_option(opt),
            "{opt} missing from {}",
            entry.mount_options
        );
    }
    unmount_settled(&mnt);
}

#[test]
fn privileged_garbage_image_error_carries_the_kernels_reason() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("zeros.erofs");
    fs::write(&img, vec![0u8; 1 << 16]).unwrap();
    let mnt = mkdir(tmp.path().join("mnt"));
    let err = mount_erofs(&img, &[], &mnt, &MountOptions::default()).unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert_eq!(err.errno(), Some(libc::EINVAL));
    assert!(
        text.contains(&*img.to_string_lossy()) && text.contains(&*mnt.to_string_lossy()),
        "{text}"
    );
    assert!(
        text.contains("kernel:"),
        "the fs context log is read back: {text}"
    );
    assert_eq!(mounts_under(tmp.path()), 0);
}

#[test]
fn privileged_overlay_of_two_squashfs_images() {
    if !ready(&["mksquashfs"]) || !filesystem_supported("overlay") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut lowers = Vec::new();
    let mut guards = Vec::new();
    let mut images = Vec::new();
    for tag in ["low", "high"] {
        let img = tmp.path().join(format!("{tag}.sqfs"));
        mksquashfs(&source_tree(tmp.path(), tag), &img);
        let dir = mkdir(tmp.path().join(format!("l-{tag}")));
        let dev = LoopDevice::attach(&img, LoopOptions::default()).unwrap();
        mount_squashfs(dev.path(), &dir, &MountOptions::default()).unwrap();
        guards.push(Mounted(dir.clone()));
        lowers.insert(0, dir);
        images.push(img);
    }
    let mnt = mkdir(tmp.path().join("mnt"));
    mount_overlay_ro(&lowers, &mnt, &MountOptions::default()).unwrap();
    let top = Mounted(mnt.clone());
    assert!(mnt.join("only-low").exists() && mnt.join("only-high").exists());
    assert_eq!(
        fs::read_to_string(mnt.join("sub/hello.txt")).unwrap(),
        "hello from high\n",
        "the first lower is on top"
    );
    let err = fs::write(mnt.join("new"), b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    let entry = mountinfo()
        .unwrap()
        .into_iter()
        .find(|m| m.mount_point == mnt)
        .unwrap();
    assert_eq!(entry.fstype, "overlay");
    unmount_settled(&mnt);
    drop(top);
    for l in &lowers {
        unmount_settled(l);
    }
    drop(guards);
    for img in &images {
        wait_detached(img);
    }
    assert_eq!(mounts_under(tmp.path()), 0);
}

#[test]
fn privileged_overlay_with_a_long_layer_list_uses_lowerdir_plus() {
    if !ready(&[]) || !filesystem_supported("overlay") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // 40 layers of ~130-byte paths: about 5.3 kB of lowerdir=, more than mount(2) takes.
    let lowers: Vec<PathBuf> = (0..40)
        .map(|i| {
            let d = mkdir(tmp.path().join(format!("layer-{i:02}-{}", "x".repeat(100))));
            fs::write(d.join(format!("f{i}")), format!("{i}")).unwrap();
            fs::write(d.join("top"), format!("{i}")).unwrap();
            d
        })
        .collect();
    assert!(
        lowers
            .iter()
            .map(|l| l.as_os_str().len() + 1)
            .sum::<usize>()
            > 4096
    );
    let mnt = mkdir(tmp.path().join("mnt"));
    mount_overlay_ro(&lowers, &mnt, &MountOptions::default()).unwrap();
    let _g = Mounted(mnt.clone());
    assert_eq!(fs::read_to_string(mnt.join("top")).unwrap(), "0");
    assert_eq!(fs::read_to_string(mnt.join("f39")).unwrap(), "39");
    unmount_settled(&mnt);
    assert_eq!(mounts_under(tmp.path()), 0);
}

#[test]
fn privileged_concurrent_attaches_get_distinct_devices() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = (0..16)
        .map(|i| {
            let p = tmp.path().join(format!("f{i}"));
            fs::write(&p, vec![0u8; 1 << 20]).unwrap();
            p
        })
        .collect();
    let devs: Vec<LoopDevice> = std::thread::scope(|s| {
        let hs: Vec<_> = files
            .iter()
            .map(|f| {
                s.spawn(move || {
                    LoopDevice::attach(
                        f,
                        LoopOptions {
                            direct_io: true,
                            block_size: 4096,
                        },
                    )
                    .unwrap()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut paths: Vec<_> = devs.iter().map(|d| d.path().to_path_buf()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), files.len(), "every attach got its own device");
    for (d, f) in devs.iter().zip(&files) {
        assert_eq!(d.backing_file(), f);
    }
    eprintln!("direct I/O on ext4 honoured: {}", devs[0].direct_io());
    drop(devs);
    for f in &files {
        wait_detached(f);
    }
}

#[test]
fn a_file_or_symlink_as_mount_point_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("file");
    fs::write(&f, b"").unwrap();
    let err = mount_erofs(&f, &[], &f, &MountOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is not a directory") && err.contains(&*f.to_string_lossy()),
        "{err}"
    );
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
    let err = mount_erofs(&f, &[], &link, &MountOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("symlink"), "{err}");
}

#[test]
fn unmounting_a_plain_directory_says_it_is_not_a_mount_point() {
    if !ready(&[]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let err = unmount(tmp.path(), false).unwrap_err().to_string();
    assert!(err.contains("not a mount point"), "{err}");
}

#[test]
fn privileged_direct_io_is_asked_for_and_reported() {
    if !ready(&[]) {
        return;
    }
    // ext4 (the test's tempdir) and, where present, tmpfs (/dev/shm) as backing filesystems.
    let tmp = tempfile::tempdir().unwrap();
    let shm = tempfile::tempdir_in("/dev/shm").ok();
    for dir in std::iter::once(tmp.path()).chain(shm.as_ref().map(|d| d.path())) {
        let f = dir.join("backing");
        fs::write(&f, vec![0u8; 1 << 20]).unwrap();
        let fs_type = mountinfo()
            .unwrap()
            .into_iter()
            .filter(|m| dir.starts_with(&m.mount_point))
            .max_by_key(|m| m.mount_point.as_os_str().len())
            .map(|m| m.fstype)
            .unwrap_or_default();
        let dev = LoopDevice::attach(
            &f,
            LoopOptions {
                direct_io: true,
                block_size: 4096,
            },
        )
        .unwrap();
        eprintln!(
            "direct I/O asked on {fs_type}: kernel says dio={}",
            dev.direct_io()
        );
        let buffered = LoopDevice::attach(&f, LoopOptions::default()).unwrap();
        assert!(!buffered.direct_io());
        drop((dev, buffered));
        wait_detached(&f);
    }
}
