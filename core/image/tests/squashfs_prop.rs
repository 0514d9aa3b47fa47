//! Property test: random trees in, the same tree out of unsquashfs and of the kernel, and the
//! same tree out of an overlay of shards.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use fspack_image::squashfs::{self, Compression, ShardRules, ShardSpec, SquashfsOptions};
use fspack_image::{Tree, WalkOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Node {
    File {
        size: usize,
        seed: u8,
        mode: u32,
        xattr: Option<Vec<u8>>,
        mtime: i64,
    },
    Link(Vec<u8>),
    Dir(Vec<(Vec<u8>, Node)>),
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![1u8..=46u8, 48u8..=255u8], 1..40)
        .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        (
            prop_oneof![0usize..100, 4000usize..4200, 8192usize..70000],
            any::<u8>(),
            prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o4711, 0o1777]),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
            prop_oneof![0i64..=u32::MAX as i64, -100_000i64..0, Just(1i64 << 33)],
        )
            .prop_map(|(size, seed, mode, xattr, mtime)| Node::File {
                size,
                seed,
                mode,
                xattr,
                mtime
            }),
        prop::collection::vec(1u8..=255u8, 1..300).prop_map(Node::Link),
    ];
    leaf.prop_recursive(3, 60, 12, |inner| {
        prop::collection::btree_map(name(), inner, 0..12)
            .prop_map(|m| Node::Dir(m.into_iter().collect()))
    })
}

fn create(path: &Path, node: &Node) {
    match node {
        Node::File {
            size,
            seed,
            mode,
            xattr,
            mtime,
        } => {
            let data: Vec<u8> = (0..*size)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(*seed))
                .collect();
            fs::write(path, data).unwrap();
            if let Some(v) = xattr {
                rustix::fs::lsetxattr(path, "user.prop", v, rustix::fs::XattrFlags::empty())
                    .unwrap();
            }
            fs::set_permissions(path, fs::Permissions::from_mode(*mode)).unwrap();
            let t = rustix::fs::Timespec {
                tv_sec: *mtime,
                tv_nsec: 0,
            };
            rustix::fs::utimensat(
                rustix::fs::CWD,
                path,
                &rustix::fs::Timestamps {
                    last_access: t,
                    last_modification: t,
                },
                rustix::fs::AtFlags::empty(),
            )
            .unwrap();
        }
        Node::Link(target) => {
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), path).unwrap()
        }
        Node::Dir(children) => {
            fs::create_dir(path).unwrap();
            for (n, c) in children {
                create(&path.join(std::ffi::OsStr::from_bytes(n)), c);
            }
        }
    }
}

fn squash_times(
    mut s: std::collections::BTreeMap<Vec<u8>, Snap>,
) -> std::collections::BTreeMap<Vec<u8>, Snap> {
    for v in s.values_mut() {
        v.mtime = (v.mtime.0.clamp(0, u32::MAX as i64), 0);
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn privileged_squashfs_random_trees_come_back_identical(
        children in prop::collection::btree_map(name(), node(), 0..16),
        codec in prop::sample::select(Compression::ALL.to_vec()),
        block_log in 12u32..=17,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        create(&src, &Node::Dir(children.into_iter().collect()));
        let tree = Tree::walk(&src, &WalkOptions::default()).unwrap();
        let opts = SquashfsOptions { compression: codec, block_size: 1 << block_log, ..Default::default() };
        let image = tmp.path().join("img");
        squashfs::write(&tree, &opts, &image).unwrap();
        let expected = squash_times(snapshot(&src, SnapOpts::KERNEL));
        if have_tool("unsquashfs") {
            let out = tmp.path().join("out");
            let st = std::process::Command::new("unsquashfs")
                .args(["-no-progress", "-d"]).arg(&out).arg(&image)
                .stdout(std::process::Stdio::null()).status().unwrap();
            prop_assert!(st.success());
            let o = SnapOpts { owner: is_root(), ..SnapOpts::KERNEL };
            assert_same(&squash_times(snapshot(&src, o)), &snapshot(&out, o));
        }
        if can_mount("squashfs") {
            let mnt = tmp.path().join("mnt");
            fs::create_dir(&mnt).unwrap();
            let _g = mount_loop(&image, "squashfs", &mnt);
            assert_same(&expected, &snapshot(&mnt, SnapOpts::KERNEL));
        }
        // Shards: every file set must be disjoint and complete; checked through overlayfs.
        let out = tmp.path().join("shards");
        let rules = ShardRules { large_file: 16 << 10, pack_size: 20 << 10 };
        let r = squashfs::write_shards_report(&tree, &opts, ShardSpec::Auto, &rules, &out).unwrap();
        // overlayfs needs two lower layers; a one-shard set is the plain image checked above.
        if r.shards.len() >= 2 && can_mount("squashfs") && can_mount("overlay") {
            let mut guards = Vec::new();
            let mut layers = Vec::new();
            for (i, s) in r.shards.iter().enumerate() {
                let m = tmp.path().join(format!("l{i}"));
                fs::create_dir(&m).unwrap();
                guards.push(mount_loop(s, "squashfs", &m));
                layers.push(m.display().to_string());
            }
            layers.reverse();
            let mnt = tmp.path().join("ovl");
            fs::create_dir(&mnt).unwrap();
            let st = std::process::Command::new("mount")
                .args(["-t", "overlay", "overlay", "-o"])
                .arg(format!("ro,lowerdir={}", layers.join(":")))
                .arg(&mnt).status().unwrap();
            prop_assert!(st.success());
            let _ovl = MountGuard(mnt.clone());
            let o = SnapOpts { hardlinks: false, ..SnapOpts::KERNEL };
            assert_same(&squash_times(snapshot(&src, o)), &snapshot(&mnt, o));
            drop(_ovl);
            drop(guards);
        }
    }
}
