//! `fspack verify`: re-hash stored blobs, name each bad blob, each bad chunk and the mounts that
//! use them, and with `--repair` fetch only the bad chunks again (a missing blob whole, as a pull
//! does).
//!
//! The store promises that a file under `blobs/` hashes to its name, but disks fail, hosts crash
//! and people run `dd`. A pull trusts what the store already has, so this is where that trust is
//! checked. Where a blob carries a chunk index (every layer fspack pushes), the check says which
//! 1 MiB chunks are wrong and a repair fetches just those, verified against the index, and writes
//! them into the blob in place, so even mounts that already use it read the right bytes after.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fspack_chunkindex::{ChunkIndex, IndexAt};
use fspack_digest::Digest;
use fspack_registry::{BlobSink, Client, DownloadOptions, NoProgress, Reference};
use fspack_store::{BlobRepair, Store};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::artifact::{Descriptor, MAX_MANIFEST, parse_manifest};
use crate::error::{EngineError, ErrorKind, Result};

/// Which blobs to check.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every blob in the store, and every blob a tagged manifest or a mount record names (so
    /// one that vanished from `blobs/` is reported missing, as for `Refs`).
    All,
    /// The manifests, configs and layers of these tags (references as pulled).
    Refs(Vec<String>),
}

/// Settings of a verify run.
#[derive(Debug, Clone)]
pub struct VerifySettings {
    /// Fetch bad chunks (or whole blobs without an index) again and write them in place.
    pub repair: bool,
    /// Concurrent Range requests within one blob during a repair.
    pub ranges: usize,
}

/// State of one blob after the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobStatus {
    /// Hashes to its digest.
    Ok,
    /// Does not hash to its digest.
    Corrupt,
    /// Was corrupt and now hashes to its digest again.
    Repaired,
    /// Named by a manifest in scope but absent from the store.
    Missing,
}

/// A chunk that does not match its digest in the blob's chunk index.
#[derive(Debug, Clone, Serialize)]
pub struct BadChunk {
    /// Chunk number in the index (0-based).
    pub index: usize,
    /// First byte.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
}

/// What was found for one blob.
#[derive(Debug, Clone, Serialize)]
pub struct BlobCheck {
    /// Digest.
    pub digest: Digest,
    /// Size in bytes (of the file, or from the manifest when missing).
    pub size: u64,
    /// The size in bytes a manifest gives the blob, when the file has another (truncated or
    /// extended on disk); a repair fetches the blob whole at this size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_size: Option<u64>,
    /// Outcome.
    pub status: BlobStatus,
    /// Bad chunks, when the blob has a usable chunk index.
    pub bad_chunks: Vec<BadChunk>,
    /// The blob's chunk index itself fails its digest (the chunks cannot be told apart).
    pub index_corrupt: bool,
    /// Tags whose manifests use it.
    pub references: Vec<String>,
    /// fspack mounts that use it.
    pub mounts: Vec<PathBuf>,
    /// Bytes fetched to repair it.
    pub bytes_received: u64,
    /// Why a repair that was asked for could not be made (no registry reference, registry
    /// unreachable, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repair_error: Option<String>,
    /// The kind of the error behind `repair_error`, which decides whether trying the repair
    /// again later may work (see [`VerifyReport::ensure_clean`]).
    #[serde(skip)]
    pub repair_error_kind: Option<ErrorKind>,
}

/// What a verify run found and did.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// Every blob checked, sorted by digest.
    pub blobs: Vec<BlobCheck>,
    /// Bytes hashed.
    pub bytes_checked: u64,
    /// Blobs still corrupt or missing after the run.
    pub bad: usize,
    /// Blobs repaired.
    pub repaired: usize,
    /// What the run checked, as `fspack verify` arguments (`--all`, or the references), for the
    /// hint that offers `--repair`.
    #[serde(skip)]
    pub scope_args: String,
    /// How the hint spells fspack on this store ([`Store::command`]).
    #[serde(skip)]
    pub command: String,
}

