//! SquashFS writer tests: unsquashfs (squashfs-tools) and the kernel judge our images; shards are
//! judged through a real overlayfs mount.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use fspack_image::squashfs::{
    self, Compression, ShardRules, ShardSpec, SquashfsOptions, SquashfsReport,
};
use fspack_image::{Tree, WalkOptions};

fn walk(src: &Path) -> Tree {
    Tree::walk(src, &WalkOptions::default()).unwrap()
}

fn build(src: &Path, opts: &SquashfsOptions, out: &Path) -> SquashfsReport {
    squashfs::write(&walk(src), opts, out).unwrap()
}

/// What SquashFS keeps of a time: whole seconds within 0..=u32::MAX.
fn squash_times(mut s: BTreeMap<Vec<u8>, Snap>) -> BTreeMap<Vec<u8>, Snap> {
    for v in s.values_mut() {
        v.mtime = (v.mtime.0.clamp(0, u32::MAX as i64), 0);
    }
    s
}

fn no_huge() -> TreeOpts {
    TreeOpts {
        huge_sparse: false,
        ..Default::default()
    }
}

fn unsquashfs(args: &[&str], image: &Path) -> Vec<u8> {
    let out = Command::new("unsquashfs")
        .args(args)
        .arg(image)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "unsquashfs {args:?} {} failed:\n{}{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn squashfs_unsquashfs_extracts_the_same_tree() {
    if !have_tool("unsquashfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, &no_huge());
    let image = tmp.path().join("img.squashfs");
    let report = build(&src, &SquashfsOptions::default(), &image);
    assert_eq!(report.clamped_mtimes, 1, "{report:?}");
    assert!(report.warnings[0].contains("/multi.bin"), "{report:?}");
    let out = tmp.path().join("out");
    unsquashfs(&["-no-progress", "-d", out.to_str().unwrap()], &image);
    // unsquashfs cannot create sockets; everything else it restores, owners and trusted xattrs
    // only as root.
    let o = SnapOpts {
        dir_mtime: true,
        xattrs: is_root(),
        hardlinks: true,
        owner: is_root(),
    };
    let mut expected = squash_times(snapshot(&src, o));
    let mut actual = snapshot(&out, o);
    expected.remove(b"socket".as_slice());
    actual.remove(b"socket".as_slice());
    assert_same(&expected, &actual);
}

/// One record of `unsquashfs -lln`: (mode string, "uid/gid", size or "major, minor", target).
type Record = (String, String, String, Option<Vec<u8>>);

fn parse_listing(out: &[u8]) -> BTreeMap<Vec<u8>, Record> {
    // Records start at a line beginning with a mode string; names may contain newlines, so
    // split only where the next line looks like a record.
    let is_mode = |b: &[u8]| {
        b.len() > 11
            && b"-dlcbps".contains(&b[0])
            && b[1..10].iter().all(|c| b"rwxsStT-".contains(c))
            && b[10] == b' '
    };
    let mut records: Vec<Vec<u8>> = Vec::new();
    let out = out.strip_suffix(b"\n").unwrap_or(out);
    for line in out.split(|&b| b == b'\n') {
        if is_mode(line) || records.is_empty() {
            records.push(line.to_vec());
        } else {
            let r = records.last_mut().unwrap();
            r.push(b'\n');
            r.extend_from_slice(line);
        }
    }
    let mut map = BTreeMap::new();
    for r in records.into_iter().filter(|r| !r.is_empty()) {
        let mode = String::from_utf8(r[..10].to_vec()).unwrap();
        let rest = &r[11..];
        let sp = rest.iter().position(|&b| b == b' ').unwrap();
        let owner = String::from_utf8(rest[..sp].to_vec()).unwrap();
        // " YYYY-MM-DD HH:MM " ends the size field.
        let rest = &rest[sp..];
        let date = (0..rest.len() - 18)
            .find(|&i| {
                let d = &rest[i..i + 18];
                d[0] == b' '
                    && d[5] == b'-'
                    && d[8] == b'-'
                    && d[11] == b' '
                    && d[14] == b':'
                    && d[17] == b' '
            })
            .unwrap_or_else(|| panic!("no date in {:?}", String::from_utf8_lossy(&r)));
        let size = String::from_utf8(rest[..date].to_vec())
            .unwrap()
            .trim()
            .to_string();
        let path = &rest[date + 18..];
        let path = path.strip_prefix(b"squashfs-root").unwrap();
        let (path, target) = if mode.starts_with('l') {
            let at = path.windows(4).position(|w| w == b" -> ").unwrap();
            (&path[..at], Some(path[at + 4..].to_vec()))
        } else {
            (path, None)
        };
        let path = path.strip_prefix(b"/").unwrap_or(path).to_vec();
        map.insert(path, (mode, owner, size, target));
    }
    map
}

fn mode_string(m: u32) -> String {
    let t = match m & 0o170000 {
        0o040000 => 'd',
        0o120000 => 'l',
        0o020000 => 'c',
        0o060000 => 'b',
        0o010000 => 'p',
        0o140000 => 's',
        _ => '-',
    };
    let mut s = String::from(t);
    for (i, sh) in [6u32, 3, 0].into_iter().enumerate() {
        let bits = (m >> sh) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let special = m & [0o4000, 0o2000, 0o1000][i] != 0;
        let x = bits & 1 != 0;
        s.push(match (special, x, i) {
            (true, true, 2) => 't',
            (true, false, 2) => 'T',
            (true, true, _) => 's',
            (true, false, _) => 'S',
            (false, true, _) => 'x',
            (false, false, _) => '-',
        });
    }
    s
}

#[test]
fn squashfs_listing_shows_every_entry_with_its_attributes() {
    if !have_tool("unsquashfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, &no_huge());
    let image = tmp.path().join("img.squashfs");
    build(&src, &SquashfsOptions::default(), &image);
    let listing = parse_listing(&unsquashfs(&["-lln"], &image));
    let mut expected = BTreeMap::new();
    let mut stack = vec![src.clone()];
    expected.insert(Vec::new(), fs::symlink_metadata(&src).unwrap());
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            let rel = p
                .strip_prefix(&src)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            expected.insert(rel, m);
        }
    }
    let paths: BTreeSet<_> = listing.keys().cloned().collect();
    let want: BTreeSet<_> = expected.keys().cloned().collect();
    let lossy = |s: &BTreeSet<Vec<u8>>| -> Vec<String> {
        s.iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    };
    let missing: BTreeSet<_> = want.difference(&paths).cloned().collect();
    let extra: BTreeSet<_> = paths.difference(&want).cloned().collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {:?}, extra {:?}",
        lossy(&missing),
        lossy(&extra)
    );
    for (path, m) in &expected {
        let (mode, owner, size, target) = &listing[path];
        let name = String::from_utf8_lossy(path);
        assert_eq!(*mode, mode_string(m.mode()), "{name}");
        assert_eq!(*owner, format!("{}/{}", m.uid(), m.gid()), "{name}");
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        if ft.is_file() {
            assert_eq!(*size, m.len().to_string(), "{name}");
        }
        if ft.is_char_device() || ft.is_block_device() {
            // unsquashfs 4.5 prints the stored 32-bit number as `n >> 8, n & 0xff` (right for
            // minors below 256 only; its extraction and the kernel decode it fully, see the
            // other tests), so compare against the kernel's encoding shown that way.
            let (ma, mi) = (rustix::fs::major(m.rdev()), rustix::fs::minor(m.rdev()));
            let enc = (mi & 0xff) | (ma << 8) | ((mi & !0xff) << 12);
            assert_eq!(
                size.replace(' ', ""),
                format!("{},{}", enc >> 8, enc & 0xff),
                "{name}"
            );
        }
        if ft.is_symlink() {
            let t = fs::read_link(src.join(std::ffi::OsStr::from_bytes(path))).unwrap();
            assert_eq!(target.as_deref(), Some(t.as_os_str().as_bytes()), "{name}");
        }
    }
}

