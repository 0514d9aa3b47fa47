//! An in-process fake OCI registry (axum) with fault knobs: enough of the distribution API for
//! the client (upload sessions with POST/PATCH/PUT and status GET, blob HEAD/GET with Range that
//! can be switched off, manifests, tag lists with pagination, a bearer token endpoint, redirects
//! to a "CDN" path) plus queued faults per operation and a log of every request.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// An operation a fault can target.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Op {
    BlobHead,
    BlobGet,
    UploadPost,
    UploadPatch,
    UploadPut,
    UploadStatus,
    ManifestGet,
    ManifestPut,
    Tags,
    Token,
}

/// A fault served once, the next time its operation is requested.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and a registry error body.
    Status(u16),
    /// 429 with this `Retry-After` value.
    TooMany(String),
    /// Send this many body bytes, then drop the connection (blob GETs).
    CutAfter(usize),
    /// Keep this many bytes of an upload body, then answer 500 and close.
    CutUpload(usize),
    /// Forget every token ("expiry") and answer 401.
    ExpireTokens,
}

/// One logged request.
#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub host: String,
    pub authorization: Option<String>,
    pub range: Option<String>,
    pub content_range: Option<String>,
    pub content_length: Option<u64>,
    pub status: u16,
}

#[derive(Default)]
struct Upload {
    repo: String,
    data: Vec<u8>,
    state: u64,
}

/// The fake registry's state and knobs.
#[derive(Default)]
pub struct Fake {
    pub addr: Mutex<Option<SocketAddr>>,
    /// Honour Range on blob GETs (default on).
    pub ranges: AtomicBool,
    /// Flip one byte of every blob served.
    pub corrupt: AtomicBool,
    /// Serve blobs one byte short (with a matching Content-Length).
    pub truncate: AtomicBool,
    /// Require bearer tokens.
    pub token_auth: AtomicBool,
    /// If set, the token endpoint requires these Basic credentials.
    pub users: Mutex<Option<(String, String)>>,
    /// `OCI-Chunk-Min-Length` to advertise.
    pub min_chunk: AtomicU64,
    /// Host (with port) named in the token realm instead of the fake's address (a non-loopback
    /// name that the client resolves to the fake).
    pub realm_host: Mutex<Option<String>>,
    /// Redirect blob GETs to `http://<this host>:<port>/cdn/…?sig=SECRET`.
    pub redirect_host: Mutex<Option<String>>,
    /// Serve manifests with a wrong `Docker-Content-Digest`.
    pub lie_manifest_digest: AtomicBool,
    /// Page size for the tag list.
    pub tag_page: AtomicU64,
    /// `expires_in` of token responses, raw JSON (`300` unless set).
    pub token_expires_in: Mutex<Option<serde_json::Value>>,
    pub token_requests: AtomicU32,
    next_token: AtomicU32,
    tokens: Mutex<Vec<String>>,
    faults: Mutex<HashMap<Op, VecDeque<Fault>>>,
    pub blobs: Mutex<HashMap<String, Bytes>>,
    manifests: Mutex<HashMap<(String, String), (String, Bytes)>>,
    uploads: Mutex<HashMap<String, Upload>>,
    next_upload: AtomicU32,
    pub log: Mutex<Vec<Logged>>,
}

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// [`sha256`] as the client takes it.
pub fn digest(b: &[u8]) -> fspack_digest::Digest {
    fspack_digest::Digest::parse(&sha256(b)).unwrap()
}

