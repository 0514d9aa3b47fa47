//! EROFS writer tests: the kernel, fsck.erofs and rebuilds judge our images.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use fspack_image::erofs::{self, ErofsImage, ErofsOptions, Layout};
use fspack_image::{Tree, WalkOptions};

fn plan(src: &Path, opts: &ErofsOptions) -> ErofsImage {
    let tree = Tree::walk(src, &WalkOptions::default()).unwrap();
    erofs::plan(&tree, opts).unwrap()
}

/// Writes the image and its blobs to `out_dir`; returns (image path, blob paths).
fn write(img: &ErofsImage, out_dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    fs::create_dir_all(out_dir).unwrap();
    let meta = out_dir.join(&img.meta.name);
    img.meta.write_file(&meta).unwrap();
    let blobs = img
        .blobs
        .iter()
        .map(|b| {
            let p = out_dir.join(&b.name);
            b.write_file(&p).unwrap();
            p
        })
        .collect();
    (meta, blobs)
}

fn chunked(blob_size: u64) -> ErofsOptions {
    ErofsOptions {
        layout: Layout::Chunked,
        chunk_size: 64 << 10,
        blob_size,
        large_file: 1 << 20,
        build_time: 0,
    }
}

fn fsck(image: &Path, devices: &[PathBuf], extract: Option<&Path>) {
    let mut cmd = Command::new("fsck.erofs");
    for d in devices {
        cmd.arg(format!("--device={}", d.display()));
    }
    if let Some(dir) = extract {
        cmd.arg(format!("--extract={}", dir.display()));
    }
    let out = cmd.arg(image).output().unwrap();
    assert!(
        out.status.success(),
        "fsck.erofs rejected {}:\n{}{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn single_image_passes_fsck_and_extracts_to_the_same_tree() {
    if !have_tool("fsck.erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(
        &src,
        &TreeOpts {
            huge_sparse: false,
            ..Default::default()
        },
    );
    let (image, _) = write(
        &plan(&src, &ErofsOptions::default()),
        &tmp.path().join("out"),
    );
    let extracted = tmp.path().join("x");
    fsck(&image, &[], Some(&extracted));
    // fsck.erofs 1.5 restores contents, types, modes and symlinks, not xattrs, links or times.
    let o = SnapOpts {
        dir_mtime: false,
        xattrs: false,
        hardlinks: false,
        owner: is_root(),
    };
    let strip = |mut s: std::collections::BTreeMap<Vec<u8>, Snap>| {
        for v in s.values_mut() {
            v.mtime = (0, 0);
            // fsck.erofs 1.5 extracts devices, fifos and sockets only as placeholders
            if v.mode & 0o170000 != 0o100000
                && v.mode & 0o170000 != 0o040000
                && v.mode & 0o170000 != 0o120000
            {
                *v = Snap {
                    mode: 0,
                    uid: 0,
                    gid: 0,
                    mtime: (0, 0),
                    nlink: 0,
                    size: None,
                    content: None,
                    target: None,
                    rdev: 0,
                    xattrs: vec![],
                    hardlink_of: None,
                };
            }
            if v.mode & 0o170000 == 0o120000 {
                v.mode = 0o120777;
            }
        }
        s.remove(&Vec::new());
        // fsck.erofs 1.5 stops extracting a chunk-based file at its first null chunk (the kernel
        // reads it right: see the privileged tests), and chowns after chmod, which drops setuid.
        s.remove(b"sparse.bin".as_slice());
        for v in s.values_mut() {
            v.mode &= !0o6000;
        }
        s
    };
    assert_same(&strip(snapshot(&src, o)), &strip(snapshot(&extracted, o)));
}

#[test]
fn chunked_image_passes_fsck_with_its_devices() {
    if !have_tool("fsck.erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(
        &src,
        &TreeOpts {
            huge_sparse: false,
            ..Default::default()
        },
    );
    let img = plan(&src, &chunked(1 << 20));
    assert!(
        img.blobs.len() > 3,
        "small blob size must give several blobs, got {}",
        img.blobs.len()
    );
    let (image, blobs) = write(&img, &tmp.path().join("out"));
    fsck(&image, &blobs, None);
}

#[test]
fn rebuilds_are_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(
        &src,
        &TreeOpts {
            big_dir: 500,
            huge_sparse: false,
        },
    );
    for opts in [ErofsOptions::default(), chunked(1 << 20)] {
        let (a, ablobs) = write(&plan(&src, &opts), &tmp.path().join("a"));
        let (b, bblobs) = write(&plan(&src, &opts), &tmp.path().join("b"));
        assert_eq!(
            fs::read(&a).unwrap(),
            fs::read(&b).unwrap(),
            "image differs between builds"
        );
        assert_eq!(ablobs.len(), bblobs.len());
        for (x, y) in ablobs.iter().zip(&bblobs) {
            assert_eq!(
                fs::read(x).unwrap(),
                fs::read(y).unwrap(),
                "{} differs between builds",
                x.display()
            );
        }
        fs::remove_dir_all(tmp.path().join("a")).unwrap();
        fs::remove_dir_all(tmp.path().join("b")).unwrap();
    }
}

