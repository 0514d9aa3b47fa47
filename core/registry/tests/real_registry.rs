//! The main path against a real registry (Debian's `docker-registry`, CNCF distribution 2.8) on
//! loopback: monolithic and chunked blob pushes, an artifact manifest with `artifactType` and the
//! empty config, reading it back, tags, and a parallel ranged download. Skipped, with a message,
//! when the binary is not installed.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use fspack_registry::manifest::{
    ANNOTATION_TITLE, Descriptor, EMPTY_JSON, EMPTY_JSON_DIGEST, ImageManifest,
    MEDIA_TYPE_EMPTY_JSON, MEDIA_TYPE_IMAGE_MANIFEST,
};
use fspack_registry::{BytesSource, DownloadOptions, ErrorKind, Reference, UploadMode};

use common::real::RealRegistry;
use common::{client, counter, data, dest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_pull_an_artifact_through_docker_registry() {
    let Some(reg) = RealRegistry::start() else {
        return;
    };
    let r: Reference = format!("{}/fspack/test-model:v1", reg.host)
        .parse()
        .unwrap();
    let c = client();

    let mono = data(5 << 20, 100);
    let chunked = data((3 << 20) + 12345, 101);
    let mono_d = fspack_registry::sha256_digest(&mono);
    let chunked_d = fspack_registry::sha256_digest(&chunked);
    assert_eq!(c.blob_exists(&r, &mono_d).await.unwrap(), None);

    let p = counter();
    c.push_blob(
        &r,
        &mono_d,
        Arc::new(BytesSource(Bytes::from(mono.clone()))),
        UploadMode::Monolithic,
        p.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        p.bytes.load(std::sync::atomic::Ordering::SeqCst),
        mono.len() as u64
    );
    c.push_blob(
        &r,
        &chunked_d,
        Arc::new(BytesSource(Bytes::from(chunked.clone()))),
        UploadMode::Chunked {
            chunk_size: 1 << 20,
        },
        counter(),
    )
    .await
    .unwrap();
    let empty = fspack_registry::parse_digest(EMPTY_JSON_DIGEST).unwrap();
    c.push_blob(
        &r,
        &empty,
        Arc::new(BytesSource(Bytes::from_static(EMPTY_JSON))),
        UploadMode::Monolithic,
        counter(),
    )
    .await
    .unwrap();
    assert_eq!(
        c.blob_exists(&r, &mono_d).await.unwrap(),
        Some(mono.len() as u64)
    );
    assert_eq!(
        c.blob_exists(&r, &chunked_d).await.unwrap(),
        Some(chunked.len() as u64)
    );
    assert_eq!(c.blob_exists(&r, &empty).await.unwrap(), Some(2));

    let layer = |d: &fspack_digest::Digest, len: usize, title: &str| Descriptor {
        annotations: BTreeMap::from([(ANNOTATION_TITLE.to_string(), title.to_string())]),
        ..Descriptor {
            digest: d.clone(),
            size: len as u64,
            ..Descriptor::of_bytes("application/octet-stream", b"")
        }
    };
    let mut m = ImageManifest::artifact(
        "application/vnd.fspack.image.v1",
        vec![
            layer(&mono_d, mono.len(), "blob-0000"),
            layer(&chunked_d, chunked.len(), "meta.erofs"),
        ],
    );
    m.layers[1].media_type = "application/vnd.erofs".into();
    m.annotations
        .insert("io.fspack.format".into(), "erofs".into());
    assert_eq!(m.config.media_type, MEDIA_TYPE_EMPTY_JSON);
    let body = m.to_json();
    let digest = c
        .push_manifest(&r, "v1", MEDIA_TYPE_IMAGE_MANIFEST, body.clone())
        .await
        .unwrap();

    let (mt, got, got_d) = c.get_manifest(&r).await.unwrap();
    assert_eq!(mt, MEDIA_TYPE_IMAGE_MANIFEST);
    assert_eq!(got, body, "the registry keeps the exact bytes");
    assert_eq!(got_d, digest);
    let back = ImageManifest::from_slice(&got).unwrap();
    assert_eq!(
        back.artifact_type.as_deref(),
        Some("application/vnd.fspack.image.v1")
    );
    let (_, by_digest, _) = c.get_manifest(&r.with_digest(&digest)).await.unwrap();
    assert_eq!(by_digest, body);
    assert_eq!(c.list_tags(&r).await.unwrap(), ["v1"]);

    // Parallel ranged download (the registry answers 206).
    let (tmp, file) = dest(mono.len() as u64);
    let opts = DownloadOptions {
        range_parallelism: 4,
        min_split: 512 << 10,
        unit: 512 << 10,
        max_range: 1 << 20,
        ..Default::default()
    };
    c.download_blob(&r, &mono_d, mono.len() as u64, &file, &opts, counter())
        .await
        .unwrap();
    assert_eq!(std::fs::read(tmp.path()).unwrap(), mono);
    let (tmp, file) = dest(chunked.len() as u64);
    c.download_blob(
        &r,
        &chunked_d,
        chunked.len() as u64,
        &file,
        &opts,
        counter(),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(tmp.path()).unwrap(), chunked);

    // Wrong size from the descriptor is caught.
    let (_tmp, file) = dest(mono.len() as u64 - 1);
    let e = c
        .download_blob(&r, &mono_d, mono.len() as u64 - 1, &file, &opts, counter())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity, "{e}");

    let e = c
        .get_manifest(
            &format!("{}/fspack/test-model:missing", reg.host)
                .parse()
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

/// A session opened ahead of its bytes (issue 14) can be gone by the time they go, as after a
/// registry's upload purge; the upload opens another and succeeds, without spending a retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_session_gone_before_its_put_is_replaced() {
    let Some(reg) = RealRegistry::start() else {
        return;
    };
    let r: Reference = format!("{}/fspack/stale:v1", reg.host).parse().unwrap();
    let c = client();
    let blob = data(1 << 20, 7);
    let d = fspack_registry::sha256_digest(&blob);
    let session = c.open_upload(&r).await.unwrap();
    // distribution-spec "Canceling an upload": the session's location answers 404 afterwards.
    let cancelled = reqwest::Client::new()
        .delete(session.location().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status(), reqwest::StatusCode::NO_CONTENT);
    let p = counter();
    c.push_blob_to(
        session,
        &r,
        &d,
        Arc::new(BytesSource(Bytes::from(blob.clone()))),
        UploadMode::Monolithic,
        p.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        c.blob_exists(&r, &d).await.unwrap(),
        Some(blob.len() as u64)
    );
}
