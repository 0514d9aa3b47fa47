//! `fspack pull`: fetch a manifest, then its blobs side by side into the verified store.
//!
//! The manifest is checked for mountable layer types before a single data byte is fetched, so a
//! reference to something fspack cannot mount fails fast. Each blob goes through the store's
//! ingest (file lock, preallocated file, journal of finished ranges) and is committed only after
//! its size and sha256 match; a second pull of the same blob waits on the lock and then finds it
//! committed. The tag in the store moves last.

use std::sync::Arc;
use std::time::Instant;

use fspack_digest::Digest;
use fspack_registry::{Client, Reference};
use fspack_store::Store;
use futures_util::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use crate::artifact::*;
use crate::error::{EngineError, Result};
use crate::plan::MountPlan;
use crate::report::Reporter;

/// Settings of a pull.
///
/// Together `jobs × ranges` is the pull's budget of concurrent requests. Where more than `jobs`
/// large blobs are wanted, the budget goes to more blobs at once (each one streamed in order)
/// before more Range requests per blob: in-order bytes are hashed from the buffer they arrive
/// in and written past the page cache, which ranges ahead of the prefix are not (issue 9). See
/// [`plan_lanes`].
#[derive(Debug, Clone)]
pub struct PullSettings {
    /// Blobs fetched at once (at least; see above).
    pub jobs: usize,
    /// Concurrent Range requests within one large blob (at most).
    pub ranges: usize,
    /// Signatures and policy checked before any layer is fetched (issue 12).
    pub trust: Arc<crate::trust::Trust>,
}

/// What a pull did.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    /// The reference pulled.
    pub reference: String,
    /// Manifest digest (the tag is pinned to it for every later step).
    pub manifest_digest: Digest,
    /// `erofs` or `squashfs`.
    pub format: String,
    /// Per-layer outcome.
    pub layers: Vec<PulledLayer>,
    /// Bytes of the layers that were not cached.
    pub bytes_fetched: u64,
    /// Body bytes actually received from the registry (less than `bytes_fetched` when a killed
    /// pull is resumed, more when chunks were fetched again).
    pub bytes_received: u64,
    /// Chunks that failed verification and were fetched again.
    pub chunks_refetched: u64,
    /// Stored blobs that `pull --verify` found damaged and fetched again (their bytes are in
    /// `bytes_received`); 0 without `--verify`.
    pub blobs_repaired: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Mount point, when mounted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounted_at: Option<std::path::PathBuf>,
    /// Notes on the mount (`pull --mount`), one line each, as `mount --json` gives them; empty
    /// without a mount, and always present so scripts read one shape (s12 fresh-eyes pass).
    pub notes: Vec<String>,
    /// The signature and policy rules the manifest passed before any layer was fetched, one
    /// line each (`--verify-key PATH`, `policy <scope>: signedBy PATH`, ...; issue 12); empty
    /// when none is configured (always present, as in `mount --json`, so scripts read one shape).
    pub trust_checks: Vec<String>,
}

/// Outcome for one layer.
#[derive(Debug, Clone, Serialize)]
pub struct PulledLayer {
    /// Digest.
    pub digest: Digest,
    /// Its `org.opencontainers.image.title` annotation (a model file's path, an EROFS device's
    /// name), else the first 12 hex digits of the digest, as the progress bars name it.
    pub title: String,
    /// The descriptor's media type.
    pub media_type: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether the store already had it.
    pub cached: bool,
    /// Whether it was verified chunk by chunk against its chunk index as it arrived.
    pub chunk_verified: bool,
    /// Body bytes received for it, including anything fetched again.
    pub bytes_received: u64,
    /// Chunks (or the chunk index) that failed verification and were fetched again.
    pub chunks_refetched: u64,
}

/// A manifest as it was pulled: its bytes, digest and media type.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Parsed manifest.
    pub manifest: Manifest,
    /// Raw bytes (what the digest covers).
    pub bytes: Vec<u8>,
    /// Digest of `bytes`.
    pub digest: Digest,
    /// The trust rules it passed ([`fetch_trusted`]); empty when none was checked.
    pub trust_checks: Vec<String>,
    /// The digest of the image index the reference named, when the manifest was reached
    /// through it ([`fetch_manifest`]); `None` for a reference that named the manifest itself.
    pub index: Option<Digest>,
}

