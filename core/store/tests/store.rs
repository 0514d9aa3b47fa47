//! The content-store suite (after containerd's): commits verify, resume survives a dropped
//! ingest, concurrent ingests of one digest commit once, gc keeps what is reachable.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use fspack_store::{MountRecord, Store, StoreError, sha256_of};

fn ingest_all(store: &Store, data: &[u8]) -> Result<std::path::PathBuf, StoreError> {
    let d = sha256_of(data);
    let ing = store.ingest(&d, data.len() as u64)?;
    ing.file().write_all_at(data, 0).unwrap();
    ing.commit()
}

#[test]
fn commit_with_the_right_digest_lands_in_blobs_read_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let p = ingest_all(&store, b"hello blobs").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"hello blobs");
    assert!(store.has_blob(&sha256_of(b"hello blobs")));
    assert!(std::fs::metadata(&p).unwrap().permissions().readonly());
    assert_eq!(
        std::fs::read_dir(tmp.path().join("ingest"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn wrong_content_is_refused_and_nothing_is_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let d = sha256_of(b"expected");
    let ing = store.ingest(&d, 8).unwrap();
    ing.file().write_all_at(b"tampered", 0).unwrap();
    let err = ing.commit().unwrap_err();
    assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&d));
    assert!(!store.has_blob(&d));
    assert_eq!(
        std::fs::read_dir(tmp.path().join("ingest"))
            .unwrap()
            .count(),
        0,
        "partial data discarded"
    );
}

#[test]
fn invalid_digests_never_become_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    for bad in ["sha256:../../etc/passwd", "md5:abc", "sha256:ABCDEF", ""] {
        assert!(
            matches!(store.ingest(bad, 1), Err(StoreError::InvalidDigest(_))),
            "{bad}"
        );
        assert!(!store.has_blob(bad));
    }
}

#[test]
fn a_dropped_ingest_resumes_from_its_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let d = sha256_of(&data);
    {
        let ing = store.ingest(&d, data.len() as u64).unwrap();
        ing.file().write_all_at(&data[..40_000], 0).unwrap();
        ing.mark_done(0, 40_000).unwrap();
        ing.abort();
    }
    let ing = store.ingest(&d, data.len() as u64).unwrap();
    assert_eq!(ing.done_ranges(), vec![(0, 40_000)]);
    ing.file().write_all_at(&data[40_000..], 40_000).unwrap();
    ing.commit().unwrap();
    assert!(store.has_blob_sized(&d, data.len() as u64));
}

#[test]
fn concurrent_ingests_of_one_digest_commit_once() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(tmp.path()).unwrap());
    let data = Arc::new(vec![7u8; 1 << 20]);
    let d = sha256_of(&data);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (store, data, d) = (store.clone(), data.clone(), d.clone());
            std::thread::spawn(move || {
                let ing = store.ingest(&d, data.len() as u64).unwrap();
                if store.has_blob(&d) {
                    return false;
                }
                ing.file().write_all_at(&data, 0).unwrap();
                ing.commit().unwrap();
                true
            })
        })
        .collect();
    let wrote: usize = handles
        .into_iter()
        .map(|h| h.join().unwrap() as usize)
        .sum();
    assert_eq!(
        wrote, 1,
        "exactly one writer commits, the others find the blob"
    );
}

#[test]
fn tags_round_trip_and_skopeo_reads_the_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let config = store.put_blob_bytes(b"{}").unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config}","size":2}},"layers":[]}}"#
    );
    let md = store.put_blob_bytes(manifest.as_bytes()).unwrap();
    store
        .tag(
            "example.com/a:v1",
            &md,
            "application/vnd.oci.image.manifest.v1+json",
            manifest.len() as u64,
        )
        .unwrap();
    store
        .tag(
            "example.com/a:v1",
            &md,
            "application/vnd.oci.image.manifest.v1+json",
            manifest.len() as u64,
        )
        .unwrap();
    assert_eq!(store.tags().unwrap().len(), 1, "re-tagging replaces");
    assert_eq!(
        store.resolve("example.com/a:v1").unwrap().unwrap().digest,
        md
    );
    assert!(store.resolve("nope").unwrap().is_none());
    let ok = std::process::Command::new("sh")
        .args(["-c", "command -v skopeo"])
        .output()
        .unwrap()
        .status
        .success();
    if ok {
        let out = std::process::Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:example.com/a:v1", tmp.path().display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, manifest.as_bytes());
    } else {
        eprintln!("SKIP: skopeo is not installed");
    }
}

#[test]
fn gc_keeps_tagged_and_mounted_content_and_drops_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let layer = ingest_all(&store, b"layer")
        .map(|_| sha256_of(b"layer"))
        .unwrap();
    let mounted = ingest_all(&store, b"mounted")
        .map(|_| sha256_of(b"mounted"))
        .unwrap();
    let orphan = ingest_all(&store, b"orphan")
        .map(|_| sha256_of(b"orphan"))
        .unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"x","digest":"{layer}","size":5}},"layers":[{{"mediaType":"x","digest":"{layer}","size":5}}]}}"#
    );
    let md = store.put_blob_bytes(manifest.as_bytes()).unwrap();
    store
        .tag(
            "t",
            &md,
            "application/vnd.oci.image.manifest.v1+json",
            manifest.len() as u64,
        )
        .unwrap();
    store
        .record_mount(&MountRecord {
            target: "/mnt/x".into(),
            reference: "r".into(),
            manifest_digest: md.clone(),
            format: "erofs".into(),
            blobs: vec![mounted.clone()],
            loop_devices: vec![],
            lower_mounts: vec![],
            created: 0,
        })
        .unwrap();
    let report = store.gc(&[]).unwrap();
    assert_eq!(report.removed_blobs, 1, "{report}");
    assert!(store.has_blob(&layer) && store.has_blob(&mounted) && store.has_blob(&md));
    assert!(!store.has_blob(&orphan));
    store
        .remove_mount_record(std::path::Path::new("/mnt/x"))
        .unwrap();
    assert_eq!(store.gc(&[]).unwrap().removed_blobs, 1);
}

#[test]
fn a_non_layout_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), b"x").unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("not an OCI image layout"), "{err}");
}

#[test]
fn privileged_a_full_store_fails_cleanly() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIP: needs root to mount a small tmpfs");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(tmp.path())
        .status()
        .unwrap();
    assert!(st.success());
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _u = Unmount(tmp.path());
    let store = Store::open(tmp.path()).unwrap();
    let big = vec![1u8; 4 << 20];
    let err = ingest_all(&store, &big).unwrap_err();
    assert!(err.is_no_space(), "{err}");
    assert!(err.to_string().contains("store at"), "{err}");
    assert!(!store.has_blob(&sha256_of(&big)));
    // The store still works for what fits.
    ingest_all(&store, b"small").unwrap();
}
