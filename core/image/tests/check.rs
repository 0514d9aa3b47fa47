//! The metadata walk before mount (issue 12): valid images from fspack and from the reference
//! tools pass; crafted ones are refused naming the rule; and random byte flips are either
//! refused or mount with the kernel agreeing with the walk.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use fspack_image::check::{check_erofs, check_squashfs};
use fspack_image::erofs::format::superblock_checksum;
use fspack_image::erofs::{self, ErofsOptions, Layout};
use fspack_image::squashfs::{self, Compression, SquashfsOptions};
use fspack_image::{Error, Tree, WalkOptions};
use proptest::prelude::*;

const SB: usize = 1024;

fn small_tree(root: &Path) {
    make_tree(
        root,
        &TreeOpts {
            big_dir: 300,
            huge_sparse: false,
        },
    );
}

/// Writes an EROFS image of `src` to `dir`; returns the primary and its devices.
fn erofs_image(src: &Path, dir: &Path, layout: Layout) -> (PathBuf, Vec<PathBuf>) {
    let tree = Tree::walk(src, &WalkOptions::default()).unwrap();
    let opts = match layout {
        Layout::Chunked => ErofsOptions {
            layout,
            chunk_size: 16 << 10,
            blob_size: 256 << 10,
            large_file: 64 << 10,
            build_time: 0,
        },
        _ => ErofsOptions::default(),
    };
    let img = erofs::plan(&tree, &opts).unwrap();
    fs::create_dir_all(dir).unwrap();
    let meta = dir.join("meta");
    img.meta.write_file(&meta).unwrap();
    let mut devices = Vec::new();
    for b in &img.blobs {
        b.write_file(&dir.join(&b.name)).unwrap();
        devices.push(dir.join(&b.name));
    }
    (meta, devices)
}

fn check_name(e: Error) -> &'static str {
    match e {
        Error::Check { check, .. } => check,
        other => panic!("expected a check failure, got {other}"),
    }
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

/// Recomputes the EROFS superblock checksum after an edit, as a crafted image would.
fn reseal(img: &mut [u8]) {
    assert_ne!(
        le32(img, SB + 8) & 1,
        0,
        "the writer sets the checksum flag"
    );
    img[SB + 4..SB + 8].fill(0);
    let sum = superblock_checksum(&img[SB..4096]);
    img[SB + 4..SB + 8].copy_from_slice(&sum.to_le_bytes());
}

/// Byte offset of the root directory's first directory block.
fn erofs_root_dir(img: &[u8]) -> usize {
    let meta = le32(img, SB + 40) as usize * 4096;
    let off = meta + le16(img, SB + 14) as usize * 32;
    let format = le16(img, off);
    let isize = if format & 1 == 1 { 64 } else { 32 };
    let icount = le16(img, off + 2) as usize;
    let xsize = if icount == 0 {
        0
    } else {
        12 + (icount - 1) * 4
    };
    match (format >> 1) & 7 {
        0 => le32(img, off + 16) as usize * 4096,
        2 if le32(img, off + 8) < 4096 => off + isize + xsize,
        2 => le32(img, off + 16) as usize * 4096,
        l => panic!("root directory layout {l}"),
    }
}

#[test]
fn fspack_erofs_images_pass_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    for layout in [Layout::Single, Layout::Chunked] {
        let (meta, devices) = erofs_image(&src, &tmp.path().join(format!("{layout:?}")), layout);
        let seen = check_erofs(&meta, &devices).unwrap();
        assert!(seen.entries > 300, "{layout:?}: {seen:?}");
        if layout == Layout::Chunked {
            assert!(!devices.is_empty() && seen.chunks > 0, "{seen:?}");
        }
    }
}

#[test]
fn mkfs_erofs_images_pass_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let tools = [
        "/work/shared/tools/erofs-utils-1.9.3/bin/mkfs.erofs",
        "mkfs.erofs",
    ];
    let mut ran = 0;
    for (i, tool) in tools.iter().enumerate() {
        if !Path::new(tool).exists() && !have_tool(tool) {
            continue;
        }
        for (j, extra) in [&[][..], &["-Eforce-inode-extended"][..]]
            .iter()
            .enumerate()
        {
            let out = tmp.path().join(format!("mkfs-{i}-{j}.erofs"));
            let st = std::process::Command::new(tool)
                .args(*extra)
                .arg(&out)
                .arg(&src)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            if !st.success() {
                continue;
            }
            check_erofs(&out, &[]).unwrap_or_else(|e| panic!("{tool} {extra:?}: {e}"));
            ran += 1;
        }
    }
    if ran == 0 {
        eprintln!("SKIP: no mkfs.erofs");
    }
}