/// How a pull spreads its requests: blobs at once and Range requests per blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes {
    /// Blobs fetched at once.
    pub blobs: usize,
    /// The request budget (`jobs × ranges`).
    budget: usize,
    /// Most Range requests for one blob.
    max_ranges: usize,
    /// Bytes of the large blobs still wanted.
    large_bytes: u64,
}

impl Lanes {
    /// Range requests for a blob of `size` bytes: its share of the budget by size (rounded
    /// down), between 1 and `ranges`. Small blobs are fetched in one request anyway. With blobs
    /// of equal size the requests in flight stay within the budget; a very uneven mix may exceed
    /// it by the blobs whose share is below one request.
    pub fn ranges_for(&self, size: u64) -> usize {
        if self.large_bytes == 0 || size < LARGE_BLOB {
            return self.max_ranges;
        }
        let share = self.budget as u128 * size as u128 / self.large_bytes as u128;
        (share as usize).clamp(1, self.max_ranges)
    }
}

/// Blobs from this size (bytes) on are split into Range requests by the registry client
/// ([`fspack_registry::DownloadOptions`]'s `min_split`).
const LARGE_BLOB: u64 = 8 << 20;

/// Spreads a budget of `jobs × ranges` concurrent requests over the blobs still missing
/// (`sizes`, bytes): at least `jobs` blobs at once, more when more large blobs are wanted (up
/// to the budget), and each large blob its share of the budget by size in Range requests (1 to
/// `ranges`). Four 128 MiB blobs with `--jobs 4` get 4 requests each, as before; sixteen get one
/// each, sixteen at once: the same 16 connections, but every byte arrives in order, so it is
/// hashed from its buffer and written past the page cache (issue 9, loopback pull).
pub fn plan_lanes(sizes: &[u64], jobs: usize, ranges: usize) -> Lanes {
    let (jobs, ranges) = (jobs.max(1), ranges.max(1));
    let budget = jobs * ranges;
    let large: Vec<u64> = sizes.iter().copied().filter(|&s| s >= LARGE_BLOB).collect();
    Lanes {
        blobs: jobs.max(large.len().min(budget)),
        budget,
        max_ranges: ranges,
        large_bytes: large.iter().sum(),
    }
}

/// Resolves `r` to an image manifest, following an index to its first fspack (or first) entry;
/// [`Fetched::index`] then names the index.
pub async fn fetch_manifest(client: &Client, r: &Reference) -> Result<Fetched> {
    let (media_type, bytes, digest) = client.get_manifest(r).await?;
    if media_type == MEDIA_INDEX
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
    {
        let index_digest = digest;
        let index: Index = crate::artifact::parse_index(&bytes, &r.to_string())?;
        let entry = index
            .manifests
            .iter()
            .find(|d| d.artifact_type.as_deref() == Some(ARTIFACT_TYPE))
            .or_else(|| index.manifests.first())
            .ok_or_else(|| EngineError::NotFound(format!("index {r} lists no manifests")))?;
        require_sha256(&entry.digest).map_err(|e| EngineError::Integrity(format!("{r}: {e}")))?;
        let mut pinned = r.clone();
        pinned.digest = Some(entry.digest.clone());
        let (mt, bytes, digest) = client.get_manifest(&pinned).await?;
        if mt == MEDIA_INDEX {
            return Err(EngineError::Usage(format!(
                "{r}: nested indexes are not followed"
            )));
        }
        let manifest = parse_manifest(&bytes, &r.to_string())?;
        return Ok(Fetched {
            manifest,
            bytes,
            digest,
            trust_checks: Vec::new(),
            index: Some(index_digest),
        });
    }
    let manifest = parse_manifest(&bytes, &r.to_string())?;
    Ok(Fetched {
        manifest,
        bytes,
        digest,
        trust_checks: Vec::new(),
        index: None,
    })
}