#[test]
fn squashfs_rebuild_is_byte_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, &no_huge());
    for c in [Compression::Zstd, Compression::Xz] {
        let opts = SquashfsOptions {
            compression: c,
            mkfs_time: 1_700_000_000,
            ..Default::default()
        };
        let a = tmp.path().join(format!("a.{c}"));
        let b = tmp.path().join(format!("b.{c}"));
        build(&src, &opts, &a);
        // A fresh walk, so nothing is shared between the two builds but the source.
        build(&src, &opts, &b);
        assert!(
            fs::read(&a).unwrap() == fs::read(&b).unwrap(),
            "{c} rebuild differs"
        );
    }
}

#[test]
fn squashfs_bad_options_and_unreadable_sources_leave_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    let tree = walk(&src);
    let out = tmp.path().join("img");
    let bad = [
        SquashfsOptions {
            block_size: 3000,
            ..Default::default()
        },
        SquashfsOptions {
            block_size: 2 << 20,
            ..Default::default()
        },
        SquashfsOptions {
            compression: Compression::Lz4,
            level: Some(9),
            ..Default::default()
        },
        SquashfsOptions {
            level: Some(40),
            ..Default::default()
        },
    ];
    for o in &bad {
        let err = squashfs::write(&tree, o, &out).unwrap_err();
        assert!(err.to_string().starts_with("invalid option"), "{err}");
    }
    // The file changes between walk and write: an error naming it, and no image.
    fs::write(src.join("f"), b"longer data").unwrap();
    let err = squashfs::write(&tree, &SquashfsOptions::default(), &out).unwrap_err();
    assert!(err.to_string().contains("/f"), "{err}");
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "temp file left behind"
    );
}

