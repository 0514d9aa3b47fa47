//! `status.json` of a lazy mount: what its server reports, for `fspack ls` (issue 10).

use std::path::Path;

use fspack_digest::Digest;
use serde::{Deserialize, Serialize};

/// Where a lazy mount's server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerState {
    /// Fetching: demanded chunks and the background fill.
    Filling,
    /// Every blob committed; switching the loop devices to the store and exiting.
    Complete,
    /// Stopped by `fspack umount` or a failed setup; partial blobs kept for a resume.
    Stopped,
    /// The server process is gone without saying so (killed): reads of missing ranges fail with
    /// `EIO` until `fspack umount`. Never written by a server; `fspack ls` infers it.
    Dead,
}

/// One blob of a lazy mount.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlobStatus {
    /// Digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Bytes verified and present.
    pub present: u64,
    /// Committed to the store (the loop device reads from the store once switched).
    pub committed: bool,
}

/// The whole status file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LazyStatus {
    /// Server state.
    pub state: ServerState,
    /// Server process id.
    pub pid: u32,
    /// Blobs served lazily.
    pub blobs: Vec<BlobStatus>,
    /// Bytes present over all blobs.
    pub bytes_present: u64,
    /// Bytes of all blobs.
    pub bytes_total: u64,
    /// Body bytes received from the registry.
    pub bytes_received: u64,
    /// Chunks that failed verification and were fetched again.
    pub chunks_refetched: u64,
    /// Reads answered with `EIO` (timeouts, chunks failing verification).
    pub reads_failed: u64,
    /// The last error that stops the mount from completing (a blob whose whole digest failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A chunk the server gave up on for now after it failed verification on every try (its
    /// reads answer `EIO`; the fill tries it again later): which chunk, of which blob, from
    /// which registry. Cleared once that chunk arrives intact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing: Option<String>,
    /// Why fetches from the registry fail, while every one does (unreachable, refusing, timing
    /// out); absent while they work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetch_error: Option<String>,
}

/// File name of the status in a lazy mount's state directory.
pub const STATUS_FILE: &str = "status.json";

impl LazyStatus {
    /// Writes the status into `dir` atomically (readers never see half a file).
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        // One write: `to_writer` on the unbuffered file made one write(2) per JSON token.
        tmp.write_all(&serde_json::to_vec(self)?)?;
        tmp.persist(dir.join(STATUS_FILE))?;
        Ok(())
    }

    /// Reads the status in `dir`; `None` when there is none (yet) or it does not parse.
    pub fn read(dir: &Path) -> Option<LazyStatus> {
        let bytes = std::fs::read(dir.join(STATUS_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}
