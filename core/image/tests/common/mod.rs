//! Test support shared by the format tests: a generator for trees with every inode kind, a
//! snapshot of a tree as the kernel presents it, and helpers for privileged mounts.
#![allow(dead_code, missing_docs)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[path = "../../../../tests/support/privileged.rs"]
pub mod privileged;

/// Returns false (after saying why) when privileged tests cannot run here; fails instead under
/// `FSPACK_REQUIRE_PRIVILEGED=1`. A filesystem built as a module and not loaded yet is loaded
/// (`modprobe`), as the kernel would on the first mount. Records the test as run otherwise.
pub fn can_mount(fs: &str) -> bool {
    can_mount_with(fs, privileged::required())
}

/// [`can_mount`] with the skip policy given.
pub fn can_mount_with(fs: &str, required: bool) -> bool {
    if !is_root() {
        return privileged::skip_or_fail(required, "needs root (mounts and loop devices)");
    }
    let listed = |fs: &str| {
        fs::read_to_string("/proc/filesystems")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().last() == Some(fs))
    };
    let loaded = listed(fs) || (privileged::modprobe(fs) && listed(fs));
    if !loaded {
        return privileged::skip_or_fail(
            required,
            &format!(
                "the kernel has no {fs} driver (not in /proc/filesystems, modprobe {fs} failed)"
            ),
        );
    }
    let control = || Path::new("/dev/loop-control").exists();
    if !(control() || (privileged::modprobe("loop") && control())) {
        return privileged::skip_or_fail(required, "no /dev/loop-control (modprobe loop failed)");
    }
    privileged::ran();
    true
}

/// Whether `name` is on PATH; a missing tool skips the test (or fails it under
/// `FSPACK_REQUIRE_PRIVILEGED=1`).
pub fn have_tool(name: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    ok || privileged::skip(&format!("{name} is not installed"))
}

fn write(path: &Path, data: &[u8]) {
    let mut f = fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
}

pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    rustix::fs::lsetxattr(path, name, value, rustix::fs::XattrFlags::empty()).unwrap();
}

fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, utimensat};
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    utimensat(
        CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// Options for [`make_tree`].
pub struct TreeOpts {
    /// Number of entries in the big directory (spans many directory blocks).
    pub big_dir: usize,
    /// Add a sparse file above 4 GiB.
    pub huge_sparse: bool,
}

impl Default for TreeOpts {
    fn default() -> Self {
        TreeOpts {
            big_dir: 3000,
            huge_sparse: true,
        }
    }
}

/// Creates a tree with every inode kind under `root` (root-only kinds only when running as root).
pub fn make_tree(root: &Path, opts: &TreeOpts) {
    fs::create_dir_all(root.join("sub/deeper/deepest")).unwrap();
    write(&root.join("empty"), b"");
    write(&root.join("small.txt"), b"hello, erofs\n");
    write(&root.join("block.bin"), &pseudo_random(1, 4096));
    write(&root.join("multi.bin"), &pseudo_random(2, 3 * 4096 + 123));
    write(&root.join("sub/deeper/mid.bin"), &pseudo_random(3, 300_000));
    write(
        &root.join("sub/deeper/deepest/large.bin"),
        &pseudo_random(4, 3 << 20),
    );
    // Sparse: data, a hole, data at the end.
    let sparse = root.join("sparse.bin");
    {
        let f = fs::File::create(&sparse).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&pseudo_random(5, 5000), 0).unwrap();
        f.write_all_at(b"tail of a sparse file", 40 << 20).unwrap();
    }
    if opts.huge_sparse {
        let f = fs::File::create(root.join("huge.bin")).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"beyond four gigabytes", (5u64 << 30) + 7)
            .unwrap();
    }
    // Directory spanning many blocks, names of varied lengths.
    let big = root.join("bigdir");
    fs::create_dir(&big).unwrap();
    for i in 0..opts.big_dir {
        let name = format!("entry-{i:05}-{}", "n".repeat(i % 40));
        write(&big.join(name), format!("{i}\n").as_bytes());
    }
    // Names: non-UTF-8, leading dash, spaces, newline, 255 bytes.
    write(&root.join(OsStr::from_bytes(b"bad\xffname")), b"x");
    write(&root.join("-leading dash"), b"y");
    write(&root.join("new\nline"), b"z");
    write(&root.join("n".repeat(255)), b"long name");
    // Sorting traps: names that sort before "." and "..".
    write(&root.join("!bang"), b"1");
    write(&root.join("+plus"), b"2");
    // Symlinks: short, long, dangling, absolute, loop.
    symlink("small.txt", root.join("link")).unwrap();
    symlink("t".repeat(2000), root.join("longlink")).unwrap();
    symlink("/nonexistent/target", root.join("abslink")).unwrap();
    symlink("loop-b", root.join("loop-a")).unwrap();
    symlink("loop-a", root.join("loop-b")).unwrap();
    // Hardlinks: same dir and across dirs.
    fs::hard_link(root.join("small.txt"), root.join("hard-same")).unwrap();
    fs::hard_link(root.join("small.txt"), root.join("sub/hard-other")).unwrap();
    fs::hard_link(root.join("multi.bin"), root.join("sub/deeper/multi-link")).unwrap();
    // Modes.
    write(&root.join("setuid"), b"#!/bin/sh\n");
    fs::set_permissions(root.join("setuid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::create_dir(root.join("sticky")).unwrap();
    fs::set_permissions(root.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    write(&root.join("private"), b"secret");
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
    // FIFO and socket.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        0o644.into(),
        0,
    )
    .unwrap();
    drop(std::os::unix::net::UnixListener::bind(root.join("socket")).unwrap());
    // User xattrs (any user can set them on files).
    set_xattr(&root.join("small.txt"), "user.greeting", b"hi");
    set_xattr(&root.join("multi.bin"), "user.big", &pseudo_random(6, 1500));
    set_xattr(&root.join("sub"), "user.dir", b"on a directory");
    if is_root() {
        use rustix::fs::{FileType, Mode, mknodat};
        mknodat(
            rustix::fs::CWD,
            root.join("whiteout"),
            FileType::CharacterDevice,
            Mode::from(0o644),
            0,
        )
        .unwrap();
        let null = rustix::fs::makedev(1, 3);
        mknodat(
            rustix::fs::CWD,
            root.join("null"),
            FileType::CharacterDevice,
            Mode::from(0o666),
            null,
        )
        .unwrap();
        let bigminor = rustix::fs::makedev(259, 70000);
        mknodat(
            rustix::fs::CWD,
            root.join("nvme"),
            FileType::BlockDevice,
            Mode::from(0o660),
            bigminor,
        )
        .unwrap();
        set_xattr(&root.join("sub"), "trusted.overlay.opaque", b"y");
        set_xattr(
            &root.join("setuid"),
            "security.capability",
            &[
                1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ],
        );
        rustix::fs::chownat(
            rustix::fs::CWD,
            root.join("private"),
            Some(rustix::fs::Uid::from_raw(100_000)),
            Some(rustix::fs::Gid::from_raw(200_000)),
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
    }
    // Times: nanoseconds, before 1970, far future; set last, leaves first, directories after.
    set_mtime(&root.join("small.txt"), 981_173_106, 123_456_789);
    set_mtime(&root.join("multi.bin"), -86_400, 0);
    set_mtime(&root.join("block.bin"), 4_102_444_800, 999_999_999);
    set_mtime(&root.join("link"), 1_000_000_000, 5);
}

/// One entry of a tree as `lstat` and friends see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snap {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub nlink: u64,
    pub size: Option<u64>,
    pub content: Option<String>,
    pub target: Option<Vec<u8>>,
    pub rdev: u64,
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// The first path (in sorted order) that shares this entry's inode.
    pub hardlink_of: Option<Vec<u8>>,
}

/// Which attributes to compare (an extraction by a userspace tool cannot restore all of them).
#[derive(Clone, Copy)]
pub struct SnapOpts {
    pub dir_mtime: bool,
    pub xattrs: bool,
    pub hardlinks: bool,
    pub owner: bool,
}

impl SnapOpts {
    pub const KERNEL: SnapOpts = SnapOpts {
        dir_mtime: true,
        xattrs: true,
        hardlinks: true,
        owner: true,
    };
}

fn xattrs_of(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut names = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names[..]) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let mut v = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(path, OsStr::from_bytes(name), &mut v[..]) {
            v.truncate(len);
            out.push((name.to_vec(), v));
        }
    }
    out.sort();
    out
}