impl VerifyReport {
    /// Fails when a blob is still corrupt or missing after the run; `repair` says whether the
    /// run repaired, so the message offers `--repair` only when it was not.
    ///
    /// Errors: [`EngineError::NotRepaired`], with the kind of the repair failure, when every
    /// bad blob is bad only because its repair failed for a reason that may pass (the registry
    /// unreachable or failing, after retries): the same command may work later (exit 5; exit 4
    /// when the registry refused the credentials, which a login mends).
    /// Otherwise [`EngineError::Integrity`] naming how many blobs are bad (exit 6): without
    /// `repair`, or when some bad blob's repair failed for a reason a retry does not change
    /// (wrong bytes fetched, nothing says where to fetch it from).
    pub fn ensure_clean(&self, repair: bool) -> Result<()> {
        if self.bad == 0 {
            return Ok(());
        }
        let bad: Vec<&BlobCheck> = self
            .blobs
            .iter()
            .filter(|b| matches!(b.status, BlobStatus::Corrupt | BlobStatus::Missing))
            .collect();
        if repair
            && let Some(first) = bad.first().and_then(|b| b.repair_error_kind)
            && bad
                .iter()
                .all(|b| b.repair_error_kind.is_some_and(may_pass_later))
        {
            // Refused credentials decide the code (4) and the advice: a login fixes them, and
            // waiting does not (s10 fresh-eyes pass: this exited 6).
            let auth = ErrorKind::Registry(fspack_registry::ErrorKind::Auth);
            let refused = bad.iter().any(|b| b.repair_error_kind == Some(auth));
            let (kind, why) = if refused {
                (
                    auth,
                    "the registry refused the credentials while repairing; log in (`fspack login REGISTRY`), then run",
                )
            } else {
                (
                    first,
                    "the registry could not be reached or failed while repairing; run",
                )
            };
            let what = match bad.as_slice() {
                [one] if one.status == BlobStatus::Missing => {
                    format!("blob {} is still missing from the store", one.digest)
                }
                [one] => format!("blob {} in the store is still corrupt", one.digest),
                _ => format!(
                    "{} blobs in the store are still corrupt or missing",
                    bad.len()
                ),
            };
            return Err(EngineError::NotRepaired {
                what: format!(
                    "{what}: {why} `{} verify {} --repair` again later",
                    self.command, self.scope_args
                ),
                kind,
            });
        }
        let hint = if repair {
            String::new()
        } else {
            format!(
                "; run `{} verify {} --repair` to fetch them again",
                self.command, self.scope_args
            )
        };
        Err(EngineError::Integrity(format!(
            "{} in the store {} corrupt or missing{hint}",
            if self.bad == 1 {
                "1 blob".to_string()
            } else {
                format!("{} blobs", self.bad)
            },
            if self.bad == 1 { "is" } else { "are" }
        )))
    }
}

/// Whether a repair that failed with an error of `kind` may work when tried again later: the
/// registry unreachable or failing after retries (`Network`), or answering what the protocol
/// does not allow, most often a proxy's error page (`Protocol`; the CLI treats it as temporary
/// too), or refusing the credentials (`Auth`: a login mends it; exit 4). A wrong answer (digest,
/// size, chunk mismatch), a blob not found or a local failure stays whatever the time.
fn may_pass_later(kind: ErrorKind) -> bool {
    use fspack_registry::ErrorKind as R;
    matches!(
        kind,
        ErrorKind::Registry(R::Network | R::Protocol | R::Auth)
    )
}

