//! The digest cache in the store (issue 14): a re-push of unchanged files takes their layers'
//! digests from the cache, and a file that changed is never served from it, even when its size
//! and mtime are what they were (only the ctime tells).

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::*;

/// The layer digests `fspack push --json` reports, by layer title.
fn push_digests(store: &Path, src: &Path, layout: &Path) -> Vec<(String, String)> {
    let out = fspack(store)
        .args(["push", "--json"])
        .arg(src)
        .arg(format!("oci:{}:v1", layout.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["title"].as_str().unwrap().to_string(),
                l["digest"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A tree with one file large enough for a data blob of its own (5 MiB) and a small one, old
/// enough (ctime) for its digests to be cached.
fn tree(dir: &Path) -> std::path::PathBuf {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    let big: Vec<u8> = (0..5u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(src.join("weights.bin"), big).unwrap();
    fs::write(src.join("config.json"), b"{\"layers\": 2}\n").unwrap();
    std::thread::sleep(fspack_engine::digest_cache::SETTLE + Duration::from_millis(200));
    src
}

fn cache_entries(store: &Path) -> usize {
    fs::read_dir(store.join("cache/digests")).map_or(0, |d| d.count())
}

#[test]
fn a_changed_file_with_its_mtime_put_back_is_hashed_again() {
    let dir = tempfile::tempdir().unwrap();
    let src = tree(dir.path());
    let store = dir.path().join("store");
    let first = push_digests(&store, &src, &dir.path().join("l1"));
    assert!(cache_entries(&store) > 0, "the first push cached nothing");

    // Same size, other bytes, mtime put back: only the ctime differs.
    let file = src.join("weights.bin");
    let mtime = fs::metadata(&file).unwrap().modified().unwrap();
    let mut bytes = fs::read(&file).unwrap();
    bytes[4 << 20] ^= 0xff;
    let mut f = fs::OpenOptions::new().write(true).open(&file).unwrap();
    f.write_all(&bytes).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    assert_eq!(fs::metadata(&file).unwrap().modified().unwrap(), mtime);

    let again = push_digests(&store, &src, &dir.path().join("l2"));
    let fresh = push_digests(&dir.path().join("fresh"), &src, &dir.path().join("l3"));
    assert_eq!(
        again, fresh,
        "the cached push differs from a push without cache"
    );
    assert_ne!(again, first, "the changed file's layer kept its old digest");
}

#[test]
fn an_unchanged_tree_is_served_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let src = tree(dir.path());
    let store = dir.path().join("store");
    let first = push_digests(&store, &src, &dir.path().join("l1"));
    let again = push_digests(&store, &src, &dir.path().join("l2"));
    assert_eq!(first, again);

    // A hit is not re-read: with every entry's digest replaced, the next push uses the wrong
    // digests, and the store it writes to refuses them (so a hit is what happened).
    for e in fs::read_dir(store.join("cache/digests")).unwrap() {
        let path = e.unwrap().path();
        let mut entry: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        entry["digest"] = format!("sha256:{}", "0".repeat(64)).into();
        fs::write(&path, entry.to_string()).unwrap();
    }
    let out = fspack(&store)
        .arg("push")
        .arg(&src)
        .arg(format!("oci:{}:v1", dir.path().join("l3").display()))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the tampered cache was not consulted"
    );
}