/// Snapshot of every entry below `root`, keyed by relative path bytes.
pub fn snapshot(root: &Path, o: SnapOpts) -> BTreeMap<Vec<u8>, Snap> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut paths = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            paths.push(p);
        }
    }
    paths.push(root.to_path_buf());
    paths.sort();
    for p in paths {
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .to_vec();
        let is_dir = m.is_dir();
        let content = m.is_file().then(|| {
            let mut h = Sha256::new();
            let mut f = fs::File::open(&p).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = std::io::Read::read(&mut f, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            hex::encode(h.finalize())
        });
        let target = m
            .file_type()
            .is_symlink()
            .then(|| fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec());
        let hardlink_of = if o.hardlinks && !is_dir && m.nlink() > 1 {
            Some(inodes.entry(m.ino()).or_insert_with(|| rel.clone()).clone())
        } else {
            None
        };
        let snap = Snap {
            mode: m.mode(),
            uid: if o.owner { m.uid() } else { 0 },
            gid: if o.owner { m.gid() } else { 0 },
            mtime: if is_dir && !o.dir_mtime {
                (0, 0)
            } else {
                (m.mtime(), m.mtime_nsec())
            },
            nlink: if o.hardlinks { m.nlink() } else { 0 },
            size: (!is_dir).then_some(m.len()),
            content,
            target,
            rdev: m.rdev(),
            xattrs: if o.xattrs { xattrs_of(&p) } else { Vec::new() },
            hardlink_of,
        };
        out.insert(rel, snap);
    }
    out
}

/// Asserts two snapshots are equal, printing the first differing entries.
pub fn assert_same(expected: &BTreeMap<Vec<u8>, Snap>, actual: &BTreeMap<Vec<u8>, Snap>) {
    let mut diffs = Vec::new();
    for (k, v) in expected {
        match actual.get(k) {
            None => diffs.push(format!("missing: {:?}", String::from_utf8_lossy(k))),
            Some(a) if a != v => diffs.push(format!(
                "differs: {:?}\n  expected {v:?}\n  actual   {a:?}",
                String::from_utf8_lossy(k)
            )),
            _ => {}
        }
    }
    for k in actual.keys().filter(|k| !expected.contains_key(*k)) {
        diffs.push(format!("extra: {:?}", String::from_utf8_lossy(k)));
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A mount that is undone when dropped, even when the test panics.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.0, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Mounts an EROFS image file-backed (Linux 6.12+), with extra devices given as files.
pub fn mount_erofs_file(image: &Path, devices: &[PathBuf], target: &Path) -> MountGuard {
    let opts: Vec<String> = devices
        .iter()
        .map(|d| format!("device={}", d.display()))
        .collect();
    let data = std::ffi::CString::new(opts.join(",")).unwrap();
    rustix::mount::mount(
        image,
        target,
        "erofs",
        rustix::mount::MountFlags::RDONLY,
        Some(data.as_c_str()),
    )
    .unwrap_or_else(|e| panic!("mount {}: {e}", image.display()));
    MountGuard(target.to_path_buf())
}

/// Mounts an image through util-linux `mount -o loop` (a loop device that autoclears on unmount).
pub fn mount_loop(image: &Path, fstype: &str, target: &Path) -> MountGuard {
    let st = Command::new("mount")
        .args(["-t", fstype, "-o", "ro,loop"])
        .arg(image)
        .arg(target)
        .status()
        .unwrap();
    assert!(st.success(), "mount -o loop {} failed", image.display());
    MountGuard(target.to_path_buf())
}
