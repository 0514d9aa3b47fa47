//! Tests of the chunk index (the draft layout, its rules, annotations, property tests), kept
//! apart so the index reads alone.

use super::*;
use proptest::prelude::*;

fn build(data: &[u8], chunk: u64) -> ChunkIndex {
    let mut b = ChunkIndexBuilder::new(chunk);
    b.update(data);
    b.finish()
}

#[test]
fn layout_matches_the_draft() {
    let ix = build(&[7u8; 10], 4);
    let bytes = ix.encode();
    assert_eq!(bytes.len(), 32 + 3 * 48);
    assert_eq!(&bytes[0..4], &[0xCD, 0xE4, 0xEC, 0x67]);
    assert_eq!(bytes[4], 1, "version");
    assert_eq!(bytes[5], 0, "raw chunks");
    assert_eq!(le64(&bytes, 8), 10, "UncompressedSize");
    assert_eq!(u32::from_le_bytes(bytes[16..20].try_into().unwrap()), 3);
    assert_eq!((bytes[20], bytes[21]), (1, 32), "SHA-256");
    // Second entry: BlockOffset = UncompressedOffset = 4, then sha256 of 4 bytes of 7.
    let e = &bytes[32 + 48..32 + 96];
    assert_eq!(le64(e, 0), 4);
    assert_eq!(le64(e, 8), 4);
    assert_eq!(&e[16..], &Sha256::digest([7u8; 4])[..]);
    assert_eq!(ChunkIndex::parse(&bytes).unwrap(), ix);
}

#[test]
fn covering_chunks_are_exact() {
    let ix = build(&[1u8; 10], 4); // [0,4) [4,8) [8,10)
    assert_eq!(ix.chunks_covering(0, 1), 0..1);
    assert_eq!(ix.chunks_covering(3, 5), 0..2);
    assert_eq!(ix.chunks_covering(4, 8), 1..2);
    assert_eq!(ix.chunks_covering(9, 100), 2..3);
    assert_eq!(ix.chunks_covering(10, 20), 0..0);
    assert_eq!(ix.chunk(2), 8..10);
    assert!(ix.verify(2, &[1, 1]));
    assert!(!ix.verify(2, &[1, 0]));
    assert!(!ix.verify(2, &[1, 1, 1]));
}

