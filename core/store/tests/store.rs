//! The content-store suite (after containerd's): commits verify, resume survives a dropped
//! ingest, concurrent ingests of one digest commit once, gc keeps what is reachable.

#[path = "../../../tests/support/privileged.rs"]
mod privileged;

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use fspack_store::{MountRecord, Store, StoreError, parse_digest, sha256_of};

fn ingest_all(store: &Store, data: &[u8]) -> Result<std::path::PathBuf, StoreError> {
    let d = sha256_of(data);
    let ing = store.ingest(&d, data.len() as u64)?;
    if !ing.is_committed() {
        ing.file().write_all_at(data, 0).unwrap();
    }
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
    assert!(err.to_string().contains(d.as_str()));
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
    // Text becomes a digest only through the one parser; a valid digest of another algorithm
    // is refused by the store.
    for bad in ["sha256:../../etc/passwd", "md5:abc", "sha256:ABCDEF", ""] {
        assert!(
            matches!(parse_digest(bad), Err(StoreError::InvalidDigest(_))),
            "{bad}"
        );
    }
    let sha512 = fspack_digest::Digest::parse(&format!("sha512:{}", "a".repeat(128))).unwrap();
    assert!(
        matches!(store.ingest(&sha512, 1), Err(StoreError::InvalidDigest(_))),
        "{sha512}"
    );
    assert!(!store.has_blob(&sha512));
}

#[test]
fn a_dropped_ingest_resumes_from_its_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let d = sha256_of(&data);
    {
        let ing = store.ingest(&d, data.len() as u64).unwrap();
        ing.write_at(0, &data[..40_000]).unwrap();
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
        privileged::skip("skopeo is not installed");
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
            created_dirs: vec![],
            lazy: None,
            created: 0,
        })
        .unwrap();
    let report = store.gc(&[]).unwrap();
    assert_eq!(report.removed_blobs, 1, "{report:?}");
    assert!(store.has_blob(&layer) && store.has_blob(&mounted) && store.has_blob(&md));
    assert!(!store.has_blob(&orphan));
    store
        .remove_mount_record(std::path::Path::new("/mnt/x"))
        .unwrap();
    assert_eq!(store.gc(&[]).unwrap().removed_blobs, 1);
}

#[test]
fn a_non_layout_directory_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("precious.txt"), b"x").unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = Store::open(tmp.path()).unwrap_err();
    assert!(err.to_string().contains("not an OCI image layout"), "{err}");
    // Refused as it was: not made 0700 on the way (s10 fresh-eyes pass).
    let mode = std::fs::metadata(tmp.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
}

#[test]
fn privileged_a_full_store_fails_cleanly() {
    if !rustix::process::geteuid().is_root() {
        privileged::skip("needs root to mount a small tmpfs");
        return;
    }
    privileged::ran();
    let tmp = tempfile::tempdir().unwrap();
    let st = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs"])
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
    eprintln!("{err}");
    // Small content written in one go fails the same way and leaves no temporary file.
    let err = store.put_blob_bytes(&vec![2u8; 2 << 20]).unwrap_err();
    assert!(err.is_no_space(), "{err}");
    // Nothing partial under blobs/: every file there is a committed blob named by its digest.
    let check_blobs = || {
        for e in std::fs::read_dir(tmp.path().join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let bytes = std::fs::read(e.path()).unwrap();
            assert_eq!(
                sha256_of(&bytes).as_str(),
                format!("sha256:{name}"),
                "partial file {name}"
            );
        }
    };
    check_blobs();
    // The store still works for what fits, and once the partial download is gone, for more.
    ingest_all(&store, b"small").unwrap();
    store.gc_with(&[], std::time::Duration::ZERO).unwrap();
    ingest_all(&store, &vec![5u8; 512 << 10]).unwrap();
    check_blobs();
}

