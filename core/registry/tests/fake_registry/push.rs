//! Pushes: monolithic and chunked, with faults.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fspack_registry::{BytesSource, ErrorKind, UploadMode};

use crate::common::fake::{Fake, Fault, Op, digest, sha256};
use crate::common::{client, counter, data};

fn source(b: &[u8]) -> Arc<BytesSource> {
    Arc::new(BytesSource(Bytes::copy_from_slice(b)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monolithic_push_streams_one_put_with_content_length() {
    let fake = Fake::start().await;
    let r = fake.reference("team/model:v1");
    let blob = data(3 << 20, 1);
    let d = digest(&blob);
    let c = client();
    assert_eq!(c.blob_exists(&r, &d).await.unwrap(), None);
    let p = counter();
    c.push_blob(&r, &d, source(&blob), UploadMode::Monolithic, p.clone())
        .await
        .unwrap();
    assert_eq!(
        fake.blobs.lock().unwrap().get(d.as_str()).unwrap().as_ref(),
        &blob[..]
    );
    assert_eq!(
        c.blob_exists(&r, &d).await.unwrap(),
        Some(blob.len() as u64)
    );
    assert_eq!(p.bytes.load(Ordering::SeqCst), blob.len() as u64);
    let puts: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|l| l.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].content_length, Some(blob.len() as u64));
    assert!(puts[0].path.contains("digest=sha256"), "{}", puts[0].path);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_blob_pushes() {
    let fake = Fake::start().await;
    let r = fake.reference("a/b");
    let d = digest(b"");
    for mode in [
        UploadMode::Monolithic,
        UploadMode::Chunked { chunk_size: 10 },
    ] {
        client()
            .push_blob(&r, &d, source(b""), mode, counter())
            .await
            .unwrap();
    }
    assert!(fake.blobs.lock().unwrap().contains_key(d.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monolithic_push_restarts_the_session_after_500_and_a_cut() {
    let fake = Fake::start().await;
    let r = fake.reference("a/b");
    let blob = data(1 << 20, 2);
    let d = digest(&blob);
    fake.fault(Op::UploadPut, Fault::Status(500));
    fake.fault(Op::UploadPut, Fault::CutUpload(100_000));
    let p = counter();
    client()
        .push_blob(&r, &d, source(&blob), UploadMode::Monolithic, p.clone())
        .await
        .unwrap();
    assert_eq!(
        fake.blobs.lock().unwrap().get(d.as_str()).unwrap().as_ref(),
        &blob[..]
    );
    assert_eq!(
        fake.count("POST", "/blobs/uploads/"),
        3,
        "a new session per attempt"
    );
    assert!(p.resets.load(Ordering::SeqCst) >= 2);
    assert_eq!(p.bytes.load(Ordering::SeqCst), blob.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_push_honours_min_length_and_sends_bare_content_range() {
    let fake = Fake::start().await;
    fake.min_chunk.store(100_000, Ordering::SeqCst);
    let r = fake.reference("a/b");
    let blob = data(250_000, 3);
    let d = digest(&blob);
    client()
        .push_blob(
            &r,
            &d,
            source(&blob),
            UploadMode::Chunked { chunk_size: 4096 },
            counter(),
        )
        .await
        .unwrap();
    assert_eq!(
        fake.blobs.lock().unwrap().get(d.as_str()).unwrap().as_ref(),
        &blob[..]
    );
    let ranges: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|l| l.method == "PATCH")
        .filter_map(|l| l.content_range)
        .collect();
    assert_eq!(ranges, ["0-99999", "100000-199999", "200000-249999"]);
    let put = fake
        .requests()
        .into_iter()
        .find(|l| l.method == "PUT")
        .unwrap();
    assert_eq!(put.content_length, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_push_resumes_from_the_registry_offset_after_a_cut() {
    let fake = Fake::start().await;
    let r = fake.reference("a/b");
    let blob = data(300_000, 4);
    let d = digest(&blob);
    // The second chunk is cut after 30 000 bytes, which the registry keeps.
    fake.fault(Op::UploadPatch, Fault::Status(503));
    fake.fault(Op::UploadPatch, Fault::CutUpload(30_000));
    let p = counter();
    client()
        .push_blob(
            &r,
            &d,
            source(&blob),
            UploadMode::Chunked {
                chunk_size: 100_000,
            },
            p.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        fake.blobs.lock().unwrap().get(d.as_str()).unwrap().as_ref(),
        &blob[..]
    );
    let log = fake.requests();
    let ranges: Vec<String> = log
        .iter()
        .filter(|l| l.method == "PATCH" && l.status == 202)
        .filter_map(|l| l.content_range.clone())
        .collect();
    assert!(
        ranges.contains(&"30000-129999".to_string()),
        "resumed at the registry's offset: {ranges:?}"
    );
    assert!(
        log.iter()
            .any(|l| l.method == "GET" && l.path.contains("/blobs/uploads/")),
        "asked the session for its offset"
    );
    assert_eq!(
        fake.count("POST", "/blobs/uploads/"),
        1,
        "same session throughout"
    );
    assert_eq!(p.bytes.load(Ordering::SeqCst), blob.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_waits_for_retry_after_on_429() {
    let fake = Fake::start().await;
    let r = fake.reference("a/b");
    let blob = data(1000, 5);
    let d = digest(&blob);
    fake.fault(Op::UploadPost, Fault::TooMany("1".into()));
    let t = Instant::now();
    client()
        .push_blob(&r, &d, source(&blob), UploadMode::Monolithic, counter())
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        t.elapsed()
    );
    assert_eq!(fake.count("POST", "/blobs/uploads/"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_gives_up_with_a_clear_redacted_error() {
    let fake = Fake::start().await;
    let r = fake.reference("a/b");
    let blob = data(1000, 6);
    let d = digest(&blob);
    for _ in 0..20 {
        fake.fault(Op::UploadPut, Fault::Status(503));
    }
    let e = client()
        .push_blob(&r, &d, source(&blob), UploadMode::Monolithic, counter())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network);
    let msg = e.to_string();
    assert!(msg.contains("after 6 attempts"), "{msg}");
    assert!(
        msg.contains("_state=REDACTED") && !msg.contains("SECRETSTATE"),
        "{msg}"
    );
    let src = std::error::Error::source(&e).unwrap().to_string();
    assert!(src.contains("503") && src.contains("UNAVAILABLE"), "{src}");
    assert!(!format!("{e:?}").contains("SECRETSTATE"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_digest_is_refused_by_the_registry_as_a_digest_error() {
    let fake = Fake::start().await;
    let r = fake.reference("a/b");
    let d = digest(b"other content");
    let e = client()
        .push_blob(
            &r,
            &d,
            source(b"content"),
            UploadMode::Monolithic,
            counter(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.to_string().contains("DIGEST_INVALID"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_source_is_an_io_error_not_a_retry_loop() {
    struct Broken;
    impl fspack_registry::BlobSource for Broken {
        fn size(&self) -> u64 {
            1 << 20
        }
        fn open_at(&self, _: u64) -> std::io::Result<Box<dyn std::io::Read + Send>> {
            Ok(Box::new(std::io::Read::take(std::io::repeat(7), 1000)))
        }
    }
    let fake = Fake::start().await;
    let r = fake.reference("a/b");
    let d = digest(b"x");
    let e = client()
        .push_blob(&r, &d, Arc::new(Broken), UploadMode::Monolithic, counter())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert_eq!(fake.count("POST", "/blobs/uploads/"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifests_and_tags_round_trip() {
    use fspack_registry::manifest::{Descriptor, ImageManifest, MEDIA_TYPE_IMAGE_MANIFEST};
    let fake = Fake::start().await;
    fake.tag_page.store(2, Ordering::SeqCst);
    let r = fake.reference("a/b:v1");
    let c = client();
    let m = ImageManifest::artifact(
        "application/vnd.fspack.image.v1",
        vec![Descriptor::of_bytes("application/vnd.erofs", b"img")],
    );
    let body = m.to_json();
    let d = c
        .push_manifest(&r, "v1", MEDIA_TYPE_IMAGE_MANIFEST, body.clone())
        .await
        .unwrap();
    assert_eq!(d, digest(&body));
    for t in ["v2", "v3", "v4", "v5"] {
        c.push_manifest(&r, t, MEDIA_TYPE_IMAGE_MANIFEST, body.clone())
            .await
            .unwrap();
    }
    let (mt, got, gd) = c.get_manifest(&r).await.unwrap();
    assert_eq!(
        (mt.as_str(), &got, &gd),
        (MEDIA_TYPE_IMAGE_MANIFEST, &body, &d)
    );
    let (_, got2, _) = c.get_manifest(&r.with_digest(&d)).await.unwrap();
    assert_eq!(got2, body);
    assert_eq!(
        c.list_tags(&r).await.unwrap(),
        ["v1", "v2", "v3", "v4", "v5"]
    );
    assert_eq!(fake.count("GET", "/tags/list"), 3, "followed Link pages");

    let e = c
        .get_manifest(&fake.reference("a/b:nope"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), fspack_registry::ErrorKind::NotFound);
    assert!(e.to_string().contains("manifest nope not found in"), "{e}");

    // Pushing by digest checks the body against it.
    let e = c
        .push_manifest(&r, &sha256(b"x"), MEDIA_TYPE_IMAGE_MANIFEST, body.clone())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_digest_lies_and_oversize_are_refused() {
    let fake = Fake::start().await;
    let c = client();
    fake.put_manifest(
        "a/b",
        "t",
        "application/vnd.oci.image.manifest.v1+json",
        b"{\"schemaVersion\":2}",
    );
    fake.lie_manifest_digest.store(true, Ordering::SeqCst);
    let e = c.get_manifest(&fake.reference("a/b:t")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    assert!(e.to_string().contains("Docker-Content-Digest"), "{e}");
    fake.lie_manifest_digest.store(false, Ordering::SeqCst);
    // Served under a digest it does not hash to.
    let wrong = digest(b"something else");
    fake.put_manifest(
        "a/b",
        wrong.as_str(),
        "application/vnd.oci.image.manifest.v1+json",
        b"{}",
    );
    let e = c
        .get_manifest(&fake.reference("a/b").with_digest(&wrong))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");
    let big = vec![b' '; (4 << 20) + 1];
    fake.put_manifest(
        "a/b",
        "big",
        "application/vnd.oci.image.manifest.v1+json",
        &big,
    );
    let e = c
        .get_manifest(&fake.reference("a/b:big"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_size_caps_suggest_chunked_upload() {
    let fake = Fake::start().await;
    let r = fake.reference("a/b");
    let blob = data(1000, 7);
    let d = digest(&blob);
    fake.fault(Op::UploadPut, Fault::Status(413));
    let e = client()
        .push_blob(&r, &d, source(&blob), UploadMode::Monolithic, counter())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains("--chunk-size"), "{e}");
    // Chunked goes through.
    client()
        .push_blob(
            &r,
            &d,
            source(&blob),
            UploadMode::Chunked { chunk_size: 300 },
            counter(),
        )
        .await
        .unwrap();
}