#[test]
fn erofs_root_inode_out_of_range_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    // The chunked layout's metadata image is small: a 16-bit nid can point past its end.
    let (meta, devices) = erofs_image(&src, &tmp.path().join("img"), Layout::Chunked);
    let mut img = fs::read(&meta).unwrap();
    assert!(img.len() < 0xfff0 * 32);
    img[SB + 14..SB + 16].copy_from_slice(&0xfff0u16.to_le_bytes());
    reseal(&mut img);
    fs::write(&meta, &img).unwrap();
    assert_eq!(
        check_name(check_erofs(&meta, &devices).unwrap_err()),
        "inode slot"
    );
}

#[test]
fn erofs_stale_superblock_checksum_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let (meta, _) = erofs_image(&src, &tmp.path().join("img"), Layout::Single);
    let mut img = fs::read(&meta).unwrap();
    img[SB + 24] ^= 1; // build_time, covered by the checksum
    fs::write(&meta, &img).unwrap();
    assert_eq!(
        check_name(check_erofs(&meta, &[]).unwrap_err()),
        "superblock checksum"
    );
}

#[test]
fn erofs_dirent_pointing_outside_the_image_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let (meta, _) = erofs_image(&src, &tmp.path().join("img"), Layout::Single);
    let mut img = fs::read(&meta).unwrap();
    let dir = erofs_root_dir(&img);
    let count = le16(&img, dir + 8) as usize / 12;
    let last = dir + (count - 1) * 12;
    img[last..last + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    // The root directory may sit inline in block 0, which the checksum covers.
    reseal(&mut img);
    fs::write(&meta, &img).unwrap();
    assert_eq!(
        check_name(check_erofs(&meta, &[]).unwrap_err()),
        "inode slot"
    );
}

#[test]
fn erofs_device_table_disagreeing_with_the_layers_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let (meta, devices) = erofs_image(&src, &tmp.path().join("img"), Layout::Chunked);
    assert!(devices.len() >= 2, "the tree gives several data blobs");
    // One layer missing.
    let e = check_erofs(&meta, &devices[..devices.len() - 1]).unwrap_err();
    assert_eq!(check_name(e), "device table");
    // A layer shorter than the device table says.
    let short = tmp.path().join("short");
    let data = fs::read(&devices[0]).unwrap();
    fs::write(&short, &data[..data.len() - 4096]).unwrap();
    let mut swapped = devices.clone();
    swapped[0] = short;
    assert_eq!(
        check_name(check_erofs(&meta, &swapped).unwrap_err()),
        "device table"
    );
}

fn squashfs_image(src: &Path, out: &Path, compression: Compression) {
    let tree = Tree::walk(src, &WalkOptions::default()).unwrap();
    let opts = SquashfsOptions {
        compression,
        ..Default::default()
    };
    squashfs::write(&tree, &opts, out).unwrap();
}