/// Checks (and with `settings.repair`, repairs) the blobs in `scope`.
///
/// Returns the report; [`VerifyReport::ensure_clean`] turns `report.bad > 0` into an error
/// (exit 6, or 5 when only a registry failure kept the bad blobs from being repaired). Errors:
/// [`EngineError::NotFound`] for a reference not in the store, [`EngineError::Usage`] when a
/// repair is asked without a client, store and registry errors of a repair.
pub async fn verify(
    store: &Arc<Store>,
    scope: &Scope,
    settings: &VerifySettings,
    client: Option<&Client>,
) -> Result<VerifyReport> {
    let mut on_disk: BTreeMap<Digest, u64> = store.blobs()?.into_iter().collect();
    let mounts = store.mount_records()?;
    let (mut known, mut wanted) = blobs_in_scope(store, scope, &on_disk, &mounts)?;
    // Tagged manifests first: the blobs a corrupt or missing manifest names are known only once
    // it is whole again, so one repair run mends both (s9 fresh-eyes pass: it took two runs).
    // A manifest that cannot be fetched here is tried again, and reported, below.
    let mut mended: BTreeMap<Digest, u64> = BTreeMap::new();
    if settings.repair
        && let Some(client) = client
    {
        for digest in wanted
            .iter()
            .filter(|d| known.get(*d).is_some_and(|e| e.manifest))
        {
            if on_disk.contains_key(digest) && store.check_blob(digest).is_ok() {
                continue;
            }
            let references = known[digest].references.clone();
            if let Ok(n) = fetch_manifest_again(store, client, digest, &references).await {
                mended.insert(digest.clone(), n);
            }
        }
        if !mended.is_empty() {
            on_disk = store.blobs()?.into_iter().collect();
            (known, wanted) = blobs_in_scope(store, scope, &on_disk, &mounts)?;
        }
    }
    let mut report = VerifyReport {
        blobs: Vec::new(),
        bytes_checked: 0,
        bad: 0,
        repaired: 0,
        command: store.command(),
        scope_args: match scope {
            Scope::All => "--all".into(),
            Scope::Refs(refs) => refs.join(" "),
        },
    };
    for digest in wanted {
        let Entry {
            desc,
            manifest,
            references,
        } = known.get(&digest).cloned().unwrap_or_default();
        let users: Vec<&fspack_store::MountRecord> = mounts
            .iter()
            .filter(|m| m.blobs.contains(&digest) || m.manifest_digest == digest)
            .collect();
        let using: Vec<PathBuf> = users.iter().map(|m| m.target.clone()).collect();
        let Some(&size) = on_disk.get(&digest) else {
            let mut check = BlobCheck {
                size: desc.as_ref().map_or(0, |d| d.size),
                expected_size: None,
                digest,
                status: BlobStatus::Missing,
                bad_chunks: Vec::new(),
                index_corrupt: false,
                references,
                mounts: using,
                bytes_received: 0,
                repair_error: None,
                repair_error_kind: None,
            };
            if settings.repair {
                // A mount made from a reference that is no longer tagged still says where the
                // blob came from.
                let sources: Vec<String> = check
                    .references
                    .iter()
                    .cloned()
                    .chain(users.iter().map(|m| m.reference.clone()))
                    .collect();
                let manifest = manifest || users.iter().any(|m| m.manifest_digest == check.digest);
                match refetch(
                    store,
                    client,
                    &check,
                    desc.as_ref(),
                    manifest,
                    &sources,
                    settings,
                )
                .await
                {
                    Ok(n) => {
                        check.bytes_received = n;
                        check.status = BlobStatus::Repaired;
                        report.repaired += 1;
                    }
                    Err((why, kind)) => {
                        check.repair_error = Some(why);
                        check.repair_error_kind = Some(kind);
                    }
                }
            }
            if check.status == BlobStatus::Missing {
                report.bad += 1;
            }
            report.blobs.push(check);
            continue;
        };
        let found = {
            let (store, digest, desc) = (store.clone(), digest.clone(), desc.clone());
            tokio::task::spawn_blocking(move || check_blob(&store, &digest, size, desc.as_ref()))
                .await
                .expect("no panic")?
        };
        report.bytes_checked += size;
        let mut check = BlobCheck {
            digest: digest.clone(),
            size,
            expected_size: desc.as_ref().map(|d| d.size).filter(|&s| s != size),
            status: if found.ok {
                BlobStatus::Ok
            } else {
                BlobStatus::Corrupt
            },
            bad_chunks: found.bad_chunks(),
            index_corrupt: found.index_corrupt,
            references,
            mounts: using,
            bytes_received: 0,
            repair_error: None,
            repair_error_kind: None,
        };
        if let Some(&n) = mended.get(&digest) {
            check.status = BlobStatus::Repaired;
            check.bytes_received = n;
            report.repaired += 1;
        }
        if !found.ok && settings.repair {
            let client = client.ok_or_else(|| {
                EngineError::Usage("a registry client is needed to repair".into())
            })?;
            let manifest = manifest || users.iter().any(|m| m.manifest_digest == check.digest);
            // One blob that cannot be repaired is reported with the rest, not the end of the
            // run: the other blobs still get their repair, and --json its report.
            match repair_blob(
                store,
                client,
                &mut check,
                desc.as_ref(),
                found,
                manifest,
                settings,
                &mounts,
            )
            .await
            {
                Ok(()) => report.repaired += 1,
                Err(e) => {
                    check.repair_error = Some(error_chain(&e));
                    check.repair_error_kind = Some(e.kind());
                }
            }
        }
        if matches!(check.status, BlobStatus::Corrupt) {
            report.bad += 1;
        }
        report.blobs.push(check);
    }
    Ok(report)
}