/// The manifest of `r`, its mount plan, and the signatures and policy checked (issue 12): what
/// every pull does before it fetches a layer byte, so that a refusal leaves nothing fetched but
/// the manifest and signatures.
///
/// Errors: those of [`fetch_manifest`] and [`MountPlan::from_manifest`], and the trust refusal.
pub async fn fetch_trusted(
    client: &Client,
    r: &Reference,
    trust: &crate::trust::Trust,
) -> Result<(Fetched, MountPlan)> {
    let fetched = fetch_manifest(client, r).await?;
    let plan = MountPlan::from_manifest(&fetched.manifest, &r.to_string())?;
    let mut fetched = fetched;
    let verdict = trust.check(client, r, &fetched.digest).await?;
    for rule in &verdict.passed {
        tracing::info!(reference = %r, digest = %fetched.digest, "passed {rule}");
    }
    fetched.trust_checks = verdict.passed;
    Ok((fetched, plan))
}

/// Stores the config (when it is the empty one, which no registry is asked for) and the
/// manifest of `fetched`, and with `tag` moves the store's tag for `r` to it. Called only once
/// every layer blob is committed: the store never tags a manifest it cannot mount.
pub(crate) fn store_manifest(
    store: &Store,
    r: &Reference,
    fetched: &Fetched,
    tag: bool,
) -> Result<()> {
    if fetched.manifest.config.digest == empty_config().digest {
        store.put_blob_bytes(EMPTY_CONFIG_DATA)?;
    }
    let digest = store.put_blob_bytes(&fetched.bytes)?;
    debug_assert_eq!(digest, fetched.digest);
    if tag {
        store.tag(
            &r.to_string(),
            &fetched.digest,
            MEDIA_MANIFEST,
            fetched.bytes.len() as u64,
        )?;
    }
    Ok(())
}

/// Refuses a pull whose blobs cannot fit in the store before a byte is fetched (s12 fresh-eyes
/// pass: a pull into a small store failed midway with ENOSPC, leaving partial downloads that
/// kept the store full). Counts what each blob still needs ([`Store::bytes_to_write`]: a
/// resumed pull's partial data is already there) against [`fspack_store::free_bytes`]; the
/// check is skipped when the free space cannot be read.
///
/// Errors: [`EngineError::Io`] (`StorageFull`) naming the store, both sizes in bytes and MiB,
/// and what can be dropped.
fn check_room(store: &Store, r: &Reference, wanted: &[Descriptor]) -> Result<()> {
    let need: u64 = wanted
        .iter()
        .map(|d| store.bytes_to_write(&d.digest, d.size))
        .sum();
    let Ok(free) = fspack_store::free_bytes(store.root()) else {
        return Ok(());
    };
    if need <= free {
        return Ok(());
    }
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    Err(EngineError::Io {
        path: store.root().to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            format!(
                "pulling {r} needs {need} more bytes ({:.1} MiB) in the store, {free} ({:.1} MiB) are free; nothing was fetched\nhint: {}",
                mib(need),
                mib(free),
                fspack_store::full_store_advice(store.root())
            ),
        ),
    })
}

