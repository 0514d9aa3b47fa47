//! Tests of each stage of the EROFS plan on one small tree, kept apart so the stages read alone.

use super::*;
use crate::tree::WalkOptions;

/// A tree: `small` (100 bytes), `block` (one block), `tail` (a block and 10 bytes), `empty`,
/// `copy` (same bytes as `tail`), `link` → `small`, and `sparse` (2 MiB with data in its
/// second MiB only).
fn tree() -> (tempfile::TempDir, Tree) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    std::fs::write(p.join("small"), vec![1u8; 100]).unwrap();
    std::fs::write(p.join("block"), vec![2u8; 4096]).unwrap();
    std::fs::write(p.join("tail"), vec![3u8; 4106]).unwrap();
    std::fs::write(p.join("copy"), vec![3u8; 4106]).unwrap();
    std::fs::write(p.join("empty"), b"").unwrap();
    std::os::unix::fs::symlink("small", p.join("link")).unwrap();
    let f = std::fs::File::create(p.join("sparse")).unwrap();
    f.set_len(2 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[9u8; 4096], 1 << 20).unwrap();
    let tree = Tree::walk(p, &WalkOptions::default()).unwrap();
    (dir, tree)
}

fn id(tree: &Tree, name: &str) -> InodeId {
    tree.inodes
        .iter()
        .position(|i| i.path.file_name().is_some_and(|n| n == name))
        .unwrap_or_else(|| panic!("no {name}"))
}

fn shaped(tree: &Tree) -> Vec<Node> {
    shape_nodes(tree, &dir::DirLayouts::new(tree)).unwrap()
}

#[test]
fn shape_gives_flat_data_with_inline_tails() {
    let (_d, t) = tree();
    let nodes = shaped(&t);
    let flat = |blocks, tail_inline| Data::Flat {
        blocks,
        tail_inline,
    };
    assert_eq!(nodes[id(&t, "small")].data, flat(0, true));
    assert_eq!(nodes[id(&t, "block")].data, flat(1, false));
    assert_eq!(nodes[id(&t, "tail")].data, flat(1, true));
    assert_eq!(nodes[id(&t, "empty")].data, Data::None);
    let link = &nodes[id(&t, "link")];
    assert!(matches!(&link.content, Content::Bytes(b) if b.as_slice() == b"small"));
    assert_eq!(link.size, 5);
}

#[test]
fn duplicates_get_whole_blocks_and_nothing_else_changes() {
    let (_d, t) = tree();
    let mut nodes = shaped(&t);
    let (tail, copy, small) = (id(&t, "tail"), id(&t, "copy"), id(&t, "small"));
    let mut dups = vec![None; nodes.len()];
    let (first, second) = (tail.min(copy), tail.max(copy));
    dups[second] = Some(first);
    align_duplicates(&mut nodes, &dups);
    let whole = Data::Flat {
        blocks: 2,
        tail_inline: false,
    };
    assert_eq!(nodes[tail].data, whole);
    assert_eq!(nodes[copy].data, whole);
    assert_eq!(
        nodes[small].data,
        Data::Flat {
            blocks: 0,
            tail_inline: true
        }
    );
}

#[test]
fn sparse_files_map_holes_to_null_chunks() {
    let (_d, t) = tree();
    let mut nodes = shaped(&t);
    map_sparse_files(&t, 1 << 20, &mut nodes);
    let Data::Chunks { bits, map } = &nodes[id(&t, "sparse")].data else {
        panic!("{:?}", nodes[id(&t, "sparse")].data);
    };
    assert_eq!(*bits, 20);
    assert_eq!(map, &vec![None, Some((LOCAL_DEVICE, 0))]);
    // Dense files stay flat.
    assert!(matches!(nodes[id(&t, "block")].data, Data::Flat { .. }));
}

#[test]
fn inodes_never_cross_a_block_and_file_tails_stay_out_of_block_0() {
    let (_d, t) = tree();
    let mut nodes = shaped(&t);
    let devt = (SUPER_OFFSET + 128).div_ceil(DEVT_SLOT_SIZE);
    let meta_blocks = place_inodes(&mut nodes, devt, 0).unwrap();
    let sb_end = (SUPER_OFFSET + 128) as u64;
    let mut spans: Vec<(u64, u64)> = Vec::new();
    for n in &nodes {
        let need = n.base_len() + n.extra_len();
        assert!(n.pos >= sb_end && n.pos.is_multiple_of(ISLOT), "{}", n.pos);
        assert_eq!(n.pos / BLKSZ, (n.pos + need - 1) / BLKSZ, "crosses a block");
        assert!((n.pos + need).div_ceil(BLKSZ) <= meta_blocks);
        let file_tail = matches!(n.content, Content::File { .. })
            && matches!(
                n.data,
                Data::Flat {
                    tail_inline: true,
                    ..
                }
            );
        assert!(!(file_tail && n.pos < BLKSZ), "a file tail in block 0");
        spans.push((n.pos, n.pos + need));
    }
    spans.sort();
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0), "overlap");
}

