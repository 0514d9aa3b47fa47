//! Progress reporting from use cases to whatever front end draws it.

/// Receives progress events; the CLI implements it with indicatif bars, tests with nothing.
pub trait Reporter: Send + Sync {
    /// The whole operation will move about `bytes` bytes (transfers started later count into it).
    fn plan_total(&self, bytes: u64) {
        let _ = bytes;
    }
    /// `bytes` of the planned total need no transfer (the other side already has them).
    fn skipped(&self, bytes: u64) {
        let _ = bytes;
    }
    /// A transfer or write of `total` bytes named `name` starts; returns an id for later calls.
    fn start(&self, name: &str, total: u64) -> usize;
    /// Work that is not a transfer (hashing the sources) starts: shown on its own, not counted
    /// in the transfer total. Defaults to [`Reporter::start`].
    fn start_phase(&self, name: &str, total: u64) -> usize {
        self.start(name, total)
    }
    /// `n` more bytes of transfer `id` are done.
    fn advance(&self, id: usize, n: u64);
    /// Transfer `id` rewound to `pos` bytes (a retry restarted it).
    fn reset(&self, id: usize, pos: u64);
    /// Transfer `id` is finished.
    fn finish(&self, id: usize);
    /// A one-line status message.
    fn message(&self, msg: &str);
}

/// A reporter that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Reporter for Silent {
    fn start(&self, _: &str, _: u64) -> usize {
        0
    }
    fn advance(&self, _: usize, _: u64) {}
    fn reset(&self, _: usize, _: u64) {}
    fn finish(&self, _: usize) {}
    fn message(&self, _: &str) {}
}

/// A [`Reporter`] transfer seen as the registry client's per-blob progress.
pub struct TransferProgress {
    /// Where to report.
    pub reporter: std::sync::Arc<dyn Reporter>,
    /// The transfer's id from [`Reporter::start`].
    pub id: usize,
}

impl fspack_registry::Progress for TransferProgress {
    fn bytes(&self, n: u64) {
        self.reporter.advance(self.id, n);
    }
    fn reset(&self, to: u64) {
        self.reporter.reset(self.id, to);
    }
}