/// Descriptors and references per blob, from every tagged manifest (also for `All`, so that
/// chunk indexes are known wherever some manifest describes the blob), and the blobs in
/// `scope`, sorted by digest: for `All`, those on disk plus those a tag or a mount names.
///
/// Errors: [`EngineError::NotFound`] for a reference in `scope` that the store does not tag;
/// the store's.
fn blobs_in_scope(
    store: &Store,
    scope: &Scope,
    on_disk: &BTreeMap<Digest, u64>,
    mounts: &[fspack_store::MountRecord],
) -> Result<(Known, Vec<Digest>)> {
    let mut known = Known::new();
    let tags = store.tags()?;
    if let Scope::Refs(refs) = scope {
        for r in refs {
            if !tags.iter().any(|(name, _)| name == r) {
                return Err(EngineError::NotFound(format!(
                    "{r} is not in the store at {}; run `{} pull {r}` first",
                    store.root().display(),
                    store.command()
                )));
            }
        }
    }
    let mut wanted: Vec<Digest> = Vec::new();
    for (name, m) in &tags {
        let in_scope = match scope {
            Scope::All => true,
            Scope::Refs(refs) => refs.contains(name),
        };
        known.entry(m.digest.clone()).or_default().manifest = true;
        let mut note = |digest: &Digest, d: Option<Descriptor>| {
            let e = known.entry(digest.clone()).or_default();
            if e.desc.is_none() {
                e.desc = d;
            }
            if !e.references.contains(name) {
                e.references.push(name.clone());
            }
            if in_scope && !wanted.iter().any(|w| w == digest) {
                wanted.push(digest.clone());
            }
        };
        note(&m.digest, None);
        let Ok(bytes) = store.read_blob(&m.digest, MAX_MANIFEST) else {
            continue; // the manifest itself is checked (and reported) below
        };
        let Ok(manifest) = parse_manifest(&bytes, name) else {
            continue;
        };
        // A pull keeps the config only when it is the empty one: a model config (issue 15) is
        // never needed to mount, so one not in the store is not missing.
        if on_disk.contains_key(&manifest.config.digest) {
            note(&manifest.config.digest, Some(manifest.config.clone()));
        }
        for l in &manifest.layers {
            note(&l.digest, Some(l.clone()));
        }
    }
    if matches!(scope, Scope::All) {
        // A lazy mount's blobs are still being filled (its server commits and tags them last):
        // absent is not missing there.
        let mounted = mounts
            .iter()
            .filter(|m| m.lazy.is_none())
            .flat_map(|m| m.blobs.iter().chain([&m.manifest_digest]));
        for d in on_disk.keys().chain(mounted) {
            if !wanted.contains(d) {
                wanted.push(d.clone());
            }
        }
    }
    wanted.sort();
    Ok((known, wanted))
}

/// Per blob digest: what the tagged manifests say of it.
type Known = BTreeMap<Digest, Entry>;

/// What the tagged manifests say of one blob.
#[derive(Debug, Clone, Default)]
struct Entry {
    /// A descriptor of it, if a manifest lists it as config or layer.
    desc: Option<Descriptor>,
    /// It is a tagged manifest (fetched from the registry's `manifests/` endpoint).
    manifest: bool,
    /// The tags naming it.
    references: Vec<String>,
}

