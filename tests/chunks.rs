//! Chunk-verified pulls against the real registry (issue 9): every layer fspack pushes carries a
//! chunk index, pulls check each chunk as it lands, a bad chunk is fetched again alone, a killed
//! pull resumes from its last good chunk, and `verify --repair` mends a damaged store chunk by
//! chunk. Faults come from a proxy in front of the real registry.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::proxy::{Fault, FaultProxy};
use common::trees::{SnapOpts, assert_same, can_mount, have_tool, snapshot};
use common::*;
use predicates::prelude::*;
use sha2::{Digest, Sha256};

const CHUNK: u64 = 1 << 20;

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "fspack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A small model: three 3 MiB weight files, a config and some notes.
fn model(dir: &Path, salt: u8) {
    fs::create_dir_all(dir).unwrap();
    for i in 0..3u8 {
        let data: Vec<u8> = (0..(3u32 << 20))
            .map(|x| (x.wrapping_mul(2_654_435_761) >> 13) as u8 ^ i ^ salt)
            .collect();
        fs::write(dir.join(format!("model-{i}.safetensors")), data).unwrap();
    }
    fs::write(dir.join("config.json"), br#"{"hidden_size": 4096}"#).unwrap();
    for i in 0..5 {
        fs::write(dir.join(format!("notes-{i}.txt")), format!("note {i}\n")).unwrap();
    }
}

fn push(tmp: &Path, src: &Path, reference: &str, extra: &[&str]) -> serde_json::Value {
    json(
        &fspack(&tmp.join("push-store"))
            .arg("push")
            .arg(src)
            .arg(reference)
            .arg("--json")
            .args(extra)
            .output()
            .unwrap(),
    )
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(p).unwrap()))
}

/// Every file under `blobs/` hashes to its name.
/// Runs `fspack ARGS` on `store`; returns its exit code and stderr.
fn run_on(store: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = fspack(store).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_store_sound(store: &Path) {
    for e in fs::read_dir(store.join("blobs/sha256"))
        .into_iter()
        .flatten()
    {
        let e = e.unwrap();
        assert_eq!(
            sha256_file(&e.path()),
            e.file_name().to_string_lossy(),
            "a blob in the store does not match its digest"
        );
    }
}

fn tag_digest(store: &Path, name: &str) -> Option<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(store.join("index.json")).ok()?).ok()?;
    index["manifests"].as_array()?.iter().find_map(|m| {
        (m["annotations"]["org.opencontainers.image.ref.name"] == name)
            .then(|| m["digest"].as_str().unwrap().to_string())
    })
}

