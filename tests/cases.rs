//! The real cases of issue 11, each run through the real binary (with the kernel and a real
//! registry where the case needs them): mount points, plain umount, duplicate files, shard
//! limits, default tags, POSIX ACLs, `oci:` layouts and writer edge cases.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::trees::{SnapOpts, assert_same, can_mount, have_tool, is_root, snapshot};
use common::*;
use predicates::prelude::*;

/// A small tree: a few files of different sizes in two directories.
fn small_tree(dir: &Path) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..4u32 {
        let data: Vec<u8> = (0..(100_000 + i * 7_000))
            .map(|x| (x.wrapping_mul(2_654_435_761) >> 11) as u8 ^ i as u8)
            .collect();
        fs::write(dir.join(format!("part-{i}.bin")), data).unwrap();
    }
    fs::write(dir.join("sub/readme.txt"), b"hello\n").unwrap();
}

/// Committed blobs in a store (0 when it has none, or no store at all).
fn blobs(store: &Path) -> usize {
    fs::read_dir(store.join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Every path under `root` with its size and mtime: to show that a command wrote nothing.
fn listing(root: &Path) -> Vec<(PathBuf, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let m = fs::symlink_metadata(e.path()).unwrap();
            if m.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), m.len(), m.mtime()));
        }
    }
    out.sort();
    out
}

fn push(store: &Path, src: &Path, reference: &str, extra: &[&str]) {
    fspack(store)
        .arg("push")
        .arg(src)
        .arg(reference)
        .args(extra)
        .assert()
        .success();
}

/// What a mount left behind under `dir`, waiting a moment for autoclear loop devices (the
/// kernel detaches them when their last user goes, not always before umount returns).
fn settled_leftovers(dir: &Path) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = leftovers(dir);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

// Case 1: mount points.

