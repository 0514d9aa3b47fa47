//! Finding regular files with identical contents, so both writers store each content once
//! (issue 11: a 20k-file tree with 900 distinct contents was 2.87x mksquashfs's size).
//!
//! What is read, and when: only files whose size another file shares can be duplicates, so
//! everything else is never read here. Within a size, a hash of the first 64 KiB splits most
//! look-alikes (model shards of one size, say) after a small read; only files that agree on size
//! and prefix are hashed in full (sha256). Both formats place data before they write it, so this
//! runs once, before any data is written, and the image stays reproducible: the first file in
//! inode order keeps the data and the later ones point at it.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::source::SourceDirs;
use crate::tree::{InodeId, Kind, Tree};

/// Bytes hashed first to tell files of one size apart cheaply.
const PREFIX: u64 = 64 << 10;

/// A regular file that may share its contents with another.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate<'a> {
    /// Source path.
    pub path: &'a Path,
    /// Size in bytes at walk time.
    pub size: u64,
    /// Size, times and identity at walk time, to detect a change while hashing (issue 13).
    pub stamp: crate::source::FileStamp,
}

/// For each inode of `tree`, the first earlier regular file (in inode order) with identical
/// contents, if any; only the files `eligible` takes part (`sparse`: whether the file has holes
/// placed by extent, which EROFS leaves out).
///
/// Errors: as [`duplicates`].
pub(crate) fn inode_duplicates(
    tree: &Tree,
    eligible: impl Fn(bool) -> bool,
) -> Result<Vec<Option<InodeId>>> {
    let mut ids = Vec::new();
    let mut candidates = Vec::new();
    for (id, inode) in tree.inodes.iter().enumerate() {
        if let Kind::File {
            source,
            size,
            extents,
            stamp,
        } = &inode.kind
            && eligible(extents.is_some())
        {
            ids.push(id);
            candidates.push(Candidate {
                path: source,
                size: *size,
                stamp: *stamp,
            });
        }
    }
    let mut out = vec![None; tree.inodes.len()];
    for (k, o) in duplicates(&candidates)?.into_iter().enumerate() {
        out[ids[k]] = o.map(|o| ids[o]);
    }
    Ok(out)
}