#[test]
fn every_layer_fspack_pushes_carries_a_chunk_index_that_pulls_check() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    model(&src, 0);
    fspack(tmp.path())
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(tmp.path().join("single.erofs"))
        .assert()
        .success();
    let kinds: Vec<(String, PathBuf, Vec<&str>)> = vec![
        ("chunked".into(), src.clone(), vec!["--blob-size", "2M"]),
        ("single".into(), tmp.path().join("single.erofs"), vec![]),
        (
            "squashfs".into(),
            src.clone(),
            vec!["--format", "squashfs", "--shards", "2"],
        ),
    ];
    for (kind, source, extra) in kinds {
        let reference = format!("{}/models/kinds:{kind}", reg.addr);
        let pushed = push(tmp.path(), &source, &reference, &extra);
        for l in pushed["layers"].as_array().unwrap() {
            let url = format!(
                "http://{}/v2/models/kinds/blobs/{}",
                reg.addr,
                l["digest"].as_str().unwrap()
            );
            let blob = Command::new("curl").args(["-fsS", &url]).output().unwrap();
            assert!(blob.status.success());
            // The blob ends with a chunk index (magic CD E4 EC 67) over everything before it.
            let data = blob.stdout;
            let size = data.len() as u64;
            let chunks = (size - 32).div_ceil(CHUNK + 48);
            let index_len = 32 + 48 * chunks;
            let at = (size - index_len) as usize;
            assert_eq!(&data[at..at + 4], &[0xCD, 0xE4, 0xEC, 0x67], "{kind}: {l}");
        }
        let store = tmp.path().join(format!("store-{kind}"));
        let pulled = json(
            &fspack(&store)
                .args(["pull", &reference, "--json"])
                .output()
                .unwrap(),
        );
        for l in pulled["layers"].as_array().unwrap() {
            assert_eq!(l["chunk_verified"], true, "{kind}: {pulled}");
        }
        // A pull names each layer as the push did, and its JSON has one shape with or
        // without trust rules.
        let named = |report: &serde_json::Value| -> Vec<(String, String)> {
            let mut v: Vec<(String, String)> = report["layers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| (l["digest"].to_string(), l["title"].to_string()))
                .collect();
            v.sort();
            v
        };
        assert_eq!(named(&pulled), named(&pushed), "{kind}");
        assert_eq!(pulled["trust_checks"], serde_json::json!([]), "{kind}");
        assert_eq!(pulled["notes"], serde_json::json!([]), "{kind}");
        assert_eq!(pulled["chunks_refetched"], 0);
        assert_store_sound(&store);
        if kind == "chunked" {
            // The report lists layers in layer order, whatever order they finish in (s12
            // fresh-eyes pass: cached layers came first). With the first layer's blob gone, it
            // is the one fetched again, and the others, cached, finish before it.
            let order = |report: &serde_json::Value| -> Vec<String> {
                report["layers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| l["digest"].as_str().unwrap().to_string())
                    .collect()
            };
            let first = order(&pushed)[0].clone();
            assert!(order(&pushed).len() >= 3, "{pushed}");
            fs::remove_file(store.join("blobs/sha256").join(&first["sha256:".len()..])).unwrap();
            let again = json(
                &fspack(&store)
                    .args(["pull", &reference, "--json"])
                    .output()
                    .unwrap(),
            );
            assert_eq!(again["layers"][0]["cached"], false, "{again}");
            assert_eq!(order(&again), order(&pushed));
        }
    }
}

/// s12 fresh-eyes pass: a pull into a store too small for it failed midway with ENOSPC and left
/// its partial downloads there, keeping the store full. It is refused before a blob is fetched,
/// naming both sizes and what the store can drop.
#[test]
fn privileged_a_pull_that_cannot_fit_is_refused_before_fetching() {
    if !can_mount("tmpfs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    model(&src, 9);
    let reference = format!("{}/models/room:v1", reg.addr);
    push(tmp.path(), &src, &reference, &["--blob-size", "2M"]);
    let small = tmp.path().join("small");
    fs::create_dir(&small).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mounted.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _u = Unmount(small.clone());
    let store = small.join("store");
    let out = fspack(&store).args(["pull", &reference]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for part in [
        "more bytes",
        "are free; nothing was fetched",
        "gc --partial`",
    ] {
        assert!(stderr.contains(part), "{part}: {stderr}");
    }
    let partial = fs::read_dir(store.join("ingest"))
        .map(|d| {
            d.filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                n.to_string_lossy().ends_with(".data")
            })
            .count()
        })
        .unwrap_or(0);
    assert_eq!(partial, 0, "a refused pull fetched something");
    // With room, the same pull goes through.
    fspack(&tmp.path().join("store"))
        .args(["pull", &reference])
        .assert()
        .success();
}

#[test]
fn a_flipped_byte_in_one_range_response_costs_that_chunk_alone() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    model(&src, 1);
    let reference = format!("{}/models/flip:v1", reg.addr);
    let pushed = push(tmp.path(), &src, &reference, &["--blob-size", "2M"]);
    let total: u64 = pushed["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    let proxy = FaultProxy::start(&reg.addr, Fault::FlipFirst(1));
    let via = format!("{}/models/flip:v1", proxy.addr);
    let store = tmp.path().join("store");
    let pulled = json(
        &fspack(&store)
            .args(["pull", &via, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(
        proxy
            .counters
            .flips
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(pulled["chunks_refetched"], 1, "{pulled}");
    let received = pulled["bytes_received"].as_u64().unwrap();
    assert!(
        received <= total + CHUNK,
        "one bad chunk may cost one chunk: received {received} for {total}"
    );
    assert_store_sound(&store);
    assert_eq!(
        tag_digest(&store, &via).as_deref(),
        pushed["manifest_digest"].as_str()
    );
    // The summary line says what was received when it differs from the layers' size.
    let again = FaultProxy::start(&reg.addr, Fault::FlipFirst(1));
    let out = fspack(&tmp.path().join("store2"))
        .args(["pull", &format!("{}/models/flip:v1", again.addr)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(" received)"), "{stderr}");
    // The first size is named (s12 fresh-eyes pass: "280.03 MiB in 0.9s" said nothing of it).
    assert!(stderr.contains(" fetched in "), "{stderr}");
}

#[test]
fn a_chunk_wrong_on_every_try_exits_6_commits_nothing_and_keeps_the_tag() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (v1, v2) = (tmp.path().join("v1"), tmp.path().join("v2"));
    model(&v1, 2);
    model(&v2, 3);
    let proxy = FaultProxy::start(&reg.addr, Fault::None);
    let direct = format!("{}/models/bad:latest", reg.addr);
    let via = format!("{}/models/bad:latest", proxy.addr);
    let store = tmp.path().join("store");
    let first = push(tmp.path(), &v1, &direct, &[]);
    json(
        &fspack(&store)
            .args(["pull", &via, "--json"])
            .output()
            .unwrap(),
    );
    let before = tag_digest(&store, &via);
    assert_eq!(before.as_deref(), first["manifest_digest"].as_str());
    let blobs_before: Vec<String> = fs::read_dir(store.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    // v2 under the same tag, pulled through a proxy that corrupts every Range answer.
    let second = push(tmp.path(), &v2, &direct, &[]);
    proxy.set_fault(Fault::FlipAlways);
    let out = fspack(&store)
        .args(["pull", &via, "--jobs", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed verification 3 times") && stderr.contains(" (bytes "),
        "names the chunk: {stderr}"
    );
    assert!(stderr.contains(&proxy.addr), "names the registry: {stderr}");
    assert_eq!(tag_digest(&store, &via), before, "tag unchanged");
    for l in second["layers"].as_array().unwrap() {
        let d = &l["digest"].as_str().unwrap()[7..];
        assert!(
            blobs_before.iter().any(|b| b == d) || !store.join("blobs/sha256").join(d).exists(),
            "a blob of the refused pull was committed"
        );
    }
    assert_store_sound(&store);
}

/// Sum of the byte ranges `ingest/*.ranges` journals hold, plus committed layer blobs: what a
/// resumed pull need not fetch.
fn present_bytes(store: &Path, layers: &[serde_json::Value]) -> u64 {
    let mut n = 0;
    for l in layers {
        let hex = &l["digest"].as_str().unwrap()[7..];
        let size = l["size"].as_u64().unwrap();
        if store.join("blobs/sha256").join(hex).exists() {
            n += size;
            continue;
        }
        let Ok(text) = fs::read_to_string(store.join("ingest").join(format!("{hex}.ranges")))
        else {
            continue;
        };
        let mut ranges: Vec<(u64, u64)> = text
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (a, b) = l.split_once(' ')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            })
            .collect();
        ranges.sort();
        let mut end = 0;
        for (a, b) in ranges {
            let a = a.max(end);
            if b > a {
                n += b - a;
                end = b;
            }
        }
    }
    n
}

#[test]
fn a_pull_killed_at_random_points_fetches_again_at_most_a_chunk_per_stream() {
    killed_pulls_fetch_again_at_most_a_chunk_per_stream("killed", &["--blob-size", "16M"]);
}

/// The same bound for a ModelPack artifact, whose weight layers carry standalone chunk indexes
/// (issue 15): a raw layer resumes chunk by chunk like an EROFS data blob.
#[test]
fn a_modelpack_pull_killed_at_random_points_fetches_again_at_most_a_chunk_per_stream() {
    killed_pulls_fetch_again_at_most_a_chunk_per_stream("killed-modelpack", &["--modelpack"]);
}

/// Pushes four 12 MiB files with `push_args`, then ten times kills a pull (`--jobs 2`) after a
/// random delay and checks what the next pull fetches against what was missing.
fn killed_pulls_fetch_again_at_most_a_chunk_per_stream(repo: &str, push_args: &[&str]) {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    fs::create_dir_all(&src).unwrap();
    for i in 0..4u8 {
        let data: Vec<u8> = (0..(12u32 << 20))
            .map(|x| (x.wrapping_mul(2_654_435_761) >> 11) as u8 ^ i)
            .collect();
        fs::write(src.join(format!("w{i}.bin")), data).unwrap();
    }
    let reference = format!("{}/models/{repo}:v1", reg.addr);
    let pushed = push(tmp.path(), &src, &reference, push_args);
    let layers = pushed["layers"].as_array().unwrap().clone();
    let total: u64 = layers.iter().map(|l| l["size"].as_u64().unwrap()).sum();
    let bin = assert_cmd::cargo::cargo_bin("fspack");
    // --jobs 2: two blobs at once, two Range streams each.
    let streams = 4;
    let mut seed = 0x9e37_79b9_u64;
    let mut kept_something = false;
    for round in 0..10 {
        let store = tmp.path().join(format!("store-{round}"));
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = 20 + seed % 400;
        let mut child = Command::new(&bin)
            .env("FSPACK_STORE", &store)
            .args(["pull", &reference, "--jobs", "2", "-q"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        assert_store_sound(&store);
        let present = present_bytes(&store, &layers);
        let missing = total - present.min(total);
        kept_something |= present > 0 && present < total;
        let report = json(
            &fspack(&store)
                .args(["pull", &reference, "--json", "--jobs", "2"])
                .output()
                .unwrap(),
        );
        let received = report["bytes_received"].as_u64().unwrap();
        assert!(
            received <= missing + streams * CHUNK,
            "round {round} (killed after {delay} ms): fetched {received} bytes, {missing} were missing"
        );
        assert_store_sound(&store);
        assert_eq!(report["manifest_digest"], pushed["manifest_digest"]);
    }
    assert!(
        kept_something,
        "no kill landed mid-download; the bound was never exercised"
    );
}

#[test]
fn a_cached_blob_under_a_manifest_that_gives_it_another_size_is_refused() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    model(&src, 4);
    let reference = format!("{}/models/sizes:v1", reg.addr);
    push(tmp.path(), &src, &reference, &["--blob-size", "2M"]);
    let store = tmp.path().join("store");
    json(
        &fspack(&store)
            .args(["pull", &reference, "--json"])
            .output()
            .unwrap(),
    );
    // The same manifest with one layer's size off by one, under another tag.
    let url = format!("http://{}/v2/models/sizes/manifests/v1", reg.addr);
    let out = Command::new("curl")
        .args([
            "-fsS",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            &url,
        ])
        .output()
        .unwrap();
    let mut m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let size = m["layers"][0]["size"].as_u64().unwrap();
    m["layers"][0]["size"] = (size + 1).into();
    // As another tool would write it: no chunk index to disagree with the size first.
    let ann = m["layers"][0]["annotations"].as_object_mut().unwrap();
    ann.retain(|k, _| !k.starts_with("org.erofs.chunk-index"));
    let body = tmp.path().join("m.json");
    fs::write(&body, serde_json::to_vec(&m).unwrap()).unwrap();
    let put = Command::new("curl")
        .args([
            "-fsS",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.manifest.v1+json",
            "--data-binary",
        ])
        .arg(format!("@{}", body.display()))
        .arg(format!("http://{}/v2/models/sizes/manifests/v2", reg.addr))
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "registry refused: {}",
        String::from_utf8_lossy(&put.stderr)
    );
    let bad = format!("{}/models/sizes:v2", reg.addr);
    let out = fspack(&store).args(["pull", &bad]).output().unwrap();
    assert_eq!(out.status.code(), Some(6), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(m["layers"][0]["digest"].as_str().unwrap())
            && stderr.contains("the verified blob in the store has"),
        "{stderr}"
    );
    assert_eq!(
        tag_digest(&store, &bad),
        None,
        "no tag for the refused manifest"
    );
}

#[test]
fn skopeo_still_copies_and_verifies_an_artifact_with_chunk_indexes() {
    let Some(reg) = Registry::start() else { return };
    if !have_tool("skopeo") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    model(&src, 5);
    let reference = format!("{}/models/compat:v1", reg.addr);
    let pushed = push(tmp.path(), &src, &reference, &["--blob-size", "2M"]);
    let layout = tmp.path().join("copy");
    let out = Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:v1", layout.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // skopeo verified each blob's digest on the way; the layout holds every layer whole.
    for l in pushed["layers"].as_array().unwrap() {
        let p = layout
            .join("blobs/sha256")
            .join(&l["digest"].as_str().unwrap()[7..]);
        assert_eq!(fs::metadata(&p).unwrap().len(), l["size"].as_u64().unwrap());
        assert_eq!(sha256_file(&p), &l["digest"].as_str().unwrap()[7..]);
    }
}

#[test]
fn privileged_verify_names_a_zeroed_blob_and_repair_fetches_only_its_bad_chunk() {
    if !can_mount("erofs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    model(&src, 6);
    let reference = format!("{}/models/zeroed:v1", reg.addr);
    let pushed = push(tmp.path(), &src, &reference, &["--blob-size", "4M"]);
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    json(
        &fspack(&store)
            .args(["pull", &reference, "--json", "--mount"])
            .arg(&mnt)
            .output()
            .unwrap(),
    );
    let result = std::panic::catch_unwind(|| {
        // Read once, so the zeros below would stay in the page cache if nothing dropped it.
        assert_same(
            &snapshot(&src, SnapOpts::KERNEL),
            &snapshot(&mnt, SnapOpts::KERNEL),
        );
        let layer = pushed["layers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["title"] != "meta.erofs")
            .unwrap()
            .clone();
        let digest = layer["digest"].as_str().unwrap().to_string();
        let blob = store.join("blobs/sha256").join(&digest[7..]);
        // Zero 100 KiB inside the second chunk, in place (a disk fault, a stray dd).
        {
            use std::os::unix::fs::FileExt;
            let f = fs::OpenOptions::new().write(true).open(&blob).unwrap();
            f.write_all_at(&vec![0u8; 100 << 10], CHUNK + 4096).unwrap();
            f.sync_all().unwrap();
        }
        // Read the damage through the mount, so the zeros sit in the page cache.
        fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
        let damaged = (0..3).any(|i| {
            let name = format!("model-{i}.safetensors");
            fs::read(mnt.join(&name)).unwrap() != fs::read(src.join(&name)).unwrap()
        });
        assert!(
            damaged,
            "the zeroed chunk must be visible through the mount"
        );
        let out = fspack(&store).args(["verify", "--all"]).output().unwrap();
        assert_eq!(out.status.code(), Some(6), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&digest) && stderr.contains("chunk 1 (bytes 1048576-2097152)"),
            "{stderr}"
        );
        assert!(
            stderr.contains(mnt.to_str().unwrap()),
            "names the mount: {stderr}"
        );
        let out = fspack(&store)
            .args(["verify", &reference, "--repair", "--json"])
            .output()
            .unwrap();
        let report = json(&out);
        assert_eq!(report["bad"], 0, "{report}");
        assert_eq!(report["repaired"], 1, "{report}");
        let fixed = report["blobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["digest"] == digest.as_str())
            .unwrap();
        assert_eq!(fixed["status"], "repaired");
        assert_eq!(
            fixed["bytes_received"].as_u64().unwrap(),
            CHUNK,
            "only the bad chunk travels: {fixed}"
        );
        assert_eq!(sha256_file(&blob), &digest[7..]);
        fspack(&store).args(["verify", "--all"]).assert().success();
        // The live mount reads the repaired bytes.
        assert_same(
            &snapshot(&src, SnapOpts::KERNEL),
            &snapshot(&mnt, SnapOpts::KERNEL),
        );
    });
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    result.unwrap();
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

/// A model pushed to `registry` as `models/NAME:v1` and pulled into `dir/store`.
struct Pulled {
    reference: String,
    store: PathBuf,
    /// The first layer's digest, and its blob in the store.
    digest: String,
    blob: PathBuf,
}

fn pushed_and_pulled(dir: &Path, registry: &str, name: &str, salt: u8) -> Pulled {
    let src = dir.join("model");
    model(&src, salt);
    let reference = format!("{registry}/models/{name}:v1");
    let pushed = push(dir, &src, &reference, &["--blob-size", "4M"]);
    let store = dir.join("store");
    json(
        &fspack(&store)
            .args(["pull", &reference, "--json"])
            .output()
            .unwrap(),
    );
    let digest = pushed["layers"][0]["digest"].as_str().unwrap().to_string();
    let blob = store.join("blobs/sha256").join(&digest[7..]);
    Pulled {
        reference,
        store,
        digest,
        blob,
    }
}

#[test]
fn pull_verify_repairs_a_damaged_cached_blob_that_a_plain_pull_trusts() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Pulled {
        reference,
        store,
        digest,
        blob,
    } = pushed_and_pulled(tmp.path(), &reg.addr, "reverify", 7);
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&blob).unwrap();
        f.write_all_at(&[0u8; 4096], 2 * CHUNK + 100).unwrap();
    }
    // A plain pull counts the blob as cached; --verify re-hashes it and mends chunk 2 alone.
    let plain = json(
        &fspack(&store)
            .args(["pull", &reference, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(plain["bytes_received"], 0);
    let out = fspack(&store)
        .args(["pull", &reference, "--verify"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&digest) && stderr.contains(&format!("repaired ({CHUNK} bytes fetched)")),
        "{stderr}"
    );
    // The summary counts the repair as bytes this pull received.
    assert!(stderr.contains("; 1 blob repaired, "), "{stderr}");
    assert_store_sound(&store);
    // `-q` silences a clean check: its closing count is a message, not data.
    let quiet = fspack(&store)
        .args(["-q", "verify", "--all"])
        .output()
        .unwrap();
    assert!(quiet.status.success(), "{quiet:?}");
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "");
    // So does the JSON report, blob by blob.
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&blob).unwrap();
        f.write_all_at(&[0u8; 4096], 2 * CHUNK + 100).unwrap();
    }
    let report = json(
        &fspack(&store)
            .args(["pull", &reference, "--verify", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(report["blobs_repaired"], 1, "{report}");
    assert_eq!(report["bytes_received"], CHUNK, "{report}");
    let layer = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["digest"] == digest.as_str())
        .unwrap();
    assert_eq!(layer["bytes_received"], CHUNK, "{report}");
}

/// s9 fresh-eyes pass: a stored blob truncated or extended on disk was named "corrupt" with no
/// detail, its repair failed on the size ("expected 1000000 bytes, got ...") and a pull blamed
/// the manifest. Now `verify` names both sizes, `--repair` fetches the blob whole at the
/// manifest's size, and a plain pull that meets it fetches it again.
#[test]
fn a_blob_truncated_or_extended_on_disk_is_named_and_fetched_again_whole() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Pulled {
        reference,
        store,
        digest,
        blob,
    } = pushed_and_pulled(tmp.path(), &reg.addr, "truncated", 13);
    let size = fs::metadata(&blob).unwrap().len();
    let good = sha256_file(&blob);
    let set_len = |len: u64| {
        fs::OpenOptions::new()
            .write(true)
            .open(&blob)
            .unwrap()
            .set_len(len)
            .unwrap()
    };

    set_len(size / 3);
    let (code, stderr) = run_on(&store, &["verify", "--all"]);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{digest} corrupt: {} bytes on disk, its manifest says {size}",
            size / 3
        )) && stderr.contains("1 blob in the store is corrupt"),
        "{stderr}"
    );
    // Named with --store, not the environment: the hint names the store too, so it can be
    // copied as it is.
    let out = fspack(&store)
        .env_remove("FSPACK_STORE")
        .arg("--store")
        .arg(&store)
        .args(["verify", "--all"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "run `fspack --store {} verify --all --repair`",
            store.display()
        )),
        "{stderr}"
    );
    let out = fspack(&store)
        .args(["verify", "--all", "--repair", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report = json(&out);
    let repaired = report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["digest"] == digest.as_str())
        .unwrap();
    assert_eq!(repaired["status"], "repaired");
    assert_eq!(repaired["size"], size);
    assert_eq!(sha256_file(&blob), good);

    // Extended: the repair also cuts the file back to its size.
    set_len(size + 5);
    let (code, stderr) = run_on(&store, &["verify", "--all", "--repair"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sha256_file(&blob), good);

    set_len(size / 2);
    let (code, stderr) = run_on(&store, &["pull", &reference]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("the stored copy of blob {digest} was damaged")),
        "{stderr}"
    );
    assert_eq!(sha256_file(&blob), good);
    assert_store_sound(&store);
}

/// s9 fresh-eyes pass: `verify --repair` fetched a corrupt manifest from the registry's
/// `blobs/` endpoint, which does not serve manifests (exit 3); it comes from `manifests/`. And a
/// layer damaged beside it is mended in the same run, though only the mended manifest names it.
#[test]
fn verify_repair_fetches_a_corrupt_manifest_by_digest() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let Pulled {
        reference,
        store,
        digest,
        blob,
    } = pushed_and_pulled(tmp.path(), &reg.addr, "manifest", 17);
    let layer = fs::read(&blob).unwrap();
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&blob).unwrap();
        f.write_all_at(&[0u8; 4096], CHUNK + 10).unwrap();
    }
    let manifest = tag_digest(&store, &reference).expect("the pull tagged the manifest");
    let path = store.join("blobs/sha256").join(&manifest[7..]);
    let good = fs::read(&path).unwrap();
    let mut bad = good.clone();
    let at = bad.len() / 2;
    bad[at] ^= 0x20;
    fs::write(&path, &bad).unwrap();

    let (code, stderr) = run_on(&store, &["verify", "--all", "--repair"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{manifest} repaired ({} bytes fetched)",
            good.len()
        )) && stderr.contains(&format!("{digest} repaired ({CHUNK} bytes fetched)"))
            && stderr.contains("0 bad, 2 repaired"),
        "{stderr}"
    );
    assert_eq!(fs::read(&path).unwrap(), good);
    assert_eq!(fs::read(&blob).unwrap(), layer);
    assert_store_sound(&store);
}

