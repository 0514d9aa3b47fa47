//! The EROFS reader promises never to panic on crafted input (issue 13): a real image with random
//! bytes overwritten (inode numbers in directory entries, name offsets, sizes, layouts) gives text
//! or an error. Before, an inode number whose byte offset overflowed and a dirent count larger
//! than its block panicked.

mod common;

use std::fs;
use std::sync::OnceLock;

use common::*;
use fspack_image::erofs::{self, ErofsOptions};
use fspack_image::{Tree, WalkOptions};
use proptest::prelude::*;

/// A small single-layout image with directories, inline files, symlinks and xattrs.
fn image() -> &'static [u8] {
    static IMG: OnceLock<Vec<u8>> = OnceLock::new();
    IMG.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        make_tree(
            &src,
            &TreeOpts {
                huge_sparse: false,
                ..Default::default()
            },
        );
        let tree = Tree::walk(&src, &WalkOptions::default()).unwrap();
        let img = erofs::plan(&tree, &ErofsOptions::default()).unwrap();
        let out = tmp.path().join("i.erofs");
        img.meta.write_file(&out).unwrap();
        fs::read(out).unwrap()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn dump_never_panics_on_a_damaged_image(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
        // Bytes from 1024 on: the superblock and the metadata right after it are where
        // the pointers live.
        focus in prop::collection::vec((1024usize..12288, any::<u8>()), 0..24),
    ) {
        let mut img = image().to_vec();
        for (i, b) in edits {
            let at = i.index(img.len());
            img[at] = b;
        }
        for (at, b) in focus {
            if at < img.len() {
                img[at] = b;
            }
        }
        let _ = erofs::dump::dump(&img);
    }
}
