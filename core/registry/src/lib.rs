//! A thin OCI distribution client for fspack, over reqwest. It exists because fspack needs large,
//! resumable, parallel, observable transfers — streamed monolithic or spec-chunked uploads with
//! resume, parallel `Range` downloads with `pwrite`, retries honouring `Retry-After`, token
//! refresh mid-transfer, Docker credential files, and chunk-by-chunk verification against an
//! erofs-image-spec chunk index — which `oci-client` (docs.rs/oci-client: whole-blob pulls into
//! an `AsyncWrite`, no Range, no resume) does not offer. It must never know EROFS or SquashFS,
//! the store's layout, or mounts: blobs are bytes with a digest, written to a `BlobSink`.
//!
//! Modules: [`reference`] parses names, `auth` authenticates, `transport` sends one request
//! well, `upload` and `download` move blobs, `ops` does the small calls, [`manifest`] holds the
//! OCI types, `retry` decides when to try again, [`error`] is the one error type.

mod auth;
mod client;
mod digest;
mod download;
pub mod error;
#[cfg(test)]
mod hostile;
pub mod manifest;
mod ops;
mod redact;
pub mod reference;
mod response;
mod retry;
mod transport;
mod upload;

pub use auth::credentials::{Stored, docker_config_path, login_store, logout};
pub use client::{Client, ClientOptions, DEFAULT_READ_TIMEOUT};
pub use digest::{parse_digest, sha256_digest};
pub use download::{BlobSink, DownloadOptions, DownloadStats, RangeDone};
pub use error::{ErrorKind, RegistryError};
pub use ops::MAX_MANIFEST_SIZE;
pub use redact::{redact_url, redact_url_str};
pub use reference::Reference;
pub use upload::{BlobSource, BytesSource, FileSource, UploadMode, UploadSession};

/// Told about transfer progress, for progress bars. Calls come from many tasks at once.
pub trait Progress: Send + Sync {
    /// `n` more bytes went out or arrived.
    fn bytes(&self, n: u64);
    /// A retry rewound the transfer: the count is now `to` bytes.
    fn reset(&self, to: u64) {
        let _ = to;
    }
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn bytes(&self, _n: u64) {}
}
