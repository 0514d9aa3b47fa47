//! Authentication: token flow, refresh on expiry, refused credentials, plain-HTTP hint.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use fspack_registry::{BytesSource, ClientOptions, ErrorKind, UploadMode};

use crate::common::fake::{Fake, Fault, Op, digest};
use crate::common::{client, client_with, counter, data, dest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_are_fetched_cached_and_refreshed_after_expiry() {
    let fake = Fake::start().await;
    fake.token_auth.store(true, Ordering::SeqCst);
    *fake.users.lock().unwrap() = Some(("alice".into(), "s3cret".into()));
    let c = client_with(ClientOptions {
        username: Some("alice".into()),
        password: Some("s3cret".into()),
        ..Default::default()
    });
    let r = fake.reference("a/b");
    let blob = data(300_000, 20);
    let d = digest(&blob);
    c.push_blob(
        &r,
        &d,
        Arc::new(BytesSource(Bytes::from(blob.clone()))),
        UploadMode::Chunked {
            chunk_size: 100_000,
        },
        counter(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let first = fake.token_requests.load(Ordering::SeqCst);
    assert!(first <= 2, "pull and pull,push scopes at most: {first}");

    // The token "expires" in the middle of a chunked upload.
    let blob2 = data(300_000, 21);
    let d2 = digest(&blob2);
    fake.fault(Op::UploadPatch, Fault::ExpireTokens);
    c.push_blob(
        &r,
        &d2,
        Arc::new(BytesSource(Bytes::from(blob2.clone()))),
        UploadMode::Chunked {
            chunk_size: 100_000,
        },
        counter(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        fake.blobs
            .lock()
            .unwrap()
            .get(d2.as_str())
            .unwrap()
            .as_ref(),
        &blob2[..]
    );
    assert_eq!(
        fake.token_requests.load(Ordering::SeqCst),
        first + 1,
        "one refresh"
    );

    // Parallel range downloads share one token.
    fake.fault(Op::BlobGet, Fault::ExpireTokens);
    let before = fake.token_requests.load(Ordering::SeqCst);
    let (tmp, file) = dest(blob.len() as u64);
    let opts = fspack_registry::DownloadOptions {
        range_parallelism: 4,
        min_split: 32 << 10,
        unit: 32 << 10,
        max_range: 64 << 10,
        ..Default::default()
    };
    c.download_blob(&r, &d, blob.len() as u64, &file, &opts, counter())
        .await
        .unwrap();
    assert_eq!(std::fs::read(tmp.path()).unwrap(), blob);
    let after = fake.token_requests.load(Ordering::SeqCst);
    assert!(
        after - before <= 2,
        "single-flight refresh: {} token requests",
        after - before
    );
}

/// Issue 13: `expires_in` comes from the network; a huge one used to overflow `Instant` and
/// panic the process, and a negative or fractional one refused a good token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_token_lifetimes_neither_panic_nor_refuse_the_token() {
    for expires_in in [
        serde_json::json!(u64::MAX),
        serde_json::json!(-1),
        serde_json::json!(1e300),
        serde_json::json!("soon"),
    ] {
        let fake = Fake::start().await;
        fake.token_auth.store(true, Ordering::SeqCst);
        *fake.token_expires_in.lock().unwrap() = Some(expires_in.clone());
        let c = client();
        let r = fake.reference("a/b");
        let d = fake.put_blob(b"hello");
        let got = c.blob_exists(&r, &d).await;
        assert_eq!(
            got.unwrap_or_else(|e| panic!("expires_in {expires_in}: {e}")),
            Some(5)
        );
        // The cached token is used again: no second token request within its lifetime.
        c.blob_exists(&r, &d).await.unwrap();
        assert_eq!(
            fake.token_requests.load(Ordering::SeqCst),
            1,
            "{expires_in}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_give_an_auth_error_without_secrets() {
    let fake = Fake::start().await;
    fake.token_auth.store(true, Ordering::SeqCst);
    *fake.users.lock().unwrap() = Some(("alice".into(), "right".into()));
    let c = client_with(ClientOptions {
        username: Some("alice".into()),
        password: Some("WRONGPASS".into()),
        ..Default::default()
    });
    let e = c.get_manifest(&fake.reference("a/b:t")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth);
    let msg = e.to_string();
    assert!(msg.contains("fspack login") && msg.contains("a/b"), "{msg}");
    assert!(
        !msg.contains("WRONGPASS") && !format!("{e:?}").contains("WRONGPASS"),
        "{msg}"
    );

    // Anonymous against a registry that wants credentials.
    let e = client()
        .get_manifest(&fake.reference("a/b:t"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    assert!(e.to_string().contains("anonymous"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_come_from_the_auth_file() {
    let fake = Fake::start().await;
    fake.token_auth.store(true, Ordering::SeqCst);
    *fake.users.lock().unwrap() = Some(("bob".into(), "pw".into()));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    fspack_registry::login_store(&fake.addr().to_string(), "bob", "pw", Some(&file)).unwrap();
    let c = client_with(ClientOptions {
        auth_file: Some(file),
        ..Default::default()
    });
    fake.put_manifest(
        "a/b",
        "t",
        "application/vnd.oci.image.manifest.v1+json",
        b"{}",
    );
    let (_, body, _) = c.get_manifest(&fake.reference("a/b:t")).await.unwrap();
    assert_eq!(body, b"{}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_a_plain_http_server_suggests_plain_http() {
    let fake = Fake::start().await;
    let c = client_with(ClientOptions {
        resolve: vec![("reg.test".into(), fake.addr())],
        ..Default::default()
    });
    let r: fspack_registry::Reference = format!("reg.test:{}/a/b:t", fake.addr().port())
        .parse()
        .unwrap();
    let e = c.get_manifest(&r).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network, "{e}");
    assert!(e.to_string().contains("--plain-http"), "{e}");
    // With the flag it works.
    fake.put_manifest(
        "a/b",
        "t",
        "application/vnd.oci.image.manifest.v1+json",
        b"{}",
    );
    let c = client_with(ClientOptions {
        plain_http: true,
        resolve: vec![("reg.test".into(), fake.addr())],
        ..Default::default()
    });
    c.get_manifest(&r).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_is_a_network_error_naming_the_url() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r: fspack_registry::Reference = format!("127.0.0.1:{port}/a/b:t").parse().unwrap();
    let e = client().get_manifest(&r).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Network);
    assert!(
        e.to_string()
            .contains(&format!("http://127.0.0.1:{port}/v2/a/b/manifests/t")),
        "{e}"
    );
}

/// Collects tracing output, for the warning a client logs.
#[derive(Clone, Default)]
struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn credentials_over_plain_http_to_a_remote_host_need_a_flag_and_warn() {
    let fake = Fake::start().await;
    fake.token_auth.store(true, Ordering::SeqCst);
    *fake.users.lock().unwrap() = Some(("alice".into(), "s3cret".into()));
    // The token realm names a host that is not loopback (resolved to the fake by the client).
    let port = fake.addr().port();
    *fake.realm_host.lock().unwrap() = Some(format!("auth.example:{port}"));
    fake.put_manifest(
        "a/b",
        "t",
        "application/vnd.oci.image.manifest.v1+json",
        b"{}",
    );
    let opts = |allow: bool| ClientOptions {
        username: Some("alice".into()),
        password: Some("s3cret".into()),
        resolve: vec![("auth.example".into(), fake.addr())],
        plain_http_credentials: allow,
        ..Default::default()
    };
    let e = client_with(opts(false))
        .get_manifest(&fake.reference("a/b:t"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Auth, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("auth.example") && msg.contains("--plain-http-credentials"),
        "{msg}"
    );
    assert_eq!(
        fake.token_requests.load(Ordering::SeqCst),
        0,
        "nothing was sent"
    );

    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (_, body, _) = client_with(opts(true))
        .get_manifest(&fake.reference("a/b:t"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body, b"{}");
    let out = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        out.contains("WARN") && out.contains("over plain HTTP") && out.contains("auth.example"),
        "{out}"
    );
    assert!(!out.contains("s3cret"), "{out}");
}