#[test]
fn privileged_a_mount_point_that_is_a_file_fails_before_any_download() {
    if !can_mount("erofs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let reference = format!("{}/cases/file-target:v1", reg.addr);
    push(&tmp.path().join("push-store"), &src, &reference, &[]);
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    let store = tmp.path().join("store");
    for args in [
        vec!["pull", &reference, "--mount", file.to_str().unwrap()],
        vec!["mount", &reference, file.to_str().unwrap()],
    ] {
        fspack(&store).args(&args).assert().code(2).stderr(
            predicate::str::contains("not a directory")
                .and(predicate::str::contains("hint:"))
                .and(predicate::str::contains(file.to_str().unwrap())),
        );
        assert_eq!(
            blobs(&store),
            0,
            "{args:?} fetched data before checking the target"
        );
    }
    // Below a file: the same, at once.
    let below = file.join("mnt");
    fspack(&store)
        .args(["pull", &reference, "--mount"])
        .arg(&below)
        .assert()
        .code(2);
    assert_eq!(blobs(&store), 0);
}

#[test]
fn privileged_a_missing_mount_point_is_created_and_umount_removes_it() {
    if !can_mount("erofs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let reference = format!("{}/cases/mkdir:v1", reg.addr);
    push(&tmp.path().join("push-store"), &src, &reference, &[]);
    let store = tmp.path().join("store");
    let new = tmp.path().join("new");
    let mnt = new.join("deeper");
    fspack(&store)
        .args(["pull", &reference, "--mount"])
        .arg(&mnt)
        .assert()
        .success();
    let result = std::panic::catch_unwind(|| {
        assert_same(
            &snapshot(&src, SnapOpts::KERNEL),
            &snapshot(&mnt, SnapOpts::KERNEL),
        )
    });
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    result.unwrap();
    assert!(
        !new.exists(),
        "umount removes the directories fspack created"
    );
    // `fspack mount` too, and a directory that existed before is left alone.
    fspack(&store)
        .arg("mount")
        .arg(&reference)
        .arg(&mnt)
        .assert()
        .success();
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    assert!(!new.exists());
    let kept = tmp.path().join("kept");
    fs::create_dir(&kept).unwrap();
    fspack(&store)
        .arg("mount")
        .arg(&reference)
        .arg(&kept)
        .assert()
        .success();
    fspack(&store).arg("umount").arg(&kept).assert().success();
    assert!(kept.is_dir(), "a directory the user made stays");
    assert_eq!(settled_leftovers(tmp.path()), Vec::<String>::new());
}

// Case 2: plain umount(8).

#[test]
fn privileged_a_plain_umount_of_squashfs_shards_leaves_nothing_behind() {
    if !can_mount("squashfs") || !can_mount("overlay") || !have_tool("umount") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let reference = format!("{}/cases/shards:v1", reg.addr);
    push(
        &tmp.path().join("push-store"),
        &src,
        &reference,
        &["--format", "squashfs", "--shards", "3"],
    );
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    fspack(&store)
        .args(["pull", &reference, "--mount"])
        .arg(&mnt)
        .assert()
        .success();
    assert_eq!(
        fs::read(mnt.join("sub/readme.txt")).unwrap(),
        b"hello\n",
        "the shards are stacked"
    );
    let st = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(st.success());
    let left = settled_leftovers(tmp.path());
    // The mount point is free again for fspack, and whatever the kernel could not release by
    // itself, gc must.
    fspack(&store)
        .args(["pull", &reference, "--mount"])
        .arg(&mnt)
        .assert()
        .success();
    Command::new("umount").arg(&mnt).status().unwrap();
    // `fspack umount` of a mount already undone says what it did instead (s10: it was silent).
    fspack(&store)
        .arg("umount")
        .arg(&mnt)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "was unmounted already (without fspack)",
        ));
    fspack(&store)
        .args(["pull", &reference, "--mount"])
        .arg(&mnt)
        .assert()
        .success();
    Command::new("umount").arg(&mnt).status().unwrap();
    fspack(&store).arg("gc").assert().success();
    let ls: serde_json::Value = serde_json::from_slice(
        &fspack(&store)
            .args(["ls", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        ls.as_array().unwrap().len(),
        0,
        "gc forgets unmounted mounts: {ls}"
    );
    assert_eq!(settled_leftovers(tmp.path()), Vec::<String>::new());
    assert_eq!(
        left,
        Vec::<String>::new(),
        "umount(8) alone must release every shard"
    );
}

#[test]
fn privileged_a_plain_umount_of_chunked_erofs_on_loop_devices_leaves_nothing_behind() {
    if !can_mount("erofs") || !have_tool("umount") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let reference = format!("{}/cases/chunked:v1", reg.addr);
    push(
        &tmp.path().join("push-store"),
        &src,
        &reference,
        &["--blob-size", "1M"],
    );
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    fspack(&store)
        .args(["pull", &reference, "--mount-mode", "loop", "--mount"])
        .arg(&mnt)
        .assert()
        .success();
    let st = Command::new("umount").arg(&mnt).status().unwrap();
    assert!(st.success());
    assert_eq!(settled_leftovers(tmp.path()), Vec::<String>::new());
}

// Case 3: duplicate files.

/// `copies` files in each of `distinct` contents of `size` bytes, spread over directories.
fn duplicate_tree(dir: &Path, distinct: u32, copies: u32, size: usize) {
    for c in 0..copies {
        let d = dir.join(format!("copy-{c:03}"));
        fs::create_dir_all(&d).unwrap();
        for i in 0..distinct {
            let data: Vec<u8> = (0..size as u32)
                .map(|x| (x.wrapping_add(i * 7919).wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            fs::write(d.join(format!("file-{i}.bin")), data).unwrap();
        }
    }
}

#[test]
fn duplicate_file_contents_are_stored_once_in_both_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // 20 contents of 200 KB (a full block plus a tail each), 10 copies: 40 MB raw, 4 MB distinct.
    duplicate_tree(&src, 20, 10, 200_000);
    let distinct = 20 * 200_000u64;
    let store = tmp.path().join("store");
    for (format, name, extra) in [
        ("squashfs", "dups.sqfs", &["--compression", "lz4"][..]),
        ("erofs", "dups.erofs", &[][..]),
    ] {
        let out = tmp.path().join(name);
        fspack(&store)
            .arg("build")
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .args(["--format", format, "--all-root"])
            .args(extra)
            .assert()
            .success();
        let size = fs::metadata(&out).unwrap().len();
        assert!(
            size < distinct + distinct / 4,
            "{format}: {size} bytes for {distinct} distinct bytes in 10 copies each"
        );
    }
    if have_tool("unsquashfs") {
        let x = tmp.path().join("x");
        let st = Command::new("unsquashfs")
            .args(["-no-xattrs", "-q", "-d"])
            .arg(&x)
            .arg(tmp.path().join("dups.sqfs"))
            .output()
            .unwrap();
        assert!(
            st.status.success(),
            "{}",
            String::from_utf8_lossy(&st.stderr)
        );
        let mut ours = snapshot(&x, SnapOpts::KERNEL);
        let mut want = snapshot(&src, SnapOpts::KERNEL);
        for s in ours.values_mut().chain(want.values_mut()) {
            s.mtime = (0, 0);
            s.uid = 0;
            s.gid = 0;
        }
        assert_same(&want, &ours);
    }
}

#[test]
fn privileged_duplicate_files_read_back_through_the_kernel() {
    if !can_mount("erofs") || !can_mount("squashfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    duplicate_tree(&src, 7, 4, 70_000);
    fs::write(src.join("empty-a"), b"").unwrap();
    fs::write(src.join("empty-b"), b"").unwrap();
    // Copies smaller than a block, and of a block and a bit (tails that would go inline).
    for name in ["tiny-a", "tiny-b", "tiny-c"] {
        fs::write(src.join(name), b"same small bytes\n").unwrap();
    }
    for name in ["odd-a", "odd-b"] {
        fs::write(src.join(name), vec![7u8; 5000]).unwrap();
    }
    let store = tmp.path().join("store");
    for (format, fstype) in [("squashfs", "squashfs"), ("erofs", "erofs")] {
        let out = tmp.path().join(format!("img.{format}"));
        fspack(&store)
            .arg("build")
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .args(["--format", format])
            .assert()
            .success();
        let mnt = tmp.path().join(format!("mnt-{format}"));
        fs::create_dir(&mnt).unwrap();
        let guard = common::trees::mount_loop(&out, fstype, &mnt);
        let mut want = snapshot(&src, SnapOpts::KERNEL);
        let mut got = snapshot(&mnt, SnapOpts::KERNEL);
        for s in want.values_mut().chain(got.values_mut()) {
            s.mtime.1 = 0;
        }
        assert_same(&want, &got);
        drop(guard);
    }
}

// Case 4: more shards than overlayfs stacks.

#[test]
fn more_shards_than_overlayfs_stacks_are_refused_at_build_and_push() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let store = tmp.path().join("store");
    fspack(&store)
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(tmp.path().join("img.sqfs"))
        .args(["--format", "squashfs", "--shards", "510"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("500"));
    assert!(!tmp.path().join("img.sqfs.d").exists(), "nothing written");
    fspack(&store)
        .arg("push")
        .arg(&src)
        .arg(format!("{}/cases/too-many:v1", reg.addr))
        .args(["--format", "squashfs", "--shards", "510"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("500").and(predicate::str::contains("hint:")));
    assert!(
        !reg.storage().join("docker/registry/v2/blobs").exists(),
        "nothing was uploaded"
    );
}

#[test]
fn an_artifact_with_more_shards_than_overlayfs_stacks_is_refused_before_download() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    // Another publisher's artifact: 501 SquashFS layers (the same small blob each time).
    let src = tmp.path().join("src");
    small_tree(&src);
    let img = tmp.path().join("one.sqfs");
    fspack(&tmp.path().join("s0"))
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&img)
        .args(["--format", "squashfs"])
        .assert()
        .success();
    let repo = "cases/many-layers";
    let base = format!("http://{}/v2/{repo}", reg.addr);
    fspack(&tmp.path().join("s0"))
        .arg("push")
        .arg(&img)
        .arg(format!("{}/{repo}:one", reg.addr))
        .assert()
        .success();
    let got = Command::new("curl")
        .args([
            "-fsS",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(format!("{base}/manifests/one"))
        .output()
        .unwrap();
    assert!(got.status.success());
    let mut manifest: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
    let layer = manifest["layers"][0].clone();
    manifest["layers"] = serde_json::Value::Array(vec![layer; 501]);
    let body = tmp.path().join("manifest.json");
    fs::write(&body, manifest.to_string()).unwrap();
    let st = Command::new("curl")
        .args(["-fsS", "-o", "/dev/null", "-X", "PUT", "-H"])
        .arg("Content-Type: application/vnd.oci.image.manifest.v1+json")
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("{base}/manifests/v1"))
        .status()
        .unwrap();
    assert!(st.success());
    let store = tmp.path().join("store");
    fspack(&store)
        .args(["pull", &format!("{}/{repo}:v1", reg.addr)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("501").and(predicate::str::contains("500")));
    assert_eq!(
        blobs(&store),
        0,
        "nothing is downloaded for an artifact fspack cannot mount"
    );
}

// Case 5: push without a tag.

#[test]
fn a_push_without_a_tag_is_pulled_without_a_tag() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let reference = format!("{}/cases/untagged", reg.addr);
    let out = fspack(&tmp.path().join("s1"))
        .arg("push")
        .arg(&src)
        .arg(&reference)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = String::from_utf8(out.stdout).unwrap();
    assert!(
        digest.starts_with("sha256:"),
        "the digest is printed: {digest}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(":latest"),
        "the tag is named"
    );
    let pulled = fspack(&tmp.path().join("s2"))
        .args(["pull", &reference])
        .output()
        .unwrap();
    assert!(
        pulled.status.success(),
        "{}",
        String::from_utf8_lossy(&pulled.stderr)
    );
    assert_eq!(String::from_utf8(pulled.stdout).unwrap(), digest);
    fspack(&tmp.path().join("s2"))
        .args(["pull", &format!("{reference}:latest")])
        .assert()
        .success()
        .stdout(digest);
}

// Case 6: an oci: layout inside the source.

#[test]
fn a_push_into_a_layout_inside_the_source_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let before = listing(&src);
    let store = tmp.path().join("store");
    for dest in [
        format!("oci:{}:v1", src.join("layout").display()),
        format!("oci:{}", src.join("a/b/layout").display()),
        format!("oci:{}:v1", src.display()),
    ] {
        fspack(&store)
            .arg("push")
            .arg(&src)
            .arg(&dest)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("inside the source"));
        assert_eq!(
            listing(&src),
            before,
            "{dest}: nothing written into the source"
        );
    }
    // The same with a relative path, from inside the source.
    fspack(&store)
        .current_dir(&src)
        .args(["push", ".", "oci:out:v1"])
        .assert()
        .code(2);
    assert_eq!(listing(&src), before);
}

// Case 7: POSIX ACLs and SquashFS.

/// `system.posix_acl_access` granting user 1000 read: an extended ACL (a minimal one would be
/// folded into the mode bits by the kernel and never stored).
const ACL: &str =
    "0x0200000001000600ffffffff02000400e803000004000400ffffffff10000400ffffffff20000400ffffffff";

#[test]
fn squashfs_drops_posix_acls_with_one_warning_and_strict_refuses() {
    if !have_tool("setfattr") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("journal");
    fs::create_dir_all(&src).unwrap();
    for i in 0..5 {
        fs::write(src.join(format!("system@{i}.journal")), b"log").unwrap();
    }
    for i in 0..5 {
        let st = Command::new("setfattr")
            .args(["-n", "system.posix_acl_access", "-v", ACL])
            .arg(src.join(format!("system@{i}.journal")))
            .output()
            .unwrap();
        if !st.status.success() {
            eprintln!(
                "SKIP: no POSIX ACLs here: {}",
                String::from_utf8_lossy(&st.stderr)
            );
            return;
        }
    }
    let store = tmp.path().join("store");
    let out = tmp.path().join("j.sqfs");
    let run = fspack(&store)
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--format", "squashfs"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("POSIX ACL").count(),
        1,
        "one warning: {stderr}"
    );
    assert!(
        stderr.contains("5 inode(s)") && stderr.contains("/system@0.journal"),
        "{stderr}"
    );
    assert!(out.is_file());
    fspack(&store)
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(tmp.path().join("strict.sqfs"))
        .args(["--format", "squashfs", "--strict-acls"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("system.posix_acl_access"));
    assert!(!tmp.path().join("strict.sqfs").exists());
    // EROFS keeps them: no warning.
    fspack(&store)
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(tmp.path().join("j.erofs"))
        .assert()
        .success()
        .stderr(predicate::str::contains("POSIX ACL").not());
}

// Case 8: air-gapped layouts.

#[test]
fn inspect_and_pull_of_an_oci_layout_never_write_into_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let layout = tmp.path().join("layout");
    let dest = format!("oci:{}:v1", layout.display());
    fspack(&tmp.path().join("s0"))
        .arg("push")
        .arg(&src)
        .arg(&dest)
        .assert()
        .success();
    // Only what the OCI image-layout spec names, no store internals (report s6 item 22), also
    // after SquashFS shards were compressed in the layout.
    let strays = |layout: &Path| -> Vec<PathBuf> {
        listing(layout)
            .iter()
            .map(|(p, _, _)| p.strip_prefix(layout).unwrap().to_path_buf())
            .filter(|p| {
                !(p == Path::new("oci-layout")
                    || p == Path::new("index.json")
                    || p == Path::new("blobs")
                    || p == Path::new("blobs/sha256")
                    || p.parent() == Some(Path::new("blobs/sha256")))
            })
            .collect()
    };
    assert_eq!(
        strays(&layout),
        Vec::<PathBuf>::new(),
        "not part of an OCI layout"
    );
    let sq = tmp.path().join("sq-layout");
    fspack(&tmp.path().join("s0"))
        .arg("push")
        .arg(&src)
        .arg(format!("oci:{}:v1", sq.display()))
        .args(["--format", "squashfs"])
        .assert()
        .success();
    assert_eq!(
        strays(&sq),
        Vec::<PathBuf>::new(),
        "not part of an OCI layout"
    );
    let before = listing(&layout);
    fspack(&tmp.path().join("s1"))
        .args(["inspect", &dest])
        .assert()
        .success()
        .stdout(predicate::str::contains("erofs"));
    assert_eq!(listing(&layout), before, "inspect wrote into the layout");
    let store = tmp.path().join("s1");
    let out = fspack(&store).args(["pull", &dest]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(listing(&layout), before, "pull wrote into the layout");
    assert!(blobs(&store) >= 2, "the artifact is in the store");
    fspack(&store)
        .args(["pull", &format!("oci:{}:v9", layout.display())])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("v9"));
}

/// A store only ever grew before `rmi`: `images` lists what is there, `rmi` removes names (all
/// or none), and `gc` then frees the blobs no other name uses.
#[test]
fn images_lists_the_store_and_rmi_then_gc_frees_only_unshared_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    small_tree(&a);
    small_tree(&b);
    fs::write(b.join("extra.bin"), vec![9u8; 200_000]).unwrap();
    let layout = tmp.path().join("layout");
    let store = tmp.path().join("store");
    for (src, tag) in [(&a, "a"), (&b, "b")] {
        fspack(&tmp.path().join("s0"))
            .arg("push")
            .arg(src)
            .arg(format!("oci:{}:{tag}", layout.display()))
            .assert()
            .success();
        fspack(&store)
            .args(["pull", &format!("oci:{}:{tag}", layout.display())])
            .assert()
            .success();
    }
    let list = run_json(fspack(&store).args(["images", "--json"]));
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reference"].as_str().unwrap())
        .collect();
    let canonical = layout.canonicalize().unwrap();
    let (name_a, name_b) = (
        format!("oci:{}:a", canonical.display()),
        format!("oci:{}:b", canonical.display()),
    );
    assert_eq!(names, [name_a.as_str(), name_b.as_str()]);
    assert!(list[0]["size"].as_u64().unwrap() > 0);
    assert_eq!(list[0]["format"], "erofs");
    // Unknown names: nothing is removed, and the message names each and says so.
    fspack(&store)
        .args(["rmi", "nowhere.example/none:v1", &name_a, "nowhere.example/other:v2"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "nowhere.example/none:v1, nowhere.example/other:v2 are not in the store; nothing was removed, the others included",
        ));
    // A name that is no reference at all is a typo (exit 2), not a missing image.
    fspack(&store)
        .args(["rmi", &name_a, "BAD/Ref"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid reference \"BAD/Ref\""));
    assert_eq!(
        run_json(fspack(&store).args(["images", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let blobs = |s: &Path| fs::read_dir(s.join("blobs/sha256")).unwrap().count();
    let before = blobs(&store);
    // The layout path as typed (relative to nothing: absolute here) names the same image.
    fspack(&store)
        .args(["rmi", &format!("oci:{}:a", layout.display())])
        .assert()
        .success()
        .stderr(predicate::str::contains(format!("untagged {name_a}")));
    // A file in locks/ whose name fspack never writes (upper-case hex) is not gc's to remove.
    let foreign = store
        .join("locks")
        .join(format!("{}.lock", "AB".repeat(32)));
    fs::write(&foreign, b"").unwrap();
    fspack(&store).arg("gc").assert().success();
    assert!(foreign.exists(), "gc removed {}", foreign.display());
    let after = blobs(&store);
    assert!(
        after < before,
        "gc freed a's own blobs ({before} -> {after})"
    );
    // Nor does gc leave the lock files of the blobs it removed (s8 fidelity pass, P5).
    let stale: Vec<_> = fs::read_dir(store.join("locks"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".lock").map(String::from))
        .filter(|hex| hex.len() == 64 && *hex == hex.to_lowercase())
        .filter(|hex| !store.join("blobs/sha256").join(hex).exists())
        .collect();
    assert!(stale.is_empty(), "locks of removed blobs: {stale:?}");
    let left = run_json(fspack(&store).args(["images", "--json"]));
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["reference"], name_b.as_str());
    // b is whole: verify finds every blob it names.
    fspack(&store).args(["verify", &name_b]).assert().success();
}

#[test]
fn privileged_mount_from_an_oci_layout() {
    if !can_mount("squashfs") || !can_mount("overlay") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let layout = tmp.path().join("layout");
    let dest = format!("oci:{}:v1", layout.display());
    // `-q` keeps the digest on stdout: it is the data asked for (`D=$(fspack -q push …)`).
    let pushed = fspack(&tmp.path().join("s0"))
        .args(["-q", "push"])
        .arg(&src)
        .arg(&dest)
        .args(["--format", "squashfs", "--shards", "2"])
        .output()
        .unwrap();
    assert!(pushed.status.success());
    let digest = String::from_utf8(pushed.stdout).unwrap().trim().to_string();
    assert!(digest.starts_with("sha256:"), "stdout: {digest:?}");
    assert!(pushed.stderr.is_empty(), "-q prints nothing else");
    let before = listing(&layout);
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    // A relative mount point is reported absolute, as `ls` shows it.
    let out = fspack(&store)
        .current_dir(tmp.path())
        .args(["mount", &dest, "mnt", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    // The keys come in the lazy report's order, not sorted by name (s12 fresh-eyes pass).
    let at = |k: &str| text.find(&format!("\"{k}\"")).expect(k);
    let keys = [
        "reference",
        "manifest_digest",
        "lazy",
        "mounted_at",
        "notes",
    ];
    assert!(keys.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(report["manifest_digest"], digest.as_str());
    assert_eq!(report["lazy"], false);
    let mnt_abs = fs::canonicalize(&mnt).unwrap();
    assert_eq!(report["mounted_at"], mnt_abs.display().to_string());
    let same =
        fs::read(mnt.join("part-2.bin")).unwrap() == fs::read(src.join("part-2.bin")).unwrap();
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    assert!(same, "the layout's image is mounted");
    assert_eq!(listing(&layout), before);
    // The mount point's lock outlives the mount; gc takes it away.
    let mount_locks = || {
        fs::read_dir(store.join("locks"))
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy().starts_with("mount-")
            })
            .count()
    };
    assert_eq!(mount_locks(), 1);
    fspack(&store).arg("gc").assert().success();
    assert_eq!(mount_locks(), 0);
    assert_eq!(settled_leftovers(tmp.path()), Vec::<String>::new());
}

/// A small tree under `dir/src`, pushed to the OCI layout `dir/layout` as EROFS; returns the
/// `oci:` reference of its `v1` tag.
fn small_tree_in_a_layout(dir: &Path) -> String {
    let src = dir.join("src");
    small_tree(&src);
    let dest = format!("oci:{}:v1", dir.join("layout").display());
    fspack(&dir.join("s0"))
        .args(["-q", "push"])
        .arg(&src)
        .arg(&dest)
        .assert()
        .success();
    dest
}

/// s10 fresh-eyes pass: a mount on the store, inside it or on a directory above it hid the
/// store; writing the mount record then failed, the mount stayed, and `umount` could not find
/// it. Each is now refused before mount(2) (exit 2), and nothing is left mounted.
#[test]
fn privileged_a_mount_point_over_or_inside_the_store_is_refused() {
    if !can_mount("erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dest = small_tree_in_a_layout(tmp.path());
    let above = tmp.path().join("above");
    let store = above.join("store");
    fspack(&store)
        .args(["-q", "pull", &dest])
        .assert()
        .success();
    for (point, how) in [
        (store.clone(), "is the fspack store"),
        (store.join("mounts"), "lies inside the fspack store"),
        (store.join("new/dir"), "lies inside the fspack store"),
        (above.clone(), "holds the fspack store"),
    ] {
        fspack(&store)
            .arg("mount")
            .arg(&dest)
            .arg(&point)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(how))
            .stderr(predicate::str::contains(point.display().to_string()));
        assert_eq!(settled_leftovers(tmp.path()), Vec::<String>::new(), "{how}");
    }
    assert!(
        !store.join("new").exists(),
        "a refused mount point is not created"
    );
    // The store is whole and still usable.
    fspack(&store).arg("ls").assert().success();
    fspack(&store).args(["verify", "--all"]).assert().success();
}

/// s10 fresh-eyes pass: one damaged mount record made `ls`, `mount`, `umount` and `gc` all exit 6
/// with no way out but finding and deleting the file. Now the record is skipped with a warning
/// naming it, other mounts work, and gc (which must not miss a mounted blob) stops with a hint.
#[test]
fn privileged_a_damaged_mount_record_stops_gc_alone() {
    if !can_mount("erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dest = small_tree_in_a_layout(tmp.path());
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    fspack(&store)
        .args(["mount", &dest])
        .arg(&mnt)
        .assert()
        .success();
    let damaged = store
        .join("mounts")
        .join(format!("{}.json", "0".repeat(64)));
    fs::write(&damaged, b"{\"bad").unwrap();
    let named = predicate::str::contains(damaged.display().to_string());
    fspack(&store)
        .arg("ls")
        .assert()
        .success()
        .stdout(predicate::str::contains(mnt.display().to_string()))
        .stderr(named.clone());
    let other = tmp.path().join("other");
    fspack(&store)
        .args(["mount", &dest])
        .arg(&other)
        .assert()
        .success();
    fspack(&store).arg("umount").arg(&other).assert().success();
    fspack(&store)
        .arg("gc")
        .assert()
        .code(6)
        .stderr(named)
        .stderr(predicate::str::contains(
            "hint: if the mount it recorded is still there",
        ));
    fs::remove_file(&damaged).unwrap();
    fspack(&store).arg("gc").assert().success();
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    assert_eq!(settled_leftovers(tmp.path()), Vec::<String>::new());
}

/// s10 fresh-eyes pass: a missing mount point inside a read-only mount (another fspack image)
/// failed with exit 1 and a bare "Read-only file system (os error 30)". It is a mount point to
/// choose again: exit 2, naming the read-only directory.
#[test]
fn privileged_a_mount_point_that_cannot_be_created_on_a_read_only_fs_is_bad_usage() {
    if !can_mount("erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dest = small_tree_in_a_layout(tmp.path());
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    fspack(&store)
        .args(["mount", &dest])
        .arg(&mnt)
        .assert()
        .success();
    fspack(&store)
        .args(["mount", &dest])
        .arg(mnt.join("new"))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains(format!("{} is on a read-only file system", mnt.display()))
                // Only what can be done there (s12 fresh-eyes pass: "or create it there first").
                .and(predicate::str::contains(
                    "a directory that already exists there",
                )),
        );
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    assert_eq!(settled_leftovers(tmp.path()), Vec::<String>::new());
}

// Case 9: writer edge cases.

#[test]
fn more_than_65535_owners_are_refused_before_the_image_is_written() {
    if !is_root() {
        eprintln!("SKIP: needs root to own files as many users");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    // 32768 files, each with its own uid and gid: 65,536 distinct ids.
    for i in 0..32_768u32 {
        let p = src.join(format!("{i:05}"));
        fs::write(&p, b"").unwrap();
        std::os::unix::fs::lchown(&p, Some(100_000 + 2 * i), Some(100_001 + 2 * i)).unwrap();
    }
    let out = tmp.path().join("ids.sqfs");
    fspack(&tmp.path().join("store"))
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--format", "squashfs"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("65535").and(predicate::str::contains("--all-root")));
    assert!(!out.exists(), "no image that would not mount");
    fspack(&tmp.path().join("store"))
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--format", "squashfs", "--all-root"])
        .assert()
        .success();
}

#[test]
fn privileged_a_bind_mount_of_a_parent_inside_the_tree_is_refused() {
    // Through the shared skip policy, so CI counts it and fails it when it cannot run.
    if !is_root() || !have_tool("mount") {
        common::trees::privileged::skip("needs root and mount(8) for a bind mount");
        return;
    }
    common::trees::privileged::ran();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let loop_dir = src.join("sub/again");
    fs::create_dir(&loop_dir).unwrap();
    let st = Command::new("mount")
        .arg("--bind")
        .arg(&src)
        .arg(&loop_dir)
        .status()
        .unwrap();
    assert!(st.success());
    let out = fspack(&tmp.path().join("store"))
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(tmp.path().join("loop.erofs"))
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let _ = Command::new("umount").arg(&loop_dir).status();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("/sub/again") && stderr.contains("bind mount"),
        "{stderr}"
    );
    assert!(!tmp.path().join("loop.erofs").exists());
}

/// A procfs and a tmpfs mounted inside the tree: without `--one-file-system` the build is refused
/// with exit 1, naming the procfs directory and the flag (procfs files say they hold 0 bytes and
/// would be stored empty); with it, both mount points are empty directories and the rest of the
/// tree is stored.
#[test]
fn privileged_other_filesystems_inside_the_tree() {
    if !is_root() || !have_tool("mount") || !can_mount("erofs") {
        common::trees::privileged::skip("needs root, mount(8) and erofs for mounts inside a tree");
        return;
    }
    common::trees::privileged::ran();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let proc_dir = src.join("sub/proc");
    let scratch = src.join("scratch");
    fs::create_dir(&proc_dir).unwrap();
    fs::create_dir(&scratch).unwrap();
    let mounted = |args: &[&str], dir: &Path| {
        assert!(
            Command::new("mount")
                .args(args)
                .arg(dir)
                .status()
                .unwrap()
                .success()
        );
    };
    mounted(&["-t", "proc", "proc"], &proc_dir);
    mounted(&["-t", "tmpfs", "tmpfs"], &scratch);
    fs::write(scratch.join("elsewhere.txt"), b"on tmpfs\n").unwrap();
    let build = |out: &str, extra: &[&str]| {
        fspack(&tmp.path().join("store"))
            .arg("build")
            .arg(&src)
            .arg("-o")
            .arg(tmp.path().join(out))
            .args(extra)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    };
    // A single procfs file bind-mounted over a file of the tree: refused alone too, since it is
    // checked on its own, not through a directory of its filesystem.
    let cpuinfo = src.join("cpuinfo");
    fs::write(&cpuinfo, b"").unwrap();
    mounted(&["--bind", "/proc/cpuinfo"], &cpuinfo);
    let _ = Command::new("umount").arg(&proc_dir).status();
    let file_refused = build("file.erofs", &[]);
    mounted(&["-t", "proc", "proc"], &proc_dir);
    let refused = build("all.erofs", &[]);
    let kept = build("one.erofs", &["--one-file-system"]);
    for dir in [&proc_dir, &scratch, &cpuinfo] {
        let _ = Command::new("umount").arg(dir).status();
    }
    assert_eq!(file_refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&file_refused.stderr).contains("/cpuinfo is on procfs"),
        "{}",
        String::from_utf8_lossy(&file_refused.stderr)
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(" is on procfs") && stderr.contains("--one-file-system"),
        "{stderr}"
    );
    assert!(!tmp.path().join("all.erofs").exists());
    assert!(
        kept.status.success(),
        "{}",
        String::from_utf8_lossy(&kept.stderr)
    );
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let _guard = common::trees::mount_erofs_file(&tmp.path().join("one.erofs"), &[], &mnt);
    assert_eq!(fs::read_dir(mnt.join("sub/proc")).unwrap().count(), 0);
    assert_eq!(
        std::os::unix::fs::MetadataExt::nlink(&fs::metadata(mnt.join("sub/proc")).unwrap()),
        2
    );
    assert!(
        !mnt.join("cpuinfo").exists(),
        "a mounted-over file is left out"
    );
    assert_eq!(fs::read_dir(mnt.join("scratch")).unwrap().count(), 0);
    assert_eq!(fs::read(mnt.join("sub/readme.txt")).unwrap(), b"hello\n");
}

/// A source directory on procfs is refused (exit 1) rather than stored as empty files.
#[test]
fn a_source_on_procfs_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("vm.erofs");
    fspack(&tmp.path().join("store"))
        .args(["build", "/proc/sys/vm", "-o"])
        .arg(&out)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("/proc/sys/vm is on procfs"))
        .stderr(predicate::str::contains("--one-file-system").not());
    assert!(!out.exists());
}

/// Pushes [`small_tree`] to an OCI layout under `dir`; returns its `oci:` reference (no registry
/// needed).
fn small_tree_layout(dir: &Path) -> String {
    let src = dir.join("src");
    small_tree(&src);
    let reference = format!("oci:{}:v1", dir.join("layout").display());
    fspack(&dir.join("push-store"))
        .arg("push")
        .arg(&src)
        .arg(&reference)
        .assert()
        .success();
    reference
}

/// s9 fresh-eyes pass: one flipped byte in a stored EROFS metadata image was mounted as it was
/// ("jello" for "hello"). The metadata image is hashed again before every mount: exit 6 naming
/// the blob, nothing mounted.
#[test]
fn privileged_a_metadata_image_changed_on_disk_is_not_mounted() {
    if !can_mount("erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let reference = small_tree_layout(tmp.path());
    let store = tmp.path().join("store");
    fspack(&store).args(["pull", &reference]).assert().success();
    // The metadata image: the blob with the EROFS superblock magic at byte 1024.
    let meta = fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            fs::read(p).is_ok_and(|b| b.len() > 1028 && b[1024..1028] == [0xe2, 0xe1, 0xf5, 0xe0])
        })
        .expect("a metadata image in the store");
    let mut bytes = fs::read(&meta).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let mut perms = fs::metadata(&meta).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    fs::set_permissions(&meta, perms).unwrap();
    fs::write(&meta, &bytes).unwrap();
    let mnt = tmp.path().join("mnt");
    let out = fspack(&store)
        .args(["mount", &reference])
        .arg(&mnt)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{stderr}");
    let name = meta.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr.contains(&name) && stderr.contains("was changed on disk"),
        "{stderr}"
    );
    assert!(
        !mnt.exists(),
        "the mount point fspack created is gone again"
    );
    assert_eq!(settled_leftovers(tmp.path()), Vec::<String>::new());
}

