//! fspack against a real registry (CNCF distribution from Debian, started per test on
//! 127.0.0.1): push, inspect, pull, mount, and what another client sees.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::trees::{SnapOpts, TreeOpts, assert_same, can_mount, have_tool, make_tree, snapshot};
use common::*;
use predicates::prelude::*;

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "fspack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .arg("-fsS")
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn model(dir: &Path) {
    fs::create_dir_all(dir.join("tokenizer")).unwrap();
    for i in 0..3u8 {
        let data: Vec<u8> = (0..(3u32 << 20))
            .map(|x| (x.wrapping_mul(2_654_435_761) >> 13) as u8 ^ i)
            .collect();
        fs::write(dir.join(format!("model-{i}.safetensors")), data).unwrap();
    }
    fs::write(dir.join("config.json"), br#"{"hidden_size": 4096}"#).unwrap();
    fs::write(dir.join("tokenizer/tokenizer.json"), vec![b'x'; 50_000]).unwrap();
    for i in 0..20 {
        fs::write(dir.join(format!("notes-{i}.txt")), format!("note {i}\n")).unwrap();
    }
}

#[test]
fn push_is_read_back_byte_for_byte_by_skopeo_and_curl() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    model(&src);
    let reference = format!("{}/models/demo:v1", reg.addr);
    let report = json(
        &fspack(tmp.path())
            .arg("push")
            .arg(&src)
            .arg(&reference)
            .args(["--blob-size", "2M", "--json"])
            .output()
            .unwrap(),
    );
    let layers = report["layers"].as_array().unwrap();
    assert!(
        layers.len() >= 5,
        "3 x 3 MiB in 2 MiB blobs gives several blobs: {report}"
    );
    // The same build on disk gives the bytes the registry must hold.
    fspack(tmp.path())
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(tmp.path().join("local.erofs"))
        .args(["--layout", "chunked", "--blob-size", "2M"])
        .assert()
        .success();
    for l in layers {
        let title = l["title"].as_str().unwrap();
        let local = if title == "meta.erofs" {
            tmp.path().join("local.erofs")
        } else {
            tmp.path().join("local.erofs.d").join(title)
        };
        let url = format!(
            "http://{}/v2/models/demo/blobs/{}",
            reg.addr,
            l["digest"].as_str().unwrap()
        );
        // The blob is the local file followed by its chunk index (erofs-image-spec §3.4.3).
        let blob = curl(&[&url]);
        let local = fs::read(&local).unwrap();
        let chunks = (local.len() as u64).div_ceil(1 << 20);
        assert!(
            blob.len() as u64 == local.len() as u64 + 32 + 48 * chunks && blob.starts_with(&local),
            "blob {title} is not the local build plus its chunk index"
        );
        let range = l["annotations"]["org.erofs.chunk-index.range"].as_str();
        let want = format!("{}:{}", local.len(), blob.len());
        assert_eq!(range, Some(want.as_str()), "{l}");
    }
    if have_tool("skopeo") {
        let out = Command::new("skopeo")
            .args([
                "inspect",
                "--raw",
                "--tls-verify=false",
                &format!("docker://{reference}"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(m["artifactType"], "application/vnd.fspack.image.v1");
        assert_eq!(m["layers"].as_array().unwrap().len(), layers.len());
        let digest = format!(
            "sha256:{}",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&out.stdout))
        );
        assert_eq!(report["manifest_digest"], digest.as_str());
    }
}

#[test]
fn re_pushing_after_a_small_edit_sends_under_one_percent() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    model(&src);
    let reference = format!("{}/models/edit:v1", reg.addr);
    let push = |r: &str| {
        json(
            &fspack(tmp.path())
                .arg("push")
                .arg(&src)
                .arg(r)
                .args(["--blob-size", "4M", "--json"])
                .output()
                .unwrap(),
        )
    };
    let first = push(&reference);
    assert_eq!(first["bytes_skipped"], 0);
    fs::write(src.join("config.json"), br#"{"hidden_size": 8192}"#).unwrap();
    let second = push(&format!("{}/models/edit:v2", reg.addr));
    let sent = second["bytes_sent"].as_u64().unwrap();
    let total = sent + second["bytes_skipped"].as_u64().unwrap();
    assert!(sent * 100 < total, "re-push sent {sent} of {total} bytes");
    assert_ne!(first["manifest_digest"], second["manifest_digest"]);
}

#[test]
fn a_registry_with_basic_auth_needs_credentials() {
    let Some(reg) = Registry::start_with_auth("alice", "s3cret-canary") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), b"a").unwrap();
    let reference = format!("{}/private/m:v1", reg.addr);
    let docker = tmp.path().join("docker");
    fspack(tmp.path())
        .env("DOCKER_CONFIG", &docker)
        .arg("push")
        .arg(&src)
        .arg(&reference)
        .assert()
        .code(4)
        .stderr(
            predicate::str::contains(reg.addr.as_str())
                .and(predicate::str::contains("s3cret-canary").not()),
        );
    fspack(tmp.path())
        .env("DOCKER_CONFIG", &docker)
        .args(["login", &reg.addr, "-u", "alice", "--password-stdin"])
        .write_stdin("s3cret-canary\n")
        .assert()
        .success();
    fspack(tmp.path())
        .env("DOCKER_CONFIG", &docker)
        .arg("push")
        .arg(&src)
        .arg(&reference)
        .assert()
        .success();
    fspack(tmp.path())
        .env("DOCKER_CONFIG", &docker)
        .args(["inspect", &reference])
        .assert()
        .success();
}