/// Report items 2, 3 and 10: a blob that vanished from the store is reported by `verify --all`
/// as by `verify REF`, the hint names a command that works, `--repair` fetches it whole as a
/// pull would, and says why when the registry cannot be reached.
#[test]
fn verify_all_reports_a_missing_blob_and_repair_fetches_it_whole() {
    let Some(mut reg) = Registry::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let Pulled {
        reference,
        store,
        digest,
        blob,
    } = pushed_and_pulled(tmp.path(), &reg.addr, "missing", 11);
    fs::remove_file(&blob).unwrap();

    let (code, stderr) = run_on(&store, &["verify", "--all"]);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(
        stderr.contains(&format!("{digest} missing"))
            && stderr.contains(&format!("used by {reference}"))
            && stderr.contains("`fspack verify --all --repair`"),
        "{stderr}"
    );

    let (code, stderr) = run_on(&store, &["verify", "--all", "--repair"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("0 bad, 1 repaired"), "{stderr}");
    assert!(blob.is_file(), "the missing blob was not fetched again");
    assert_store_sound(&store);

    // Registry gone: the blob stays missing, the run says why, and exits 5 (trying again
    // later may work).
    fs::remove_file(&blob).unwrap();
    reg.kill();
    let (code, stderr) = run_on(&store, &["verify", &reference, "--repair"]);
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!("{digest} missing"))
            && stderr.contains(&format!("not repaired: cannot fetch it from {reference}"))
            && stderr.contains(&format!("blob {digest} is still missing from the store")),
        "{stderr}"
    );
}