fn mount_squashfs(image: &Path, target: &Path) -> MountGuard {
    fs::create_dir_all(target).unwrap();
    mount_loop(image, "squashfs", target)
}

#[test]
fn privileged_squashfs_kernel_mount_matches_source() {
    if !can_mount("squashfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src, &TreeOpts::default());
    let image = tmp.path().join("img.squashfs");
    build(&src, &SquashfsOptions::default(), &image);
    let mnt = tmp.path().join("mnt");
    let _g = mount_squashfs(&image, &mnt);
    assert_same(
        &squash_times(snapshot(&src, SnapOpts::KERNEL)),
        &snapshot(&mnt, SnapOpts::KERNEL),
    );
    // Holes cost nothing: the 5 GiB sparse file and the 40 MiB one fit in a small image.
    assert!(fs::metadata(&image).unwrap().len() < 16 << 20);
}

#[test]
fn privileged_squashfs_every_compressor_and_block_size_mounts() {
    if !can_mount("squashfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(
        &src,
        &TreeOpts {
            big_dir: 600,
            huge_sparse: false,
        },
    );
    let expected = squash_times(snapshot(&src, SnapOpts::KERNEL));
    let cases = [
        (Compression::Zstd, 4096, Some(19)),
        (Compression::Gzip, 1 << 20, None),
        (Compression::Xz, 1 << 20, None),
        (Compression::Xz, 8192, Some(1)),
        (Compression::Lz4, 1 << 17, None),
        (Compression::Lzo, 1 << 16, None),
    ];
    for (c, bs, level) in cases {
        let image = tmp.path().join(format!("img-{c}-{bs}"));
        let opts = SquashfsOptions {
            compression: c,
            level,
            block_size: bs,
            mkfs_time: 0,
        };
        build(&src, &opts, &image);
        let mnt = tmp.path().join(format!("mnt-{c}-{bs}"));
        let _g = mount_squashfs(&image, &mnt);
        eprintln!("checking {c} block size {bs}");
        assert_same(&expected, &snapshot(&mnt, SnapOpts::KERNEL));
    }
}

/// Attributes an overlay shows exactly; merged directories report nlink 1 and overlayfs may
/// renumber inodes, so nlink and hardlink identity are compared separately.
const OVERLAY: SnapOpts = SnapOpts {
    dir_mtime: true,
    xattrs: true,
    hardlinks: false,
    owner: true,
};

/// Paths grouped by (st_dev, st_ino) for non-directories with more than one link, plus each
/// non-directory's nlink.
type Links = (BTreeSet<Vec<Vec<u8>>>, BTreeMap<Vec<u8>, u64>);

fn link_groups(root: &Path) -> Links {
    let mut groups: BTreeMap<(u64, u64), Vec<Vec<u8>>> = BTreeMap::new();
    let mut nlinks = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec();
            if m.is_dir() {
                stack.push(p);
                continue;
            }
            nlinks.insert(rel.clone(), m.nlink());
            if m.nlink() > 1 {
                groups.entry((m.dev(), m.ino())).or_default().push(rel);
            }
        }
    }
    let groups = groups
        .into_values()
        .map(|mut v| {
            v.sort();
            v
        })
        .collect();
    (groups, nlinks)
}

