//! Test helpers shared by the registry's integration tests: an in-process fake registry with
//! fault knobs, a real `docker-registry` process on loopback, and small client conveniences.

#![allow(dead_code)]

pub mod fake;
pub mod real;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fspack_registry::{Client, ClientOptions, Progress};

/// A client with retry delays zeroed, as every fault test wants.
pub fn client() -> Client {
    client_with(ClientOptions::default())
}

/// A client from `opts` with retry delays zeroed and short timeouts.
pub fn client_with(opts: ClientOptions) -> Client {
    Client::new(ClientOptions {
        retry_base: Some(Duration::ZERO),
        timeout_read: Duration::from_secs(10),
        timeout_connect: Duration::from_secs(5),
        user_agent: "fspack-registry-tests".into(),
        // Keep the developer's own credential files out of the tests.
        auth_file: opts
            .auth_file
            .clone()
            .or_else(|| Some("/nonexistent/fspack-test-auth.json".into())),
        ..opts
    })
    .unwrap()
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Counts progress, and remembers resets.
#[derive(Default)]
pub struct Counter {
    pub bytes: AtomicU64,
    pub resets: AtomicU64,
}

impl Progress for Counter {
    fn bytes(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::SeqCst);
    }
    fn reset(&self, to: u64) {
        self.resets.fetch_add(1, Ordering::SeqCst);
        self.bytes.store(to, Ordering::SeqCst);
    }
}

pub fn counter() -> Arc<Counter> {
    Arc::new(Counter::default())
}

/// A temp file of `size` bytes for a download to fill.
pub fn dest(size: u64) -> (tempfile::NamedTempFile, std::fs::File) {
    let f = tempfile::NamedTempFile::new().unwrap();
    f.as_file().set_len(size).unwrap();
    let file = f.reopen().unwrap();
    (f, file)
}