/// Report item 8: a store on a read-only mount still serves the commands that only read it (`ls`,
/// `verify`), and a command that must write names the store and says it is read-only.
#[test]
fn privileged_a_read_only_store_serves_ls_and_verify() {
    if !is_root() || !have_tool("mount") {
        common::trees::privileged::skip("needs root and mount(8) for a read-only bind mount");
        return;
    }
    common::trees::privileged::ran();
    let tmp = tempfile::tempdir().unwrap();
    let reference = small_tree_layout(tmp.path());
    let store = tmp.path().join("store");
    fspack(&store).args(["pull", &reference]).assert().success();
    // A fresh store has no gc.lock yet when it was made by an older fspack: the read-only
    // handle must do without one too.
    let _ = fs::remove_file(store.join("locks/gc.lock"));
    let ro = tmp.path().join("ro");
    fs::create_dir(&ro).unwrap();
    let mounted = |args: &[&str]| Command::new("mount").args(args).status().unwrap().success();
    assert!(mounted(&[
        "--bind",
        store.to_str().unwrap(),
        ro.to_str().unwrap()
    ]));
    let result = std::panic::catch_unwind(|| {
        assert!(mounted(&["-o", "remount,bind,ro", ro.to_str().unwrap()]));
        fspack(&ro)
            .arg("ls")
            .assert()
            .success()
            .stderr(predicate::str::contains("nothing mounted"));
        fspack(&ro)
            .args(["verify", "--all"])
            .assert()
            .success()
            .stderr(predicate::str::contains("0 bad"));
        fspack(&ro).args(["verify", &reference]).assert().success();
        fspack(&ro)
            .args(["pull", &reference])
            .assert()
            .failure()
            .stderr(predicate::str::contains(format!(
                "the store at {} is read-only",
                ro.display()
            )));
    });
    let _ = Command::new("umount").arg(&ro).status();
    result.unwrap();
}