/// Repairs the corrupt blob of `check` from the registry, then drops the page cache of the
/// mounts using it (`mounts`: every mount record) so they read the repaired bytes.
///
/// Errors: those of [`repair`].
#[allow(clippy::too_many_arguments)]
async fn repair_blob(
    store: &Arc<Store>,
    client: &Client,
    check: &mut BlobCheck,
    desc: Option<&Descriptor>,
    found: Found,
    manifest: bool,
    settings: &VerifySettings,
    mounts: &[fspack_store::MountRecord],
) -> Result<()> {
    check.bytes_received = if manifest {
        fetch_manifest_again(store, client, &check.digest, &check.references).await?
    } else {
        repair(store, client, check, desc, found.index, settings).await?
    };
    check.size = check.expected_size.take().unwrap_or(check.size);
    check.status = BlobStatus::Repaired;
    let targets: Vec<PathBuf> = check.mounts.clone();
    let loops: Vec<PathBuf> = mounts
        .iter()
        .filter(|m| targets.contains(&m.target))
        .flat_map(|m| m.loop_devices.clone())
        .collect();
    tokio::task::spawn_blocking(move || drop_cached_pages(&targets, &loops))
        .await
        .expect("no panic");
    Ok(())
}

/// Fetches a missing blob again, whole, as a pull does (verified chunk by chunk where it has an
/// index, then against its digest, and committed atomically): from the registry of the first of
/// `sources` (tags, then the references of mounts using it) that is a registry reference.
/// Manifests come from the `manifests/` endpoint, by digest. Returns the bytes received.
///
/// Errors: why it could not, as a sentence for the report (no registry reference, no client,
/// the registry's or the store's error with its causes) and the kind of the failure; the run
/// goes on with the next blob.
async fn refetch(
    store: &Arc<Store>,
    client: Option<&Client>,
    check: &BlobCheck,
    desc: Option<&Descriptor>,
    manifest: bool,
    sources: &[String],
    settings: &VerifySettings,
) -> std::result::Result<u64, (String, ErrorKind)> {
    let Some(r) = sources
        .iter()
        .filter(|s| !s.starts_with("oci:"))
        .find_map(|s| s.parse::<Reference>().ok())
    else {
        return Err(if sources.is_empty() {
            (
                "no tag or mount names it, so fspack cannot tell where to fetch it".to_string(),
                ErrorKind::Integrity,
            )
        } else {
            (
                format!(
                    "{} is not a registry reference; copy it into the store again (`{} pull {}`)",
                    sources[0],
                    store.command(),
                    sources[0]
                ),
                ErrorKind::Usage,
            )
        });
    };
    let Some(client) = client else {
        return Err((
            "no registry client was given to fetch it".to_string(),
            ErrorKind::Usage,
        ));
    };
    let chain = |e: &EngineError| {
        (
            format!("cannot fetch it from {r}: {}", error_chain(e)),
            e.kind(),
        )
    };
    if manifest {
        return fetch_manifest_again(store, client, &check.digest, &[r.to_string()])
            .await
            .map_err(|e| chain(&e));
    }
    let Some(desc) = desc else {
        return Err((
            "no tagged manifest describes it (its size is unknown)".to_string(),
            ErrorKind::Integrity,
        ));
    };
    let reporter: Arc<dyn crate::report::Reporter> = Arc::new(crate::report::Silent);
    let fetched = crate::fetch::fetch_blob(client, &r, desc, store, settings.ranges, &reporter)
        .await
        .map_err(|e| chain(&e))?;
    Ok(fetched.stats.bytes_received)
}

/// What hashing one stored blob found.
struct Found {
    ok: bool,
    index: Option<Arc<ChunkIndex>>,
    index_corrupt: bool,
    bad: Vec<usize>,
}

impl Found {
    fn bad_chunks(&self) -> Vec<BadChunk> {
        let Some(ix) = &self.index else {
            return Vec::new();
        };
        self.bad
            .iter()
            .map(|&i| {
                let r = ix.chunk(i);
                BadChunk {
                    index: i,
                    start: r.start,
                    end: r.end,
                }
            })
            .collect()
    }
}