/// Mounts the shards (lowest first in `shards`) and an overlay of them at `mnt`.
fn mount_overlay(shards: &[PathBuf], work: &Path, mnt: &Path) -> Vec<MountGuard> {
    let mut guards = Vec::new();
    let mut layers = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        let m = work.join(format!("layer-{i}"));
        guards.push(mount_squashfs(s, &m));
        layers.push(m.display().to_string());
    }
    layers.reverse();
    fs::create_dir_all(mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!("ro,lowerdir={}", layers.join(":")))
        .arg(mnt)
        .status()
        .unwrap();
    assert!(st.success(), "overlay mount failed");
    // Dropped first (the vector drops in order, so put the overlay at the front).
    guards.insert(0, MountGuard(mnt.to_path_buf()));
    guards
}

/// make_tree without the entries overlayfs would interpret (those make a tree unshardable).
fn shardable_tree(src: &Path) {
    make_tree(src, &no_huge());
    let _ = fs::remove_file(src.join("whiteout"));
    let _ = rustix::fs::lremovexattr(src.join("sub"), "trusted.overlay.opaque");
    // A large file (its own shard under the test rules) and its hardlink elsewhere.
    let big: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 7) as u8)
        .collect();
    fs::write(src.join("sub/deeper/model.bin"), &big).unwrap();
    fs::hard_link(src.join("sub/deeper/model.bin"), src.join("model-link")).unwrap();
}

const TEST_RULES: ShardRules = ShardRules {
    large_file: 1 << 20,
    pack_size: 256 << 10,
};

#[test]
fn privileged_squashfs_shards_overlay_equals_source_and_large_shards_are_stable() {
    if !can_mount("squashfs") || !can_mount("overlay") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    shardable_tree(&src);
    let opts = SquashfsOptions::default();
    for (k, spec) in [ShardSpec::Auto, ShardSpec::Count(3)]
        .into_iter()
        .enumerate()
    {
        let out = tmp.path().join(format!("shards-{k}"));
        let r = squashfs::write_shards_report(&walk(&src), &opts, spec, &TEST_RULES, &out).unwrap();
        assert!(r.note.is_none());
        assert!(r.shards.len() >= 3, "{spec:?}: {:?}", r.shards);
        let mnt = tmp.path().join(format!("mnt-{k}"));
        let _g = mount_overlay(&r.shards, &tmp.path().join(format!("layers-{k}")), &mnt);
        assert_same(
            &squash_times(snapshot(&src, OVERLAY)),
            &snapshot(&mnt, OVERLAY),
        );
        assert_eq!(link_groups(&src), link_groups(&mnt), "{spec:?}");
    }

    // Auto: the large file's shard (the lowest) survives edits elsewhere byte for byte.
    let out = tmp.path().join("shards-0");
    let before: Vec<Vec<u8>> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<BTreeSet<_>>()
        .iter()
        .map(|p| fs::read(p).unwrap())
        .collect();
    fs::write(src.join("small.txt"), b"edited\n").unwrap();
    fs::write(src.join("sub/deeper/new-sibling"), b"new\n").unwrap();
    let r = squashfs::write_shards_report(&walk(&src), &opts, ShardSpec::Auto, &TEST_RULES, &out)
        .unwrap();
    assert_eq!(
        fs::read(&r.shards[0]).unwrap(),
        before[0],
        "large-file shard changed"
    );
    assert_ne!(
        fs::read(r.shards.last().unwrap()).unwrap(),
        *before.last().unwrap()
    );
}

