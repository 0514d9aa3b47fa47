//! Model artifacts made by other tools (issue 15), built here the way modctl builds them and
//! uploaded with curl to a real registry: fspack mounts them with no second copy, and refuses
//! hostile ones before anything is mounted.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::trees::can_mount;
use common::*;
use predicates::prelude::*;
use serde_json::json;

const WEIGHT_RAW: &str = "application/vnd.cncf.model.weight.v1.raw";
const WEIGHT_TAR: &str = "application/vnd.cncf.model.weight.v1.tar";
const WEIGHT_CONFIG_RAW: &str = "application/vnd.cncf.model.weight.config.v1.raw";
const DOC_TAR_GZIP: &str = "application/vnd.cncf.model.doc.v1.tar+gzip";

fn sha256(data: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data))
    )
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

/// Uploads `data` with curl (POST for a session, then one PUT) and returns digest and size.
fn upload(reg: &Registry, repo: &str, data: &[u8], dir: &Path) -> (String, u64) {
    let digest = sha256(data);
    let file = dir.join(digest.replace(':', "_"));
    fs::write(&file, data).unwrap();
    let headers = curl(&[
        "-X",
        "POST",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("http://{}/v2/{repo}/blobs/uploads/", reg.addr),
    ]);
    let headers = String::from_utf8_lossy(&headers);
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
    (digest, data.len() as u64)
}

/// One layer as modctl writes it: media type, bytes, file path and optional file metadata.
struct Layer {
    media_type: &'static str,
    bytes: Vec<u8>,
    filepath: String,
    metadata: Option<serde_json::Value>,
}

/// Pushes a ModelPack manifest (artifactType, model config with diffIds, one layer per file).
fn push_modelpack(reg: &Registry, repo: &str, tag: &str, layers: &[Layer], dir: &Path) -> String {
    push_model(
        reg,
        repo,
        tag,
        layers,
        dir,
        Some("application/vnd.cncf.model.manifest.v1+json"),
        "application/vnd.cncf.model.config.v1+json",
    )
}

/// Pushes a model manifest with this artifact type and config media type.
fn push_model(
    reg: &Registry,
    repo: &str,
    tag: &str,
    layers: &[Layer],
    dir: &Path,
    artifact_type: Option<&str>,
    config_type: &str,
) -> String {
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let (digest, size) = upload(reg, repo, &l.bytes, dir);
        let mut ann = if l.filepath.is_empty() {
            json!({})
        } else {
            json!({"org.cncf.model.filepath": l.filepath})
        };
        if let Some(m) = &l.metadata {
            ann["org.cncf.model.file.metadata+json"] = json!(m.to_string());
        }
        diff_ids.push(if l.media_type.ends_with("+gzip") {
            let mut out = Vec::new();
            use std::io::Read;
            flate2::read::GzDecoder::new(l.bytes.as_slice())
                .read_to_end(&mut out)
                .unwrap();
            sha256(&out)
        } else {
            digest.clone()
        });
        descs.push(
            json!({"mediaType": l.media_type, "digest": digest, "size": size, "annotations": ann}),
        );
    }
    let config = json!({
        "descriptor": {"name": "tiny-llm", "createdAt": "2026-01-01T00:00:00Z"},
        "config": {"format": "safetensors", "paramSize": "1M"},
        "modelfs": {"type": "layers", "diffIds": diff_ids},
    })
    .to_string();
    let (cdigest, csize) = upload(reg, repo, config.as_bytes(), dir);
    let mut manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_type, "digest": cdigest, "size": csize},
        "layers": descs,
    });
    if let Some(t) = artifact_type {
        manifest["artifactType"] = json!(t);
    }
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &manifest.to_string(),
        &format!("http://{}/v2/{repo}/manifests/{tag}", reg.addr),
    ]);
    format!("{}/{repo}:{tag}", reg.addr)
}

fn weights(n: usize, seed: u8) -> Vec<u8> {
    (0..n as u32)
        .map(|x| (x.wrapping_mul(2_654_435_761) >> 13) as u8 ^ seed)
        .collect()
}

/// A reproducible tar of `files` (path, bytes) the way model-spec asks for one: sorted, fixed
/// mtime, owner 0:0, normalised modes (the `tar` crate's deterministic mode).
fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    let mut sorted = files.to_vec();
    sorted.sort();
    for (name, data) in sorted {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        b.append_data(&mut h, name, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Regular files by relative path: (bytes, mode bits, mtime seconds).
type Files = BTreeMap<String, (Vec<u8>, u32, i64)>;

/// An edit that makes a layer list hostile.
type Edit = Box<dyn FnOnce(&mut Vec<Layer>)>;

/// Regular files under `root`.
fn files_of(root: &Path) -> Files {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, (fs::read(&p).unwrap(), m.mode() & 0o7777, m.mtime()));
            }
        }
    }
    out
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().blocks() * 512)
        .sum()
}