/// An image with uncompressed metadata (so tests can edit it in place), from mksquashfs.
fn mksquashfs_plain(src: &Path, out: &Path) -> bool {
    if !have_tool("mksquashfs") {
        return false;
    }
    let st = std::process::Command::new("mksquashfs")
        .arg(src)
        .arg(out)
        .args(["-noI", "-noD", "-noF", "-noX", "-no-progress", "-quiet"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    true
}

#[test]
fn squashfs_images_from_fspack_and_mksquashfs_pass_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    for c in Compression::ALL {
        let out = tmp.path().join(format!("img-{}", c.name()));
        squashfs_image(&src, &out, c);
        let seen = check_squashfs(&out).unwrap_or_else(|e| panic!("{}: {e}", c.name()));
        assert!(seen.entries > 300 && seen.blocks > 0, "{seen:?}");
    }
    if have_tool("mksquashfs") {
        for comp in ["gzip", "xz", "zstd", "lz4", "lzo"] {
            let out = tmp.path().join(format!("mk-{comp}"));
            let st = std::process::Command::new("mksquashfs")
                .arg(&src)
                .arg(&out)
                .args(["-comp", comp, "-no-progress", "-quiet"])
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            check_squashfs(&out).unwrap_or_else(|e| panic!("mksquashfs -comp {comp}: {e}"));
        }
        let out = tmp.path().join("plain");
        assert!(mksquashfs_plain(&src, &out));
        check_squashfs(&out).unwrap();
    }
}

/// s8 fidelity pass: a file whose blocks are all zeros (stored as holes) has a block list of
/// zeros that compresses to almost nothing, so it is longer than the small image it sits in.
/// The walk once compared the list with the image size and refused such valid images.
#[test]
fn squashfs_images_of_zero_and_sparse_files_pass_the_check() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("zero.img"), vec![0u8; 8 << 20]).unwrap();
    let sparse = fs::File::create(src.join("sparse.img")).unwrap();
    sparse.set_len(64 << 20).unwrap();
    let out = tmp.path().join("img");
    squashfs_image(&src, &out, Compression::Zstd);
    let seen = check_squashfs(&out).unwrap();
    assert_eq!((seen.inodes, seen.blocks), (3, 64 + 512), "{seen:?}");
    if have_tool("mksquashfs") {
        let mk = tmp.path().join("mk");
        let st = std::process::Command::new("mksquashfs")
            .arg(&src)
            .arg(&mk)
            .args(["-comp", "zstd", "-no-progress", "-quiet"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        check_squashfs(&mk).unwrap();
    }
}

#[test]
fn squashfs_root_inode_out_of_range_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let out = tmp.path().join("img");
    squashfs_image(&src, &out, Compression::Zstd);
    let mut img = fs::read(&out).unwrap();
    img[32..40].copy_from_slice(&(0xffff_u64 << 16).to_le_bytes());
    fs::write(&out, &img).unwrap();
    assert_eq!(check_name(check_squashfs(&out).unwrap_err()), "inode");
}

#[test]
fn squashfs_bytes_used_beyond_the_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let out = tmp.path().join("img");
    squashfs_image(&src, &out, Compression::Gzip);
    let img = fs::read(&out).unwrap();
    let used = u64::from_le_bytes(img[40..48].try_into().unwrap()) as usize;
    fs::write(&out, &img[..used - 1]).unwrap();
    assert_eq!(check_name(check_squashfs(&out).unwrap_err()), "superblock");
}

#[test]
fn squashfs_dirent_pointing_outside_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let out = tmp.path().join("img");
    if !mksquashfs_plain(&src, &out) {
        return;
    }
    let mut img = fs::read(&out).unwrap();
    let dir_table = u64::from_le_bytes(img[72..80].try_into().unwrap()) as usize;
    // The entry for "small.txt": 8 header bytes, then the name.
    let name = b"small.txt";
    let at = dir_table
        + img[dir_table..]
            .windows(name.len())
            .position(|w| w == name)
            .expect("name in the directory table");
    assert_eq!(le16(&img, at - 2) as usize + 1, name.len());
    // Its inode offset: past the end of any metadata block.
    img[at - 8..at - 6].copy_from_slice(&0xfff0u16.to_le_bytes());
    fs::write(&out, &img).unwrap();
    assert_eq!(check_name(check_squashfs(&out).unwrap_err()), "inode");
}

