//! The data section: file blocks and fragment blocks, compressed on every core and written in
//! order.
//!
//! One thread reads sources block by block (never a whole file) and packs tails into fragment
//! blocks; worker threads compress (and spot all-zero blocks, stored as holes of size 0); one
//! thread writes results in sequence order, so the layout is exactly what a sequential writer
//! would produce and the image is reproducible whatever the thread timing. A fixed number of
//! tokens bounds the blocks in flight, so memory stays at a few dozen blocks.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use super::compress::{Codec, Compression};
use super::format::DATA_UNCOMPRESSED;
use crate::error::{Error, Result};

/// A regular file to store.
pub(crate) struct FileInput<'a> {
    pub path: &'a Path,
    pub size: u64,
    pub extents: Option<&'a [(u64, u64)]>,
    pub stamp: crate::source::FileStamp,
}

/// Where a file's data landed.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileData {
    /// Absolute offset of the first block (0 when the file has no blocks).
    pub start: u64,
    /// On-disk size of each full block (and of the last partial one when there is no fragment).
    pub sizes: Vec<u32>,
    /// Fragment index and offset of the tail.
    pub fragment: Option<(u32, u32)>,
    /// Bytes of all-zero blocks not stored.
    pub sparse: u64,
}

/// The data section as written.
pub(crate) struct DataOut {
    pub files: Vec<FileData>,
    /// (absolute start, on-disk size with the uncompressed flag) of each fragment block.
    pub fragments: Vec<(u64, u32)>,
    /// Offset just past the data section.
    pub end: u64,
    /// Data blocks written (holes excluded).
    pub blocks: u64,
}

enum Work {
    Block { file: u32, data: Vec<u8> },
    Hole { file: u32, len: u32 },
    Fragment { data: Vec<u8> },
}

enum Stored {
    Hole,
    Raw(Vec<u8>),
    Packed(Vec<u8>),
}

struct Done {
    seq: u64,
    file: Option<u32>,
    len: u32,
    stored: Stored,
}

/// Compression settings for the workers.
#[derive(Clone, Copy)]
pub(crate) struct CodecSpec {
    pub kind: Compression,
    pub level: Option<i32>,
    pub block_size: u32,
}

/// Writes the data of `files` (in order) to `out` starting at absolute offset `start`.
///
/// A file whose contents equal an earlier file's is stored once: it gets the earlier file's
/// blocks and fragment, as mksquashfs does (see [`crate::dedup`] for what is read when).
pub(crate) fn write_data(
    files: &[FileInput<'_>],
    spec: CodecSpec,
    out: &File,
    out_path: &Path,
    start: u64,
) -> Result<DataOut> {
    let candidates: Vec<_> = files
        .iter()
        .map(|f| crate::dedup::Candidate {
            path: f.path,
            size: f.size,
            stamp: f.stamp,
        })
        .collect();
    let dup_of = crate::dedup::duplicates(&candidates)?;
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 16);
    let in_flight = workers * 4 + 4;
    let (job_tx, job_rx) = sync_channel::<(u64, Work)>(workers * 2);
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (done_tx, done_rx) = channel::<Result<Done>>();
    let (token_tx, token_rx) = sync_channel::<()>(in_flight);
    for _ in 0..in_flight {
        token_tx.send(()).expect("receiver alive");
    }

    std::thread::scope(|s| {
        for _ in 0..workers {
            let rx = Arc::clone(&job_rx);
            let tx = done_tx.clone();
            s.spawn(move || worker(spec, &rx, &tx));
        }
        drop(done_tx);
        let writer = s.spawn(move || writer(files.len(), done_rx, token_tx, out, out_path, start));
        let produced = produce(files, &dup_of, spec.block_size, &job_tx, &token_rx);
        drop(job_tx);
        let written = writer.join().expect("writer thread panicked");
        // A producer that stopped early because the writer failed returns Ok: the writer's
        // error is the one to report.
        let (frags, total) = produced?;
        let mut data = written?;
        debug_assert_eq!(data.fragments.len(), total as usize);
        for (f, frag) in data.files.iter_mut().zip(frags) {
            f.fragment = frag;
        }
        // Originals come first in file order, so each one is complete when its copies look.
        for (i, o) in dup_of.iter().enumerate() {
            if let Some(o) = *o {
                data.files[i] = data.files[o].clone();
            }
        }
        Ok(data)
    })
}

/// Fragment (index, offset) of each file's tail, and the number of fragment blocks.
type Placement = (Vec<Option<(u32, u32)>>, u32);