#[test]
fn a_commit_of_the_wrong_size_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let data = b"0123456789ab";
    let d = sha256_of(&data[..10]);
    let ing = store.ingest(&d, 10).unwrap();
    ing.file().write_all_at(data, 0).unwrap(); // two bytes past the end
    let err = ing.commit().unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SizeMismatch {
                expected: 10,
                actual: 12,
                ..
            }
        ),
        "{err}"
    );
    assert!(!store.has_blob(&d));
    // A later correct commit succeeds (containerd's CommitErrorState).
    ingest_all(&store, &data[..10]).unwrap();
    assert!(store.has_blob_sized(&d, 10));
}

#[test]
fn committing_content_that_exists_is_a_success_without_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let first = ingest_all(&store, b"same").unwrap();
    let ing = store.ingest(&sha256_of(b"same"), 4).unwrap();
    assert!(ing.is_committed());
    assert_eq!(ing.done_ranges(), vec![(0, 4)]);
    assert_eq!(ing.commit().unwrap(), first);
    assert_eq!(ingest_all(&store, b"same").unwrap(), first);
    assert_eq!(
        std::fs::read_dir(tmp.path().join("ingest"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(store.put_blob_bytes(b"same").unwrap(), sha256_of(b"same"));
}

#[test]
fn a_tampered_partial_download_fails_at_commit_and_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let data = vec![3u8; 50_000];
    let d = sha256_of(&data);
    {
        let ing = store.ingest(&d, data.len() as u64).unwrap();
        ing.write_at(0, &data[..20_000]).unwrap();
    } // dropped: kept for resume
    let hex = d.hex();
    std::fs::OpenOptions::new()
        .write(true)
        .open(tmp.path().join(format!("ingest/{hex}.data")))
        .unwrap()
        .write_all_at(b"X", 100)
        .unwrap();
    let ing = store.ingest(&d, data.len() as u64).unwrap();
    ing.file().write_all_at(&data[20_000..], 20_000).unwrap();
    assert!(matches!(
        ing.commit(),
        Err(StoreError::DigestMismatch { .. })
    ));
    let ing = store.ingest(&d, data.len() as u64).unwrap();
    assert!(
        ing.done_ranges().is_empty(),
        "the journal went with the bad data"
    );
    ing.file().write_all_at(&data, 0).unwrap();
    ing.commit().unwrap();
}

/// The child half of `two_processes_ingesting_one_digest_commit_it_once`: does nothing unless
/// started by it.
#[test]
fn child_ingest_holding_the_lock() {
    let Some(root) = std::env::var_os("FSPACK_STORE_TEST_CHILD") else {
        return;
    };
    let store = Store::open(std::path::Path::new(&root)).unwrap();
    let data = vec![9u8; 1 << 20];
    let ing = store.ingest(&sha256_of(&data), data.len() as u64).unwrap();
    std::fs::write(std::path::Path::new(&root).join("child-has-lock"), b"").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    ing.file().write_all_at(&data, 0).unwrap();
    ing.commit().unwrap();
}

#[test]
fn two_processes_ingesting_one_digest_commit_it_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = vec![9u8; 1 << 20];
    let d = sha256_of(&data);
    // The parent holds a Store only after the child has its lock (its shared gc lock is harmless).
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_ingest_holding_the_lock",
            "--test-threads=1",
        ])
        .env("FSPACK_STORE_TEST_CHILD", tmp.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = tmp.path().join("child-has-lock");
    let start = std::time::Instant::now();
    while !marker.exists() {
        assert!(start.elapsed().as_secs() < 30, "child never took the lock");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let store = Store::open(tmp.path()).unwrap();
    let waited = std::time::Instant::now();
    let ing = store.ingest(&d, data.len() as u64).unwrap();
    assert!(
        waited.elapsed() >= std::time::Duration::from_millis(200),
        "the second ingest waited for the first: {:?}",
        waited.elapsed()
    );
    assert!(ing.is_committed(), "and then found the blob committed");
    drop(ing);
    assert!(child.wait().unwrap().success());
    assert!(store.has_blob_sized(&d, data.len() as u64));
    let names: Vec<_> = std::fs::read_dir(tmp.path().join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    assert_eq!(
        std::fs::read_dir(tmp.path().join("ingest"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn concurrent_tags_keep_index_json_valid_and_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let md = store.put_blob_bytes(b"{\"schemaVersion\":2}").unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let store = store.clone();
            let md = md.clone();
            s.spawn(move || {
                for i in 0..5 {
                    store
                        .tag(
                            &format!("t{t}-{i}"),
                            &md,
                            "application/vnd.oci.image.manifest.v1+json",
                            19,
                        )
                        .unwrap();
                }
            });
        }
    });
    let text = std::fs::read(tmp.path().join("index.json")).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(store.tags().unwrap().len(), 40);
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn fields_written_by_other_tools_survive_a_retag() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let md = store.put_blob_bytes(b"{}").unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{md}","size":2,"platform":{{"architecture":"amd64","os":"linux"}},"annotations":{{"org.opencontainers.image.ref.name":"theirs"}}}}],"annotations":{{"x":"y"}}}}"#
    );
    std::fs::write(tmp.path().join("index.json"), index).unwrap();
    store
        .tag("ours", &md, "application/vnd.oci.image.manifest.v1+json", 2)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(v["annotations"]["x"], "y");
    let theirs = store.resolve("theirs").unwrap().unwrap();
    assert_eq!(theirs.other["platform"]["os"], "linux");
}

#[test]
fn a_blob_changed_on_disk_is_not_served() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let d = store.put_blob_bytes(b"{\"layers\":[]}").unwrap();
    let p = store.blob_path(&d);
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o400
    );
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&p, b"{\"layers\":[1]}").unwrap();
    let err = store.read_blob(&d, 1 << 20).unwrap_err();
    assert!(matches!(err, StoreError::CorruptBlob { .. }), "{err}");
    assert!(matches!(
        store.read_blob(&d, 3),
        Err(StoreError::TooLarge { .. })
    ));
}