/// Edits of an uncompressed mksquashfs image that the kernel refuses at mount time or that make
/// its readdir and lookup disagree: each is refused by the walk, naming the rule.
#[test]
fn squashfs_edits_the_kernel_would_trip_over_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("big")).unwrap();
    for name in ["a1", "b2", "c3"] {
        fs::write(src.join(name), name).unwrap();
    }
    // Large enough for a directory index (one entry per metadata block of its listing).
    for i in 0..3000 {
        fs::write(src.join(format!("big/entry-with-a-long-name-{i:05}")), "x").unwrap();
    }
    let clean = tmp.path().join("clean");
    if !mksquashfs_plain(&src, &clean) {
        return;
    }
    check_squashfs(&clean).expect("the unedited image passes");
    let orig = fs::read(&clean).unwrap();
    let le64 = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let (inode_table, dir_table) = (le64(&orig, 64), le64(&orig, 72));
    let find = |from: usize, to: usize, what: &[u8]| {
        from + orig[from..to]
            .windows(what.len())
            .position(|w| w == what)
            .expect("bytes present")
    };
    let refused = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut img = orig.clone();
        edit(&mut img);
        let out = tmp.path().join("edited");
        fs::write(&out, &img).unwrap();
        check_name(check_squashfs(&out).unwrap_err())
    };
    let b2 = find(dir_table, orig.len(), b"b2");
    // "b2" renamed "d2", after "c3": readdir lists it, lookup stops at "c3".
    assert_eq!(refused(&|img| img[b2] = b'd'), "directory order");
    // Its inode number delta off by one: the kernel would show another cached inode.
    assert_eq!(
        refused(&|img| img[b2 - 6] = img[b2 - 6].wrapping_add(1)),
        "inode number"
    );
    // Fewer inodes than the export table indexes: its index no longer ends where the id table
    // begins, which the kernel requires exactly (export.c).
    assert_eq!(
        refused(&|img| img[4..8].copy_from_slice(&100u32.to_le_bytes())),
        "export table"
    );
    // The first inode (the table is stored uncompressed): a mode naming a FIFO for a file or
    // directory (the kernel's read fails with EIO), and inode number 0 (refused at mount).
    let first = inode_table + 2;
    assert!(matches!(le16(&orig, first), 1 | 2 | 8 | 9));
    assert_eq!(
        refused(&|img| img[first + 3] |= 0o010000u16.to_le_bytes()[1]),
        "inode"
    );
    assert_eq!(refused(&|img| img[first + 12..first + 16].fill(0)), "inode");
    // A directory index name that is not its header's first name.
    let indexed = find(inode_table, dir_table, b"entry-with-a-long-name-");
    assert_eq!(refused(&|img| img[indexed + 23] ^= 0x01), "directory index");
}

/// Counts entries below `dir` as the kernel lists them, reading every inode (lstat) and
/// symlink target on the way; the first error is returned.
fn kernel_walk(dir: &Path) -> std::io::Result<u64> {
    let mut n = 0;
    for e in fs::read_dir(dir)? {
        let e = e?;
        n += 1;
        let md = fs::symlink_metadata(e.path())?;
        if md.is_dir() {
            n += kernel_walk(&e.path())?;
        } else if md.file_type().is_symlink() {
            fs::read_link(e.path())?;
        }
    }
    Ok(n)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// Flipped bytes anywhere in the metadata of a valid image: the walk refuses the image, or
    /// the kernel mounts it and lists exactly the entries the walk saw, without an I/O error.
    #[test]
    fn privileged_flipped_bytes_are_refused_or_agree_with_the_kernel(
        squash in any::<bool>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        let fs_name = if squash { "squashfs" } else { "erofs" };
        if !can_mount(fs_name) {
            return Ok(());
        }
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_tree(&src, &TreeOpts { big_dir: 40, huge_sparse: false });
        let image = tmp.path().join("img");
        if squash {
            squashfs_image(&src, &image, Compression::Zstd);
        } else {
            let (meta, _) = erofs_image(&src, &tmp.path().join("e"), Layout::Single);
            fs::rename(meta, &image).unwrap();
        }
        let mut bytes = fs::read(&image).unwrap();
        // Metadata lives in the first 64 KiB of these images (EROFS) or at the end (SquashFS).
        let span = bytes.len().min(64 << 10);
        let base = if squash { bytes.len() - span } else { 0 };
        for (at, x) in &flips {
            bytes[base + at.index(span)] ^= x;
        }
        fs::write(&image, &bytes).unwrap();
        let verdict = if squash {
            check_squashfs(&image).map(|c| c.entries)
        } else {
            check_erofs(&image, &[]).map(|c| c.entries)
        };
        let Ok(entries) = verdict else {
            return Ok(()); // Refused before the kernel saw it.
        };
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", fs_name, "-o", "ro,loop"])
            .arg(&image)
            .arg(&mnt)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        prop_assert!(st.success(), "the walk accepted an image the kernel does not mount");
        let _g = MountGuard(mnt.clone());
        let listed = kernel_walk(&mnt);
        prop_assert!(listed.is_ok(), "kernel walk failed: {listed:?}");
        prop_assert_eq!(listed.unwrap(), entries);
    }
}
