//! The whole-blob SHA-256 of a blob that is written out of order, computed while it is written.
//!
//! A blob's name in the store is its whole-blob digest, so a download must compute it. Pieces
//! land in any order; this hasher advances over the in-order prefix as soon as it grows, taking
//! the bytes from the writer's buffer when they are at hand and reading them back (from the page
//! cache, moments after they were written) when a later piece landed first. The digest is ready
//! when the last piece lands: nothing reads the blob again after the download.
//!
//! [`PrefixHasher::hash_next`] hashes a writer's bytes from its own buffer before it writes them,
//! when they continue the prefix, so in-order bytes are never read back.

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use sha2::{Digest, Sha256};

/// Reads `buf.len()` bytes at an offset of the blob being hashed.
pub type ReadAt<'a> = &'a (dyn Fn(&mut [u8], u64) -> std::io::Result<()> + Sync);

/// Incremental SHA-256 over `[0, size)` of a blob whose byte ranges arrive in any order. Many
/// threads may call [`PrefixHasher::written`] at once; one of them hashes while the others
/// return at once (the one hashing picks up their ranges too).
#[derive(Debug)]
pub struct PrefixHasher {
    size: u64,
    state: Mutex<State>,
    /// Signalled whenever a hashing call finishes (`busy` drops), for [`PrefixHasher::hash_next`].
    idle: Condvar,
}

#[derive(Debug, Default)]
struct State {
    hasher: Sha256,
    hashed_to: u64,
    /// Written but not yet hashed: start -> end.
    pending: BTreeMap<u64, u64>,
    busy: bool,
    /// While `busy`: the end of the range being hashed right now.
    busy_to: u64,
}

impl State {
    /// Where the prefix will stand once `from` is reached and every pending range that joins it
    /// is hashed.
    fn reach(&self, from: u64) -> u64 {
        let mut reach = from;
        for (&a, &b) in self.pending.range(..) {
            if a > reach {
                break;
            }
            reach = reach.max(b);
        }
        reach
    }
}

const READ_PIECE: usize = 1 << 20;

impl PrefixHasher {
    /// A hasher for a blob of `size` bytes.
    pub fn new(size: u64) -> Self {
        PrefixHasher {
            size,
            state: Mutex::new(State::default()),
            idle: Condvar::new(),
        }
    }

    /// Bytes `[0, n)` hashed so far.
    pub fn hashed_to(&self) -> u64 {
        self.state.lock().expect("not poisoned").hashed_to
    }

    /// Records that `bytes` were written at `offset`, and hashes whatever prefix is now
    /// complete. Other complete ranges are read with `read_at`. Errors are `read_at`'s.
    pub fn written(&self, offset: u64, bytes: &[u8], read_at: ReadAt<'_>) -> std::io::Result<()> {
        self.add(offset, offset + bytes.len() as u64);
        self.drain(Some((offset, bytes)), read_at)
    }

    /// Records that `[start, end)` is present without the bytes at hand (a resumed download).
    pub fn present(&self, start: u64, end: u64) {
        self.add(start, end);
    }

    fn add(&self, start: u64, end: u64) {
        let mut st = self.state.lock().expect("not poisoned");
        let (start, end) = (start.max(st.hashed_to), end.min(self.size));
        if start < end {
            let e = st.pending.entry(start).or_insert(end);
            *e = (*e).max(end);
        }
    }

    fn drain(&self, at_hand: Option<(u64, &[u8])>, read_at: ReadAt<'_>) -> std::io::Result<()> {
        let mut st = self.state.lock().expect("not poisoned");
        if st.busy {
            return Ok(());
        }
        st.busy = true;
        let mut hasher = std::mem::take(&mut st.hasher);
        let (mut st, result) = self.hash_joining(st, &mut hasher, at_hand, read_at);
        st.hasher = hasher;
        st.busy = false;
        drop(st);
        self.idle.notify_all();
        result
    }