#[test]
fn data_follows_the_metadata_and_duplicates_share_blocks() {
    let (_d, t) = tree();
    let mut nodes = shaped(&t);
    let (tail, copy) = (id(&t, "tail"), id(&t, "copy"));
    let mut dups = vec![None; nodes.len()];
    let (first, second) = (tail.min(copy), tail.max(copy));
    dups[second] = Some(first);
    align_duplicates(&mut nodes, &dups);
    let total = place_data(&mut nodes, &dups, 3).unwrap();
    assert_eq!(nodes[second].shares, Some(first));
    assert_eq!(nodes[second].raw_blkaddr, nodes[first].raw_blkaddr);
    // Owners of blocks follow each other in inode order from the first block after the
    // metadata; the copy adds nothing.
    let mut next = 3u32;
    for n in nodes.iter().filter(|n| n.shares.is_none()) {
        if let Data::Flat { blocks, .. } = n.data
            && blocks > 0
        {
            assert_eq!(n.raw_blkaddr, next);
            next += blocks as u32;
        }
    }
    assert_eq!(total, next);
    assert_eq!(
        total,
        3 + 1 + 2 + 512,
        "block, tail (shared by copy), dense sparse"
    );
}

#[test]
fn the_superblock_is_checksummed_and_named_by_the_metadata() {
    let (_d, t) = tree();
    let seal = |mtime: i64| {
        let mut t = t.clone();
        t.inodes[Tree::ROOT].mtime = mtime;
        let mut nodes = shaped(&t);
        let devt = (SUPER_OFFSET + 128).div_ceil(DEVT_SLOT_SIZE);
        let meta_blocks = place_inodes(&mut nodes, devt, 0).unwrap();
        let no_dups = vec![None; nodes.len()];
        let blocks = place_data(&mut nodes, &no_dups, meta_blocks).unwrap();
        let dirs = dir::DirLayouts::new(&t);
        let nid = |id: InodeId| nodes[id].pos / ISLOT;
        let dir_bytes: Vec<_> = (0..t.inodes.len())
            .map(|i| {
                t.inodes[i]
                    .is_dir()
                    .then(|| Arc::new(dirs.encode(i, &t, &nid)))
            })
            .collect();
        let mut pieces = encode_metadata(&t, &nodes, &dir_bytes, &[], devt);
        let sb = SuperBlock {
            feature_compat: COMPAT_SB_CHKSUM,
            feature_incompat: 0,
            root_nid: nid(Tree::ROOT) as u16,
            inos: t.inodes.len() as u64,
            build_time: 0,
            blocks,
            uuid: [0; 16],
            extra_devices: 0,
            devt_slotoff: devt as u16,
        };
        seal_superblock(&mut pieces, sb, false);
        let segs = primary_segments(pieces.clone(), &nodes, &dir_bytes, meta_blocks);
        let len: u64 = segs.iter().map(Segment::len).sum();
        assert_eq!(len, u64::from(blocks) * BLKSZ, "segments cover the image");
        pieces
    };
    let a = seal(1);
    let head = &a[0].1;
    assert_eq!(&head[..4], &MAGIC.to_le_bytes());
    let mut block0 = vec![0u8; BLKSZ as usize];
    for (off, bytes, _) in a.iter().take_while(|p| p.0 < BLKSZ) {
        let end = (*off as usize + bytes.len()).min(BLKSZ as usize);
        block0[*off as usize..end].copy_from_slice(&bytes[..end - *off as usize]);
    }
    let stored = u32::from_le_bytes(head[4..8].try_into().unwrap());
    block0[SUPER_OFFSET + 4..SUPER_OFFSET + 8].fill(0);
    assert_eq!(stored, superblock_checksum(&block0[SUPER_OFFSET..]));
    let uuid = |p: &[Piece]| p[0].1[48..64].to_vec();
    assert_eq!(uuid(&a), uuid(&seal(1)), "reproducible");
    assert_ne!(
        uuid(&a),
        uuid(&seal(2)),
        "a metadata change renames the image"
    );
}

#[test]
fn xattrs_over_one_block_start_a_block_and_push_the_tail_out() {
    let (_d, mut t) = tree();
    let small = id(&t, "small");
    t.inodes[small].xattrs = vec![
        (b"user.a".to_vec(), vec![0u8; 100]),
        (b"user.big".to_vec(), vec![0u8; 4050]),
    ];
    let mut nodes = shaped(&t);
    place_inodes(&mut nodes, 0, 0).unwrap();
    let node = &nodes[small];
    assert_eq!(node.pos % BLKSZ, 0, "starts a block");
    assert!(node.base_len() > BLKSZ);
    assert!(
        !matches!(
            node.data,
            Data::Flat {
                tail_inline: true,
                ..
            }
        ),
        "an inline tail would cross the block boundary"
    );
    // Nothing else is placed inside its inode and xattrs.
    let (start, end) = (node.pos, node.pos + node.base_len());
    for (i, other) in nodes.iter().enumerate() {
        if i != small {
            let (s, e) = (other.pos, other.pos + other.base_len() + other.extra_len());
            assert!(e <= start || s >= end, "inode {i} overlaps");
        }
    }
}