fn error_body(status: u16, code: &str, msg: &str) -> Response {
    let body = serde_json::json!({"errors":[{"code": code, "message": msg}]}).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn empty(status: u16) -> axum::http::response::Builder {
    Response::builder().status(status)
}

impl Fake {
    /// Starts a fake registry on 127.0.0.1 with a free port.
    pub async fn start() -> Arc<Fake> {
        let fake = Arc::new(Fake::default());
        fake.ranges.store(true, Ordering::SeqCst);
        fake.tag_page.store(1000, Ordering::SeqCst);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *fake.addr.lock().unwrap() = Some(listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr.lock().unwrap().unwrap()
    }

    /// `127.0.0.1:<port>/<repo>:<tag>`.
    pub fn reference(&self, repo_tag: &str) -> fspack_registry::Reference {
        format!("{}/{repo_tag}", self.addr()).parse().unwrap()
    }

    /// Queues a fault for the next request of `op`.
    pub fn fault(&self, op: Op, f: Fault) {
        self.faults
            .lock()
            .unwrap()
            .entry(op)
            .or_default()
            .push_back(f);
    }

    fn take_fault(&self, op: Op) -> Option<Fault> {
        self.faults
            .lock()
            .unwrap()
            .get_mut(&op)
            .and_then(|q| q.pop_front())
    }

    pub fn put_blob(&self, data: &[u8]) -> fspack_digest::Digest {
        let d = digest(data);
        self.blobs
            .lock()
            .unwrap()
            .insert(d.to_string(), Bytes::copy_from_slice(data));
        d
    }

    pub fn put_manifest(&self, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
        self.manifests.lock().unwrap().insert(
            (repo.into(), reference.into()),
            (media_type.into(), Bytes::copy_from_slice(body)),
        );
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.requests()
            .iter()
            .filter(|l| l.method == method && l.path.contains(path_contains))
            .count()
    }

    fn check_token(&self, headers: &HeaderMap, repo: &str, push: bool) -> Option<Response> {
        if !self.token_auth.load(Ordering::SeqCst) {
            return None;
        }
        let ok = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| self.tokens.lock().unwrap().iter().any(|k| k == t));
        if ok {
            return None;
        }
        let scope = format!(
            "repository:{repo}:{}",
            if push { "pull,push" } else { "pull" }
        );
        let host = self
            .realm_host
            .lock()
            .unwrap()
            .clone()
            .unwrap_or_else(|| self.addr().to_string());
        let realm = format!("http://{host}/token");
        Some(
            Response::builder()
                .status(401)
                .header(
                    header::WWW_AUTHENTICATE,
                    format!(r#"Bearer realm="{realm}",service="fake",scope="{scope}""#),
                )
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                ))
                .unwrap(),
        )
    }
}

async fn handle(State(fake): State<Arc<Fake>>, req: Request) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let headers = req.headers().clone();
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let body = req.into_body();
    let resp = route(&fake, &method, &path, &query, &headers, body).await;
    let h = |n: header::HeaderName| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    fake.log.lock().unwrap().push(Logged {
        method: method.to_string(),
        path: if query.is_empty() {
            path
        } else {
            format!("{path}?{query}")
        },
        host: h(header::HOST).unwrap_or_default(),
        authorization: h(header::AUTHORIZATION),
        range: h(header::RANGE),
        content_range: h(header::CONTENT_RANGE),
        content_length: h(header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
        status: resp.status().as_u16(),
    });
    resp
}

/// Splits `/v2/<name>/<kind>/<rest>` where kind is blobs, manifests or tags.
fn split_api(path: &str) -> Option<(String, &'static str, String)> {
    let p = path.strip_prefix("/v2/")?;
    for kind in ["/blobs/uploads/", "/blobs/", "/manifests/", "/tags/"] {
        if let Some(i) = p.find(kind) {
            let name = p[..i].to_string();
            let rest = p[i + kind.len()..].to_string();
            let k = match kind {
                "/blobs/uploads/" => "uploads",
                "/blobs/" => "blobs",
                "/manifests/" => "manifests",
                _ => "tags",
            };
            return Some((name, k, rest));
        }
    }
    None
}

fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.replace("%3A", ":").replace("%3a", ":"))
    })
}

fn fault_response(fake: &Fake, op: Op) -> Option<Response> {
    match fake.take_fault(op)? {
        Fault::Status(s) => Some(error_body(s, "UNAVAILABLE", "injected failure")),
        Fault::TooMany(ra) => Some(
            Response::builder()
                .status(429)
                .header(header::RETRY_AFTER, ra)
                .body(Body::from(
                    r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
                ))
                .unwrap(),
        ),
        Fault::ExpireTokens => {
            fake.tokens.lock().unwrap().clear();
            None // falls through to the auth check, which now fails
        }
        f => {
            // Body-level faults are handled by the operation itself.
            fake.faults
                .lock()
                .unwrap()
                .entry(op)
                .or_default()
                .push_front(f);
            None
        }
    }
}