    /// Hashes, in order, the pending ranges that join the prefix, dropping the lock while each
    /// is hashed (from `at_hand` where it covers them, else read with `read_at`). The caller has
    /// set `busy` and taken the hasher out of the state; it gets the lock back with the result.
    /// A range that fails to read is put back, so a later call (or finish) can try again.
    fn hash_joining<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        hasher: &mut Sha256,
        at_hand: Option<(u64, &[u8])>,
        read_at: ReadAt<'_>,
    ) -> (MutexGuard<'a, State>, std::io::Result<()>) {
        let mut buf = Vec::new();
        loop {
            let next = st.pending.first_key_value().map(|(&a, &b)| (a, b));
            let Some((a, b)) = next.filter(|&(a, _)| a <= st.hashed_to) else {
                return (st, Ok(()));
            };
            st.pending.remove(&a);
            let from = st.hashed_to;
            if b <= from {
                continue;
            }
            st.busy_to = b;
            drop(st);
            let r = hash_range(hasher, from, b, at_hand, read_at, &mut buf);
            st = self.state.lock().expect("not poisoned");
            if let Err(e) = r {
                st.pending.insert(from, b);
                return (st, Err(e));
            }
            st.hashed_to = b;
        }
    }

    /// Hashes `bytes`, which are about to be written at `offset`, straight from the buffer if
    /// they continue the prefix: right away when the prefix (with the pending ranges that join
    /// it, read with `read_at`) ends at `offset`, or after waiting for a concurrent call that is
    /// hashing up to `offset`. Returns `Ok(true)` then: the bytes will never be read back, and
    /// the caller must follow its write with [`PrefixHasher::catch_up`]. Returns `Ok(false)`,
    /// recording nothing, when other bytes come first: the caller writes and then calls
    /// [`PrefixHasher::written`] as usual. Errors are `read_at`'s (nothing of `bytes` is hashed).
    ///
    /// Hashing before the write is sound because the hash is only ever read by
    /// [`PrefixHasher::finish`], which a caller whose write failed never reaches.
    pub fn hash_next(
        &self,
        offset: u64,
        bytes: &[u8],
        read_at: ReadAt<'_>,
    ) -> std::io::Result<bool> {
        let end = offset + bytes.len() as u64;
        let mut st = self.state.lock().expect("not poisoned");
        loop {
            if end > self.size || offset < st.hashed_to {
                return Ok(false);
            }
            if !st.busy {
                if st.reach(st.hashed_to) != offset {
                    return Ok(false);
                }
                break;
            }
            if st.reach(st.busy_to) != offset {
                return Ok(false);
            }
            st = self.idle.wait(st).expect("not poisoned");
        }
        st.busy = true;
        let mut hasher = std::mem::take(&mut st.hasher);
        let (mut st, joined) = self.hash_joining(st, &mut hasher, None, read_at);
        let result = match joined {
            // The joining pending ranges are hashed: now the caller's bytes.
            Ok(()) => {
                st.busy_to = end;
                drop(st);
                hasher.update(bytes);
                st = self.state.lock().expect("not poisoned");
                st.hashed_to = end;
                Ok(true)
            }
            Err(e) => Err(e),
        };
        st.hasher = hasher;
        st.busy = false;
        drop(st);
        self.idle.notify_all();
        result
    }

    /// Hashes whatever pending ranges now join the prefix (with `read_at`), after a write whose
    /// bytes [`PrefixHasher::hash_next`] took. Errors are `read_at`'s.
    pub fn catch_up(&self, read_at: ReadAt<'_>) -> std::io::Result<()> {
        self.drain(None, read_at)
    }

    /// The digest (`sha256:<hex>`) once every byte of `[0, size)` was recorded; `None` while
    /// some are missing. Hashes any prefix still pending first.
    pub fn finish(&self, read_at: ReadAt<'_>) -> std::io::Result<Option<String>> {
        self.drain(None, read_at)?;
        let st = self.state.lock().expect("not poisoned");
        if st.busy || st.hashed_to < self.size {
            return Ok(None);
        }
        Ok(Some(format!(
            "sha256:{}",
            hex::encode(st.hasher.clone().finalize())
        )))
    }
}