#[test]
fn pulling_a_missing_tag_exits_3_and_names_it() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let reference = format!("{}/nothing/here:v9", reg.addr);
    fspack(&tmp.path().join("store"))
        .args(["pull", &reference])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("nothing/here"));
}

/// Uploads `data` as a blob with curl (an independent client) and returns its digest.
fn curl_blob(reg: &Registry, repo: &str, data: &[u8], dir: &Path) -> String {
    let digest = format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data))
    );
    let file = dir.join(digest.replace(':', "_"));
    fs::write(&file, data).unwrap();
    let out = Command::new("curl")
        .args(["-fsS", "-X", "POST", "-D", "-", "-o", "/dev/null"])
        .arg(format!("http://{}/v2/{repo}/blobs/uploads/", reg.addr))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stdout);
    let location = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .unwrap()
        .trim()
        .to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = if location.starts_with("http") {
        location
    } else {
        format!("http://{}{location}", reg.addr)
    };
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("{url}{sep}digest={digest}"),
    ]);
    digest
}

fn curl_manifest(reg: &Registry, repo: &str, tag: &str, media_type: &str, layer: (&str, u64)) {
    let config = curl_blob(reg, repo, b"{}", Path::new("/tmp"));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.other-tool",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": media_type, "digest": layer.0, "size": layer.1,
                    "annotations": {"org.opencontainers.image.title": "image"}}]
    });
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &manifest.to_string(),
        &format!("http://{}/v2/{repo}/manifests/{tag}", reg.addr),
    ]);
}

#[test]
fn an_artifact_with_a_layer_type_fspack_cannot_mount_is_refused_before_download() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let digest = curl_blob(&reg, "other/tool", b"not a filesystem", tmp.path());
    curl_manifest(
        &reg,
        "other/tool",
        "v1",
        "application/vnd.oci.image.layer.v1.tar+gzip",
        (&digest, 16),
    );
    let store = tmp.path().join("store");
    fspack(&store)
        .args(["pull", &format!("{}/other/tool:v1", reg.addr)])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("tar+gzip").and(predicate::str::contains("cannot mount")));
    let blobs = store.join("blobs/sha256");
    let n = fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0);
    assert_eq!(n, 0, "nothing may be stored for a refused artifact");
}

fn pull_mount_compare(reg: &Registry, tmp: &Path, reference: &str, src: &Path, extra: &[&str]) {
    let store = tmp.join("store");
    let mnt = tmp.join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let report = json(
        &fspack(&store)
            .args(["pull", reference, "--json", "--mount"])
            .arg(&mnt)
            .args(extra)
            .output()
            .unwrap(),
    );
    assert_eq!(report["mounted_at"], mnt.to_str().unwrap());
    let _ = reg;
    let ls = json(&fspack(&store).args(["ls", "--json"]).output().unwrap());
    assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
    assert_eq!(ls[0]["mounted"], true);
    let result = std::panic::catch_unwind(|| {
        assert_same(
            &snapshot(src, SnapOpts::KERNEL),
            &snapshot(&mnt, SnapOpts::KERNEL),
        )
    });
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    result.unwrap();
    assert_eq!(
        leftovers(tmp),
        Vec::<String>::new(),
        "umount must leave no mount or loop device behind"
    );
    let ls = json(&fspack(&store).args(["ls", "--json"]).output().unwrap());
    assert_eq!(ls.as_array().unwrap().len(), 0);
}

