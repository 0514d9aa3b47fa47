//! Property test: random trees in, the same tree out of the kernel (and of fsck.erofs).

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;
use fspack_image::erofs::{self, ErofsOptions, Layout};
use fspack_image::{Tree, WalkOptions};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Node {
    File {
        size: usize,
        seed: u8,
        mode: u32,
        xattr: Option<Vec<u8>>,
    },
    Link(Vec<u8>),
    Dir(Vec<(Vec<u8>, Node)>),
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    // Any bytes but '/' and NUL; avoid "." and "..".
    prop::collection::vec(prop_oneof![1u8..=46u8, 48u8..=255u8], 1..40)
        .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        (
            prop_oneof![0usize..100, 4000usize..4200, 8192usize..70000],
            any::<u8>(),
            prop::sample::select(vec![0o644u32, 0o600, 0o755, 0o4711]),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..200))
        )
            .prop_map(|(size, seed, mode, xattr)| Node::File {
                size,
                seed,
                mode,
                xattr
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