fn hash_range(
    h: &mut Sha256,
    mut from: u64,
    to: u64,
    at_hand: Option<(u64, &[u8])>,
    read_at: ReadAt<'_>,
    buf: &mut Vec<u8>,
) -> std::io::Result<()> {
    while from < to {
        if let Some((off, bytes)) = at_hand {
            let end = off + bytes.len() as u64;
            if off <= from && from < end {
                let stop = to.min(end);
                h.update(&bytes[(from - off) as usize..(stop - off) as usize]);
                from = stop;
                continue;
            }
        }
        let n = ((to - from) as usize).min(READ_PIECE);
        buf.resize(n, 0);
        read_at(&mut buf[..n], from)?;
        h.update(&buf[..n]);
        from += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_order_gives_the_plain_digest(data in proptest::collection::vec(any::<u8>(), 1..20_000),
                                            cuts in proptest::collection::vec(0usize..20_000, 0..10),
                                            order in proptest::collection::vec(any::<u32>(), 11)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % data.len()).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort();
            cuts.dedup();
            let mut pieces: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
            // Shuffle by the random keys.
            let mut keyed: Vec<(u32, (usize, usize))> = pieces.drain(..).enumerate().map(|(i, p)| (order[i % order.len()], p)).collect();
            keyed.sort();
            let h = PrefixHasher::new(data.len() as u64);
            let read = |buf: &mut [u8], off: u64| { buf.copy_from_slice(&data[off as usize..off as usize + buf.len()]); Ok(()) };
            for (i, (_, (a, b))) in keyed.iter().enumerate() {
                prop_assert_eq!(h.finish(&read).unwrap(), None::<String>);
                if i % 3 == 2 {
                    h.present(*a as u64, *b as u64);
                } else {
                    h.written(*a as u64, &data[*a..*b], &read).unwrap();
                }
            }
            let want = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
            prop_assert_eq!(h.finish(&read).unwrap(), Some(want));
        }
    }

    proptest! {
        /// Writers that ask `hash_next` first (as the store's ingest does) get the same digest,
        /// and in-order pieces are never read back.
        #[test]
        fn hash_next_gives_the_plain_digest(data in proptest::collection::vec(any::<u8>(), 1..20_000),
                                            cuts in proptest::collection::vec(0usize..20_000, 0..10),
                                            swaps in proptest::collection::vec((0usize..12, 0usize..12), 0..4)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % data.len()).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort();
            cuts.dedup();
            let mut pieces: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
            for (a, b) in swaps {
                let n = pieces.len();
                pieces.swap(a % n, b % n);
            }
            let h = PrefixHasher::new(data.len() as u64);
            let reads = std::sync::atomic::AtomicUsize::new(0);
            let read = |buf: &mut [u8], off: u64| {
                reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                buf.copy_from_slice(&data[off as usize..off as usize + buf.len()]);
                Ok(())
            };
            let mut direct = 0;
            for &(a, b) in &pieces {
                if h.hash_next(a as u64, &data[a..b], &read).unwrap() {
                    direct += 1;
                    h.catch_up(&read).unwrap();
                } else {
                    h.written(a as u64, &data[a..b], &read).unwrap();
                }
            }
            let want = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
            prop_assert_eq!(h.finish(&read).unwrap(), Some(want));
            let in_order = pieces.windows(2).all(|w| w[0].1 == w[1].0);
            if in_order {
                prop_assert_eq!(direct, pieces.len());
                prop_assert_eq!(reads.load(std::sync::atomic::Ordering::Relaxed), 0);
            }
        }
    }

    #[test]
    fn hash_next_takes_only_the_piece_that_continues_the_prefix() {
        let data: Vec<u8> = (0..40u8).collect();
        let read = |buf: &mut [u8], off: u64| {
            buf.copy_from_slice(&data[off as usize..off as usize + buf.len()]);
            Ok(())
        };
        let h = PrefixHasher::new(40);
        assert!(
            !h.hash_next(10, &data[10..20], &read).unwrap(),
            "a gap before it"
        );
        h.written(10, &data[10..20], &read).unwrap();
        assert!(h.hash_next(0, &data[..10], &read).unwrap());
        assert_eq!(h.hashed_to(), 10);
        h.catch_up(&read).unwrap();
        assert_eq!(h.hashed_to(), 20);
        // A present range that joins the prefix is read back first, then the buffer is hashed.
        h.present(20, 30);
        assert!(h.hash_next(30, &data[30..], &read).unwrap());
        assert!(
            !h.hash_next(30, &data[30..], &read).unwrap(),
            "already hashed"
        );
        let want = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        assert_eq!(h.finish(&read).unwrap(), Some(want));
    }

    #[test]
    fn hash_next_waits_for_the_piece_being_hashed_before_it() {
        let data = vec![7u8; 4 << 20];
        let h = std::sync::Arc::new(PrefixHasher::new(data.len() as u64));
        let read = |_: &mut [u8], _: u64| Err(std::io::Error::other("no read-back expected"));
        let half = data.len() / 2;
        std::thread::scope(|s| {
            let (h1, d1) = (h.clone(), &data);
            let first = s.spawn(move || h1.hash_next(0, &d1[..half], &read).unwrap());
            // Whichever runs first, the second half is hashed from its buffer, never read.
            let second = h.hash_next(half as u64, &data[half..], &read).unwrap();
            let first = first.join().unwrap();
            assert!(first);
            if !second {
                // It came before the first half was even claimed: the ordinary path.
                h.written(half as u64, &data[half..], &|b: &mut [u8], o| {
                    b.copy_from_slice(&data[o as usize..o as usize + b.len()]);
                    Ok(())
                })
                .unwrap();
            }
        });
        let want = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        assert_eq!(h.finish(&read).unwrap(), Some(want));
    }

    #[test]
    fn a_gap_keeps_the_digest_back() {
        let h = PrefixHasher::new(10);
        let read = |_: &mut [u8], _: u64| Err(std::io::Error::other("not written"));
        h.written(5, &[0; 5], &read).unwrap();
        assert_eq!(h.hashed_to(), 0);
        assert_eq!(h.finish(&read).unwrap(), None);
    }
}
