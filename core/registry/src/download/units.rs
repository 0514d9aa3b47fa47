//! How a blob is cut for verification and handed over: [`Units`], the chunks of its chunk index
//! or fixed-size pieces.

use std::sync::Arc;

use fspack_chunkindex::ChunkIndex;

use super::gaps;

/// The units a blob is cut into: its chunk index's chunks, or fixed-size pieces.
#[derive(Clone)]
pub(super) struct Units {
    pub(super) end: u64,
    pub(super) unit: u64,
    pub(super) chunks: Option<Arc<ChunkIndex>>,
}

impl Units {
    pub(super) fn count(&self) -> usize {
        match &self.chunks {
            Some(c) => c.chunk_count(),
            None => self.end.div_ceil(self.unit) as usize,
        }
    }

    pub(super) fn range(&self, i: usize) -> (u64, u64) {
        match &self.chunks {
            Some(c) => {
                let r = c.chunk(i);
                (r.start, r.end)
            }
            None => {
                let a = i as u64 * self.unit;
                (a, self.end.min(a + self.unit))
            }
        }
    }

    /// The unit that holds byte `pos` (`pos < end`).
    pub(super) fn at(&self, pos: u64) -> usize {
        match &self.chunks {
            Some(c) => c.chunks_covering(pos, pos + 1).start,
            None => (pos / self.unit) as usize,
        }
    }

    /// `[start, end)` ranges of whole units not fully covered by `done`, merged.
    pub(super) fn missing(&self, done: &[(u64, u64)]) -> Vec<(u64, u64)> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (a, b) in gaps(self.end, done) {
            let (first, last) = (self.at(a), self.at(b - 1));
            let (s, e) = (self.range(first).0, self.range(last).1);
            match out.last_mut() {
                Some(l) if l.1 >= s => l.1 = l.1.max(e),
                _ => out.push((s, e)),
            }
        }
        out
    }

    /// Cuts `ranges` into pieces of about `piece` bytes, on unit boundaries.
    pub(super) fn pieces(&self, ranges: &[(u64, u64)], piece: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        for &(a, b) in ranges {
            let mut s = a;
            while s < b {
                let want = b.min(s.saturating_add(piece.max(1)));
                let e = if want >= b {
                    b
                } else {
                    self.range(self.at(want - 1)).1
                };
                out.push((s, e));
                s = e;
            }
        }
        out
    }
}