#[test]
fn gc_removes_stale_ingests_but_not_one_in_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path()).unwrap();
    let (a, b) = (vec![1u8; 1000], vec![2u8; 1000]);
    drop(store.ingest(&sha256_of(&a), 1000).unwrap()); // interrupted, never resumed
    let busy = store.ingest(&sha256_of(&b), 1000).unwrap(); // a pull still at work
    busy.file().write_all_at(&b[..500], 0).unwrap();
    let kept = store.gc(&[]).unwrap();
    assert_eq!(
        kept.removed_ingests, 0,
        "young partial downloads stay for a resume"
    );
    // ...and the report says so, with what they hold on disk.
    assert_eq!(kept.kept_ingests, 2, "{kept:?}");
    assert!(kept.kept_ingest_bytes >= 500, "{kept:?}");
    assert_eq!(kept.kept_blobs, 0, "{kept:?}");
    // What a writer killed in the middle of a small blob's write leaves (put_blob_bytes keeps
    // its temporary file out of blobs/), and one of an expanded layer's stream.
    let stray = tmp
        .path()
        .join("ingest")
        .join(format!(".{}.tmp-x1Y2z3", "ab".repeat(32)));
    std::fs::write(&stray, b"half").unwrap();
    std::fs::write(tmp.path().join("ingest/stream-1-0.tmp"), b"half").unwrap();
    assert_eq!(
        store.gc(&[]).unwrap().removed_ingests,
        0,
        "young: a writer may be at work"
    );
    let report = store.gc_with(&[], std::time::Duration::ZERO).unwrap();
    assert_eq!(report.removed_ingests, 3, "{report:?}");
    assert!(!stray.exists());
    busy.file().write_all_at(&b, 0).unwrap();
    busy.commit().unwrap();
    assert!(store.has_blob(&sha256_of(&b)));
}