/// Exit 6 says that retrying will not help. A blob that stays bad only because the registry
/// could not be reached during `--repair` is mended by the same command later, so that run
/// exits 5, naming the blob and the network error; beside a blob no retry can mend, or when the
/// registry serves wrong bytes, it stays 6.
#[test]
fn verify_repair_exits_5_while_the_registry_is_down_and_6_when_retrying_cannot_help() {
    let Some(mut reg) = Registry::start() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let Pulled {
        reference,
        store,
        digest,
        blob,
    } = pushed_and_pulled(tmp.path(), &reg.addr, "down", 23);
    let good = sha256_file(&blob);
    let damage = |blob: &Path| {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(blob)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, CHUNK + 5).unwrap();
        f.write_all_at(&[b[0] ^ 1], CHUNK + 5).unwrap();
    };
    damage(&blob);
    reg.kill();
    let (code, stderr) = run_on(&store, &["verify", &reference, "--repair"]);
    assert_eq!(code, Some(5), "{stderr}");
    assert!(
        stderr.contains(&format!("{digest} corrupt: chunk 1 "))
            && stderr.contains(&format!("not repaired: cannot GET http://{}/", reg.addr))
            && stderr.contains(&format!("nothing listens at {}", reg.addr))
            && stderr.contains(&format!(
                "error: blob {digest} in the store is still corrupt"
            ))
            && stderr.contains(&format!("`fspack verify {reference} --repair` again later")),
        "{stderr}"
    );
    // --json: the same exit, and the report names the blob and why it was not repaired.
    let out = fspack(&store)
        .args(["verify", &reference, "--repair", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bad = report["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["digest"] == digest.as_str())
        .unwrap();
    assert_eq!(bad["status"], "corrupt", "{report}");
    assert!(
        bad["repair_error"]
            .as_str()
            .unwrap()
            .contains("nothing listens at"),
        "{report}"
    );
    assert_eq!(report["bad"], 1, "{report}");

    // Beside it, a corrupt blob that no tag names (nothing says where to fetch it): a retry
    // cannot mend that one, so the run exits 6.
    // Named to sort last, so the first bad blob the run reports is the one a retry mends.
    let stray = store.join("blobs/sha256").join("f".repeat(64));
    fs::write(&stray, b"stray").unwrap();
    let (code, stderr) = run_on(&store, &["verify", "--all", "--repair"]);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(
        stderr.contains("error: 2 blobs in the store are corrupt or missing"),
        "{stderr}"
    );
    fs::remove_file(&stray).unwrap();

    // Later, the same command mends it.
    reg.restart();
    let (code, stderr) = run_on(&store, &["verify", &reference, "--repair"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(sha256_file(&blob), good);

    // A registry (here a proxy in front of it) that answers with wrong bytes: exit 6.
    let proxy = FaultProxy::start(&reg.addr, Fault::None);
    let via = format!("{}/models/down:v1", proxy.addr);
    let store2 = tmp.path().join("store-via-proxy");
    json(
        &fspack(&store2)
            .args(["pull", &via, "--json"])
            .output()
            .unwrap(),
    );
    let blob2 = store2.join("blobs/sha256").join(&digest[7..]);
    damage(&blob2);
    proxy.set_fault(Fault::FlipAlways);
    let (code, stderr) = run_on(&store2, &["verify", &via, "--repair"]);
    assert_eq!(code, Some(6), "{stderr}");
    assert!(stderr.contains("failed verification"), "{stderr}");
}

/// A `pull --mount` onto `new/deeper` (directories it creates) of a model pushed as `NAME:v1`,
/// through a proxy slow enough that the pull is still fetching when the test acts; returned
/// once the mount point exists. `None` where the registry or EROFS mounts are missing.
struct SlowPull {
    _reg: Registry,
    _proxy: FaultProxy,
    reference: String,
    store: PathBuf,
    new: PathBuf,
    mnt: PathBuf,
    child: std::process::Child,
}

fn slow_pull_mount(tmp: &Path, name: &str, salt: u8) -> Option<SlowPull> {
    if !can_mount("erofs") {
        return None;
    }
    let reg = Registry::start()?;
    let src = tmp.join("model");
    model(&src, salt);
    let reference = format!("{}/models/{name}:v1", reg.addr);
    push(tmp, &src, &reference, &["--blob-size", "2M"]);
    let proxy = FaultProxy::start(&reg.addr, Fault::None);
    proxy.set_delay_ms_per_mib(2_000);
    let via = format!("{}/models/{name}:v1", proxy.addr);
    let store = tmp.join("store");
    let new = tmp.join("new");
    let mnt = new.join("deeper");
    let child = Command::new(assert_cmd::cargo::cargo_bin("fspack"))
        .env("FSPACK_STORE", &store)
        .args(["pull", &via, "--mount"])
        .arg(&mnt)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !mnt.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pull never made {}",
            mnt.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(SlowPull {
        _reg: reg,
        _proxy: proxy,
        reference,
        store,
        new,
        mnt,
        child,
    })
}

/// Report item 24: Ctrl-C during `pull --mount` removes the mount-point directories fspack
/// created for it.
#[test]
fn privileged_an_interrupted_pull_mount_removes_the_mount_point_it_created() {
    signalled_pull_mount("-INT", "interrupt", 21);
}

/// SIGTERM, as `kill`, `timeout`, systemd and container runtimes send it, is answered as Ctrl-C
/// is (s9 fresh-eyes pass: it exited 143 and left the created directory).
#[test]
fn privileged_a_terminated_pull_mount_removes_the_mount_point_it_created() {
    signalled_pull_mount("-TERM", "terminate", 23);
}

/// Sends `signal` (a `kill` flag) to a slow `pull --mount` that had to create its mount point,
/// and checks that it exits 130 and leaves nothing behind.
fn signalled_pull_mount(signal: &str, name: &str, salt: u8) {
    let tmp = tempfile::tempdir().unwrap();
    // The registry and proxy are bound: an unbound field would drop (and stop) at once.
    let Some(SlowPull {
        _reg: _r,
        _proxy: _p,
        store,
        new,
        child,
        ..
    }) = slow_pull_mount(tmp.path(), name, salt)
    else {
        return;
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let st = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!new.exists(), "{} was left behind", new.display());
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    assert_no_pending_dirs(&store);
}

/// Report s7 item: `kill -9` during `pull --mount` leaves the directories it created, since
/// nothing runs to remove them; the next pull onto the same point takes them over, so its
/// `umount` removes them as if that pull had made them.
#[test]
fn privileged_a_killed_pull_mount_leaves_its_created_dirs_to_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(SlowPull {
        _reg: _r,
        _proxy: _p,
        reference,
        store,
        new,
        mnt,
        mut child,
    }) = slow_pull_mount(tmp.path(), "killed", 22)
    else {
        return;
    };
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(mnt.is_dir(), "nothing ran to remove {}", mnt.display());

    fspack(&store)
        .args(["pull", &reference, "--mount"])
        .arg(&mnt)
        .assert()
        .success();
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    assert!(!new.exists(), "{} was left behind", new.display());
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
    assert_no_pending_dirs(&store);
}

/// s10 fresh-eyes pass: two mounts started together on one directory both passed the "already
/// an fspack mount" check and stacked; `umount` then removed one and left the other with its
/// loop devices. The first command now holds the mount point until its mount is recorded, and
/// the second is refused at once (exit 2) while the first goes on.
#[test]
fn privileged_a_second_mount_on_a_directory_being_mounted_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(SlowPull {
        _reg: _r,
        _proxy: proxy,
        reference,
        store,
        new,
        mnt,
        child,
    }) = slow_pull_mount(tmp.path(), "twice", 23)
    else {
        return;
    };
    // The first pull has made the directory and is downloading (2 s per MiB).
    std::thread::sleep(std::time::Duration::from_millis(300));
    fspack(&store)
        .args(["mount", &reference])
        .arg(&mnt)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "another fspack command is mounting on {}",
            mnt.display()
        )));
    // Refused before it touched anything: the first pull's directories are still there.
    assert!(mnt.is_dir());
    proxy.set_delay_ms_per_mib(0);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let on_mnt = mounts
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(mnt.to_str().unwrap()))
        .count();
    assert_eq!(on_mnt, 1, "{mounts}");
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    assert!(!new.exists(), "{} was left behind", new.display());
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