fn modctl_layers() -> (Vec<Layer>, Files) {
    let w1 = weights(3 << 20, 1);
    let w2 = weights((2 << 20) + 1234, 2);
    let cfg = br#"{"hidden_size": 64, "num_layers": 2}"#.to_vec();
    let tok = weights(70_001, 3);
    let readme = b"# tiny-llm\nA test model.\n".to_vec();
    let license = b"Apache-2.0\n".to_vec();
    let docs = gzip(&tar_of(&[
        ("README.md", &readme),
        ("docs/LICENSE", &license),
    ]));
    let meta = |name: &str, mode: u32, size: usize| {
        json!({"name": name, "mode": mode, "uid": 0, "gid": 0, "size": size,
               "mtime": "2025-06-01T12:00:00.5+02:00", "typeflag": 48})
    };
    let layers = vec![
        Layer {
            media_type: WEIGHT_RAW,
            bytes: w1.clone(),
            filepath: "model-00001-of-00002.safetensors".into(),
            metadata: Some(meta("model-00001-of-00002.safetensors", 0o640, w1.len())),
        },
        Layer {
            media_type: WEIGHT_TAR,
            bytes: tar_of(&[("model-00002-of-00002.safetensors", &w2)]),
            filepath: "model-00002-of-00002.safetensors".into(),
            metadata: None,
        },
        Layer {
            media_type: WEIGHT_CONFIG_RAW,
            bytes: cfg.clone(),
            filepath: "config.json".into(),
            metadata: None,
        },
        Layer {
            media_type: WEIGHT_CONFIG_RAW,
            bytes: tok.clone(),
            filepath: "tokenizer/tokenizer.json".into(),
            metadata: Some(meta("tokenizer.json", 0o444, tok.len())),
        },
        Layer {
            media_type: DOC_TAR_GZIP,
            bytes: docs,
            filepath: "README.md".into(),
            metadata: None,
        },
    ];
    // 2025-06-01T12:00:00+02:00 is 1748772000.
    let expected = BTreeMap::from([
        (
            "model-00001-of-00002.safetensors".to_string(),
            (w1, 0o640, 1_748_772_000),
        ),
        (
            "model-00002-of-00002.safetensors".to_string(),
            (w2, 0o644, 1_700_000_000),
        ),
        ("config.json".to_string(), (cfg, 0o644, 0)),
        (
            "tokenizer/tokenizer.json".to_string(),
            (tok, 0o444, 1_748_772_000),
        ),
        ("README.md".to_string(), (readme, 0o644, 1_700_000_000)),
        ("docs/LICENSE".to_string(), (license, 0o644, 1_700_000_000)),
    ]);
    (layers, expected)
}

#[test]
fn privileged_a_modelpack_built_like_modctl_mounts_the_exact_tree_with_no_copy() {
    if !can_mount("erofs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (layers, expected) = modctl_layers();
    let reference = push_modelpack(&reg, "models/tiny", "v1", &layers, tmp.path());
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let out = fspack(&store)
        .args(["pull", &reference, "--json", "--mount"])
        .arg(&mnt)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "pull --mount failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = std::panic::catch_unwind(|| {
        assert_eq!(report["format"], "modelpack", "{report}");
        assert!(
            stderr.contains("expanded once"),
            "the tar+gzip layer is expanded with a note: {stderr}"
        );
        let got = files_of(&mnt);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            expected.keys().collect::<Vec<_>>()
        );
        for (k, (bytes, mode, mtime)) in &expected {
            let (gb, gm, gt) = &got[k];
            assert!(gb == bytes, "{k}: content differs");
            assert_eq!((gm, gt), (mode, mtime), "{k}: mode and mtime");
        }
        let root = fs::metadata(&mnt).unwrap();
        assert_eq!(
            root.mode() & 0o7777,
            0o755,
            "the root's mode is set on purpose"
        );
        assert_eq!((root.uid(), root.gid()), (0, 0));
    });
    // Each weight byte is stored once: the blobs are the layers, plus the expanded doc tar and
    // the small metadata image.
    let layer_bytes: u64 = layers.iter().map(|l| l.bytes.len() as u64).sum();
    let stored = dir_bytes(&store.join("blobs/sha256"));
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    result.unwrap();
    eprintln!("layers {layer_bytes} bytes, store {stored} bytes");
    assert!(
        stored < layer_bytes + (64 << 10),
        "the store holds {stored} bytes for {layer_bytes} bytes of layers: a copy was made"
    );
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());

    // A second mount reuses the expansion and the metadata image.
    let out = fspack(&store)
        .args(["mount", &reference])
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = String::from_utf8_lossy(&out.stderr).into_owned();
    let same = files_of(&mnt).len();
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    assert!(
        !again.contains("expanded once"),
        "expanded only once: {again}"
    );
    assert_eq!(same, expected.len());
    assert_eq!(dir_bytes(&store.join("blobs/sha256")), stored);
}

/// A raw layer list with one hostile change, pushed as its own tag.
fn hostile(
    reg: &Registry,
    dir: &Path,
    tag: &str,
    edit: impl FnOnce(&mut Vec<Layer>),
) -> (String, Vec<Layer>) {
    let mut layers = vec![
        Layer {
            media_type: WEIGHT_RAW,
            bytes: weights(100_000, 7),
            filepath: "a.safetensors".into(),
            metadata: None,
        },
        Layer {
            media_type: WEIGHT_CONFIG_RAW,
            bytes: b"{}".to_vec(),
            filepath: "config.json".into(),
            metadata: None,
        },
    ];
    edit(&mut layers);
    let r = push_modelpack(reg, "models/hostile", tag, &layers, dir);
    (r, layers)
}

fn raw_tar(name: &[u8], claimed: u64, actual: usize) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_size(claimed);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend(vec![7u8; actual.next_multiple_of(512)]);
    bytes.extend([0u8; 1024]);
    bytes
}