#[test]
fn out_of_order_writes_commit_on_the_incremental_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
    let d = sha256_of(&data);
    let ing = store.ingest(&d, data.len() as u64).unwrap();
    // Pieces land back to front; the last one completes the prefix.
    for (a, b) in [(200_000, 300_000), (100_000, 200_000)] {
        ing.write_at(a, &data[a as usize..b as usize]).unwrap();
    }
    ing.write_at(0, &data[..100_000]).unwrap();
    ing.commit_written().unwrap();
    assert!(store.has_blob_sized(&d, data.len() as u64));
    assert_eq!(std::fs::read(store.blob_path(&d)).unwrap(), data);
}

#[test]
fn an_incomplete_or_wrong_write_is_never_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let data = vec![5u8; 50_000];
    let d = sha256_of(&data);
    let ing = store.ingest(&d, data.len() as u64).unwrap();
    ing.write_at(0, &data[..49_999]).unwrap();
    assert!(matches!(
        ing.commit_written(),
        Err(fspack_store::StoreError::SizeMismatch { .. })
    ));
    assert!(!store.has_blob(&d));
    // The journal kept the written range for a resume.
    let ing = store.ingest(&d, data.len() as u64).unwrap();
    assert_eq!(ing.done_ranges(), vec![(0, 49_999)]);
    ing.keep_present(0, 49_999);
    ing.write_at(49_999, b"X").unwrap(); // wrong last byte
    assert!(matches!(
        ing.commit_written(),
        Err(fspack_store::StoreError::DigestMismatch { .. })
    ));
    assert!(!store.has_blob(&d));
    // Writes past the end are refused.
    let ing = store.ingest(&d, data.len() as u64).unwrap();
    assert!(ing.write_at(49_999, b"XY").is_err());
}

#[test]
fn a_store_whose_creation_was_killed_before_the_marker_landed_opens() {
    let tmp = tempfile::tempdir().unwrap();
    // What a process killed inside write_atomic of `oci-layout` leaves behind.
    std::fs::write(tmp.path().join(".oci-layout.tmp-4242-0"), b"{").unwrap();
    let store = Store::open(tmp.path()).unwrap();
    assert!(tmp.path().join("oci-layout").is_file());
    assert!(!tmp.path().join(".oci-layout.tmp-4242-0").exists());
    drop(store);
    // Anything else is still a foreign directory.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), b"mine").unwrap();
    assert!(matches!(
        Store::open(other.path()),
        Err(StoreError::NotALayout(_))
    ));
}

fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_new_store_is_private_to_its_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("deep/store");
    let store = Store::open(&root).unwrap();
    assert_eq!(mode(&root), 0o700);
    let d = store.put_blob_bytes(b"secret model").unwrap();
    assert_eq!(mode(&store.blob_path(&d)), 0o400);
    let ingest = store.ingest(&sha256_of(b"weights"), 7).unwrap();
    ingest.file().write_all_at(b"weights", 0).unwrap();
    let path = ingest.commit().unwrap();
    assert_eq!(mode(&path), 0o400);
    store.tag("t", &d, "application/json", 12).unwrap();
    assert_eq!(mode(&root.join("index.json")), 0o600);
    assert_eq!(mode(&root.join("oci-layout")), 0o600);
    // A store from before (0755) is tightened when opened.
    std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    drop(store);
    Store::open(&root).unwrap();
    assert_eq!(mode(&root), 0o700);
}

#[test]
fn a_world_writable_or_foreign_store_is_refused_with_a_hint() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    std::fs::create_dir(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777)).unwrap();
    let err = Store::open(&root).unwrap_err();
    assert!(matches!(err, StoreError::Insecure { .. }), "{err}");
    assert!(err.to_string().contains("writable by everyone"), "{err}");
    assert!(err.to_string().contains("--store"), "{err}");
    assert!(!root.join("oci-layout").exists(), "nothing written into it");
    if rustix::process::geteuid().is_root() {
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&root, Some(65534), Some(65534)).unwrap();
        let err = Store::open(&root).unwrap_err();
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    } else {
        eprintln!("SKIP: the foreign-owner case needs root to chown");
    }
}