/// Hashes a stored blob in one pass: whole-blob sha256, and each chunk against the blob's chunk
/// index where its descriptor announces one that still matches its digest.
fn check_blob(
    store: &Store,
    digest: &Digest,
    size: u64,
    desc: Option<&Descriptor>,
) -> Result<Found> {
    let path = store.blob_path(digest);
    let file = std::fs::File::open(&path).map_err(|e| EngineError::io(&path, e))?;
    let at = desc.filter(|d| d.size == size).and_then(|d| {
        IndexAt::from_annotations(&d.annotations, size)
            .ok()
            .flatten()
    });
    let mut index_corrupt = false;
    let index = match at {
        Some(IndexAt::Embedded(e)) => {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; (e.range.end - e.range.start) as usize];
            let ix = file
                .read_exact_at(&mut buf, e.range.start)
                .ok()
                .and_then(|()| e.open(&buf).ok());
            index_corrupt = ix.is_none();
            ix.map(Arc::new)
        }
        // A standalone index (a ModelPack raw layer's) is used when the store kept it; else the
        // whole-blob digest decides, as for a layer without an index.
        Some(IndexAt::Standalone(s)) if store.has_blob(&s.digest) => {
            let ix = store
                .read_blob(&s.digest, fspack_chunkindex::MAX_INDEX_LEN)
                .ok()
                .and_then(|b| s.open(&b).ok());
            index_corrupt = ix.is_none();
            ix.map(Arc::new)
        }
        _ => None,
    };
    let mut whole = Sha256::new();
    let mut bad = Vec::new();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, &file);
    let mut buf = vec![0u8; 1 << 20];
    let mut pos = 0u64;
    if let Some(ix) = &index {
        for i in 0..ix.chunk_count() {
            let r = ix.chunk(i);
            let n = (r.end - r.start) as usize;
            buf.resize(n, 0);
            reader
                .read_exact(&mut buf[..n])
                .map_err(|e| EngineError::io(&path, e))?;
            whole.update(&buf[..n]);
            if !ix.verify(i, &buf[..n]) {
                bad.push(i);
            }
            pos = r.end;
        }
    }
    loop {
        buf.resize(1 << 20, 0);
        let n = reader
            .read(&mut buf)
            .map_err(|e| EngineError::io(&path, e))?;
        if n == 0 {
            break;
        }
        whole.update(&buf[..n]);
        pos += n as u64;
    }
    let ok = pos == size && Digest::from_sha256(whole.finalize().into()) == *digest;
    Ok(Found {
        ok,
        index,
        index_corrupt,
        bad,
    })
}

/// A [`BlobRepair`] as the registry client's sink.
struct RepairSink(Arc<BlobRepair>);

impl BlobSink for RepairSink {
    fn write_at(&self, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.0.write_at(offset, bytes)
    }
}

/// Every message of `e` and its causes, joined with ": ", for a report line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The registry reference a corrupt blob is fetched from again: its first tag
/// (`references`).
///
/// Errors: [`EngineError::Integrity`] when no tag names it, [`EngineError::Usage`] when the tag
/// is not a reference.
fn repair_source(store: &Store, digest: &Digest, references: &[String]) -> Result<Reference> {
    let Some(name) = references.first() else {
        return Err(EngineError::Integrity(format!(
            "blob {digest} is corrupt and no manifest in the store names it, so fspack cannot tell where to fetch it; delete {} and pull again",
            store.blob_path(digest).display()
        )));
    };
    name.parse()
        .map_err(|e| EngineError::Usage(format!("cannot repair blob {digest}: tag {name:?}: {e}")))
}

/// Fetches a tagged manifest again by digest from the registry's `manifests/` endpoint (a
/// manifest is no blob there), from the registry of its first tag, and writes it over a corrupt
/// stored copy (which is then hashed again) or commits it where it is missing. Returns the bytes
/// received.
///
/// Errors: those of [`repair_source`], the registry's, and the store's, including
/// [`fspack_store::StoreError::CorruptBlob`] when the fetched bytes do not hash to `digest`.
async fn fetch_manifest_again(
    store: &Arc<Store>,
    client: &Client,
    digest: &Digest,
    references: &[String],
) -> Result<u64> {
    let r = repair_source(store, digest, references)?;
    let (_, bytes, _) = client.get_manifest(&r.with_digest(digest)).await?;
    let (store, digest) = (store.clone(), digest.clone());
    tokio::task::spawn_blocking(move || -> Result<u64> {
        if !store.has_blob(&digest) {
            let got = store.put_blob_bytes(&bytes)?;
            if got != digest {
                return Err(EngineError::Integrity(format!(
                    "the registry answered manifest {digest} with bytes that hash to {got}"
                )));
            }
            return Ok(bytes.len() as u64);
        }
        let fixer = store.repair_blob(&digest)?;
        fixer
            .set_len(bytes.len() as u64)
            .and_then(|()| fixer.write_at(0, &bytes))
            .map_err(|e| EngineError::io(fixer.path(), e))?;
        fixer.finish()?;
        Ok(bytes.len() as u64)
    })
    .await
    .expect("no panic")
}