#[test]
fn hostile_modelpack_paths_are_refused_with_exit_6_before_download() {
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "dotdot",
            Box::new(|l| l[0].filepath = "../../etc/cron.d/x".into()),
            "escapes the tree",
        ),
        (
            "absolute",
            Box::new(|l| l[0].filepath = "/etc/passwd".into()),
            "escapes the tree",
        ),
        (
            "duplicate",
            Box::new(|l| l[1].filepath = "a.safetensors".into()),
            "also the file of layer",
        ),
        (
            "metadata-size",
            Box::new(|l| {
                l[0].metadata = Some(
                    json!({"name": "a", "mode": 420, "size": 5, "mtime": "2025-01-01T00:00:00Z"}),
                )
            }),
            "the layer has 100000",
        ),
        // Review finding B3: these two were refused only once the layers were downloaded, and
        // the tag stayed in the store.
        (
            "file-then-dir",
            Box::new(|l| l[1].filepath = "a.safetensors/config.json".into()),
            "its directory \"a.safetensors\" is the file of layer",
        ),
        (
            "dir-then-file",
            Box::new(|l| l[0].filepath = "config.json/a.safetensors".into()),
            "its directory \"config.json\" is the file of layer",
        ),
        (
            "long-name",
            Box::new(|l| l[0].filepath = format!("weights/{}.safetensors", "w".repeat(250))),
            "a path component of 262 bytes",
        ),
    ];
    for (tag, edit, want) in cases {
        let (reference, layers) = hostile(&reg, tmp.path(), tag, edit);
        let store = tmp.path().join(format!("store-{tag}"));
        let second = ["duplicate", "file-then-dir"].contains(&tag);
        let bad = sha256(&layers[if second { 1 } else { 0 }].bytes);
        let assert = fspack(&store).args(["pull", &reference]).assert().code(6);
        let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(
            err.contains(want) && err.contains(&bad),
            "{tag}: the refusal names the layer and the reason: {err}"
        );
        let n = fs::read_dir(store.join("blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(n, 0, "{tag}: nothing is downloaded for a refused manifest");
        let images = fspack(&store).args(["images", "--json"]).output().unwrap();
        let images = String::from_utf8_lossy(&images.stdout);
        assert!(
            !images.contains(tag),
            "{tag}: a refused manifest is not tagged in the store: {images}"
        );
    }
}

#[test]
fn privileged_hostile_tar_members_are_refused_with_exit_6_before_mount() {
    if !can_mount("erofs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "escape",
            raw_tar(b"../../../tmp/evil", 10, 10),
            "escapes the tree",
        ),
        ("abs", raw_tar(b"/etc/shadow", 10, 10), "escapes the tree"),
        (
            "oversize",
            raw_tar(b"model.safetensors", 1 << 30, 1000),
            "past the end of the layer",
        ),
        (
            "clash",
            tar_of(&[("config.json", b"{\"x\":1}")]),
            "also named by layer",
        ),
    ];
    let mnt = tmp.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    for (tag, tar, want) in cases {
        let (reference, layers) = hostile(&reg, tmp.path(), tag, |l| {
            l.push(Layer {
                media_type: WEIGHT_TAR,
                bytes: tar,
                filepath: "model.safetensors".into(),
                metadata: None,
            })
        });
        let bad = sha256(&layers.last().unwrap().bytes);
        let store = tmp.path().join(format!("store-{tag}"));
        let assert = fspack(&store)
            .args(["pull", &reference, "--mount"])
            .arg(&mnt)
            .assert()
            .code(6)
            .stderr(predicate::str::contains(want));
        let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(err.contains(&bad), "{tag}: names the layer: {err}");
        assert_eq!(
            leftovers(tmp.path()),
            Vec::<String>::new(),
            "{tag}: nothing is mounted"
        );
    }
    let _: PathBuf = mnt;
}

/// A small model directory with a file of every role.
fn model_dir(dir: &Path) {
    fs::create_dir_all(dir.join("tokenizer")).unwrap();
    fs::write(
        dir.join("model-00001-of-00002.safetensors"),
        weights(3 << 20, 4),
    )
    .unwrap();
    fs::write(
        dir.join("model-00002-of-00002.safetensors"),
        weights((1 << 20) + 77, 5),
    )
    .unwrap();
    fs::write(dir.join("config.json"), br#"{"hidden_size": 64}"#).unwrap();
    fs::write(dir.join("tokenizer/tokenizer.json"), weights(50_000, 6)).unwrap();
    fs::write(dir.join("README.md"), b"# model\n").unwrap();
    fs::write(dir.join("modeling.py"), b"print('hi')\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir.join("modeling.py"), fs::Permissions::from_mode(0o755)).unwrap();
}

/// Review finding B2: a ModelPack artifact has only file layers, so `push --modelpack` leaves
/// out directories that hold no file; it says which (the topmost of each empty subtree), on
/// stderr as a note and in the `--json` report, whose stdout stays one JSON document. A tree
/// without empty directories gets no note.
#[test]
fn push_modelpack_names_the_empty_directories_it_leaves_out() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tiny-llm");
    model_dir(&src);
    let store = tmp.path().join("store");
    let push = |tag: &str, json: bool| {
        let mut cmd = fspack(&store);
        cmd.arg("push")
            .arg(&src)
            .arg(format!("oci:{}:{tag}", tmp.path().join("layout").display()))
            .arg("--modelpack");
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (_, stderr) = push("full", false);
    assert!(!stderr.contains("note:"), "{stderr}");
    fs::create_dir(src.join("cache")).unwrap();
    fs::create_dir_all(src.join("runs/1/logs")).unwrap();
    fs::create_dir(src.join("tokenizer/extra")).unwrap();
    let want = "3 empty directories are not part of a ModelPack artifact, which holds files only: cache/, runs/, tokenizer/extra/";
    let (_, stderr) = push("v1", false);
    assert!(stderr.contains(&format!("note: {want}\n")), "{stderr}");
    let (stdout, stderr) = push("v2", true);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["notes"], json!([want]), "{report}");
    assert!(stderr.contains(&format!("note: {want}\n")), "{stderr}");
}

fn manifest_of(reg: &Registry, repo: &str, tag: &str) -> serde_json::Value {
    serde_json::from_slice(&curl(&[
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &format!("http://{}/v2/{repo}/manifests/{tag}", reg.addr),
    ]))
    .unwrap()
}

/// The model-spec config rules (`schema/config-schema.json` of modelpack/model-spec: required
/// members, closed objects, `modelfs.type` of `layers`, at least one diffId), written out here
/// as a JSON Schema and checked with python-jsonschema, an independent validator.
fn model_spec_config_rules() -> serde_json::Value {
    let strings = json!({"type": "array", "items": {"type": "string"}});
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "required": ["descriptor", "config", "modelfs"],
        "additionalProperties": false,
        "properties": {
            "descriptor": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "createdAt": {"type": "string", "format": "date-time"},
                    "authors": strings, "family": {"type": "string"},
                    "name": {"type": "string", "minLength": 1},
                    "docURL": {"type": "string"}, "sourceURL": {"type": "string"},
                    "datasetsURL": strings, "version": {"type": "string"},
                    "revision": {"type": "string"}, "vendor": {"type": "string"},
                    "licenses": strings, "title": {"type": "string"},
                    "description": {"type": "string"}
                }
            },
            "config": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "architecture": {"type": "string"}, "format": {"type": "string"},
                    "paramSize": {"type": "string"}, "precision": {"type": "string"},
                    "quantization": {"type": "string"},
                    "transformerConfig": {"type": "object"}, "capabilities": {"type": "object"}
                }
            },
            "modelfs": {
                "type": "object",
                "additionalProperties": false,
                "required": ["type", "diffIds"],
                "properties": {
                    "type": {"type": "string", "enum": ["layers"]},
                    "diffIds": {"type": "array", "items": {"type": "string"}, "minItems": 1}
                }
            }
        }
    })
}