#[test]
fn broken_rules_are_refused() {
    let good = build(&[3u8; 9], 4).encode();
    let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
    let mut b = good.clone();
    b[0] ^= 1;
    cases.push((b, "magic"));
    let mut b = good.clone();
    b[25] = 1;
    cases.push((b, "reserved"));
    let mut b = good.clone();
    b.pop();
    cases.push((b, "need"));
    let mut b = good.clone();
    b[32 + 48 + 8] = 9; // UncompressedOffset of chunk 1
    cases.push((b, "BlockOffset"));
    let mut b = good.clone();
    b[32 + 48] = 9;
    b[32 + 48 + 8] = 9; // chunk 1 starts past the data
    cases.push((b, "out of order"));
    for (bytes, what) in cases {
        let e = ChunkIndex::parse(&bytes).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Integrity, "{what}: {e}");
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
    let mut b = good;
    b[5] = 1;
    assert_eq!(
        ChunkIndex::parse(&b).unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

#[test]
fn annotations_round_trip_and_authenticate() {
    let ix = build(&[5u8; 100], 16);
    let bytes = ix.encode();
    let ann = Embedded::annotations(100, &bytes);
    let size = 100 + bytes.len() as u64;
    let e = Embedded::from_annotations(&ann, size).unwrap().unwrap();
    assert_eq!(e.range, 100..size);
    assert_eq!(e.open(&bytes).unwrap(), ix);
    let mut tampered = bytes.clone();
    tampered[40] ^= 1;
    assert!(e.open(&tampered).unwrap_err().to_string().contains("hash"));
    // Not the tail of the blob, or not a whole number of entries.
    assert!(Embedded::from_annotations(&ann, size + 1).is_err());
    let mut odd = ann.clone();
    odd.insert(ANN_RANGE.into(), format!("101:{size}"));
    assert!(Embedded::from_annotations(&odd, size).is_err());
    let mut no_digest = ann.clone();
    no_digest.remove(ANN_DIGEST);
    assert!(Embedded::from_annotations(&no_digest, size).is_err());
    let mut other = ann;
    other.insert(ANN_MEDIA_TYPE.into(), "application/x-other".into());
    assert_eq!(Embedded::from_annotations(&other, size).unwrap(), None);
    assert_eq!(
        Embedded::from_annotations(&BTreeMap::new(), 5).unwrap(),
        None
    );
}

#[test]
fn a_whole_blob_index_verifies_the_blob_as_one_chunk() {
    let data = [4u8; 3000];
    let hex = hex::encode(Sha256::digest(data));
    let ix = ChunkIndex::whole(3000, &hex).unwrap();
    assert_eq!((ix.chunk_count(), ix.chunk(0)), (1, 0..3000));
    assert_eq!(ix.chunks_covering(2000, 2500), 0..1);
    assert!(ix.verify(0, &data));
    assert!(!ix.verify(0, &[4u8; 2999]));
    assert_eq!(ChunkIndex::whole(0, &hex), None);
    assert_eq!(ChunkIndex::whole(5, "abc"), None);
}

#[test]
fn a_standalone_index_is_named_by_digest_and_covers_the_whole_blob() {
    let ix = build(&[9u8; 100], 16);
    let bytes = ix.encode();
    let ann = Standalone::annotations(&bytes);
    let at = IndexAt::from_annotations(&ann, 100).unwrap().unwrap();
    let IndexAt::Standalone(s) = &at else {
        panic!("{at:?}")
    };
    assert_eq!(at.data_size(), 100);
    assert_eq!(s.open(&bytes).unwrap(), ix);
    let mut tampered = bytes.clone();
    tampered[40] ^= 1;
    assert!(s.open(&tampered).is_err());
    // An index of another blob size is refused even with the right digest.
    let other = Standalone::from_annotations(&ann, 101).unwrap().unwrap();
    assert!(other.open(&bytes).unwrap_err().to_string().contains("101"));
    // A range makes it embedded; no digest, no index; a bad digest is malformed.
    let embedded = Embedded::annotations(100, &bytes);
    let size = 100 + bytes.len() as u64;
    assert!(matches!(
        IndexAt::from_annotations(&embedded, size).unwrap(),
        Some(IndexAt::Embedded(_))
    ));
    assert_eq!(
        IndexAt::from_annotations(&BTreeMap::new(), 5).unwrap(),
        None
    );
    let bad = BTreeMap::from([(ANN_DIGEST.to_string(), "sha256:xyz".to_string())]);
    assert!(IndexAt::from_annotations(&bad, 5).is_err());
}

proptest! {
    #[test]
    fn any_split_gives_the_same_index(data in proptest::collection::vec(any::<u8>(), 0..5000),
                                      chunk in 1u64..700, cuts in proptest::collection::vec(0usize..5000, 0..8)) {
        let whole = build(&data, chunk);
        let mut b = ChunkIndexBuilder::new(chunk);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
        cuts.sort();
        let mut at = 0;
        for c in cuts.into_iter().chain([data.len()]) {
            b.update(&data[at..c]);
            at = c;
        }
        let split = b.finish();
        prop_assert_eq!(&split, &whole);
        prop_assert_eq!(whole.chunk_count() as u64, ChunkIndex::chunks_for(data.len() as u64, chunk));
        prop_assert_eq!(ChunkIndex::parse(&whole.encode()).unwrap(), whole.clone());
        for i in 0..whole.chunk_count() {
            let r = whole.chunk(i);
            prop_assert!(whole.verify(i, &data[r.start as usize..r.end as usize]));
        }
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = ChunkIndex::parse(&bytes);
    }
}