/// Pulls `r` into `store` and tags it there with the reference's text.
pub async fn pull(
    client: &Client,
    r: &Reference,
    store: Arc<Store>,
    settings: &PullSettings,
    reporter: Arc<dyn Reporter>,
) -> Result<(PullReport, Fetched)> {
    let started = Instant::now();
    let (fetched, plan) = fetch_trusted(client, r, &settings.trust).await?;
    let mut pinned = r.clone();
    pinned.digest = Some(fetched.digest.clone());
    // gc keeps what this pull commits until it is tagged, or resumed within a day.
    store.note_pull(&fetched.digest, &fetched.bytes)?;

    let mut wanted: Vec<Descriptor> = Vec::new();
    for d in plan.blobs() {
        if !wanted.iter().any(|w| w.digest == d.digest) {
            wanted.push(d.clone());
        }
    }
    reporter.plan_total(wanted.iter().map(|d| d.size).sum());
    let missing: Vec<u64> = wanted
        .iter()
        .filter(|d| !store.has_blob(&d.digest))
        .map(|d| d.size)
        .collect();
    check_room(&store, r, &wanted)?;
    let lanes = plan_lanes(&missing, settings.jobs, settings.ranges);
    let work = wanted.iter().enumerate().map(|(i, d)| {
        let (store, reporter, pinned) = (store.clone(), reporter.clone(), pinned.clone());
        let ranges = lanes.ranges_for(d.size);
        async move {
            let got =
                crate::fetch::fetch_blob(client, &pinned, d, &store, ranges, &reporter).await?;
            Ok::<_, EngineError>((
                i,
                PulledLayer {
                    digest: d.digest.clone(),
                    title: crate::artifact::layer_title(d),
                    media_type: d.media_type.clone(),
                    size: d.size,
                    cached: got.cached,
                    chunk_verified: got.chunked,
                    bytes_received: got.stats.bytes_received,
                    chunks_refetched: got.stats.chunks_refetched,
                },
            ))
        }
    });
    let mut done: Vec<(usize, PulledLayer)> = stream::iter(work)
        .buffer_unordered(lanes.blobs)
        .try_collect()
        .await?;
    // Blobs finish in any order; the report lists them in layer order, as push and inspect do
    // (s12 fresh-eyes pass: cached layers came first, then the rest as they finished).
    done.sort_by_key(|(i, _)| *i);
    let layers: Vec<PulledLayer> = done.into_iter().map(|(_, l)| l).collect();

    // Config and manifest last, then the tag: the store never names an image it cannot mount.
    store_manifest(&store, r, &fetched, true)?;
    store.pull_done(&fetched.digest);
    let bytes_fetched = layers.iter().filter(|l| !l.cached).map(|l| l.size).sum();
    let bytes_received = layers.iter().map(|l| l.bytes_received).sum();
    let chunks_refetched = layers.iter().map(|l| l.chunks_refetched).sum();
    let report = PullReport {
        reference: r.to_string(),
        manifest_digest: fetched.digest.clone(),
        format: plan.format().into(),
        layers,
        bytes_fetched,
        bytes_received,
        chunks_refetched,
        seconds: started.elapsed().as_secs_f64(),
        blobs_repaired: 0,
        mounted_at: None,
        notes: Vec::new(),
        trust_checks: fetched.trust_checks.clone(),
    };
    Ok((report, fetched))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_request_budget_goes_to_more_blobs_before_more_ranges() {
        // The capped bench profile: four large blobs and two small ones, --jobs 4.
        let l = plan_lanes(
            &[128 * MIB, 128 * MIB, 128 * MIB, 128 * MIB, MIB, 24_000],
            4,
            4,
        );
        assert_eq!(l.blobs, 4);
        assert_eq!(l.ranges_for(128 * MIB), 4);
        // The loopback model: sixteen large blobs, each streamed in order, sixteen at once.
        let l = plan_lanes(&[128 * MIB; 16], 4, 4);
        assert_eq!((l.blobs, l.ranges_for(128 * MIB)), (16, 1));
        // One huge blob beside many smaller ones keeps its Range requests.
        let mut sizes = vec![10 * MIB; 15];
        sizes.push(10_000 * MIB);
        let l = plan_lanes(&sizes, 4, 4);
        assert_eq!(
            (l.blobs, l.ranges_for(10_000 * MIB), l.ranges_for(10 * MIB)),
            (16, 4, 1)
        );
        // More blobs than the budget: the budget bounds the blobs at once.
        let l = plan_lanes(&[64 * MIB; 40], 2, 3);
        assert_eq!((l.blobs, l.ranges_for(64 * MIB)), (6, 1));
        // --jobs 1 stays one blob, one request.
        let l = plan_lanes(&[128 * MIB; 16], 1, 1);
        assert_eq!((l.blobs, l.ranges_for(128 * MIB)), (1, 1));
        assert_eq!(plan_lanes(&[], 4, 4).blobs, 4);
    }
}
