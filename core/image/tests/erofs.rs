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
    ErofsOptions { layout: Layout::Chunked, chunk_size: 64 << 10, blob_size, large_file: 1 << 20, build_time: 0 }
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
    make_tree(&src, &TreeOpts { huge_sparse: false, ..Default::default() });
    let (image, _) = write(&plan(&src, &ErofsOptions::default()), &tmp.path().join("out"));
    let extracted = tmp.path().join("x");
    fsck(&image, &[], Some(&extracted));
    // fsck.erofs 1.5 restores contents, types, modes and symlinks, not xattrs, links or times.
    let o = SnapOpts { dir_mtime: false, xattrs: false, hardlinks: false, owner: is_root() };
    let strip = |mut s: std::collections::BTreeMap<Vec<u8>, Snap>| {
        for v in s.values_mut() {
            v.mtime = (0, 0);
            // fsck.erofs 1.5 extracts devices, fifos and sockets only as placeholders
            if v.mode & 0o170000 != 0o100000 && v.mode & 0o170000 != 0o040000 && v.mode & 0o170000 != 0o120000 {
                *v = Snap { mode: 0, uid: 0, gid: 0, mtime: (0, 0), nlink: 0, size: None, content: None, target: None, rdev: 0, xattrs: vec![], hardlink_of: None };
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
    make_tree(&src, &TreeOpts { huge_sparse: false, ..Default::default() });
    let img = plan(&src, &chunked(1 << 20));
    assert!(img.blobs.len() > 3, "small blob size must give several blobs, got {}", img.blobs.len());
    let (image, blobs) = write(&img, &tmp.path().join("out"));
    fsck(&image, &blobs, None);
}

#[test]
fn rebuilds_are_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, &TreeOpts { big_dir: 500, huge_sparse: false });
    for opts in [ErofsOptions::default(), chunked(1 << 20)] {
        let (a, ablobs) = write(&plan(&src, &opts), &tmp.path().join("a"));
        let (b, bblobs) = write(&plan(&src, &opts), &tmp.path().join("b"));
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap(), "image differs between builds");
        assert_eq!(ablobs.len(), bblobs.len());
        for (x, y) in ablobs.iter().zip(&bblobs) {
            assert_eq!(fs::read(x).unwrap(), fs::read(y).unwrap(), "{} differs between builds", x.display());
        }
        fs::remove_dir_all(tmp.path().join("a")).unwrap();
        fs::remove_dir_all(tmp.path().join("b")).unwrap();
    }
}

#[test]
fn editing_one_small_file_changes_only_the_metadata_and_its_blob() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, &TreeOpts { big_dir: 200, huge_sparse: false });
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
    let changed: Vec<_> =
        blobs_a.iter().zip(&blobs_b).filter(|(x, y)| fs::read(x).unwrap() != fs::read(y).unwrap()).collect();
    assert_eq!(changed.len(), 1, "exactly one data blob changes, got {changed:?}");
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
    assert!(err.contains("file changed as we read it") && err.contains("grows"), "{err}");
    assert!(!out.exists());
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1, "no temporary file left behind");
}

#[test]
fn output_inside_the_source_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = WalkOptions { forbid_inside: vec![tmp.path().join("sub/out.erofs")], ..Default::default() };
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
    let opts = if layout == Layout::Chunked { chunked(1 << 20) } else { ErofsOptions::default() };
    let img = plan(&src, &opts);
    let (image, blobs) = write(&img, &tmp.path().join("out"));
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _guard = if loop_devices && blobs.is_empty() {
        mount_loop(&image, "erofs", &mnt)
    } else {
        mount_erofs_file(&image, &blobs, &mnt)
    };
    assert_same(&snapshot(&src, SnapOpts::KERNEL), &snapshot(&mnt, SnapOpts::KERNEL));
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