/// Report item 11: unmounting a directory with a mount below it names the nested mount point
/// and the command that releases it, instead of "busy: files are in use".
#[test]
fn privileged_umount_names_a_nested_mount_first() {
    if !can_mount("erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let reference = small_tree_layout(tmp.path());
    let store = tmp.path().join("store");
    let outer = tmp.path().join("outer");
    let inner = outer.join("sub");
    fspack(&store)
        .args(["mount", &reference])
        .arg(&outer)
        .assert()
        .success();
    fspack(&store)
        .args(["mount", &reference])
        .arg(&inner)
        .assert()
        .success();
    let out = fspack(&store).arg("umount").arg(&outer).output().unwrap();
    let _ = fspack(&store).arg("umount").arg(&inner).output();
    let _ = fspack(&store).arg("umount").arg(&outer).output();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let inner = fs::canonicalize(tmp.path()).unwrap().join("outer/sub");
    assert!(
        stderr.contains(&format!("{} is mounted under", inner.display()))
            && stderr.contains(&format!("`fspack umount {}` first", inner.display())),
        "{stderr}"
    );
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

/// A user's report: `umount` with another `--store` than the mount's said "a mount fspack did
/// not make; use umount(8)". It names the store the mount came from, and the command that
/// releases it, for a file-backed mount and for loop devices alike.
#[test]
fn privileged_umount_from_another_store_names_the_mounts_store() {
    if !can_mount("erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let reference = small_tree_layout(tmp.path());
    let (store, other) = (tmp.path().join("store"), tmp.path().join("other"));
    let mnt = tmp.path().join("mnt");
    fspack(&other).args(["pull", &reference]).assert().success();
    for mode in ["file", "loop"] {
        fspack(&store)
            .args(["mount", &reference, "--mount-mode", mode])
            .arg(&mnt)
            .assert()
            .success();
        let out = fspack(&other).arg("umount").arg(&mnt).output().unwrap();
        let released = fspack(&store).arg("umount").arg(&mnt).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let root = fs::canonicalize(&store).unwrap();
        assert_eq!(out.status.code(), Some(2), "{mode}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "was mounted from another store, {}",
                root.display()
            )) && stderr.contains(&format!("fspack --store {} umount", root.display())),
            "{mode}: {stderr}"
        );
        assert!(released.status.success(), "{mode}: {released:?}");
    }
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

/// Incompressible bytes without a random-number crate: xorshift64, seeded.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Starts `fspack ARGS`, waits until `ready` sees its temporary output, sends `signal`, and
/// returns the exit code and stderr.
fn interrupt_when(
    store: &Path,
    args: &[&std::ffi::OsStr],
    signal: &str,
    ready: impl Fn() -> bool,
) -> (Option<i32>, String) {
    let child = Command::new(assert_cmd::cargo::cargo_bin("fspack"))
        .env("FSPACK_STORE", store)
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "no temporary output appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    let st = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// s8 fidelity pass, B2: Ctrl-C or SIGTERM during `build` and during a SquashFS `push` once left
/// the staged image or the compressed shards behind (0.4 GB). Now the command exits 130 with
/// nothing temporary left, the old output unchanged and no tag made.
#[test]
fn an_interrupted_build_or_push_removes_its_temporary_files() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    // xz over incompressible data: seconds of work, so the signal lands mid-write.
    fs::write(src.join("weights.bin"), noise(48 << 20, 7)).unwrap();
    let out_dir = tmp.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("img.sqfs");
    fs::write(&out, b"old image").unwrap();
    let store = tmp.path().join("store");
    for signal in ["INT", "TERM"] {
        let (code, stderr) = interrupt_when(
            &store,
            &[
                "build".as_ref(),
                src.as_os_str(),
                "-o".as_ref(),
                out.as_os_str(),
                "--format".as_ref(),
                "squashfs".as_ref(),
                "--compression".as_ref(),
                "xz".as_ref(),
            ],
            signal,
            || fs::read_dir(&out_dir).unwrap().count() > 1,
        );
        assert_eq!(code, Some(130), "SIG{signal}: {stderr}");
        let left: Vec<_> = fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec!["img.sqfs"], "SIG{signal}: {stderr}");
        assert_eq!(fs::read(&out).unwrap(), b"old image");
    }

    // Sharded: the new shards are staged beside OUT.d/ and swapped in whole, so an interrupt
    // leaves the old set as it was, never new shards among old ones (s9 fresh-eyes pass).
    let sharded_src = tmp.path().join("sharded-src");
    fs::create_dir(&sharded_src).unwrap();
    for i in 0..3u64 {
        fs::write(
            sharded_src.join(format!("part-{i}.bin")),
            noise(16 << 20, 20 + i),
        )
        .unwrap();
    }
    let shard_out = tmp.path().join("shard-out");
    fs::create_dir(&shard_out).unwrap();
    let sharded = shard_out.join("img.sqfs");
    let shard_args = |compression: &'static str| -> Vec<std::ffi::OsString> {
        vec![
            "build".into(),
            sharded_src.clone().into(),
            "-o".into(),
            sharded.clone().into(),
            "--format".into(),
            "squashfs".into(),
            "--shards".into(),
            "3".into(),
            "--compression".into(),
            compression.into(),
        ]
    };
    fspack(&store).args(shard_args("lz4")).assert().success();
    let shards_dir = shard_out.join("img.sqfs.d");
    let before = listing(&shards_dir);
    let contents = |dir: &Path| -> Vec<Vec<u8>> {
        let mut files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|f| fs::read(f).unwrap()).collect()
    };
    let old_shards = contents(&shards_dir);
    let started = std::time::SystemTime::now();
    std::thread::sleep(Duration::from_millis(20));
    let xz_args = shard_args("xz");
    let xz_args: Vec<&std::ffi::OsStr> = xz_args.iter().map(|a| a.as_os_str()).collect();
    let (code, stderr) = interrupt_when(&store, &xz_args, "INT", || {
        // A finished shard of this build, staged or (before the fix) among the old ones.
        fs::read_dir(&shard_out).unwrap().any(|d| {
            let d = d.unwrap().path();
            d.is_dir()
                && fs::read_dir(&d).unwrap().any(|f| {
                    let f = f.unwrap();
                    f.file_name().to_string_lossy().starts_with("shard-")
                        && f.metadata().is_ok_and(|m| m.modified().unwrap() > started)
                })
        })
    });
    assert_eq!(code, Some(130), "{stderr}");
    let left: Vec<_> = fs::read_dir(&shard_out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec!["img.sqfs.d"], "{stderr}");
    assert_eq!(listing(&shards_dir), before);
    assert!(
        contents(&shards_dir) == old_shards,
        "the old shards changed"
    );

    // A SquashFS push to a registry compresses its shards into the store's tmp/ first.
    let Some(reg) = Registry::start() else { return };
    let target = format!("{}/t/interrupted:v1", reg.addr);
    let scratch = store.join("tmp");
    let push_args: Vec<&std::ffi::OsStr> = vec![
        "push".as_ref(),
        src.as_os_str(),
        target.as_ref(),
        "--format".as_ref(),
        "squashfs".as_ref(),
        "--compression".as_ref(),
        "xz".as_ref(),
    ];
    let (code, stderr) = interrupt_when(&store, &push_args, "INT", || {
        fs::read_dir(&scratch).is_ok_and(|mut d| d.next().is_some())
    });
    assert_eq!(code, Some(130), "{stderr}");
    // In a registry's terms: nothing is tagged (s12 fresh-eyes pass: "the old output").
    assert!(stderr.contains("; no tag was moved"), "{stderr}");
    let left: Vec<_> = fs::read_dir(&scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in the store's tmp/: {left:?}");
    fspack(&store).args(["inspect", &target]).assert().code(3);

    // SIGKILL runs nothing: the shards stay until `gc`, which owns the store while it runs.
    let (code, _) = interrupt_when(&store, &push_args, "KILL", || {
        fs::read_dir(&scratch).is_ok_and(|mut d| d.next().is_some())
    });
    assert_eq!(code, None, "killed by the signal");
    assert!(fs::read_dir(&scratch).unwrap().next().is_some());
    fspack(&store)
        .arg("gc")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "1 scratch entry a killed push left in tmp/",
        ));
    assert!(fs::read_dir(&scratch).unwrap().next().is_none());

    // A push to an OCI layout keeps its partial blobs there for the next push, and says so
    // (s10 fresh-eyes pass: "removed 0 temporary files" over what it kept).
    let layout = shard_out.join("layout");
    let dest = format!("oci:{}:v1", layout.display());
    let layout_args: Vec<&std::ffi::OsStr> = vec![
        "push".as_ref(),
        src.as_os_str(),
        dest.as_ref(),
        "--format".as_ref(),
        "squashfs".as_ref(),
        "--compression".as_ref(),
        "xz".as_ref(),
    ];
    let (code, stderr) = interrupt_when(&store, &layout_args, "INT", || {
        fs::read_dir(layout.join("ingest")).is_ok_and(|mut d| d.next().is_some())
    });
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "partial blobs stay in {} for the next push",
            layout.join("ingest").display()
        )),
        "{stderr}"
    );
}
