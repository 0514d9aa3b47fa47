//! Mapped EROFS images (issue 15): files that are byte ranges of raw blobs and of uncompressed
//! tars, judged by upstream fsck.erofs (which extracts through the device table) and our dump.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use fspack_image::erofs::dump::dump;
use fspack_image::erofs::mapped::{
    MappedAttrs, MappedDevice, MappedEntry, MappedImage, MappedKind,
};
use fspack_image::tar_index::{MemberKind, index_tar};

const ATTRS: MappedAttrs = MappedAttrs {
    perm: 0o644,
    uid: 0,
    gid: 0,
    mtime: 1_700_000_000,
    mtime_nsec: 0,
};

/// Upstream erofs-utils when present (Debian's 1.5 predates 512-byte blocks in fsck).
fn fsck_erofs() -> Option<PathBuf> {
    let upstream = PathBuf::from("/work/shared/tools/erofs-utils-1.9.3/bin/fsck.erofs");
    if upstream.exists() {
        return Some(upstream);
    }
    common::have_tool("fsck.erofs").then(|| PathBuf::from("fsck.erofs"))
}

fn data(n: usize, seed: u8) -> Vec<u8> {
    (0..n as u32)
        .map(|x| (x.wrapping_mul(2_654_435_761) >> 11) as u8 ^ seed)
        .collect()
}

/// A tar the way modctl and `tar --format=posix` write one: a directory, files of awkward sizes,
/// a symlink and a hard link.
fn make_tar(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut b = tar::Builder::new(fs::File::create(path).unwrap());
    let mut files = Vec::new();
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o750);
    dir.set_mtime(1_600_000_000);
    dir.set_size(0);
    b.append_data(&mut dir, "weights/", std::io::empty())
        .unwrap();
    for (i, size) in [0usize, 1, 511, 512, 5000, (1 << 20) + 3]
        .into_iter()
        .enumerate()
    {
        let name = format!("weights/part-{i}.bin");
        let bytes = data(size, i as u8);
        let mut h = tar::Header::new_ustar();
        h.set_size(size as u64);
        h.set_mode(0o600);
        h.set_mtime(1_650_000_000 + i as u64);
        b.append_data(&mut h, &name, bytes.as_slice()).unwrap();
        files.push((name, bytes));
    }
    let mut l = tar::Header::new_ustar();
    l.set_entry_type(tar::EntryType::Symlink);
    l.set_size(0);
    b.append_link(&mut l, "latest.bin", "weights/part-4.bin")
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "weights/again.bin", "weights/part-5.bin")
        .unwrap();
    b.finish().unwrap();
    files
}

fn entries_of_tar(tar: &Path, device: u16) -> Vec<MappedEntry> {
    let f = fs::File::open(tar).unwrap();
    let len = f.metadata().unwrap().len();
    let members = index_tar(&f, len, tar).unwrap();
    let mut files = std::collections::HashMap::new();
    members
        .into_iter()
        .map(|m| {
            let kind = match m.kind {
                MemberKind::File { offset, size } => {
                    files.insert(m.path.clone(), (offset, size));
                    MappedKind::File {
                        device,
                        offset,
                        size,
                    }
                }
                MemberKind::Dir => MappedKind::Dir,
                MemberKind::Symlink(target) => MappedKind::Symlink { target },
                MemberKind::HardLink(t) => {
                    let (offset, size) = files[&t];
                    MappedKind::File {
                        device,
                        offset,
                        size,
                    }
                }
            };
            MappedEntry {
                path: m.path,
                kind,
                attrs: m.attrs,
            }
        })
        .collect()
}