async fn route(
    fake: &Arc<Fake>,
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    if path == "/token" {
        return token(fake, headers, query);
    }
    if let Some(digest) = path.strip_prefix("/cdn/") {
        return serve_blob(fake, digest, headers, Op::BlobGet).await;
    }
    if path == "/v2/" || path == "/v2" {
        return empty(200).body(Body::empty()).unwrap();
    }
    let Some((repo, kind, rest)) = split_api(path) else {
        return error_body(404, "NOT_FOUND", "no such route");
    };
    let op = match (kind, method.as_str()) {
        ("blobs", "HEAD") => Op::BlobHead,
        ("blobs", _) => Op::BlobGet,
        ("uploads", "POST") => Op::UploadPost,
        ("uploads", "PATCH") => Op::UploadPatch,
        ("uploads", "PUT") => Op::UploadPut,
        ("uploads", _) => Op::UploadStatus,
        ("manifests", "PUT") => Op::ManifestPut,
        ("manifests", _) => Op::ManifestGet,
        _ => Op::Tags,
    };
    if let Some(r) = fault_response(fake, op) {
        return r;
    }
    let push = matches!(
        op,
        Op::UploadPost | Op::UploadPatch | Op::UploadPut | Op::UploadStatus | Op::ManifestPut
    );
    if let Some(r) = fake.check_token(headers, &repo, push) {
        return r;
    }
    match op {
        Op::BlobHead => match fake.blobs.lock().unwrap().get(&rest) {
            Some(b) => empty(200)
                .header(header::CONTENT_LENGTH, b.len())
                .header("docker-content-digest", rest.clone())
                .body(Body::empty())
                .unwrap(),
            None => empty(404).body(Body::empty()).unwrap(),
        },
        Op::BlobGet => {
            if let Some(host) = fake.redirect_host.lock().unwrap().clone() {
                let port = fake.addr().port();
                return empty(307)
                    .header(
                        header::LOCATION,
                        format!("http://{host}:{port}/cdn/{rest}?sig=SECRETSIG"),
                    )
                    .body(Body::empty())
                    .unwrap();
            }
            serve_blob(fake, &rest, headers, op).await
        }
        Op::UploadPost => {
            let id = fake.next_upload.fetch_add(1, Ordering::SeqCst).to_string();
            fake.uploads.lock().unwrap().insert(
                id.clone(),
                Upload {
                    repo: repo.clone(),
                    ..Default::default()
                },
            );
            let mut b = empty(202)
                .header(
                    header::LOCATION,
                    format!("/v2/{repo}/blobs/uploads/{id}?_state=SECRETSTATE0"),
                )
                .header(header::RANGE, "0-0");
            let min = fake.min_chunk.load(Ordering::SeqCst);
            if min > 0 {
                b = b.header("oci-chunk-min-length", min);
            }
            b.body(Body::empty()).unwrap()
        }
        Op::UploadPatch | Op::UploadPut => {
            upload_data(fake, op, &repo, &rest, query, headers, body).await
        }
        Op::UploadStatus => {
            let uploads = fake.uploads.lock().unwrap();
            match uploads.get(&rest) {
                Some(u) => empty(204)
                    .header(
                        header::LOCATION,
                        format!(
                            "/v2/{repo}/blobs/uploads/{rest}?_state=SECRETSTATE{}",
                            u.state
                        ),
                    )
                    .header(
                        header::RANGE,
                        format!("0-{}", u.data.len().saturating_sub(1)),
                    )
                    .body(Body::empty())
                    .unwrap(),
                None => error_body(404, "BLOB_UPLOAD_UNKNOWN", "unknown upload"),
            }
        }
        Op::ManifestPut => {
            let data = axum::body::to_bytes(body, 8 << 20).await.unwrap();
            let d = sha256(&data);
            let mt = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let mut m = fake.manifests.lock().unwrap();
            m.insert((repo.clone(), d.clone()), (mt.clone(), data.clone()));
            m.insert((repo.clone(), rest.clone()), (mt, data));
            empty(201)
                .header("docker-content-digest", d.clone())
                .header(header::LOCATION, format!("/v2/{repo}/manifests/{d}"))
                .body(Body::empty())
                .unwrap()
        }
        Op::ManifestGet => match fake
            .manifests
            .lock()
            .unwrap()
            .get(&(repo.clone(), rest.clone()))
        {
            Some((mt, data)) => {
                let d = if fake.lie_manifest_digest.load(Ordering::SeqCst) {
                    sha256(b"lie")
                } else {
                    sha256(data)
                };
                empty(200)
                    .header(header::CONTENT_TYPE, mt.as_str())
                    .header("docker-content-digest", d)
                    .body(Body::from(data.clone()))
                    .unwrap()
            }
            None => error_body(404, "MANIFEST_UNKNOWN", "manifest unknown"),
        },
        _ => tags(fake, &repo, query),
    }
}

