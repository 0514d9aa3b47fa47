//! Downloads: parallel ranges, fallbacks, resume, and refusing wrong content.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use fspack_registry::{DownloadOptions, ErrorKind};

use crate::common::fake::{Fake, Fault, Op};
use crate::common::{client, counter, data, dest};

fn parallel() -> DownloadOptions {
    DownloadOptions {
        range_parallelism: 4,
        min_split: 128 << 10,
        unit: 64 << 10,
        max_range: 1 << 20,
        ..Default::default()
    }
}

fn ranged_gets(fake: &Fake) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|l| l.method == "GET" && l.path.contains("/blobs/sha256"))
        .filter_map(|l| l.range)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_ranges_produce_the_blob() {
    let fake = Fake::start().await;
    let blob = data(3_000_001, 10);
    let d = fake.put_blob(&blob);
    let r = fake.reference("a/b");
    let (tmp, file) = dest(blob.len() as u64);
    let p = counter();
    let journal = Arc::new(Mutex::new(Vec::new()));
    let j = journal.clone();
    let opts = DownloadOptions {
        on_range_done: Some(Arc::new(move |a, b| j.lock().unwrap().push((a, b)))),
        ..parallel()
    };
    client()
        .download_blob(&r, &d, blob.len() as u64, &file, &opts, p.clone())
        .await
        .unwrap();
    assert_eq!(std::fs::read(tmp.path()).unwrap(), blob);
    assert_eq!(p.bytes.load(Ordering::SeqCst), blob.len() as u64);
    let ranges = ranged_gets(&fake);
    assert_eq!(ranges.len(), 4, "one range per lane: {ranges:?}");
    // A quarter of the blob, rounded up to the next whole 64 KiB unit.
    assert!(ranges.contains(&"bytes=0-786431".to_string()), "{ranges:?}");
    // The journal covers the blob exactly once.
    let mut j = journal.lock().unwrap().clone();
    j.sort();
    let covered: u64 = j.iter().map(|(a, b)| b - a).sum();
    assert_eq!(covered, blob.len() as u64, "{j:?}");
    assert_eq!(j.first().unwrap().0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_blobs_use_one_plain_stream() {
    let fake = Fake::start().await;
    let blob = data(100_000, 11);
    let d = fake.put_blob(&blob);
    let (tmp, file) = dest(blob.len() as u64);
    client()
        .download_blob(
            &fake.reference("a/b"),
            &d,
            blob.len() as u64,
            &file,
            &parallel(),
            counter(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(tmp.path()).unwrap(), blob);
    assert!(
        ranged_gets(&fake).is_empty(),
        "no Range for a whole small blob"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_ignored_falls_back_to_one_stream_from_zero() {
    let fake = Fake::start().await;
    fake.ranges.store(false, Ordering::SeqCst);
    let blob = data(2_500_000, 12);
    let d = fake.put_blob(&blob);
    let (tmp, file) = dest(blob.len() as u64);
    let p = counter();
    client()
        .download_blob(
            &fake.reference("a/b"),
            &d,
            blob.len() as u64,
            &file,
            &parallel(),
            p.clone(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(tmp.path()).unwrap(), blob);
    assert_eq!(
        p.bytes.load(Ordering::SeqCst),
        blob.len() as u64,
        "progress rewound on fallback"
    );
    let log = fake.requests();
    let last = log.iter().rev().find(|l| l.method == "GET").unwrap();
    assert_eq!(
        (last.range.as_deref(), last.status),
        (None, 200),
        "last GET is the plain stream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_range_resumes_from_its_last_whole_unit() {
    let fake = Fake::start().await;
    let blob = data(2_000_000, 13);
    let d = fake.put_blob(&blob);
    fake.fault(Op::BlobGet, Fault::CutAfter(300_000));
    fake.fault(Op::BlobGet, Fault::Status(500));
    let (tmp, file) = dest(blob.len() as u64);
    client()
        .download_blob(
            &fake.reference("a/b"),
            &d,
            blob.len() as u64,
            &file,
            &parallel(),
            counter(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(tmp.path()).unwrap(), blob);
    let ranges = ranged_gets(&fake);
    // Pieces start at multiples of 524 288 (2 MB over 4 lanes, on 64 KiB units); the cut
    // after 300 000 bytes keeps the four whole units (262 144 bytes) and resumes there.
    assert_eq!(ranges.len(), 6, "4 pieces, one 500, one resume: {ranges:?}");
    assert!(
        ranges
            .iter()
            .any(|r| ["=262144-", "=786432-", "=1310720-", "=1835008-"]
                .iter()
                .any(|s| r.contains(s))),
        "{ranges:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_single_stream_resumes_with_range() {
    let fake = Fake::start().await;
    let blob = data(200_000, 14);
    let d = fake.put_blob(&blob);
    fake.fault(Op::BlobGet, Fault::CutAfter(70_000));
    let (tmp, file) = dest(blob.len() as u64);
    let p = counter();
    let opts = DownloadOptions {
        range_parallelism: 1,
        ..parallel()
    };
    client()
        .download_blob(
            &fake.reference("a/b"),
            &d,
            blob.len() as u64,
            &file,
            &opts,
            p.clone(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(tmp.path()).unwrap(), blob);
    // The cut after 70 000 bytes keeps one whole 64 KiB unit.
    assert_eq!(ranged_gets(&fake), ["bytes=65536-199999"]);
    assert_eq!(p.bytes.load(Ordering::SeqCst), blob.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_ranges_are_skipped_but_verified() {
    let fake = Fake::start().await;
    let blob = data(1_000_000, 15);
    let d = fake.put_blob(&blob);
    let (tmp, file) = dest(blob.len() as u64);
    std::os::unix::fs::FileExt::write_all_at(&file, &blob[..400_000], 0).unwrap();
    let opts = DownloadOptions {
        done_ranges: vec![(0, 400_000)],
        range_parallelism: 1,
        ..parallel()
    };
    client()
        .download_blob(
            &fake.reference("a/b"),
            &d,
            blob.len() as u64,
            &file,
            &opts,
            counter(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(tmp.path()).unwrap(), blob);
    // Only whole units count as done: 0..393216 is kept, the unit holding byte 400 000 is not.
    assert_eq!(ranged_gets(&fake), ["bytes=393216-999999"]);

    // A journal that lies (the bytes on disk are wrong) is caught by the digest check.
    let (_tmp, file) = dest(blob.len() as u64);
    let opts = DownloadOptions {
        done_ranges: vec![(0, 400_000)],
        ..parallel()
    };
    let e = client()
        .download_blob(
            &fake.reference("a/b"),
            &d,
            blob.len() as u64,
            &file,
            &opts,
            counter(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_and_truncation_are_refused() {
    let fake = Fake::start().await;
    let blob = data(1_500_000, 16);
    let d = fake.put_blob(&blob);
    let r = fake.reference("a/b");
    let size = blob.len() as u64;

    fake.corrupt.store(true, Ordering::SeqCst);
    let (_t, file) = dest(size);
    let e = client()
        .download_blob(&r, &d, size, &file, &parallel(), counter())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Integrity);
    assert!(e.to_string().contains(&format!("expected {d}")), "{e}");
    fake.corrupt.store(false, Ordering::SeqCst);

    // One byte short, announced honestly: the single stream sees the wrong length.
    fake.truncate.store(true, Ordering::SeqCst);
    let (_t, file) = dest(size);
    let opts = DownloadOptions {
        range_parallelism: 1,
        ..parallel()
    };
    let e = client()
        .download_blob(&r, &d, size, &file, &opts, counter())
        .await
        .unwrap_err();
    assert!(
        matches!(e, fspack_registry::RegistryError::SizeMismatch { .. }),
        "{e}"
    );
    // Ranged: the Content-Range total gives it away.
    let (_t, file) = dest(size);
    let e = client()
        .download_blob(&r, &d, size, &file, &parallel(), counter())
        .await
        .unwrap_err();
    assert!(
        matches!(e, fspack_registry::RegistryError::SizeMismatch { .. }),
        "{e}"
    );
    fake.truncate.store(false, Ordering::SeqCst);

    // The descriptor says the blob is shorter than it is: trailing bytes are an error.
    let (_t, file) = dest(size - 10);
    let e = client()
        .download_blob(&r, &d, size - 10, &file, &opts, counter())
        .await
        .unwrap_err();
    assert!(
        matches!(e, fspack_registry::RegistryError::SizeMismatch { .. }),
        "{e}"
    );

    let missing = crate::common::fake::digest(b"missing");
    let e = client()
        .download_blob(&r, &missing, 7, &file, &opts, counter())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_keep_range_and_drop_authorization() {
    let fake = Fake::start().await;
    fake.token_auth.store(true, Ordering::SeqCst);
    *fake.redirect_host.lock().unwrap() = Some("cdn.test".into());
    let blob = data(1_200_000, 17);
    let d = fake.put_blob(&blob);
    let c = crate::common::client_with(fspack_registry::ClientOptions {
        resolve: vec![("cdn.test".into(), fake.addr())],
        plain_http: true,
        ..Default::default()
    });
    let (tmp, file) = dest(blob.len() as u64);
    c.download_blob(
        &fake.reference("a/b"),
        &d,
        blob.len() as u64,
        &file,
        &parallel(),
        counter(),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(tmp.path()).unwrap(), blob);
    let log = fake.requests();
    let cdn: Vec<_> = log.iter().filter(|l| l.path.starts_with("/cdn/")).collect();
    assert!(cdn.len() >= 2, "ranges went to the CDN: {log:?}");
    assert!(
        cdn.iter().all(|l| l.authorization.is_none()),
        "no Authorization to another host"
    );
    assert!(
        cdn.iter().all(|l| l.range.is_some()),
        "Range re-sent after the redirect"
    );
    assert!(log.iter().any(|l| {
        l.path.contains("/blobs/sha256")
            && l.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Bearer "))
    }));
}

/// A sink that keeps what it was given, by offset.
#[derive(Default)]
struct Collect(Mutex<Vec<(u64, Vec<u8>)>>);

impl fspack_registry::BlobSink for Collect {
    fn write_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.0.lock().unwrap().push((offset, bytes.to_vec()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_chunks_streams_verified_chunks_and_stops_at_a_bad_one() {
    use fspack_chunkindex::ChunkIndexBuilder;
    let fake = Fake::start().await;
    let blob = data(1_000_000, 21);
    let d = fake.put_blob(&blob);
    let r = fake.reference("a/b");
    let index_of = |bytes: &[u8]| {
        let mut b = ChunkIndexBuilder::new(64 << 10);
        b.update(bytes);
        Arc::new(b.finish())
    };
    let opts = DownloadOptions {
        chunks: Some(index_of(&blob)),
        chunk_attempts: 1,
        ..Default::default()
    };
    // Fetches `range` with `opts` into a fresh sink; returns the result and what the sink got.
    let fetch = |range: (u64, u64), opts: DownloadOptions| {
        let (r, d, len) = (r.clone(), d.clone(), blob.len() as u64);
        async move {
            let sink = Arc::new(Collect::default());
            let got = client()
                .download_range(&r, &d, len, range, sink.clone(), &opts, counter())
                .await;
            let kept = sink.0.lock().unwrap().clone();
            (got, kept)
        }
    };
    // Chunks 2..5: one Range request, each chunk handed over on its own, in order.
    let range = (2 * 65536, 5 * 65536);
    let (res, got) = fetch(range, opts.clone()).await;
    res.unwrap();
    let offsets: Vec<u64> = got.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, vec![131072, 196608, 262144]);
    for (o, bytes) in &got {
        assert_eq!(&blob[*o as usize..*o as usize + bytes.len()], &bytes[..]);
    }
    assert_eq!(ranged_gets(&fake), vec!["bytes=131072-327679".to_string()]);

    // A range that does not start on a chunk boundary is refused before any request.
    let e = fetch((100, 65536), opts.clone()).await.0.unwrap_err();
    assert!(e.to_string().contains("not whole units"), "{e}");
    assert_eq!(ranged_gets(&fake).len(), 1);

    // An index that disagrees with chunk 3: chunk 2 arrives, chunk 3 is named, nothing after.
    let mut other = blob.clone();
    other[3 * 65536 + 7] ^= 1;
    let opts = DownloadOptions {
        chunks: Some(index_of(&other)),
        ..opts
    };
    let (res, got) = fetch(range, opts).await;
    let e = res.unwrap_err();
    assert!(
        matches!(
            e,
            fspack_registry::RegistryError::ChunkMismatch { chunk: 3, .. }
        ),
        "{e:?}"
    );
    let offsets: Vec<u64> = got.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, vec![131072]);
}

/// A port nothing listens on (bound, then closed).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The attempts a failed request made, from its error.
fn attempts(e: &fspack_registry::RegistryError) -> u32 {
    match e {
        fspack_registry::RegistryError::Network { attempts, .. } => *attempts,
        other => panic!("not a network error: {other:?}"),
    }
}

/// s10: a refused connection cost 3.8 s of five retries before any registry had answered,
/// which is nearly always a wrong host or port. Now the first contact is retried once; once a
/// registry has answered, a refused connection (a registry restarting) gets every retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_first_contact_is_retried_once_and_a_refusal_after_an_answer_fully() {
    let c = client();
    let nowhere: fspack_registry::Reference = format!("127.0.0.1:{}/a/b:v1", closed_port())
        .parse()
        .unwrap();
    let e = c.get_manifest(&nowhere).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert_eq!(attempts(&e), 2, "{e}");

    let fake = Fake::start().await;
    let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    fake.put_manifest(
        "a/b",
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        body,
    );
    c.get_manifest(&fake.reference("a/b:v1")).await.unwrap();
    let e = c.get_manifest(&nowhere).await.unwrap_err();
    assert_eq!(attempts(&e), 6, "{e}");
}