/// Validates `doc` against `schema` with python3-jsonschema; `Err` carries its message.
fn jsonschema_validate(schema: &serde_json::Value, doc: &[u8], dir: &Path) -> Result<(), String> {
    let (s, d) = (dir.join("schema.json"), dir.join("doc.json"));
    fs::write(&s, schema.to_string()).unwrap();
    fs::write(&d, doc).unwrap();
    let out = Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))",
        ])
        .arg(&s)
        .arg(&d)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn have_jsonschema() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIP: python3-jsonschema is not installed (scripts/install-deps.sh)");
    }
    ok
}

#[test]
fn push_modelpack_writes_a_model_spec_artifact_and_a_re_push_sends_only_the_edit() {
    let Some(reg) = Registry::start() else { return };
    if !have_jsonschema() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tiny-llm");
    model_dir(&src);
    let reference = format!("{}/models/pushed:v1", reg.addr);
    let store = tmp.path().join("store");
    let push = |tag: &str| -> serde_json::Value {
        let out = fspack(&store)
            .arg("push")
            .arg(&src)
            .arg(format!("{}/models/pushed:{tag}", reg.addr))
            .args(["--modelpack", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    push("v1");
    let m = manifest_of(&reg, "models/pushed", "v1");
    assert_eq!(
        m["artifactType"],
        "application/vnd.cncf.model.manifest.v1+json"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.cncf.model.config.v1+json"
    );
    let by_path: BTreeMap<String, String> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["annotations"]["org.cncf.model.filepath"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                l["mediaType"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = |t: &str| format!("application/vnd.cncf.model.{t}.v1.raw");
    assert_eq!(
        by_path,
        BTreeMap::from([
            ("README.md".into(), want("doc")),
            ("config.json".into(), want("weight.config")),
            ("model-00001-of-00002.safetensors".into(), want("weight")),
            ("model-00002-of-00002.safetensors".into(), want("weight")),
            ("modeling.py".into(), want("code")),
            ("tokenizer/tokenizer.json".into(), want("weight.config")),
        ])
    );
    for l in m["layers"].as_array().unwrap() {
        let path = l["annotations"]["org.cncf.model.filepath"]
            .as_str()
            .unwrap();
        let data = fs::read(src.join(path)).unwrap();
        assert_eq!(
            l["digest"],
            sha256(&data),
            "{path}: the blob is the file itself"
        );
        let meta: serde_json::Value = serde_json::from_str(
            l["annotations"]["org.cncf.model.file.metadata+json"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(meta["size"], data.len() as u64);
    }
    let config = curl(&[&format!(
        "http://{}/v2/models/pushed/blobs/{}",
        reg.addr,
        m["config"]["digest"].as_str().unwrap()
    )]);
    jsonschema_validate(&model_spec_config_rules(), &config, tmp.path())
        .unwrap_or_else(|e| panic!("the config breaks model-spec's schema: {e}"));
    // The validator is not a rubber stamp.
    let broken =
        br#"{"descriptor":{"name":""},"config":{},"modelfs":{"type":"layers","diffIds":[]}}"#;
    assert!(jsonschema_validate(&model_spec_config_rules(), broken, tmp.path()).is_err());

    // `inspect` lists the artifact file by file.
    let out = fspack(&store)
        .args(["inspect", &reference])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("format:    modelpack"), "{text}");
    for p in by_path.keys() {
        assert!(text.contains(p.as_str()), "inspect shows {p}: {text}");
    }

    // A re-push after editing one file sends that file and the small config, nothing else.
    fs::write(src.join("config.json"), br#"{"hidden_size": 128}"#).unwrap();
    let report = push("v2");
    let sent: Vec<&str> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["skipped"] == false)
        .map(|l| l["title"].as_str().unwrap())
        .collect();
    assert_eq!(sent, ["config.json"], "{report}");
}

/// `fspack push --modelpack` gives each raw layer of more than one chunk a standalone chunk
/// index (issue 15): named by digest on the layer, uploaded as a blob, kept reachable by a
/// referrer. The layer list stays the files alone, which is all modctl reads, and a pull through a
/// proxy that flips a byte fetches one chunk again instead of failing the whole blob.
#[test]
fn push_modelpack_publishes_chunk_indexes_that_a_pull_verifies_chunk_by_chunk() {
    use common::proxy::{Fault, FaultProxy};
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tiny-llm");
    model_dir(&src);
    let reference = format!("{}/models/indexed:v1", reg.addr);
    let report = run_json(
        fspack(&tmp.path().join("push-store"))
            .arg("push")
            .arg(&src)
            .arg(&reference)
            .args(["--modelpack", "--json"]),
    );
    let m = manifest_of(&reg, "models/indexed", "v1");
    let manifest_digest = report["manifest_digest"].as_str().unwrap();

    // What a modctl-style reader sees: one raw layer per file, each with its path, and the
    // config's diffIds are the layer digests. No layer of another type was added.
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), files_of(&src).len(), "{m}");
    for l in layers {
        assert!(l["mediaType"].as_str().unwrap().ends_with(".raw"), "{l}");
        assert!(
            l["annotations"]["org.cncf.model.filepath"].is_string(),
            "{l}"
        );
    }
    let config: serde_json::Value = serde_json::from_slice(&curl(&[&format!(
        "http://{}/v2/models/indexed/blobs/{}",
        reg.addr,
        m["config"]["digest"].as_str().unwrap()
    )]))
    .unwrap();
    let digests: Vec<&serde_json::Value> = layers.iter().map(|l| &l["digest"]).collect();
    assert_eq!(
        config["modelfs"]["diffIds"]
            .as_array()
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        digests
    );

    // Each layer of more than one chunk names its index, and the index covers the file.
    const CHUNK: usize = 1 << 20;
    let mut indexed = BTreeMap::new();
    for l in layers {
        let path = l["annotations"]["org.cncf.model.filepath"]
            .as_str()
            .unwrap();
        let data = fs::read(src.join(path)).unwrap();
        let ann = &l["annotations"]["org.erofs.chunk-index.digest"];
        assert_eq!(ann.is_string(), data.len() > CHUNK, "{path}: {l}");
        assert!(l["annotations"]["org.erofs.chunk-index.range"].is_null());
        let Some(ix_digest) = ann.as_str() else {
            continue;
        };
        let ix = curl(&[&format!(
            "http://{}/v2/models/indexed/blobs/{ix_digest}",
            reg.addr
        )]);
        assert_eq!(sha256(&ix), ix_digest);
        let chunks = data.len().div_ceil(CHUNK);
        assert_eq!(ix.len(), 32 + 48 * chunks, "{path}");
        assert_eq!(&ix[0..4], &[0xCD, 0xE4, 0xEC, 0x67]);
        assert_eq!(
            u64::from_le_bytes(ix[8..16].try_into().unwrap()),
            data.len() as u64
        );
        for (i, piece) in data.chunks(CHUNK).enumerate() {
            let e = &ix[32 + 48 * i..32 + 48 * (i + 1)];
            assert_eq!(
                format!("sha256:{}", hex::encode(&e[16..])),
                sha256(piece),
                "{path} chunk {i}"
            );
        }
        indexed.insert(
            l["digest"].as_str().unwrap().to_string(),
            ix_digest.to_string(),
        );
    }
    assert_eq!(indexed.len(), 2, "both weight files span more than a chunk");

    // The referrer that keeps the indexes reachable: subject the model, each index after its
    // target (erofs-image-spec §3.4.3).
    let referrer = manifest_of(
        &reg,
        "models/indexed",
        report["chunk_indexes"].as_str().unwrap(),
    );
    assert_eq!(referrer["subject"]["digest"], manifest_digest);
    assert_eq!(
        referrer["artifactType"],
        "application/vnd.erofs.chunk-index.v1"
    );
    let pairs = referrer["layers"].as_array().unwrap();
    assert_eq!(pairs.len(), 2 * indexed.len());
    for p in pairs.chunks(2) {
        let (target, ix) = (&p[0], &p[1]);
        assert_eq!(ix["mediaType"], "application/vnd.erofs.chunk-index.v1");
        assert_eq!(
            ix["annotations"]["org.erofs.chunk-index.target"],
            target["digest"]
        );
        assert_eq!(indexed[target["digest"].as_str().unwrap()], ix["digest"]);
    }
    // distribution 2.8 has no referrers API: the referrer is listed under the referrers tag of
    // the model manifest (distribution-spec v1.1), so it is tagged and `oras discover` finds it.
    // A second push of the same tree lists it once, not twice.
    run_json(
        fspack(&tmp.path().join("push-store"))
            .arg("push")
            .arg(&src)
            .arg(&reference)
            .args(["--modelpack", "--json"]),
    );
    let tag = manifest_digest.replacen(':', "-", 1);
    let listed: serde_json::Value = serde_json::from_slice(&curl(&[
        "-H",
        "Accept: application/vnd.oci.image.index.v1+json",
        &format!("http://{}/v2/models/indexed/manifests/{tag}", reg.addr),
    ]))
    .unwrap();
    assert_eq!(
        listed["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entries = listed["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{listed}");
    assert_eq!(entries[0]["digest"], report["chunk_indexes"]);
    assert_eq!(
        entries[0]["artifactType"],
        "application/vnd.erofs.chunk-index.v1"
    );
    // `inspect` of a tag that names an index says so, and which manifest it shows.
    let listed_ref = format!("{}/models/indexed:{tag}", reg.addr);
    let seen =
        run_json(fspack(&tmp.path().join("push-store")).args(["inspect", &listed_ref, "--json"]));
    let raw_index = curl(&[
        "-H",
        "Accept: application/vnd.oci.image.index.v1+json",
        &format!("http://{}/v2/models/indexed/manifests/{tag}", reg.addr),
    ]);
    assert_eq!(seen["index_digest"], sha256(&raw_index), "{seen}");
    assert_eq!(seen["digest"], report["chunk_indexes"], "{seen}");
    let human = fspack(&tmp.path().join("push-store"))
        .args(["inspect", &listed_ref])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&human.stdout).contains(&format!(
            "index:     {} (an image index",
            seen["index_digest"].as_str().unwrap()
        )),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );
    // `inspect` says which layers have a chunk index, and where.
    let out = fspack(&tmp.path().join("push-store"))
        .args(["inspect", &reference])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rows = |kind: &str| {
        text.lines()
            .filter(|l| l.split_whitespace().nth(3) == Some(kind))
            .count()
    };
    assert_eq!(rows("blob"), indexed.len(), "{text}");
    assert_eq!(rows("blob") + rows("-"), layers.len(), "{text}");

    // A pull through a proxy that flips one byte of one data body: that chunk is fetched again.
    let proxy = FaultProxy::start(&reg.addr, Fault::FlipFirstAny(1));
    let via = format!("{}/models/indexed:v1", proxy.addr);
    let store = tmp.path().join("store");
    let pulled = run_json(fspack(&store).args(["pull", &via, "--json"]));
    assert_eq!(
        proxy
            .counters
            .flips
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(pulled["chunks_refetched"], 1, "{pulled}");
    for l in pulled["layers"].as_array().unwrap() {
        let want = indexed.contains_key(l["digest"].as_str().unwrap());
        assert_eq!(l["chunk_verified"], want, "{l}");
    }
    for e in fs::read_dir(store.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        assert_eq!(
            sha256(&fs::read(e.path()).unwrap()),
            format!("sha256:{}", e.file_name().to_string_lossy()),
            "every stored blob matches its digest"
        );
    }
    // The store keeps the indexes (for `verify` and the next pull), also through a gc.
    fspack(&store).arg("gc").assert().success();
    for ix in indexed.values() {
        let path = store
            .join("blobs/sha256")
            .join(ix.trim_start_matches("sha256:"));
        assert!(path.exists(), "index {ix} was dropped from the store");
    }
    // A damaged weight file in the store: `pull --verify` names it and fetches its bad chunk
    // alone, verified against the index.
    let (weight, _) = indexed
        .iter()
        .find(|(d, _)| {
            layers
                .iter()
                .any(|l| l["digest"] == d.as_str() && l["size"] == 3 << 20)
        })
        .unwrap();
    let blob = store.join("blobs/sha256").join(&weight[7..]);
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&blob).unwrap();
        f.write_all_at(&[0u8; 4096], 2 * CHUNK as u64 + 100)
            .unwrap();
    }
    let out = fspack(&store)
        .args(["pull", &via, "--verify"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(weight.as_str())
            && stderr.contains(&format!("repaired ({CHUNK} bytes fetched)")),
        "{stderr}"
    );
    assert_eq!(sha256(&fs::read(&blob).unwrap()), *weight);
}

#[test]
fn privileged_push_modelpack_then_pull_mount_gives_the_source_tree() {
    if !can_mount("erofs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tiny-llm");
    model_dir(&src);
    let reference = format!("{}/models/roundtrip:v1", reg.addr);
    let store = tmp.path().join("store");
    fspack(&tmp.path().join("push-store"))
        .arg("push")
        .arg(&src)
        .arg(&reference)
        .arg("--modelpack")
        .assert()
        .success();
    let mnt = tmp.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    fspack(&store)
        .args(["pull", &reference, "--mount"])
        .arg(&mnt)
        .assert()
        .success();
    let (want, got) = (files_of(&src), files_of(&mnt));
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>()
    );
    for (k, v) in &want {
        assert!(got[k] == *v, "{k}: content, mode or mtime differs");
    }
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

#[test]
fn privileged_kitops_and_docker_model_runner_artifacts_mount_too() {
    if !can_mount("erofs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let gguf = weights((2 << 20) + 5, 8);
    let csv = b"a,b\n1,2\n".to_vec();
    // A KitOps ModelKit: uncompressed tar layers (its default), names relative to the Kitfile.
    let kit = push_model(
        &reg,
        "models/kit",
        "v1",
        &[
            Layer {
                media_type: "application/vnd.kitops.modelkit.model.v1.tar",
                bytes: tar_of(&[("models/model.gguf", &gguf)]),
                filepath: String::new(),
                metadata: None,
            },
            Layer {
                media_type: "application/vnd.kitops.modelkit.dataset.v1.tar+gzip",
                bytes: gzip(&tar_of(&[("data/train.csv", &csv)])),
                filepath: String::new(),
                metadata: None,
            },
        ],
        tmp.path(),
        None,
        "application/vnd.kitops.modelkit.config.v1+json",
    );
    // A legacy Docker Model Runner artifact: a raw GGUF layer with no path annotation.
    let dmr = push_model(
        &reg,
        "models/dmr",
        "v1",
        &[Layer {
            media_type: "application/vnd.docker.ai.gguf.v3",
            bytes: gguf.clone(),
            filepath: String::new(),
            metadata: None,
        }],
        tmp.path(),
        None,
        "application/vnd.docker.ai.model.config.v0.1+json",
    );
    let store = tmp.path().join("store");
    let mnt = tmp.path().join("mnt");
    fs::create_dir_all(&mnt).unwrap();
    for (reference, want) in [
        (
            kit,
            Files::from([
                (
                    "models/model.gguf".to_string(),
                    (gguf.clone(), 0o644, 1_700_000_000),
                ),
                (
                    "data/train.csv".to_string(),
                    (csv.clone(), 0o644, 1_700_000_000),
                ),
            ]),
        ),
        (
            dmr,
            Files::from([(
                format!("{}.gguf", &sha256(&gguf)[7..19]),
                (gguf.clone(), 0o644, 0),
            )]),
        ),
    ] {
        let out = fspack(&store)
            .args(["pull", &reference, "--mount"])
            .arg(&mnt)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = files_of(&mnt);
        fspack(&store).arg("umount").arg(&mnt).assert().success();
        assert!(
            got == want,
            "{reference}: {:?}",
            got.keys().collect::<Vec<_>>()
        );
    }
    assert_eq!(leftovers(tmp.path()), Vec::<String>::new());
}

/// Whether lazy mounts can run here (EROFS, FUSE), saying why not.
fn lazy_env_ok() -> bool {
    can_mount("erofs")
        && (Path::new("/dev/fuse").exists()
            || common::trees::privileged::skip("no /dev/fuse (modprobe fuse)"))
}

/// `fspack mount REF DIR --lazy --json` (reads wait at most 30 s).
fn mount_lazy(store: &Path, reference: &str, mnt: &Path, extra: &[&str]) -> serde_json::Value {
    let out = fspack(store)
        .args(["mount", reference])
        .arg(mnt)
        .args(["--lazy", "--json"])
        .args(extra)
        .env("FSPACK_LAZY_READ_TIMEOUT_MS", "30000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount --lazy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The `fspack ls --json` entry of `mnt`.
fn ls_entry(store: &Path, mnt: &Path) -> serde_json::Value {
    let out = fspack(store).args(["ls", "--json"]).output().unwrap();
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mnt = fs::canonicalize(mnt).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|e| e["target"] == mnt.to_str().unwrap())
        .cloned()
        .expect("the mount is listed")
}

/// `fspack lazy-serve` processes with a file open under `store`.
fn lazy_servers(store: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
        if !cmd.split(|&b| b == 0).any(|a| a == b"lazy-serve") {
            continue;
        }
        let holds = fs::read_dir(e.path().join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|l| l.starts_with(store)));
        if holds {
            out.push(format!("lazy-serve {}", e.file_name().to_string_lossy()));
        }
    }
    out
}

/// While the link is slow the mount is live with data still missing (it is lazy); once the
/// link is fast again every file reads back as `want`, the mount completes into the store, and
/// the files read the same from the store with the page cache dropped.
fn lazy_then_complete(store: &Path, mnt: &Path, proxy: &common::proxy::FaultProxy, want: &Files) {
    let st = &ls_entry(store, mnt)["lazy_status"];
    assert!(
        st["bytes_present"].as_u64().unwrap() < st["bytes_total"].as_u64().unwrap(),
        "everything was present at once, the mount was not lazy: {st}"
    );
    proxy.set_delay_ms_per_mib(0);
    assert_files(want, mnt);
    assert_completes_into_the_store(store, mnt);
    let _ = fs::write("/proc/sys/vm/drop_caches", "3");
    assert_files(want, mnt);
}

/// Waits (`ls --wait`) until the lazy mount on `mnt` has all its data, then checks that it is a
/// plain kernel mount: no lazy state, no server, every loop device reading a store blob.
fn assert_completes_into_the_store(store: &Path, mnt: &Path) {
    let out = fspack(store)
        .args(["ls", "--wait"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !lazy_servers(store).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        lazy_servers(store),
        Vec::<String>::new(),
        "the server did not exit"
    );
    let e = ls_entry(store, mnt);
    assert!(e.get("lazy_status").is_none(), "still lazy: {e}");
    let blobs = fs::canonicalize(store.join("blobs")).unwrap();
    let devs = e["loop_devices"].as_array().unwrap();
    assert!(
        !devs.is_empty(),
        "a lazy mount reads through loop devices: {e}"
    );
    for dev in devs {
        let n = dev.as_str().unwrap().trim_start_matches("/dev/");
        let backing = fs::read_to_string(format!("/sys/block/{n}/loop/backing_file")).unwrap();
        assert!(
            Path::new(backing.trim()).starts_with(&blobs),
            "{n} reads from {backing}, not from the store"
        );
    }
}

/// Compares the files under `mnt` with `want` (content, mode, mtime).
fn assert_files(want: &Files, mnt: &Path) {
    let got = files_of(mnt);
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, (bytes, mode, mtime)) in want {
        let (gb, gm, gt) = &got[k];
        assert!(gb == bytes, "{k}: content differs");
        assert_eq!((gm, gt), (mode, mtime), "{k}: mode and mtime");
    }
}

/// Runs `checks`, then always unmounts `mnt` and checks nothing is left under `tmp`.
fn checked_then_umount(tmp: &Path, store: &Path, mnt: &Path, checks: impl FnOnce()) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(checks));
    let out = fspack(store).arg("umount").arg(mnt).output().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !(lazy_servers(store).is_empty() && leftovers(tmp).is_empty())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leftovers(tmp), Vec::<String>::new());
    assert_eq!(lazy_servers(store), Vec::<String>::new());
}

/// A ModelPack pushed by fspack (weights with chunk indexes) mounts lazily (issue 15): live
/// before its weights arrived, the exact tree read through it, and a plain kernel mount of
/// store blobs once the fill is done.
#[test]
fn privileged_a_modelpack_pushed_by_fspack_mounts_lazily_and_ends_in_the_store() {
    use common::proxy::{Fault, FaultProxy};
    if !lazy_env_ok() {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let proxy = FaultProxy::start(&reg.addr, Fault::None);
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("tiny-llm");
    model_dir(&src);
    let reference = format!("{}/models/lazy:v1", proxy.addr);
    fspack(&tmp.path().join("push-store"))
        .arg("push")
        .arg(&src)
        .arg(&reference)
        .arg("--modelpack")
        .assert()
        .success();
    let (store, mnt) = (tmp.path().join("store"), tmp.path().join("mnt"));
    fs::create_dir_all(&mnt).unwrap();
    // A slow link, so the weights are still arriving when the mount is live.
    // A slow link: the mount reads only a few small pieces, the fill takes seconds.
    proxy.set_delay_ms_per_mib(5000);
    let report = mount_lazy(&store, &reference, &mnt, &["--jobs", "1"]);
    checked_then_umount(tmp.path(), &store, &mnt, || {
        assert_eq!(report["lazy"], true, "{report}");
        assert_eq!(report["format"], "modelpack", "{report}");
        lazy_then_complete(&store, &mnt, &proxy, &files_of(&src));
    });
}

/// A ModelPack built the way modctl builds it (raw layers without chunk indexes, an
/// uncompressed tar, a tar+gzip) mounts lazily too: tar layers are fetched first, raw layers are
/// served once verified whole, and the mount ends as a plain kernel mount of store blobs.
#[test]
fn privileged_a_modctl_artifact_without_chunk_indexes_mounts_lazily() {
    use common::proxy::{Fault, FaultProxy};
    if !lazy_env_ok() {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (mut layers, mut expected) = modctl_layers();
    // Models carry empty files (`__init__.py`): nothing to serve lazily.
    layers.push(Layer {
        media_type: "application/vnd.cncf.model.code.v1.raw",
        bytes: Vec::new(),
        filepath: "src/__init__.py".into(),
        metadata: None,
    });
    expected.insert("src/__init__.py".into(), (Vec::new(), 0o644, 0));
    push_modelpack(&reg, "models/modctl-lazy", "v1", &layers, tmp.path());
    let proxy = FaultProxy::start(&reg.addr, Fault::None);
    let reference = format!("{}/models/modctl-lazy:v1", proxy.addr);
    let (store, mnt) = (tmp.path().join("store"), tmp.path().join("mnt"));
    fs::create_dir_all(&mnt).unwrap();
    // A slow link: the tar layers (fetched before the mount) take a few seconds, the large raw
    // layer (fetched once the mount is live) longer.
    proxy.set_delay_ms_per_mib(3000);
    let report = mount_lazy(&store, &reference, &mnt, &["--jobs", "1"]);
    checked_then_umount(tmp.path(), &store, &mnt, || {
        assert_eq!(report["lazy"], true, "{report}");
        // The raw layers with data are served by the server, the rest came first.
        assert_eq!(report["lazy_blobs"], 3, "{report}");
        lazy_then_complete(&store, &mnt, &proxy, &expected);
    });
}

/// A raw layer without a chunk index is served only once all of it matched its digest: a flipped
/// byte makes reads of it fail with EIO, never return the damaged bytes, and the fill fetches it
/// again, so the same mount then reads the file and completes.
#[test]
fn privileged_flipped_bytes_of_a_raw_layer_without_index_never_reach_a_reader() {
    use common::proxy::{Fault, FaultProxy};
    if !lazy_env_ok() {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let w = weights(3 << 20, 9);
    let cfg = br#"{"hidden_size": 8}"#.to_vec();
    let layers = vec![
        Layer {
            media_type: WEIGHT_RAW,
            bytes: w.clone(),
            filepath: "model.safetensors".into(),
            metadata: None,
        },
        Layer {
            media_type: WEIGHT_CONFIG_RAW,
            bytes: cfg.clone(),
            filepath: "config.json".into(),
            metadata: None,
        },
    ];
    push_modelpack(&reg, "models/flip-lazy", "v1", &layers, tmp.path());
    // The weight file is the only body of 64 KiB or more: it is the one damaged.
    let proxy = FaultProxy::start(&reg.addr, Fault::FlipFirstAny(1));
    let reference = format!("{}/models/flip-lazy:v1", proxy.addr);
    let (store, mnt) = (tmp.path().join("store"), tmp.path().join("mnt"));
    fs::create_dir_all(&mnt).unwrap();
    let report = mount_lazy(&store, &reference, &mnt, &[]);
    checked_then_umount(tmp.path(), &store, &mnt, || {
        assert_eq!(report["lazy"], true, "{report}");
        assert_eq!(fs::read(mnt.join("config.json")).unwrap(), cfg);
        // The damaged copy answers EIO (or, when the kernel retried the read after the blob
        // was fetched again, the right bytes); never the damaged bytes.
        match fs::read(mnt.join("model.safetensors")) {
            Ok(d) => assert!(
                d == w,
                "a reader saw damaged bytes (first difference at {:?})",
                d.iter().zip(&w).position(|(a, b)| a != b)
            ),
            Err(e) => assert_eq!(e.raw_os_error(), Some(5), "expected EIO, got {e}"),
        }
        let flips = proxy
            .counters
            .flips
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(flips, 1, "the proxy damaged the weight file once");
        // Fetched again by the same mount, which then reads the file and completes.
        assert!(fs::read(mnt.join("model.safetensors")).unwrap() == w);
        let st = &ls_entry(&store, &mnt)["lazy_status"];
        assert!(
            st.is_null() || st["chunks_refetched"].as_u64().unwrap() >= 1,
            "{st}"
        );
        assert_completes_into_the_store(&store, &mnt);
    });
}