/// No note of created directories is left in the store (`mounts/*.dirs`): a mount recorded,
/// given up or undone takes its note with it.
fn assert_no_pending_dirs(store: &Path) {
    let notes: Vec<_> = fs::read_dir(store.join("mounts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "dirs"))
        .collect();
    assert!(notes.is_empty(), "notes of created dirs left: {notes:?}");
}

/// s10 fresh-eyes pass: a plain `pull` (no `--mount`) died by SIGTERM (143) or SIGINT and said
/// nothing; `push`, `verify` and `pull --mount` exit 130 with a line. It exits 130 now, says
/// that what arrived is kept, and the next pull resumes.
#[test]
fn an_interrupted_plain_pull_exits_130_and_the_next_resumes() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    model(&src, 31);
    let reference = format!("{}/models/plain:v1", reg.addr);
    push(tmp.path(), &src, &reference, &["--blob-size", "2M"]);
    let proxy = FaultProxy::start(&reg.addr, Fault::None);
    proxy.set_delay_ms_per_mib(2_000);
    let via = format!("{}/models/plain:v1", proxy.addr);
    let store = tmp.path().join("store");
    for signal in ["-TERM", "-INT"] {
        let child = Command::new(assert_cmd::cargo::cargo_bin("fspack"))
            .env("FSPACK_STORE", &store)
            .args(["pull", &via])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(
            Command::new("kill")
                .args([signal, &child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{signal}: {stderr}");
        assert!(stderr.contains("run the same pull to resume"), "{stderr}");
    }
    // gc keeps the partial downloads for a day; `gc --partial` drops them now.
    let partials = || {
        fs::read_dir(store.join("ingest"))
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                n.to_string_lossy().ends_with(".data")
            })
            .count()
    };
    assert!(partials() > 0, "an interrupted pull keeps what arrived");
    // What it committed (its manifest, and any finished blob) is not gc's either, for a day.
    let blobs = || fs::read_dir(store.join("blobs/sha256")).unwrap().count();
    let committed = blobs();
    assert!(committed > 0);
    fspack(&store)
        .arg("gc")
        .assert()
        .success()
        .stderr(predicate::str::contains("`gc --partial`: now"));
    assert!(partials() > 0);
    assert_eq!(blobs(), committed, "gc removed an unfinished pull's blobs");
    fspack(&store).args(["gc", "--partial"]).assert().success();
    assert_eq!(partials(), 0);
    assert_eq!(blobs(), 0);
    proxy.set_delay_ms_per_mib(0);
    fspack(&store).args(["pull", &via]).assert().success();
    assert_store_sound(&store);
}