#[test]
fn a_shared_layout_keeps_readable_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("layout");
    let store = Store::open_shared(&root).unwrap();
    let d = store.put_blob_bytes(b"public").unwrap();
    assert_eq!(mode(&store.blob_path(&d)), 0o444);
    assert_eq!(mode(&root.join("index.json")), 0o644);
}

/// A layout written through `open_shared` ends with only what the image-layout spec names; an
/// fspack store opened that way keeps its locks and records (other processes may hold them).
#[test]
fn a_shared_layout_is_tidied_but_a_store_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    let names = |root: &std::path::Path| {
        let mut v: Vec<String> = std::fs::read_dir(root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let layout = tmp.path().join("layout");
    let store = Store::open_shared(&layout).unwrap();
    let d = store.put_blob_bytes(b"public").unwrap();
    let ing = store.ingest(&d, 6).unwrap();
    drop(ing);
    drop(store);
    assert_eq!(names(&layout), ["blobs", "index.json", "oci-layout"]);
    let root = tmp.path().join("store");
    drop(Store::open(&root).unwrap());
    let shared = Store::open_shared(&root).unwrap();
    shared.put_blob_bytes(b"public").unwrap();
    drop(shared);
    assert!(root.join("locks/gc.lock").exists());
    assert!(root.join("mounts").is_dir());
}

#[test]
fn units_from_many_threads_commit_and_resume_byte_exact() {
    const UNIT: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // 12 MiB and a ragged tail, like a blob with its chunk index behind the data.
    let data: Vec<u8> = (0..12 * UNIT + 6176)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    let d = sha256_of(&data);
    let units: Vec<(usize, usize)> = (0..data.len())
        .step_by(UNIT)
        .map(|a| (a, data.len().min(a + UNIT)))
        .collect();
    // A first attempt writes the first 5 units in order, then stops (a killed pull).
    let ing = store.ingest(&d, data.len() as u64).unwrap();
    for &(a, b) in &units[..5] {
        ing.write_at(a as u64, &data[a..b]).unwrap();
    }
    drop(ing);
    let ing = Arc::new(store.ingest(&d, data.len() as u64).unwrap());
    let done = ing.done_ranges();
    assert_eq!(done, vec![(0, 5 * UNIT as u64)]);
    // What the first attempt wrote reads back exactly.
    let mut back = vec![0u8; 5 * UNIT];
    ing.read_at(&mut back, 0).unwrap();
    assert!(back == data[..5 * UNIT], "resumed bytes differ");
    ing.keep_present(0, 5 * UNIT as u64);
    // Four lanes take the rest in interleaved order, as Range requests do.
    std::thread::scope(|s| {
        for lane in 0..4 {
            let (ing, units, data) = (ing.clone(), &units, &data);
            s.spawn(move || {
                for &(a, b) in units[5..].iter().skip(lane).step_by(4) {
                    ing.write_at(a as u64, &data[a..b]).unwrap();
                }
            });
        }
    });
    let ing = Arc::try_unwrap(ing).unwrap();
    ing.commit_written().unwrap();
    assert!(
        std::fs::read(store.blob_path(&d)).unwrap() == data,
        "committed bytes differ"
    );
}

/// A pull that meets a cached blob of the wrong length asks the store whether the copy is
/// damaged: an intact blob stays, a damaged one is removed, and one another process removed
/// first counts as removed (both pulls then fetch it again under its ingest lock).
#[test]
fn discard_if_damaged_keeps_an_intact_blob_and_removes_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let digest = store.put_blob_bytes(b"the blob's bytes").unwrap();
    let path = store.blob_path(&digest);
    assert!(!store.discard_if_damaged(&digest).unwrap());
    assert!(path.is_file());

    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&path, perms).unwrap();
    std::fs::write(&path, b"the blob's").unwrap();
    assert!(store.discard_if_damaged(&digest).unwrap());
    assert!(!path.exists());
    assert!(store.discard_if_damaged(&digest).unwrap(), "already gone");
}
