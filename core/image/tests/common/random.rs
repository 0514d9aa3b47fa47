//! Random trees for the property tests of both writers: names with any bytes but '/' and NUL,
//! files of sizes around block and chunk boundaries, modes with special bits, user xattrs,
//! mtimes before 1970 and past 2106, and long symlink targets.
#![allow(dead_code)]

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use proptest::prelude::*;

#[derive(Debug, Clone)]
pub enum Node {
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

pub fn name() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![1u8..=46u8, 48u8..=255u8], 1..40)
        .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

pub fn node() -> impl Strategy<Value = Node> {
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

pub fn create(path: &Path, node: &Node) {
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