/// Reads files block by block and hands out jobs in sequence; returns each file's fragment
/// placement and the number of fragment blocks.
fn produce(
    files: &[FileInput<'_>],
    dup_of: &[Option<usize>],
    block_size: u32,
    jobs: &SyncSender<(u64, Work)>,
    tokens: &Receiver<()>,
) -> Result<Placement> {
    let bs = block_size as u64;
    let mut seq = 0u64;
    let mut frag_buf: Vec<u8> = Vec::with_capacity(block_size as usize);
    let mut frag_count = 0u32;
    let mut placement = Vec::with_capacity(files.len());
    // Sends one job, waiting for a token; false when the writer has stopped (it reports why).
    let mut send = |w: Work| -> bool {
        if tokens.recv().is_err() {
            return false;
        }
        let ok = jobs.send((seq, w)).is_ok();
        seq += 1;
        ok
    };
    for (i, f) in files.iter().enumerate() {
        let fi = i as u32;
        let full = f.size / bs;
        let tail = (f.size % bs) as usize;
        if f.size == 0 {
            placement.push(None);
            continue;
        }
        if let Some(o) = dup_of[i] {
            placement.push(placement[o]);
            continue;
        }
        let src = open_checked(f)?;
        let mut ext = f.extents.map(|e| e.iter().peekable());
        for b in 0..full {
            let off = b * bs;
            let hole = match &mut ext {
                Some(it) => {
                    while it.peek().is_some_and(|&&(_, end)| end <= off) {
                        it.next();
                    }
                    it.peek().is_none_or(|&&(st, _)| st >= off + bs)
                }
                None => false,
            };
            let work = if hole {
                Work::Hole {
                    file: fi,
                    len: block_size,
                }
            } else {
                let mut data = vec![0u8; block_size as usize];
                read_at(&src, f, &mut data, off)?;
                Work::Block { file: fi, data }
            };
            if !send(work) {
                return Ok((placement, frag_count));
            }
        }
        if tail > 0 {
            if frag_buf.len() + tail > block_size as usize {
                let data =
                    std::mem::replace(&mut frag_buf, Vec::with_capacity(block_size as usize));
                frag_count += 1;
                if !send(Work::Fragment { data }) {
                    return Ok((placement, frag_count));
                }
            }
            let at = frag_buf.len();
            frag_buf.resize(at + tail, 0);
            read_at(&src, f, &mut frag_buf[at..], full * bs)?;
            placement.push(Some((frag_count, at as u32)));
        } else {
            placement.push(None);
        }
        check_unchanged(&src, f)?;
    }
    if !frag_buf.is_empty() {
        frag_count += 1;
        send(Work::Fragment { data: frag_buf });
    }
    Ok((placement, frag_count))
}

fn worker(
    spec: CodecSpec,
    jobs: &Mutex<Receiver<(u64, Work)>>,
    done: &std::sync::mpsc::Sender<Result<Done>>,
) {
    let mut codec = match Codec::new(spec.kind, spec.level, spec.block_size) {
        Ok(c) => c,
        Err(e) => {
            let _ = done.send(Err(e));
            return;
        }
    };
    let mut scratch = Vec::new();
    loop {
        let job = jobs.lock().expect("job queue").recv();
        let Ok((seq, work)) = job else { return };
        let result = (|| {
            let (file, data) = match work {
                Work::Hole { file, len } => {
                    return Ok(Done {
                        seq,
                        file: Some(file),
                        len,
                        stored: Stored::Hole,
                    });
                }
                Work::Block { file, data } => {
                    // All-zero blocks cost nothing on disk: the kernel expands size 0 to zeros.
                    if data.iter().all(|&b| b == 0) {
                        return Ok(Done {
                            seq,
                            file: Some(file),
                            len: data.len() as u32,
                            stored: Stored::Hole,
                        });
                    }
                    (Some(file), data)
                }
                Work::Fragment { data } => (None, data),
            };
            let len = data.len() as u32;
            let stored = if codec.compress(&data, &mut scratch)? {
                Stored::Packed(std::mem::take(&mut scratch))
            } else {
                Stored::Raw(data)
            };
            Ok(Done {
                seq,
                file,
                len,
                stored,
            })
        })();
        if done.send(result).is_err() {
            return;
        }
    }
}

fn writer(
    nfiles: usize,
    done: Receiver<Result<Done>>,
    tokens: SyncSender<()>,
    out: &File,
    out_path: &Path,
    start: u64,
) -> Result<DataOut> {
    let mut w = BufWriter::with_capacity(1 << 20, out);
    w.seek(SeekFrom::Start(start))
        .map_err(|e| Error::io(out_path, e))?;
    let mut data = DataOut {
        files: vec![FileData::default(); nfiles],
        fragments: Vec::new(),
        end: start,
        blocks: 0,
    };
    let mut started = vec![false; nfiles];
    let mut next = 0u64;
    let mut pending: BTreeMap<u64, Done> = BTreeMap::new();
    for d in done {
        let d = d?;
        pending.insert(d.seq, d);
        while let Some(d) = pending.remove(&next) {
            next += 1;
            let (bytes, size) = match &d.stored {
                Stored::Hole => (&[][..], 0),
                Stored::Raw(b) => (&b[..], b.len() as u32 | DATA_UNCOMPRESSED),
                Stored::Packed(b) => (&b[..], b.len() as u32),
            };
            match d.file {
                Some(f) => {
                    let f = f as usize;
                    if !started[f] {
                        started[f] = true;
                        data.files[f].start = data.end;
                    }
                    data.files[f].sizes.push(size);
                    if bytes.is_empty() {
                        data.files[f].sparse += d.len as u64;
                    } else {
                        data.blocks += 1;
                    }
                }
                None => data.fragments.push((data.end, size)),
            }
            w.write_all(bytes).map_err(|e| Error::io(out_path, e))?;
            data.end += bytes.len() as u64;
            // The producer may fail on a closed pipe once it is done; ignore that.
            let _ = tokens.try_send(());
        }
    }
    w.flush().map_err(|e| Error::io(out_path, e))?;
    Ok(data)
}

fn open_checked(f: &FileInput<'_>) -> Result<File> {
    let src = File::open(f.path).map_err(|e| crate::source::open_error(f.path, e))?;
    check_unchanged(&src, f)?;
    Ok(src)
}

fn check_unchanged(src: &File, f: &FileInput<'_>) -> Result<()> {
    f.stamp.check(src, f.path)
}

fn read_at(src: &File, f: &FileInput<'_>, buf: &mut [u8], off: u64) -> Result<()> {
    src.read_exact_at(buf, off).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::FileChanged {
                path: f.path.to_path_buf(),
                what: "file ended early".into(),
            }
        } else {
            Error::io(f.path, e)
        }
    })
}
