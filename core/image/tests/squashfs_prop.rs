//! Property test: random trees in, the same tree out of unsquashfs and of the kernel, and the
//! same tree out of an overlay of shards.

mod common;
#[path = "common/random.rs"]
mod random;

use std::fs;

use common::*;
use fspack_image::squashfs::{self, Compression, ShardRules, ShardSpec, SquashfsOptions};
use fspack_image::{Tree, WalkOptions};
use proptest::prelude::*;
use random::{Node, create, name, node};

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