#[test]
fn raw_and_tar_layers_map_with_no_copy_and_fsck_extracts_the_exact_tree() {
    let Some(fsck) = fsck_erofs() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let raw = tmp.path().join("raw.bin");
    let raw_bytes = data(10_007, 9);
    fs::write(&raw, &raw_bytes).unwrap();
    let tar = tmp.path().join("layer.tar");
    let files = make_tar(&tar);
    let mut entries = vec![MappedEntry {
        path: "model/raw.safetensors".into(),
        kind: MappedKind::File {
            device: 1,
            offset: 0,
            size: raw_bytes.len() as u64,
        },
        attrs: ATTRS,
    }];
    entries.extend(entries_of_tar(&tar, 2));
    let image = MappedImage {
        devices: vec![
            MappedDevice {
                path: raw.clone(),
                size: raw_bytes.len() as u64,
            },
            MappedDevice {
                path: tar.clone(),
                size: fs::metadata(&tar).unwrap().len(),
            },
        ],
        root: MappedAttrs {
            perm: 0o755,
            ..ATTRS
        },
        entries,
        build_time: 0,
    };
    assert_eq!(image.block_bits(), 9, "tar members need 512-byte blocks");
    let bytes = image.encode().unwrap();
    assert!(
        bytes.len() < 16 << 10,
        "the metadata image holds no file data: {} bytes",
        bytes.len()
    );
    let meta = tmp.path().join("meta.erofs");
    fs::write(&meta, &bytes).unwrap();
    let text = dump(&bytes).unwrap();
    assert!(text.contains("weights/part-5.bin"), "{text}");

    let out = tmp.path().join("out");
    let st = Command::new(&fsck)
        .arg(format!("--device={}", raw.display()))
        .arg(format!("--device={}", tar.display()))
        .arg(format!("--extract={}", out.display()))
        .arg(&meta)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "fsck.erofs: {}{}",
        String::from_utf8_lossy(&st.stdout),
        String::from_utf8_lossy(&st.stderr)
    );
    assert_eq!(
        fs::read(out.join("model/raw.safetensors")).unwrap(),
        raw_bytes
    );
    for (name, want) in &files {
        assert_eq!(&fs::read(out.join(name)).unwrap(), want, "{name}");
    }
    assert_eq!(
        fs::read(out.join("weights/again.bin")).unwrap(),
        files[5].1,
        "the hard link reads its target's data"
    );
    assert_eq!(
        fs::read_link(out.join("latest.bin")).unwrap(),
        Path::new("weights/part-4.bin")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o7777;
    assert_eq!(
        mode("weights"),
        0o750,
        "the tar's directory entry keeps its mode"
    );
    assert_eq!(mode("weights/part-1.bin"), 0o600);
    assert_eq!(
        mode("model"),
        0o755,
        "implied directories take the root's mode"
    );
}

#[test]
fn raw_only_images_use_4k_blocks() {
    let image = MappedImage {
        devices: vec![MappedDevice {
            path: "/nonexistent".into(),
            size: 8192,
        }],
        root: ATTRS,
        entries: vec![MappedEntry {
            path: "a".into(),
            kind: MappedKind::File {
                device: 1,
                offset: 0,
                size: 8192,
            },
            attrs: ATTRS,
        }],
        build_time: 0,
    };
    assert_eq!(image.block_bits(), 12);
    let text = dump(&image.encode().unwrap()).unwrap();
    assert!(text.contains("blkszbits=12"), "{text}");
}

#[test]
fn bad_paths_and_mappings_are_refused() {
    let file = |path: &str, offset: u64, size: u64| MappedEntry {
        path: path.into(),
        kind: MappedKind::File {
            device: 1,
            offset,
            size,
        },
        attrs: ATTRS,
    };
    let cases: Vec<(Vec<MappedEntry>, &str)> = vec![
        (vec![file("../x", 0, 1)], "clean relative"),
        (vec![file("/x", 0, 1)], "clean relative"),
        (vec![file("a", 0, 1), file("a", 512, 1)], "named twice"),
        (
            vec![file("a", 0, 1), file("a/b", 512, 1)],
            "not a directory",
        ),
        (vec![file("a", 0, 4097)], "past the end"),
        (vec![file("a", 100, 1)], "multiple of 512"),
    ];
    for (entries, want) in cases {
        let image = MappedImage {
            devices: vec![MappedDevice {
                path: "/nonexistent".into(),
                size: 4096,
            }],
            root: ATTRS,
            entries,
            build_time: 0,
        };
        let err = image.encode().unwrap_err();
        assert!(
            matches!(err, fspack_image::Error::Refused { .. }) && err.to_string().contains(want),
            "{err}"
        );
    }
}

/// Writes a one-member tar whose header is raw bytes: names and sizes the `tar` crate would never
/// write (a hostile archive).
fn hostile_tar(path: &Path, name: &[u8], claimed: u64, actual: usize) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(claimed);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend(vec![7u8; actual.next_multiple_of(512)]);
    bytes.extend([0u8; 1024]);
    fs::write(path, bytes).unwrap();
}

#[test]
fn hostile_tars_are_refused_by_member() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("t.tar");
    for (name, claimed, actual, want) in [
        (&b"../../etc/passwd"[..], 10, 10, "escapes the tree"),
        (b"/etc/passwd", 10, 10, "escapes the tree"),
        (b"big.bin", 1 << 30, 512, "past the end of the layer"),
    ] {
        hostile_tar(&p, name, claimed, actual);
        let f = fs::File::open(&p).unwrap();
        let len = f.metadata().unwrap().len();
        let err = index_tar(&f, len, &p).unwrap_err();
        assert!(
            matches!(err, fspack_image::Error::Refused { .. }) && err.to_string().contains(want),
            "{}: {err}",
            String::from_utf8_lossy(name)
        );
    }
}