/// Repairs one blob from the registry of its first reference; returns the bytes received.
async fn repair(
    store: &Arc<Store>,
    client: &Client,
    check: &BlobCheck,
    desc: Option<&Descriptor>,
    index: Option<Arc<ChunkIndex>>,
    settings: &VerifySettings,
) -> Result<u64> {
    let r = repair_source(store, &check.digest, &check.references)?;
    // A blob truncated or extended on disk is fetched whole at the manifest's size.
    let size = check.expected_size.unwrap_or(check.size);
    let fixer = {
        let (store, digest) = (store.clone(), check.digest.clone());
        Arc::new(
            tokio::task::spawn_blocking(move || store.repair_blob(&digest))
                .await
                .expect("no panic")?,
        )
    };
    let received = match (&index, desc) {
        (Some(ix), Some(_)) if !check.index_corrupt && check.expected_size.is_none() => {
            // Only the bad chunks travel; each is verified before it is written.
            let mut good: Vec<(u64, u64)> = Vec::new();
            for i in 0..ix.chunk_count() {
                if !check.bad_chunks.iter().any(|b| b.index == i) {
                    let r = ix.chunk(i);
                    good.push((r.start, r.end));
                }
            }
            let opts = DownloadOptions {
                range_parallelism: settings.ranges,
                chunks: Some(ix.clone()),
                done_ranges: good,
                ..Default::default()
            };
            let sink = Arc::new(RepairSink(fixer.clone()));
            client
                .download_to(
                    &r,
                    &check.digest,
                    check.size,
                    sink,
                    &opts,
                    Arc::new(NoProgress),
                )
                .await?
                .bytes_received
        }
        _ => {
            // No usable index: a whole verified copy, then written over the blob in place.
            let tmp = store.temp_file()?;
            tmp.as_file()
                .set_len(size)
                .map_err(|e| EngineError::io(tmp.path(), e))?;
            fixer
                .set_len(size)
                .map_err(|e| EngineError::io(fixer.path(), e))?;
            let stats = client
                .download_blob(
                    &r,
                    &check.digest,
                    size,
                    tmp.as_file(),
                    &DownloadOptions {
                        range_parallelism: settings.ranges,
                        ..Default::default()
                    },
                    Arc::new(NoProgress),
                )
                .await?;
            let fixer = fixer.clone();
            tokio::task::spawn_blocking(move || copy_into(tmp.path(), &fixer))
                .await
                .expect("no panic")?;
            stats.bytes_received
        }
    };
    let fixer = Arc::try_unwrap(fixer)
        .map_err(|_| EngineError::Integrity(format!("blob {} is still in use", check.digest)))?;
    tokio::task::spawn_blocking(move || fixer.finish())
        .await
        .expect("no panic")?;
    Ok(received)
}

fn copy_into(src: &Path, dst: &BlobRepair) -> Result<()> {
    let mut f = std::fs::File::open(src).map_err(|e| EngineError::io(src, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| EngineError::io(src, e))?;
        if n == 0 {
            return Ok(());
        }
        dst.write_at(off, &buf[..n])
            .map_err(|e| EngineError::io(dst.path(), e))?;
        off += n as u64;
    }
}

/// Drops the page cache of every file under the mount points and of their loop devices, so
/// pages read before a repair (the zeros of a zeroed blob) are read again from the repaired
/// blob. Clean pages only; nothing is lost. Best effort: a file that cannot be opened is skipped.
fn drop_cached_pages(targets: &[PathBuf], loop_devices: &[PathBuf]) {
    use rustix::fs::{Advice, fadvise};
    fn walk(dir: &Path, depth: usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() && depth < 4096 {
                walk(&e.path(), depth + 1);
            } else if t.is_file()
                && let Ok(f) = std::fs::File::open(e.path())
            {
                let _ = fadvise(&f, 0, None, Advice::DontNeed);
            }
        }
    }
    for t in targets {
        walk(t, 0);
    }
    for d in loop_devices {
        if let Ok(f) = std::fs::File::open(d) {
            let _ = fadvise(&f, 0, None, Advice::DontNeed);
        }
    }
}
