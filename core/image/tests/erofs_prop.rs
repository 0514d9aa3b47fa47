//! Property test: random trees in, the same tree out of the kernel (and of fsck.erofs).

mod common;
#[path = "common/random.rs"]
mod random;

use std::fs;

use common::*;
use fspack_image::erofs::{self, ErofsOptions, Layout};
use fspack_image::{Tree, WalkOptions};
use proptest::prelude::*;
use random::{Node, create, name, node};

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn privileged_random_trees_mount_back_identical(children in prop::collection::btree_map(name(), node(), 0..16), chunked in any::<bool>()) {
        if !can_mount("erofs") {
            return Ok(());
        }
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        create(&src, &Node::Dir(children.into_iter().collect()));
        let tree = Tree::walk(&src, &WalkOptions::default()).unwrap();
        let opts = if chunked {
            ErofsOptions { layout: Layout::Chunked, chunk_size: 16 << 10, blob_size: 64 << 10, large_file: 32 << 10, build_time: 0 }
        } else {
            ErofsOptions::default()
        };
        let img = erofs::plan(&tree, &opts).unwrap();
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        img.meta.write_file(&out.join("meta")).unwrap();
        let mut devices = Vec::new();
        for b in &img.blobs {
            b.write_file(&out.join(&b.name)).unwrap();
            devices.push(out.join(&b.name));
        }
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&mnt).unwrap();
        let _guard = mount_erofs_file(&out.join("meta"), &devices, &mnt);
        assert_same(&snapshot(&src, SnapOpts::KERNEL), &snapshot(&mnt, SnapOpts::KERNEL));
    }
}