#[test]
fn editing_one_small_file_changes_only_the_metadata_and_its_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(
        &src,
        &TreeOpts {
            big_dir: 200,
            huge_sparse: false,
        },
    );
    // Medium files that land in pack blobs, and a large file with blobs of its own.
    for i in 0..8 {
        fs::write(src.join(format!("medium-{i}.bin")), vec![i as u8; 300_000]).unwrap();
    }
    fs::write(src.join("weights.safetensors"), vec![7u8; 5 << 20]).unwrap();
    let opts = chunked(1 << 20);
    let before = plan(&src, &opts);
    let (_, blobs_a) = write(&before, &tmp.path().join("a"));
    fs::write(src.join("medium-5.bin"), vec![99u8; 300_000]).unwrap();
    let after = plan(&src, &opts);
    let (_, blobs_b) = write(&after, &tmp.path().join("b"));
    assert_eq!(blobs_a.len(), blobs_b.len());
    let changed: Vec<_> = blobs_a
        .iter()
        .zip(&blobs_b)
        .filter(|(x, y)| fs::read(x).unwrap() != fs::read(y).unwrap())
        .collect();
    assert_eq!(
        changed.len(),
        1,
        "exactly one data blob changes, got {changed:?}"
    );
}

/// s8 fidelity pass, B4: a file removed after the walk is a file that changed during the build
/// (exit 1, "build again"), not a path the user named wrong (exit 3).
#[test]
fn a_file_removed_after_the_walk_is_a_changed_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("goes"), vec![1u8; 10_000]).unwrap();
    let img = plan(&src, &ErofsOptions::default());
    fs::remove_file(src.join("goes")).unwrap();
    let err = img
        .meta
        .write_file(&tmp.path().join("image.erofs"))
        .unwrap_err();
    assert_eq!(err.kind(), fspack_image::ErrorKind::Changed, "{err}");
    assert!(err.to_string().contains("removed after the walk"), "{err}");
}

#[test]
fn a_file_changed_after_the_walk_fails_the_build_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("grows"), vec![1u8; 10_000]).unwrap();
    let img = plan(&src, &ErofsOptions::default());
    fs::write(src.join("grows"), vec![1u8; 20_000]).unwrap();
    let out = tmp.path().join("image.erofs");
    let err = img.meta.write_file(&out).unwrap_err().to_string();
    assert!(
        err.contains("file changed as we read it") && err.contains("grows"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "no temporary file left behind"
    );
}

/// Issue 13: size and mtime alone miss a same-size rewrite whose mtime was put back (`touch -r`,
/// `rsync -t`); the change time gives it away, and the error says so. Issue 14: files under
/// 64 KiB are read into the output buffer and larger ones copied in the kernel, each checked once
/// after the read; both paths catch it.
#[test]
fn a_same_size_rewrite_with_its_mtime_put_back_fails_the_build() {
    for size in [50_000usize, 300_000] {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        fs::create_dir(&src).unwrap();
        let f = src.join("weights.bin");
        fs::write(&f, vec![1u8; size]).unwrap();
        let mtime = fs::metadata(&f).unwrap().modified().unwrap();
        let img = plan(&src, &ErofsOptions::default());
        // Past the coarse timestamp granularity, so the rewrite gets a later ctime on any kernel.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&f, vec![2u8; size]).unwrap();
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        assert_eq!(fs::metadata(&f).unwrap().modified().unwrap(), mtime);
        let out = tmp.path().join("image.erofs");
        let err = img.meta.write_file(&out).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("weights.bin") && text.contains("change time (ctime) changed"),
            "{size} bytes: {text}"
        );
        assert!(!text.contains("modification time changed"), "{text}");
        assert_eq!(err.kind(), fspack_image::ErrorKind::Changed);
        assert!(!out.exists());
    }
}