#[test]
fn privileged_squashfs_whiteout_lookalikes_give_one_unsharded_image() {
    if !can_mount("squashfs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // As root, make_tree adds a 0:0 character device and trusted.overlay.opaque.
    make_tree(&src, &no_huge());
    let out = tmp.path().join("shards");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("shard-004.squashfs"), b"stale").unwrap();
    let r = squashfs::write_shards_report(
        &walk(&src),
        &SquashfsOptions::default(),
        ShardSpec::Count(4),
        &TEST_RULES,
        &out,
    )
    .unwrap();
    let note = r.note.expect("a note saying why");
    assert!(
        note.contains("whiteout") || note.contains("trusted.overlay"),
        "{note}"
    );
    assert_eq!(r.shards, vec![out.join("shard-000.squashfs")]);
    assert!(!out.join("shard-004.squashfs").exists(), "stale shard kept");
    let mnt = tmp.path().join("mnt");
    let _g = mount_squashfs(&r.shards[0], &mnt);
    assert_same(
        &squash_times(snapshot(&src, SnapOpts::KERNEL)),
        &snapshot(&mnt, SnapOpts::KERNEL),
    );
}

/// Two large files each copied into another directory, small files with copies two directories
/// apart (so they fall in different packs under [`TEST_RULES`]); returns the distinct bytes.
fn tree_with_copies(src: &Path) -> u64 {
    for d in ["a/deep", "b", "c", "p", "q"] {
        fs::create_dir_all(src.join(d)).unwrap();
    }
    let (w, v) = (pseudo_random(1, 3 << 20), pseudo_random(2, (2 << 20) + 123));
    fs::write(src.join("a/deep/w.bin"), &w).unwrap();
    fs::write(src.join("b/w.bin"), &w).unwrap();
    fs::write(src.join("b/v.bin"), &v).unwrap();
    fs::write(src.join("c/v-copy.bin"), &v).unwrap();
    let mut distinct = (w.len() + v.len()) as u64;
    for i in 0..12u64 {
        let small = pseudo_random(100 + i, 60 << 10);
        fs::write(src.join(format!("p/s{i}")), &small).unwrap();
        fs::write(src.join(format!("q/s{i}-copy")), &small).unwrap();
        distinct += small.len() as u64;
    }
    distinct
}

#[test]
fn squashfs_shards_store_identical_files_once() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let distinct = tree_with_copies(&src);
    for (k, spec) in [ShardSpec::Auto, ShardSpec::Count(3)]
        .into_iter()
        .enumerate()
    {
        let out = tmp.path().join(format!("shards-{k}"));
        let r = squashfs::write_shards_report(
            &walk(&src),
            &SquashfsOptions::default(),
            spec,
            &TEST_RULES,
            &out,
        )
        .unwrap();
        assert!(r.shards.len() >= 3, "{spec:?}: {:?}", r.shards);
        let total: u64 = r
            .shards
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum();
        // Random data does not compress: one copy of each contents plus a little metadata per
        // shard. A second copy of anything large would add at least 2 MiB.
        assert!(
            total < distinct + (64 << 10) * r.shards.len() as u64,
            "{spec:?}: {total} bytes in {} shards for {distinct} distinct bytes",
            r.shards.len()
        );
    }
}

#[test]
fn privileged_squashfs_shards_with_copies_overlay_equals_source() {
    if !can_mount("squashfs") || !can_mount("overlay") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree_with_copies(&src);
    let out = tmp.path().join("shards");
    let r = squashfs::write_shards_report(
        &walk(&src),
        &SquashfsOptions::default(),
        ShardSpec::Auto,
        &TEST_RULES,
        &out,
    )
    .unwrap();
    assert!(r.shards.len() >= 3, "{:?}", r.shards);
    let mnt = tmp.path().join("mnt");
    let _g = mount_overlay(&r.shards, &tmp.path().join("layers"), &mnt);
    assert_same(
        &squash_times(snapshot(&src, OVERLAY)),
        &snapshot(&mnt, OVERLAY),
    );
}