/// For each candidate, the index of the first earlier candidate with identical contents.
///
/// Candidates of size 0 are never matched (they have no data to share). Errors name the file:
/// a read failure, or [`Error::FileChanged`] when a file changed while it was hashed.
pub(crate) fn duplicates(files: &[Candidate<'_>]) -> Result<Vec<Option<usize>>> {
    let mut out = vec![None; files.len()];
    let mut by_size: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        if f.size > 0 {
            by_size.entry(f.size).or_default().push(i);
        }
    }
    let mut groups: Vec<Vec<usize>> = by_size.into_values().filter(|g| g.len() > 1).collect();
    // Hash order does not change the result, but a fixed order keeps I/O patterns repeatable.
    groups.sort_unstable_by_key(|g| g[0]);
    // Prefixes are hashed in candidate order (the walk's inode order, where a directory's files
    // follow each other), so each file is opened by name in a directory kept open (issue 14).
    let mut need: Vec<usize> = groups.iter().flatten().copied().collect();
    need.sort_unstable();
    let prefixes = prefix_hashes(files, &need)?;
    let mut dirs = SourceDirs::default();
    let mut buf = Vec::new();
    for group in groups {
        let mut by_prefix: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
        for &i in &group {
            by_prefix.entry(prefixes[&i]).or_default().push(i);
        }
        let mut same_prefix: Vec<([u8; 32], Vec<usize>)> =
            by_prefix.into_iter().filter(|(_, g)| g.len() > 1).collect();
        same_prefix.sort_unstable_by_key(|(_, g)| g[0]);
        for (prefix, same) in same_prefix {
            let mut first: HashMap<[u8; 32], usize> = HashMap::new();
            for &i in &same {
                // A file within the prefix was hashed whole already.
                let h = if files[i].size <= PREFIX {
                    prefix
                } else {
                    hash(&mut dirs, &files[i], u64::MAX, &mut buf)?
                };
                match first.get(&h) {
                    Some(&o) => out[i] = Some(o),
                    None => {
                        first.insert(h, i);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Threads that hash prefixes at most: the work is reading and hashing many small files, which
/// spreads over cores; more threads than this only contend for the page cache.
const PREFIX_THREADS: usize = 4;

/// Candidates' indexes with the hashes of their prefixes.
type Prefixes = Vec<(usize, [u8; 32])>;

/// Prefix hashes of the candidates `need` (indexes into `files`, ascending).
///
/// In a tree of small files nearly every file shares its size with another and is read whole
/// here: a quarter of the 50k-file EROFS build on one thread (perf, issue 14). The list is cut
/// into contiguous runs, one per thread, so each thread still opens files directory by
/// directory. Errors: the one of the earliest candidate that failed, as [`hash`] names it.
fn prefix_hashes(files: &[Candidate<'_>], need: &[usize]) -> Result<HashMap<usize, [u8; 32]>> {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores
        .clamp(1, PREFIX_THREADS)
        .min(need.len().div_ceil(64))
        .max(1);
    let run = need.len().div_ceil(threads).max(1);
    let hash_run = |run: &[usize]| -> Result<Prefixes> {
        let mut dirs = SourceDirs::default();
        let mut buf = Vec::new();
        run.iter()
            .map(|&i| Ok((i, hash(&mut dirs, &files[i], PREFIX, &mut buf)?)))
            .collect()
    };
    let runs: Vec<Result<Prefixes>> = std::thread::scope(|s| {
        let mut rest = need.chunks(run);
        let first = rest.next().unwrap_or_default();
        let others: Vec<_> = rest.map(|r| s.spawn(move || hash_run(r))).collect();
        let mut out = vec![hash_run(first)];
        out.extend(
            others
                .into_iter()
                .map(|t| t.join().expect("a prefix hash thread does not panic")),
        );
        out
    });
    let mut prefixes = HashMap::with_capacity(need.len());
    for run in runs {
        prefixes.extend(run?);
    }
    Ok(prefixes)
}

/// sha256 of the first `limit` bytes of `f`, checking that the file did not change meanwhile.
/// `buf` is the caller's read buffer, kept across files: a zeroed buffer per file was a memset
/// of every byte hashed, 2 % of the 50k-file build with the allocator's churn on top (perf,
/// session 12).
fn hash(
    dirs: &mut SourceDirs,
    f: &Candidate<'_>,
    limit: u64,
    buf: &mut Vec<u8>,
) -> Result<[u8; 32]> {
    let file = dirs.open(f.path)?;
    let want = f.size.min(limit);
    let mut h = Sha256::new();
    h.update(f.size.to_le_bytes());
    let len = (1 << 20).min(want as usize).max(1);
    if buf.len() < len {
        buf.resize(len, 0);
    }
    let buf = &mut buf[..len];
    let mut left = want;
    let mut r = file.take(want);
    while left > 0 {
        let n = r.read(buf).map_err(|e| Error::io(f.path, e))?;
        if n == 0 {
            return Err(Error::FileChanged {
                path: f.path.to_path_buf(),
                what: "file ended early".into(),
            });
        }
        h.update(&buf[..n]);
        left -= n as u64;
    }
    let m = r
        .into_inner()
        .metadata()
        .map_err(|e| Error::io(f.path, e))?;
    if let Some(what) = f.stamp.changes(&crate::source::FileStamp::of(&m)) {
        return Err(Error::FileChanged {
            path: f.path.to_path_buf(),
            what: format!("changed while its contents were compared: {what}"),
        });
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(p: &Path) -> Candidate<'_> {
        let m = std::fs::metadata(p).unwrap();
        Candidate {
            path: p,
            size: m.len(),
            stamp: crate::source::FileStamp::of(&m),
        }
    }

    #[test]
    fn equal_contents_point_at_the_first_copy_and_look_alikes_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| ((i * 31) >> 5) as u8).collect();
        let mut big2 = big.clone();
        *big2.last_mut().unwrap() ^= 1; // same size and prefix, different end
        let files = [
            ("a", big.clone()),
            ("b", b"small".to_vec()),
            ("c", big2),
            ("d", big),
            ("e", b"small".to_vec()),
            ("f", Vec::new()),
            ("g", Vec::new()),
            ("h", b"SMALL".to_vec()),
        ];
        let paths: Vec<_> = files
            .iter()
            .map(|(n, d)| {
                let p = dir.path().join(n);
                std::fs::write(&p, d).unwrap();
                p
            })
            .collect();
        let c: Vec<_> = paths.iter().map(|p| cand(p)).collect();
        assert_eq!(
            duplicates(&c).unwrap(),
            [None, None, None, Some(0), Some(1), None, None, None]
        );
    }

    #[test]
    fn a_file_that_changed_since_the_walk_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"same").unwrap();
        std::fs::write(&b, b"same").unwrap();
        let mut c = vec![cand(&a), cand(&b)];
        c[1].stamp.mtime.0 -= 10;
        let e = duplicates(&c).unwrap_err().to_string();
        assert!(e.contains("changed"), "{e}");
    }

    /// 300 files of eight contents, named so that copies land in different threads' runs.
    fn many(dir: &Path) -> Vec<std::path::PathBuf> {
        (0..300)
            .map(|i| {
                let p = dir.join(format!("f{i:03}"));
                // Sizes repeat every 4 files and contents every 8: half of each size group are
                // copies of each other, half look-alikes of the same size.
                let len = 1000 + (i % 4) * 10;
                let fill = b'a' + (i % 8) as u8;
                std::fs::write(&p, vec![fill; len]).unwrap();
                p
            })
            .collect()
    }

    #[test]
    fn prefixes_hashed_on_several_threads_find_every_copy() {
        let dir = tempfile::tempdir().unwrap();
        let paths = many(dir.path());
        let c: Vec<_> = paths.iter().map(|p| cand(p)).collect();
        let want: Vec<Option<usize>> = (0..300).map(|i| (i >= 8).then_some(i % 8)).collect();
        assert_eq!(duplicates(&c).unwrap(), want);
    }

    #[test]
    fn of_several_changed_files_the_first_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let paths = many(dir.path());
        let mut c: Vec<_> = paths.iter().map(|p| cand(p)).collect();
        c[100].stamp.mtime.0 -= 10;
        c[250].stamp.mtime.0 -= 10;
        let e = duplicates(&c).unwrap_err().to_string();
        assert!(e.contains("f100"), "{e}");
    }
}