fn token(fake: &Fake, headers: &HeaderMap, query: &str) -> Response {
    fake.token_requests.fetch_add(1, Ordering::SeqCst);
    if let Some(r) = fault_response(fake, Op::Token) {
        return r;
    }
    if let Some((u, p)) = fake.users.lock().unwrap().clone() {
        use base64::Engine;
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        );
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(want.as_str())
        {
            return error_body(401, "UNAUTHORIZED", "bad credentials");
        }
    }
    if query_param(query, "scope").is_none() {
        return error_body(400, "DENIED", "no scope");
    }
    let t = format!("tok{}", fake.next_token.fetch_add(1, Ordering::SeqCst));
    fake.tokens.lock().unwrap().push(t.clone());
    let expires_in = fake
        .token_expires_in
        .lock()
        .unwrap()
        .clone()
        .unwrap_or(serde_json::json!(300));
    let body = serde_json::json!({"token": t, "expires_in": expires_in}).to_string();
    empty(200)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

fn tags(fake: &Fake, repo: &str, query: &str) -> Response {
    let mut all: Vec<String> = fake
        .manifests
        .lock()
        .unwrap()
        .keys()
        .filter(|(r, t)| r == repo && !t.contains(':'))
        .map(|(_, t)| t.clone())
        .collect();
    all.sort();
    if all.is_empty() {
        return error_body(404, "NAME_UNKNOWN", "repository name not known to registry");
    }
    let n = fake.tag_page.load(Ordering::SeqCst) as usize;
    let last = query_param(query, "last");
    let start = last.map_or(0, |l| {
        all.iter()
            .position(|t| *t == l)
            .map_or(all.len(), |i| i + 1)
    });
    let page: Vec<String> = all.iter().skip(start).take(n).cloned().collect();
    let mut b = empty(200).header(header::CONTENT_TYPE, "application/json");
    if start + page.len() < all.len() {
        let last = page.last().unwrap();
        b = b.header(
            header::LINK,
            format!(r#"</v2/{repo}/tags/list?n={n}&last={last}>; rel="next""#),
        );
    }
    b.body(Body::from(
        serde_json::json!({"name": repo, "tags": page}).to_string(),
    ))
    .unwrap()
}

async fn upload_data(
    fake: &Fake,
    op: Op,
    repo: &str,
    id: &str,
    query: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let cut = match fake.take_fault(op) {
        Some(Fault::CutUpload(n)) => Some(n),
        Some(other) => {
            fake.faults
                .lock()
                .unwrap()
                .entry(op)
                .or_default()
                .push_front(other);
            None
        }
        None => None,
    };
    if fake
        .uploads
        .lock()
        .unwrap()
        .get(id)
        .is_none_or(|u| u.repo != repo)
    {
        return error_body(404, "BLOB_UPLOAD_UNKNOWN", "unknown upload");
    }
    if op == Op::UploadPatch
        && let Some(cr) = headers
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
    {
        let start: Option<usize> = cr.split('-').next().and_then(|s| s.parse().ok());
        let have = fake
            .uploads
            .lock()
            .unwrap()
            .get(id)
            .map_or(0, |u| u.data.len());
        if start != Some(have) {
            return error_body(416, "BLOB_UPLOAD_INVALID", "out of order");
        }
    }
    let mut stream = body.into_data_stream();
    let mut got = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        got.extend_from_slice(&chunk);
        if let Some(n) = cut
            && got.len() >= n
        {
            got.truncate(n);
            let mut uploads = fake.uploads.lock().unwrap();
            let u = uploads.get_mut(id).unwrap();
            u.data.extend_from_slice(&got);
            u.state += 1;
            return Response::builder()
                .status(500)
                .header(header::CONNECTION, "close")
                .body(Body::from(
                    r#"{"errors":[{"code":"UNKNOWN","message":"cut"}]}"#,
                ))
                .unwrap();
        }
    }
    let mut uploads = fake.uploads.lock().unwrap();
    let u = uploads.get_mut(id).unwrap();
    u.data.extend_from_slice(&got);
    u.state += 1;
    if op == Op::UploadPatch {
        return empty(202)
            .header(
                header::LOCATION,
                format!(
                    "/v2/{repo}/blobs/uploads/{id}?_state=SECRETSTATE{}",
                    u.state
                ),
            )
            .header(
                header::RANGE,
                format!("0-{}", u.data.len().saturating_sub(1)),
            )
            .body(Body::empty())
            .unwrap();
    }
    let Some(want) = query_param(query, "digest") else {
        return error_body(400, "DIGEST_INVALID", "no digest");
    };
    let d = sha256(&u.data);
    if d != want {
        return error_body(
            400,
            "DIGEST_INVALID",
            "provided digest did not match uploaded content",
        );
    }
    let data = Bytes::from(std::mem::take(&mut u.data));
    uploads.remove(id);
    fake.blobs.lock().unwrap().insert(d.clone(), data);
    empty(201)
        .header("docker-content-digest", d.clone())
        .header(header::LOCATION, format!("/v2/{repo}/blobs/{d}"))
        .body(Body::empty())
        .unwrap()
}