/// Issue 13: a file replaced by another (rename over it) is a different inode, even with the same
/// size and mtime.
#[test]
fn a_file_replaced_by_rename_fails_the_build_naming_the_inode() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let f = src.join("config.json");
    fs::write(&f, vec![b'a'; 9000]).unwrap();
    let mtime = fs::metadata(&f).unwrap().modified().unwrap();
    let img = plan(&src, &ErofsOptions::default());
    let other = tmp.path().join("other");
    fs::write(&other, vec![b'b'; 9000]).unwrap();
    fs::File::options()
        .write(true)
        .open(&other)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    fs::rename(&other, &f).unwrap();
    let text = img
        .meta
        .write_file(&tmp.path().join("image.erofs"))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("config.json") && text.contains("it was replaced: device and inode"),
        "{text}"
    );
}

/// Issue 14: files on both sides of the 64 KiB limit between the buffered read and the kernel
/// copy, files larger than the 1 MiB write buffer, and more directories than the writer keeps
/// open, all come back with their bytes.
#[test]
fn files_around_the_copy_limits_in_many_directories_extract_unchanged() {
    if !have_tool("fsck.erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let mut want = Vec::new();
    let sizes = [
        1usize,
        4095,
        4096,
        4097,
        65_535,
        65_536,
        65_537,
        (1 << 20) + 3,
    ];
    for d in 0..300usize {
        let dir = src.join(format!("d{d:03}"));
        fs::create_dir_all(&dir).unwrap();

        // Every tenth directory holds a copy of an earlier one's file, so duplicates are found
        // across directories too.
        let seed = if d % 10 == 9 { d - 9 } else { d };
        let size = sizes[seed % sizes.len()];
        // The block number is in every byte, so a read from the wrong block shows.
        let bytes: Vec<u8> = (0..size)
            .map(|i| ((i >> 12) * 31 + i * 7 + seed * 13) as u8)
            .collect();
        let rel = format!("d{d:03}/f{}", d % 7);
        fs::write(src.join(&rel), &bytes).unwrap();
        want.push((rel, bytes));
    }
    let (image, _) = write(
        &plan(&src, &ErofsOptions::default()),
        &tmp.path().join("out"),
    );
    let extracted = tmp.path().join("x");
    fsck(&image, &[], Some(&extracted));
    for (rel, bytes) in want {
        let got = fs::read(extracted.join(&rel)).unwrap();
        assert!(got == bytes, "{rel}: {} bytes differ", bytes.len());
    }
}

/// Issue 13: each device slot names its blob's sha256; fsck.erofs still accepts the image (so
/// the superblock checksum was recomputed), and the pre-mount check refuses a foreign blob.
#[test]
fn bound_devices_are_recorded_checked_and_refused_when_foreign() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(
        &src,
        &TreeOpts {
            huge_sparse: false,
            ..Default::default()
        },
    );
    let mut img = plan(&src, &chunked(1 << 20));
    assert!(img.blobs.len() > 1);
    let unbound = tmp.path().join("unbound");
    let (meta0, blobs) = write(&img, &unbound);
    // Untagged images (built before issue 13) have nothing to compare and pass.
    let digests: Vec<String> = blobs.iter().map(|b| sha256_file(b)).collect();
    let pairs: Vec<(PathBuf, String)> = blobs.iter().cloned().zip(digests.clone()).collect();
    assert_eq!(erofs::device_tags(&meta0).unwrap(), vec![None; blobs.len()]);
    erofs::check_devices(&meta0, &pairs).unwrap();

    img.bind_devices(&digests).unwrap();
    let (meta, _) = write(&img, &tmp.path().join("bound"));
    let tags = erofs::device_tags(&meta).unwrap();
    let want: Vec<Option<String>> = digests
        .iter()
        .map(|d| Some(d.strip_prefix("sha256:").unwrap().to_string()))
        .collect();
    assert_eq!(tags, want);
    if have_tool("fsck.erofs") {
        fsck(&meta, &blobs, None);
    }
    erofs::check_devices(&meta, &pairs).unwrap();

    let mut swapped = pairs.clone();
    swapped.swap(0, 1);
    let err = erofs::check_devices(&meta, &swapped).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), fspack_image::ErrorKind::Integrity);
    assert!(
        text.contains("device 1")
            && text.contains(&swapped[0].0.display().to_string())
            && text.contains(&digests[0])
            && text.contains(&digests[1]),
        "{text}"
    );
    assert!(erofs::check_devices(&meta, &pairs[1..]).is_err());
}

fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    format!(
        "sha256:{}",
        hex::encode(sha2::Sha256::digest(fs::read(p).unwrap()))
    )
}

/// Issue 13: where privileged tests are required (CI), a missing filesystem is a failure, not a
/// silent skip.
#[test]
#[should_panic(expected = "FSPACK_REQUIRE_PRIVILEGED=1 and this test cannot run")]
fn a_skip_is_a_failure_when_privileged_tests_are_required() {
    can_mount_with("no-such-fs-xyz", true);
}

#[test]
fn output_inside_the_source_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = WalkOptions {
        forbid_inside: vec![tmp.path().join("sub/out.erofs")],
        ..Default::default()
    };
    fs::create_dir(tmp.path().join("sub")).unwrap();
    let err = Tree::walk(tmp.path(), &opts).unwrap_err().to_string();
    assert!(err.contains("inside the source directory"), "{err}");
}

fn mounted_equals_source(layout: Layout, loop_devices: bool) {
    if !can_mount("erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, &TreeOpts::default());
    let opts = if layout == Layout::Chunked {
        chunked(1 << 20)
    } else {
        ErofsOptions::default()
    };
    let img = plan(&src, &opts);
    let (image, blobs) = write(&img, &tmp.path().join("out"));
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _guard = if loop_devices && blobs.is_empty() {
        mount_loop(&image, "erofs", &mnt)
    } else {
        mount_erofs_file(&image, &blobs, &mnt)
    };
    assert_same(
        &snapshot(&src, SnapOpts::KERNEL),
        &snapshot(&mnt, SnapOpts::KERNEL),
    );
}

#[test]
fn privileged_single_image_through_a_loop_device_equals_the_source() {
    mounted_equals_source(Layout::Single, true);
}

#[test]
fn privileged_single_image_file_backed_equals_the_source() {
    mounted_equals_source(Layout::Single, false);
}

#[test]
fn privileged_chunked_image_with_device_files_equals_the_source() {
    mounted_equals_source(Layout::Chunked, false);
}

/// Inline xattrs larger than a block (fidelity pass B3: they were refused). tmpfs takes user
/// xattrs of any size (ext4 stops at one block), so the tree lives on one. The kernel must read
/// every attribute back, across the block boundaries, and fsck.erofs 1.9.3 must accept the image.
#[test]
fn privileged_xattrs_over_one_block_cross_blocks_and_read_back() {
    if !can_mount("erofs") || !can_mount("tmpfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let _tmpfs = {
        rustix::mount::mount(
            "tmpfs",
            &src,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .unwrap();
        MountGuard(src.clone())
    };
    fs::create_dir(src.join("dir")).unwrap();
    // A small file (its tail would go inline), a chunk-sized file, a directory, and a file
    // whose attributes fit, between them, so the large ones do not all start an image block.
    fs::write(src.join("a-small.txt"), b"small file with a tail\n").unwrap();
    fs::write(src.join("b-blocks.bin"), pseudo_random(3, 3 * 4096 + 100)).unwrap();
    fs::write(src.join("c-plain.txt"), b"plain\n").unwrap();
    set_xattr(
        &src.join("a-small.txt"),
        "user.one",
        &pseudo_random(1, 6000),
    );
    set_xattr(
        &src.join("a-small.txt"),
        "user.two",
        &pseudo_random(2, 9000),
    );
    set_xattr(
        &src.join("b-blocks.bin"),
        "user.big",
        &pseudo_random(4, 65535),
    );
    set_xattr(&src.join("c-plain.txt"), "user.fits", b"in one block");
    set_xattr(&src.join("dir"), "user.dir", &pseudo_random(5, 5000));
    for opts in [ErofsOptions::default(), chunked(1 << 20)] {
        let img = plan(&src, &opts);
        let out = tmp.path().join(format!("out-{:?}", opts.layout));
        let (image, blobs) = write(&img, &out);
        let mnt = tmp.path().join(format!("mnt-{:?}", opts.layout));
        fs::create_dir(&mnt).unwrap();
        {
            let _guard = mount_erofs_file(&image, &blobs, &mnt);
            assert_same(
                &snapshot(&src, SnapOpts::KERNEL),
                &snapshot(&mnt, SnapOpts::KERNEL),
            );
        }
        let upstream = Path::new("/work/shared/tools/erofs-utils-1.9.3/bin/fsck.erofs");
        if upstream.exists() {
            let mut cmd = Command::new(upstream);
            for d in &blobs {
                cmd.arg(format!("--device={}", d.display()));
            }
            let o = cmd.arg(&image).output().unwrap();
            assert!(
                o.status.success(),
                "fsck.erofs 1.9.3 rejected {}:\n{}{}",
                image.display(),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

/// A small fixed tree rendered by our reader: reviewers see the layout, and any change to the
/// bytes the writer produces shows up as a diff. Set UPDATE_SNAPSHOTS=1 to accept a change.
#[test]
fn small_image_dump_matches_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("dir/sub")).unwrap();
    fs::write(src.join("hello.txt"), b"hello\n").unwrap();
    fs::write(src.join("dir/blocks.bin"), vec![0xabu8; 9000]).unwrap();
    fs::write(src.join("dir/sub/empty"), b"").unwrap();
    std::os::unix::fs::symlink("../hello.txt", src.join("dir/link")).unwrap();
    fs::hard_link(src.join("hello.txt"), src.join("dir/hard")).unwrap();
    rustix::fs::lsetxattr(
        src.join("hello.txt"),
        "user.k",
        b"v",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    for p in [
        "hello.txt",
        "dir/blocks.bin",
        "dir/sub/empty",
        "dir/sub",
        "dir",
        "",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = if src.join(p).is_dir() { 0o755 } else { 0o644 };
        fs::set_permissions(src.join(p), fs::Permissions::from_mode(mode)).unwrap();
    }
    for p in [
        "hello.txt",
        "dir/blocks.bin",
        "dir/sub/empty",
        "dir/link",
        "dir/sub",
        "dir",
        "",
    ] {
        let t = rustix::fs::Timespec {
            tv_sec: 1_700_000_000,
            tv_nsec: 5,
        };
        let ts = rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            src.join(p),
            &ts,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    let walk = WalkOptions {
        all_root: true,
        ..Default::default()
    };
    let tree = Tree::walk(&src, &walk).unwrap();
    let mut text = String::new();
    for opts in [
        ErofsOptions::default(),
        ErofsOptions {
            layout: Layout::Chunked,
            ..ErofsOptions::default()
        },
    ] {
        let img = erofs::plan(&tree, &opts).unwrap();
        let path = tmp.path().join("img");
        img.meta.write_file(&path).unwrap();
        let dump = erofs::dump::dump(&fs::read(&path).unwrap()).unwrap();
        text.push_str(&format!("== {:?}\n{dump}", opts.layout));
    }
    let snap = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/small_image.dump");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() || !snap.exists() {
        fs::create_dir_all(snap.parent().unwrap()).unwrap();
        fs::write(&snap, &text).unwrap();
    }
    assert_eq!(
        fs::read_to_string(&snap).unwrap(),
        text,
        "run with UPDATE_SNAPSHOTS=1 to accept"
    );
}

#[test]
fn the_reader_rejects_garbage_without_panicking() {
    assert!(erofs::dump::dump(&[0u8; 100]).is_err());
    let mut junk = vec![0u8; 8192];
    junk[1024..1028].copy_from_slice(&0xE0F5E1E2u32.to_le_bytes());
    junk[1024 + 12] = 12;
    junk[1024 + 14] = 0xff;
    junk[1024 + 15] = 0xff;
    assert!(erofs::dump::dump(&junk).is_err());
}