#[test]
fn privileged_push_pull_mount_round_trip_of_a_chunked_erofs_tree() {
    if !can_mount("erofs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(
        &src,
        &TreeOpts {
            big_dir: 1500,
            huge_sparse: true,
        },
    );
    let reference = format!("{}/trees/all-kinds:v1", reg.addr);
    fspack(tmp.path())
        .arg("push")
        .arg(&src)
        .arg(&reference)
        .args(["--blob-size", "1M"])
        .assert()
        .success();
    pull_mount_compare(&reg, tmp.path(), &reference, &src, &[]);
}

#[test]
fn privileged_single_erofs_image_through_loop_devices() {
    if !can_mount("erofs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(
        &src,
        &TreeOpts {
            big_dir: 300,
            huge_sparse: false,
        },
    );
    let image = tmp.path().join("single.erofs");
    fspack(tmp.path())
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&image)
        .assert()
        .success();
    let reference = format!("{}/trees/single:v1", reg.addr);
    fspack(tmp.path())
        .arg("push")
        .arg(&image)
        .arg(&reference)
        .assert()
        .success();
    pull_mount_compare(
        &reg,
        tmp.path(),
        &reference,
        &src,
        &["--mount-mode", "loop"],
    );
}

#[test]
fn privileged_an_erofs_artifact_pushed_by_another_client_mounts() {
    if !can_mount("erofs") || !have_tool("mkfs.erofs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/file.txt"), b"made by mkfs.erofs\n").unwrap();
    let image = tmp.path().join("foreign.erofs");
    assert!(
        Command::new("mkfs.erofs")
            .arg(&image)
            .arg(&src)
            .status()
            .unwrap()
            .success()
    );
    let data = fs::read(&image).unwrap();
    let digest = curl_blob(&reg, "foreign/erofs", &data, tmp.path());
    curl_manifest(
        &reg,
        "foreign/erofs",
        "v1",
        "application/vnd.erofs.layer.v1",
        (&digest, data.len() as u64),
    );
    let reference = format!("{}/foreign/erofs:v1", reg.addr);
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    fspack(&store)
        .args(["pull", &reference, "--mount"])
        .arg(&mnt)
        .assert()
        .success();
    let content = fs::read(mnt.join("d/file.txt"));
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    assert_eq!(content.unwrap(), b"made by mkfs.erofs\n");
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn privileged_two_concurrent_pulls_of_one_reference_both_succeed() {
    if !can_mount("erofs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    model(&src);
    let reference = format!("{}/models/shared:v1", reg.addr);
    fspack(tmp.path())
        .arg("push")
        .arg(&src)
        .arg(&reference)
        .args(["--blob-size", "2M"])
        .assert()
        .success();
    let store = tmp.path().join("store");
    let bin = assert_cmd::cargo::cargo_bin("fspack");
    let spawn = || {
        Command::new(&bin)
            .env("FSPACK_STORE", &store)
            .args(["pull", &reference, "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let (ra, rb) = (json(&a), json(&b));
    assert_eq!(ra["manifest_digest"], rb["manifest_digest"]);
    let fetched = ra["bytes_fetched"].as_u64().unwrap() + rb["bytes_fetched"].as_u64().unwrap();
    let total: u64 = ra["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["size"].as_u64().unwrap())
        .sum();
    assert_eq!(
        fetched, total,
        "each blob is fetched once between the two pulls"
    );
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    fspack(&store)
        .args(["mount", &reference])
        .arg(&mnt)
        .assert()
        .success();
    let same = fs::read(mnt.join("model-1.safetensors")).unwrap()
        == fs::read(src.join("model-1.safetensors")).unwrap();
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    assert!(same);
}

#[test]
fn a_pull_killed_at_random_points_resumes_and_never_stores_partial_blobs() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    fs::create_dir_all(&src).unwrap();
    for i in 0..4u8 {
        let data: Vec<u8> = (0..(24u32 << 20))
            .map(|x| (x.wrapping_mul(2_654_435_761) >> 11) as u8 ^ i)
            .collect();
        fs::write(src.join(format!("w{i}.bin")), data).unwrap();
    }
    let reference = format!("{}/models/killed:v1", reg.addr);
    let pushed = json(
        &fspack(tmp.path())
            .arg("push")
            .arg(&src)
            .arg(&reference)
            .args(["--blob-size", "16M", "--json"])
            .output()
            .unwrap(),
    );
    let store = tmp.path().join("store");
    let bin = assert_cmd::cargo::cargo_bin("fspack");
    for delay_ms in [30u64, 120, 250, 400] {
        let mut child = Command::new(&bin)
            .env("FSPACK_STORE", &store)
            .args(["pull", &reference, "--jobs", "2", "-q"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Whatever is under blobs/ at any point must hash to its name.
        for e in fs::read_dir(store.join("blobs/sha256"))
            .into_iter()
            .flatten()
        {
            let e = e.unwrap();
            let data = fs::read(e.path()).unwrap();
            let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
            assert_eq!(
                digest,
                e.file_name().to_string_lossy(),
                "a blob in the store does not match its digest"
            );
        }
    }
    let report = json(
        &fspack(&store)
            .args(["pull", &reference, "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(report["manifest_digest"], pushed["manifest_digest"]);
    for l in pushed["layers"].as_array().unwrap() {
        let p = store
            .join("blobs/sha256")
            .join(&l["digest"].as_str().unwrap()[7..]);
        assert_eq!(fs::metadata(&p).unwrap().len(), l["size"].as_u64().unwrap());
    }
}

#[test]
fn privileged_a_squashfs_image_made_by_mksquashfs_round_trips() {
    if !can_mount("squashfs") || !have_tool("mksquashfs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(
        &src,
        &TreeOpts {
            big_dir: 200,
            huge_sparse: false,
        },
    );
    let image = tmp.path().join("tree.sqfs");
    let out = Command::new("mksquashfs")
        .arg(&src)
        .arg(&image)
        .args(["-comp", "zstd", "-noappend", "-quiet"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = format!("{}/trees/squashfs:v1", reg.addr);
    fspack(tmp.path())
        .arg("push")
        .arg(&image)
        .arg(&reference)
        .assert()
        .success();
    // SquashFS keeps unsigned 32-bit seconds only: compare times as mksquashfs stores them.
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    fspack(&store)
        .args(["pull", &reference, "--mount"])
        .arg(&mnt)
        .assert()
        .success();
    let strip = |mut s: std::collections::BTreeMap<Vec<u8>, common::trees::Snap>| {
        for v in s.values_mut() {
            v.mtime = (v.mtime.0 as u32 as i64, 0);
        }
        s
    };
    let result = std::panic::catch_unwind(|| {
        assert_same(
            &strip(snapshot(&src, SnapOpts::KERNEL)),
            &strip(snapshot(&mnt, SnapOpts::KERNEL)),
        )
    });
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    result.unwrap();
    assert!(leftovers(tmp.path()).is_empty());
}

#[test]
fn privileged_a_directory_pushed_as_squashfs_shards_mounts_as_one_tree() {
    if !can_mount("squashfs") || !can_mount("overlay") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("model");
    model(&src);
    let reference = format!("{}/models/squashed:v1", reg.addr);
    let pushed = json(
        &fspack(tmp.path())
            .arg("push")
            .arg(&src)
            .arg(&reference)
            .args(["--format", "squashfs", "--blob-size", "4M", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(pushed["format"], "squashfs");
    assert!(
        pushed["layers"].as_array().unwrap().len() >= 3,
        "large files get shards of their own: {pushed}"
    );
    // SquashFS keeps whole seconds; overlayfs reports nlink 1 for directories merged from
    // several layers (it does not count subdirectories across layers).
    let strip = |mut s: std::collections::BTreeMap<Vec<u8>, common::trees::Snap>| {
        for v in s.values_mut() {
            v.mtime.1 = 0;
            if v.mode & 0o170000 == 0o040000 {
                v.nlink = 0;
            }
        }
        s
    };
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    fspack(&store)
        .args(["pull", &reference, "--mount"])
        .arg(&mnt)
        .assert()
        .success();
    let result = std::panic::catch_unwind(|| {
        assert_same(
            &strip(snapshot(&src, SnapOpts::KERNEL)),
            &strip(snapshot(&mnt, SnapOpts::KERNEL)),
        )
    });
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    result.unwrap();
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

/// A stand-in `docker-credential-<name>` helper keeping one file per server under `dir/helper`
/// (the protocol of docker-credential-helpers: `store` reads JSON, `get` and `erase` read the
/// server URL).
fn fake_credential_helper(dir: &Path, name: &str) -> std::ffi::OsString {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    let store = dir.join("helper");
    fs::create_dir_all(&store).unwrap();
    fs::create_dir_all(&bin).unwrap();
    let script = format!(
        r#"#!/bin/sh
set -e
key() {{ printf %s "$1" | tr -c 'A-Za-z0-9.-' _; }}
case "$1" in
store) body=$(cat); f="{store}/$(key "$(printf %s "$body" | jq -r .ServerURL)")"; printf %s "$body" > "$f" ;;
get) read -r server || true; f="{store}/$(key "$server")"
     if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
erase) read -r server || true; rm -f "{store}/$(key "$server")"; echo "$server" >> "{store}/erased" ;;
*) exit 2 ;;
esac
"#,
        store = store.display()
    );
    let path = bin.join(format!("docker-credential-{name}"));
    fs::write(&path, script).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    let mut p = std::ffi::OsString::from(bin);
    p.push(":");
    p.push(std::env::var_os("PATH").unwrap_or_default());
    p
}

#[test]
fn login_writes_to_the_configured_credential_helper_and_lookups_follow_dockers_order() {
    if !have_tool("jq") {
        return;
    }
    let Some(reg) = Registry::start_with_auth("alice", "s3cret-canary") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = fake_credential_helper(tmp.path(), "fspacktest");
    let src = tmp.path().join("model");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), b"a").unwrap();
    let reference = format!("{}/private/m:v1", reg.addr);
    let docker = tmp.path().join("docker");
    fs::create_dir(&docker).unwrap();
    let config = docker.join("config.json");
    let run = |args: &[&str]| {
        let mut c = fspack(&tmp.path().join("store"));
        c.env("DOCKER_CONFIG", &docker)
            .env("PATH", &path)
            .args(args);
        c
    };
    // credHelpers for this host wins over credsStore (whose helper does not even exist).
    fs::write(
        &config,
        serde_json::json!({
            "credsStore": "fspack-missing-helper",
            "credHelpers": {reg.addr.clone(): "fspacktest"},
        })
        .to_string(),
    )
    .unwrap();
    run(&["login", &reg.addr, "-u", "alice", "--password-stdin"])
        .write_stdin("s3cret-canary\n")
        .assert()
        .success()
        .stderr(predicate::str::contains("docker-credential-fspacktest"));
    let stored = fs::read_to_string(tmp.path().join("helper").join(reg.addr.replace(':', "_")))
        .expect("the helper received the credentials");
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["Username"], "alice");
    assert_eq!(stored["Secret"], "s3cret-canary");
    assert_eq!(stored["ServerURL"], reg.addr.as_str());
    let file = fs::read_to_string(&config).unwrap();
    assert!(
        !file.contains("s3cret") && !file.contains("czNjcmV0"),
        "{file}"
    );
    run(&["push", src.to_str().unwrap(), &reference])
        .assert()
        .success();

    // credsStore before an inline `auths` entry, as docker reads them: the wrong inline
    // password is not used.
    let wrong = base64_of("alice:wrong-password");
    fs::write(
        &config,
        serde_json::json!({
            "credsStore": "fspacktest",
            "auths": {reg.addr.clone(): {"auth": wrong}},
        })
        .to_string(),
    )
    .unwrap();
    run(&["inspect", &reference]).assert().success();
    // logout erases in the helper; the registry then refuses us.
    run(&["logout", &reg.addr]).assert().success();
    let erased = fs::read_to_string(tmp.path().join("helper/erased")).unwrap();
    assert_eq!(erased.trim(), reg.addr);
    run(&["inspect", &reference]).assert().code(4);
}

fn base64_of(s: &str) -> String {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}