async fn serve_blob(fake: &Fake, digest: &str, headers: &HeaderMap, op: Op) -> Response {
    let Some(mut data) = fake.blobs.lock().unwrap().get(digest).cloned() else {
        return error_body(404, "BLOB_UNKNOWN", "blob unknown to registry");
    };
    if fake.corrupt.load(Ordering::SeqCst) && !data.is_empty() {
        let mut v = data.to_vec();
        let mid = v.len() / 2;
        v[mid] ^= 0xff;
        data = Bytes::from(v);
    }
    if fake.truncate.load(Ordering::SeqCst) && !data.is_empty() {
        data = data.slice(..data.len() - 1);
    }
    let total = data.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| {
            let a: usize = a.parse().ok()?;
            let b: usize = if b.is_empty() {
                total - 1
            } else {
                b.parse::<usize>().ok()?.min(total - 1)
            };
            (a <= b).then_some((a, b))
        });
    let (status, slice, content_range) = match range {
        Some((a, b)) if fake.ranges.load(Ordering::SeqCst) => (
            206,
            data.slice(a..=b),
            Some(format!("bytes {a}-{b}/{total}")),
        ),
        _ => (200, data, None),
    };
    let len = slice.len();
    let cut = match fake.take_fault(op) {
        Some(Fault::CutAfter(n)) => Some(n.min(len.saturating_sub(1))),
        Some(other) => {
            fake.faults
                .lock()
                .unwrap()
                .entry(op)
                .or_default()
                .push_front(other);
            None
        }
        None => None,
    };
    let mut b = empty(status)
        .header(header::CONTENT_LENGTH, len)
        .header(header::ACCEPT_RANGES, "bytes")
        .header("docker-content-digest", digest);
    if let Some(cr) = content_range {
        b = b.header(header::CONTENT_RANGE, cr);
    }
    let body = match cut {
        None => Body::from(slice),
        Some(n) => {
            // Send the first part, give it time to reach the client, then break the connection
            // (closing at once could make the kernel discard the data with a reset).
            let first = slice.slice(..n);
            let s = futures_util::stream::unfold(0u8, move |step| {
                let first = first.clone();
                async move {
                    match step {
                        0 => Some((Ok::<Bytes, std::io::Error>(first), 1)),
                        1 => {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            Some((Err(std::io::Error::other("injected cut")), 2))
                        }
                        _ => None,
                    }
                }
            });
            Body::from_stream(s)
        }
    };
    b.body(body).unwrap()
}
