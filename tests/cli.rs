//! The fspack binary as a user meets it, without a registry: help texts, generated files, exit
//! codes and messages for bad input, builds and pushes to an OCI layout.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use predicates::prelude::*;

const SUBCOMMANDS: &[&str] = &[
    "build",
    "push",
    "pull",
    "mount",
    "umount",
    "ls",
    "inspect",
    "gc",
    "login",
    "logout",
    "completions",
];

fn snapshot_file(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/snapshots")
        .join(rel)
}

fn check_snapshot(rel: &str, actual: &str) {
    let path = snapshot_file(rel);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() || !path.exists() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, actual).unwrap();
    }
    let expected = fs::read_to_string(&path).unwrap();
    assert_eq!(
        expected, actual,
        "{rel} changed; run with UPDATE_SNAPSHOTS=1 to accept"
    );
}

#[test]
fn help_of_every_subcommand_matches_its_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fspack(tmp.path())
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    check_snapshot("help/fspack.txt", &String::from_utf8(out.stdout).unwrap());
    for sub in SUBCOMMANDS {
        let out = fspack(tmp.path())
            .args([sub, "--help"])
            .env("COLUMNS", "100")
            .output()
            .unwrap();
        assert!(out.status.success(), "{sub} --help failed");
        check_snapshot(
            &format!("help/{sub}.txt"),
            &String::from_utf8(out.stdout).unwrap(),
        );
    }
}

#[test]
fn committed_completions_and_man_pages_are_fresh() {
    let tmp = tempfile::tempdir().unwrap();
    fspack(tmp.path())
        .arg("generate-docs")
        .arg(tmp.path().join("gen"))
        .assert()
        .success();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut stale = Vec::new();
    for dir in ["completions", "man"] {
        let generated = tmp.path().join("gen").join(dir);
        for e in fs::read_dir(&generated).unwrap() {
            let e = e.unwrap();
            let committed = root.join(dir).join(e.file_name());
            if fs::read(&committed).ok() != Some(fs::read(e.path()).unwrap()) {
                stale.push(committed.display().to_string());
            }
        }
        let n_generated = fs::read_dir(&generated).unwrap().count();
        let n_committed = fs::read_dir(root.join(dir)).map(|d| d.count()).unwrap_or(0);
        if n_generated != n_committed {
            stale.push(format!(
                "{dir}/ holds {n_committed} files, the CLI generates {n_generated}"
            ));
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files (run `cargo run -p fspack -- generate-docs .`): {stale:?}"
    );
    // A SYNOPSIS names each option's value: `--mount` takes a directory, `--lazy` nothing.
    let pull = fs::read_to_string(tmp.path().join("gen/man/fspack-pull.1")).unwrap();
    let synopsis = pull
        .lines()
        .skip_while(|l| *l != ".SH SYNOPSIS")
        .nth(1)
        .unwrap();
    for named in [
        r"[\fB\-\-mount\fR \fIDIR\fR]",
        r"[\fB\-j\fR|\fB\-\-jobs\fR \fIN\fR]",
        r"[\fB\-\-store\fR \fIDIR\fR]",
        r"[\fB\-\-lazy\fR]",
    ] {
        assert!(synopsis.contains(named), "{named} in {synopsis}");
    }
}

#[test]
fn completions_print_the_committed_script() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fspack(tmp.path())
        .args(["completions", "bash"])
        .output()
        .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    assert_eq!(
        out.stdout,
        fs::read(root.join("completions/fspack.bash")).unwrap()
    );
}

#[test]
fn building_a_missing_directory_names_it_and_exits_3() {
    let tmp = tempfile::tempdir().unwrap();
    fspack(tmp.path())
        .args(["build", "/nonexistent/model", "-o"])
        .arg(tmp.path().join("x.erofs"))
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains("error: failed to build")
                .and(predicate::str::contains("/nonexistent/model")),
        );
    assert!(!tmp.path().join("x.erofs").exists());
}

/// Report item 20: an output that is a directory is bad usage (2); an output in a missing
/// directory names that directory (3), not the temporary file the image is written to first.
#[test]
fn build_outputs_that_cannot_be_written_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    let outdir = tmp.path().join("out");
    fs::create_dir(&outdir).unwrap();
    fspack(tmp.path())
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&outdir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "-o {} is a directory",
            outdir.display()
        )));
    let missing = tmp.path().join("missing");
    fspack(tmp.path())
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(missing.join("x.erofs"))
        .assert()
        .code(3)
        .stderr(
            predicate::str::contains(format!("the directory {} for -o", missing.display()))
                .and(predicate::str::contains("fspack-tmp").not()),
        );
}

/// Report item 12: an option the chosen format or mode ignores is refused (exit 2) and named,
/// rather than accepted and silently dropped.
#[test]
fn options_that_do_not_apply_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    let out = tmp.path().join("out.img");
    let cases: &[(&[&str], &str)] = &[
        (
            &["build", "--format", "squashfs", "--layout", "chunked"],
            "--layout chunked is an EROFS layout",
        ),
        (
            &["build", "--compression", "gzip"],
            "--compression applies to SquashFS images only",
        ),
        (
            &["build", "--format", "erofs", "--shards", "2"],
            "--shards applies to SquashFS images only",
        ),
        (
            &["build", "--format", "squashfs", "--erofs-chunk-size", "4K"],
            "--erofs-chunk-size applies to EROFS images only",
        ),
        (
            &["build", "--layout", "chunked", "--blob-size", "3K"],
            "--blob-size 3K is below its minimum of 1M",
        ),
        (
            &["push", "--modelpack", "--format", "squashfs"],
            "'--modelpack' cannot be used with '--format <FORMAT>'",
        ),
        (
            &["push", "--jobs", "0"],
            "'0' is not a number of parallel transfers",
        ),
    ];
    for (args, message) in cases {
        let mut cmd = fspack(&tmp.path().join("store"));
        cmd.arg(args[0]).arg(&src);
        if args[0] == "build" {
            cmd.arg("-o").arg(&out);
        } else {
            cmd.arg("127.0.0.1:1/a/b:v1");
        }
        cmd.args(&args[1..])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(*message));
        assert!(!out.exists(), "{args:?} wrote an image");
    }
}

#[test]
fn an_output_inside_the_source_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir(tmp.path().join("src")).unwrap();
    fspack(tmp.path())
        .args(["build"])
        .arg(tmp.path().join("src"))
        .arg("-o")
        .arg(tmp.path().join("src/out.erofs"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("inside the source directory"));
}

#[test]
fn bad_sizes_and_references_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    fspack(tmp.path())
        .args(["build", ".", "-o", "x", "--blob-size", "12X"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown unit"));
    fs::create_dir(tmp.path().join("src")).unwrap();
    fspack(tmp.path())
        .arg("push")
        .arg(tmp.path().join("src"))
        .arg("Not A Reference")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Not A Reference"));
}

#[test]
fn build_writes_a_chunked_image_and_reports_json() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("weights.bin"), vec![3u8; 3 << 20]).unwrap();
    fs::write(src.join("config.json"), b"{}").unwrap();
    let v = run_json(
        fspack(tmp.path())
            .arg("build")
            .arg(&src)
            .arg("-o")
            .arg(tmp.path().join("m.erofs"))
            .args(["--layout", "chunked", "--blob-size", "1M", "--json"]),
    );
    assert_eq!(
        v["blobs"].as_array().unwrap().len(),
        3,
        "3 MiB in 1 MiB blobs: {v}"
    );
    assert!(tmp.path().join("m.erofs.d/blob-0002").exists());
}

#[test]
fn push_to_an_oci_layout_and_inspect_it() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("weights.bin"), vec![5u8; 2 << 20]).unwrap();
    let layout = format!("oci:{}:v1", tmp.path().join("layout").display());
    let report = run_json(fspack(tmp.path()).arg("push").arg(&src).arg(&layout).args([
        "--blob-size",
        "1M",
        "--json",
    ]));
    let inspected = run_json(fspack(tmp.path()).args(["inspect", &layout, "--json"]));
    // A tag the layout lacks is named with the tags it has (s10 fresh-eyes pass).
    let other = format!("oci:{}:v2", tmp.path().join("layout").display());
    for cmd in ["inspect", "pull"] {
        fspack(&tmp.path().join("pull-store"))
            .args([cmd, &other])
            .assert()
            .code(3)
            .stderr(predicate::str::contains("no tag v2 in the OCI layout"))
            .stderr(predicate::str::contains("its tags: v1"));
    }
    assert_eq!(inspected["manifest_digest"], report["manifest_digest"]);
    // The older name stays for scripts written against it.
    assert_eq!(inspected["digest"], report["manifest_digest"]);
    assert_eq!(inspected["format"], "erofs");
    let layers = inspected["manifest"]["layers"].as_array().unwrap();
    assert_eq!(layers.last().unwrap()["mediaType"], "application/vnd.erofs");
    assert_eq!(layers[0]["annotations"]["org.erofs.role"], "device");
    // skopeo, an independent reader, sees the same manifest.
    if trees::have_tool("skopeo") {
        let raw = std::process::Command::new("skopeo")
            .args(["inspect", "--raw", &layout])
            .output()
            .unwrap();
        assert!(
            raw.status.success(),
            "{}",
            String::from_utf8_lossy(&raw.stderr)
        );
        let m: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
        assert_eq!(m["artifactType"], "application/vnd.fspack.image.v1");
    }
}

#[test]
fn pushing_a_file_that_is_not_an_image_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("notes.txt");
    fs::write(&f, b"just text").unwrap();
    fspack(tmp.path())
        .arg("push")
        .arg(&f)
        .arg(format!("oci:{}:x", tmp.path().join("layout").display()))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("notes.txt").and(predicate::str::contains(
                "neither a directory nor an EROFS or SquashFS image",
            )),
        );
}

#[test]
fn umount_of_something_fspack_did_not_mount_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    fspack(&tmp.path().join("store"))
        .args(["umount"])
        .arg(tmp.path())
        .assert()
        .code(3)
        .stderr(predicate::str::contains("is not mounted by fspack"));
    // A mistyped path is named as missing, absolute (s12 fresh-eyes pass), with a store or not.
    let store = tmp.path().join("store");
    fs::create_dir_all(store.join("mounts")).unwrap();
    fs::write(
        store.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    for s in [store, tmp.path().join("none")] {
        fspack(&s)
            .current_dir(tmp.path())
            .args(["umount", "nosuchdir"])
            .assert()
            .code(3)
            .stderr(predicate::str::contains(format!(
                "{} does not exist",
                tmp.path().join("nosuchdir").display()
            )));
    }
}

#[test]
fn pushing_a_chunked_image_file_takes_its_data_blobs_along() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("weights.bin"), vec![9u8; 3 << 20]).unwrap();
    let image = tmp.path().join("m.erofs");
    fspack(tmp.path())
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&image)
        .args(["--layout", "chunked", "--blob-size", "1M"])
        .assert()
        .success();
    let layout = format!("oci:{}:v1", tmp.path().join("layout").display());
    let report = run_json(
        fspack(tmp.path())
            .arg("push")
            .arg(&image)
            .arg(&layout)
            .arg("--json"),
    );
    let titles: Vec<&str> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["blob-0000", "blob-0001", "blob-0002", "m.erofs"]);
    // Without its blobs the image cannot be pushed.
    fs::remove_file(tmp.path().join("m.erofs.d/blob-0001")).unwrap();
    fspack(tmp.path())
        .arg("push")
        .arg(&image)
        .arg(&layout)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("blob-0001 is missing"));
}

#[test]
fn reading_commands_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("no-layout");
    fspack(&tmp.path().join("store"))
        .args(["inspect", &format!("oci:{}:v1", layout.display())])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("no OCI image layout at"));
    fspack(&tmp.path().join("store"))
        .arg("ls")
        .assert()
        .success();
    fspack(&tmp.path().join("store"))
        .arg("gc")
        .assert()
        .success();
    fspack(&tmp.path().join("store"))
        .args(["__complete", "refs", ""])
        .assert()
        .success();
    assert!(
        !layout.exists() && !tmp.path().join("store").exists(),
        "a read-only command created a store"
    );
}

/// The read end is closed before fspack writes a byte, so its first write fails with `EPIPE`
/// whatever the output's size (a pipe buffer would hide a small write otherwise); fspack's own
/// exit status is checked, not a shell's.
#[test]
fn a_closed_stdout_exits_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("fspack"))
        .args(["completions", "bash"])
        .env("FSPACK_STORE", tmp.path())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `fspack build SRC -o OUT --layout chunked` with writes past `max_kib` KiB failing
/// (`ulimit -f`, SIGXFSZ ignored so the write returns EFBIG): a full disk that hits only files
/// larger than the limit.
fn build_with_file_size_limit(
    store: &Path,
    src: &Path,
    out: &Path,
    max_kib: u64,
) -> std::process::Output {
    let bin = assert_cmd::cargo::cargo_bin("fspack");
    std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {max_kib}; exec '{}' build '{}' -o '{}' --layout chunked --blob-size 1M",
            bin.display(),
            src.display(),
            out.display()
        ))
        .env("FSPACK_STORE", store)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

fn sha256_hex(p: &Path) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fs::read(p).unwrap()))
}

/// Issue 13: a rebuild that fails while writing the image (here: the image is larger than the
/// file-size limit, the blobs are not) must leave the old image and the old blobs, as a pair.
/// Before, `OUT.d/` was replaced first, and the old `OUT` then pointed at the new blobs.
#[test]
fn a_chunked_rebuild_that_fails_keeps_the_old_image_and_blobs_together() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("weights.bin"), vec![1u8; 300 << 10]).unwrap();
    let out = tmp.path().join("m.erofs");
    let ok = build_with_file_size_limit(tmp.path(), &src, &out, 1 << 20);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let blob = tmp.path().join("m.erofs.d/blob-0000");
    let before = (sha256_hex(&out), sha256_hex(&blob));
    // New contents for the blob, and enough small files (inline in the image) to make the image
    // larger than the blob.
    fs::write(src.join("weights.bin"), vec![2u8; 300 << 10]).unwrap();
    for i in 0..300 {
        fs::write(src.join(format!("small-{i:03}.json")), vec![b'x'; 3000]).unwrap();
    }
    let failed = build_with_file_size_limit(tmp.path(), &src, &out, 600);
    assert!(
        !failed.status.success(),
        "the image is over the limit, the build must fail"
    );
    assert_eq!(
        (sha256_hex(&out), sha256_hex(&blob)),
        before,
        "the old image and its blobs must stay as they were; stderr: {}",
        String::from_utf8_lossy(&failed.stderr)
    );
    let names: Vec<String> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("fspack-tmp"))
        .collect();
    assert!(names.is_empty(), "staging left behind: {names:?}");
}

/// Issue 13: an image paired with the data blobs of another build is refused, naming the device
/// and both identities, with exit 6 (integrity).
#[test]
fn an_image_paired_with_foreign_blobs_is_refused_with_exit_6() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("weights.bin"), vec![1u8; 300 << 10]).unwrap();
    let build = |out: &Path| {
        fspack(tmp.path())
            .arg("build")
            .arg(&src)
            .arg("-o")
            .arg(out)
            .args(["--layout", "chunked"])
            .assert()
            .success();
    };
    let old = tmp.path().join("old.erofs");
    build(&old);
    fs::write(src.join("weights.bin"), vec![2u8; 300 << 10]).unwrap();
    let new = tmp.path().join("new.erofs");
    build(&new);
    // A correct pair pushes: the tags the build wrote are the digests the layers get.
    let report = run_json(
        fspack(tmp.path())
            .arg("push")
            .arg(&new)
            .arg(format!("oci:{}:new", tmp.path().join("layout").display()))
            .arg("--json"),
    );
    let new_digest = report["layers"][0]["digest"].as_str().unwrap().to_string();
    // The old image beside the new blobs: what the old `build` could leave behind.
    fs::remove_dir_all(tmp.path().join("old.erofs.d")).unwrap();
    fs::rename(
        tmp.path().join("new.erofs.d"),
        tmp.path().join("old.erofs.d"),
    )
    .unwrap();
    fspack(tmp.path())
        .arg("push")
        .arg(&old)
        .arg(format!("oci:{}:v1", tmp.path().join("layout").display()))
        .assert()
        .code(6)
        .stderr(
            predicate::str::contains("device 1")
                .and(predicate::str::contains("old.erofs.d/blob-0000"))
                .and(predicate::str::contains(new_digest.as_str()))
                .and(predicate::str::contains("does not belong to EROFS image")),
        );
}

/// Issue 13: SquashFS shards of a directory push are staged under the store (here: in the
/// destination layout's ingest/), never in `$TMPDIR` (RAM on many systems), and removed afterwards.
#[test]
fn a_squashfs_push_stages_under_the_store_not_in_tmpdir() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("weights.bin"), vec![3u8; 2 << 20]).unwrap();
    fs::write(src.join("config.json"), b"{}").unwrap();
    let layout = tmp.path().join("layout");
    fspack(tmp.path())
        .env("TMPDIR", tmp.path().join("no-such-tmpdir"))
        .arg("push")
        .arg(&src)
        .arg(format!("oci:{}:v1", layout.display()))
        .args(["--format", "squashfs", "--blob-size", "1M"])
        .assert()
        .success();
    // Staged in the layout's ingest/, which goes with the rest of fspack's work directories.
    let mut left: Vec<_> = fs::read_dir(&layout)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["blobs", "index.json", "oci-layout"],
        "staging left behind"
    );
    assert!(!tmp.path().join("no-such-tmpdir").exists());
}

/// One case per row of the exit-code table (cli/src/exit.rs), as far as it can be reached
/// without a registry; 4 (auth) and 3 for a registry reference are in tests/registry.rs, 6 for a
/// mismatched image above.
#[test]
fn every_exit_code_of_the_table_is_reachable() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("a.txt"), b"a").unwrap();
    let store = tmp.path().join("store");
    // 0
    fspack(&store)
        .args(["completions", "bash"])
        .assert()
        .code(0);
    // 1: a local I/O failure (the output's parent is a file)
    fspack(&store)
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg("/dev/null/out.erofs")
        .assert()
        .code(1);
    // 2: a usage error the CLI finds itself (it exited 1 before issue 13)
    fspack(&store)
        .args(["login", "localhost:5000", "-u", "alice"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--password-stdin"));
    fspack(&store)
        .args(["login", "localhost:5000", "-u", "alice", "--password-stdin"])
        .write_stdin("\n")
        .assert()
        .code(2);
    // 3
    fspack(&store)
        .arg("build")
        .arg(tmp.path().join("missing"))
        .arg("-o")
        .arg(tmp.path().join("x.erofs"))
        .assert()
        .code(3);
    // 3: an oci: layout that is not there, named with how to make one (mount printed only
    // the path's ENOENT before)
    let absent = tmp.path().join("no-layout");
    for args in [
        vec!["pull".to_string(), format!("oci:{}:v1", absent.display())],
        vec![
            "mount".to_string(),
            format!("oci:{}:v1", absent.display()),
            tmp.path().join("mnt").display().to_string(),
        ],
    ] {
        fspack(&store)
            .args(&args)
            .assert()
            .code(3)
            .stderr(predicate::str::contains(format!(
                "no OCI image layout at {} (the directory does not exist)",
                absent.display()
            )))
            .stderr(predicate::str::contains("skopeo copy"));
    }
    // 5: nothing listens on port 1
    fspack(&store)
        .args(["pull", "127.0.0.1:1/a/b:v1", "--plain-http"])
        .assert()
        .code(5);
    // 6: a corrupt blob in a store (it exited 1 before issue 13)
    let layout = tmp.path().join("layout");
    let report = run_json(
        fspack(&store)
            .arg("push")
            .arg(&src)
            .arg(format!("oci:{}:v1", layout.display()))
            .arg("--json"),
    );
    let digest = report["manifest_digest"].as_str().unwrap();
    let manifest = layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap());
    let mut bytes = fs::read(&manifest).unwrap();
    bytes[10] ^= 1;
    fs::write(&manifest, bytes).unwrap();
    fspack(&store)
        .arg("inspect")
        .arg(format!("oci:{}:v1", layout.display()))
        .assert()
        .code(6)
        .stderr(predicate::str::contains("changed on disk"));
    // 7: without CAP_SYS_ADMIN (a normal user, or root with the capability dropped)
    let bin = assert_cmd::cargo::cargo_bin("fspack");
    let mut cmd = if rustix::process::geteuid().is_root() {
        if !trees::have_tool("setpriv") {
            return;
        }
        let mut c = std::process::Command::new("setpriv");
        c.args(["--bounding-set=-sys_admin", "--inh-caps=-sys_admin"])
            .arg(&bin);
        c
    } else {
        std::process::Command::new(&bin)
    };
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let out = cmd
        .args(["pull", "127.0.0.1:1/a/b:v1", "--mount"])
        .arg(&mnt)
        .env("FSPACK_STORE", &store)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_same_tree_pushes_to_the_same_manifest_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("weights.bin"), vec![4u8; 3 << 20]).unwrap();
    fs::write(src.join("sub/config.json"), b"{\"a\": 1}").unwrap();
    let digest = |n: &str| {
        let layout = format!("oci:{}:v1", tmp.path().join(n).display());
        let v = run_json(fspack(tmp.path()).arg("push").arg(&src).arg(&layout).args([
            "--blob-size",
            "1M",
            "--json",
        ]));
        v["manifest_digest"].as_str().unwrap().to_string()
    };
    assert_eq!(
        digest("a"),
        digest("b"),
        "a rebuild must give byte-identical blobs and manifest"
    );
}

/// Report item 18: hidden subcommands are neither completed nor suggested.
#[test]
fn hidden_subcommands_are_not_offered() {
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = fspack(tmp.path())
            .args(["completions", shell])
            .output()
            .unwrap();
        let script = String::from_utf8_lossy(&out.stdout);
        for hidden in ["lazy-serve", "generate-docs", "\"__complete\""] {
            assert!(
                !script.contains(hidden),
                "{shell} completion offers {hidden}"
            );
        }
    }
    for typo in ["lazy", "generate"] {
        fspack(tmp.path()).arg(typo).assert().code(2).stderr(
            predicate::str::contains("unrecognized subcommand")
                .and(predicate::str::contains("lazy-serve").not())
                .and(predicate::str::contains("generate-docs").not()),
        );
    }
}

/// Report item 19: `-j` only where blobs are transferred, `--store` only where the store is
/// used; elsewhere clap refuses them like any unknown option.
#[test]
fn options_a_command_does_not_use_are_not_offered() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let cases: &[&[&str]] = &[
        &["inspect", "127.0.0.1:1/a/b:v1", "-j", "2"],
        &[
            "sign",
            "127.0.0.1:1/a/b:v1",
            "--key",
            "k.pem",
            "--jobs",
            "2",
        ],
        &["login", "127.0.0.1:1", "-u", "me", "--store", "s"],
        &["logout", "127.0.0.1:1", "--store", "s"],
        &["completions", "bash", "--store", "s"],
    ];
    for args in cases {
        let flag = args[args.len() - 2];
        fspack(&store)
            .args(*args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "unexpected argument '{flag}'"
            )));
    }
    // Where the store is used, --store is taken after the command as before it.
    for args in [&["--store"][..], &["ls", "--store"][..]] {
        let dir = tmp.path().join(format!("s{}", args.len()));
        let mut cmd = fspack(&store);
        cmd.args(args).arg(&dir);
        if args.len() == 1 {
            cmd.arg("ls");
        }
        cmd.arg("--json").assert().success().stdout("[]\n");
    }
}

/// Report items 13 and 21: without -v a warning reads `warning: …` like an error reads
/// `error: …`; -v keeps the log format.
#[test]
fn warnings_read_like_errors_without_v() {
    let tmp = tempfile::tempdir().unwrap();
    let out = fspack(&tmp.path().join("store"))
        .env("FSPACK_RETRY_BASE_MS", "0")
        .env_remove("RUST_LOG")
        .args(["pull", "127.0.0.1:1/a/b:v1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("warning: cannot GET") && l.contains("retry 1 of 1")),
        "{stderr}"
    );
    // A refused first contact is retried once (s10), not five times.
    assert!(!stderr.contains("retry 2 of"), "{stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert!(stderr.contains("\nerror: failed to pull"), "{stderr}");
}

/// Report item 26: --blob-size bounds a blob's data; the pushed blob adds its chunk index
/// (32 bytes + 48 per MiB), as the help and docs/format.md say.
#[test]
fn a_pushed_blob_is_its_data_plus_its_chunk_index() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    // xorshift: no two MiB alike, so no blob is deduplicated.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(src.join("big"), data).unwrap();
    let layout = tmp.path().join("layout");
    fspack(&tmp.path().join("store"))
        .arg("push")
        .arg(&src)
        .arg(format!("oci:{}:v1", layout.display()))
        .args(["--blob-size", "1M"])
        .assert()
        .success();
    let sizes: Vec<u64> = fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .collect();
    let with_index = (1 << 20) + 32 + 48;
    assert_eq!(
        sizes.iter().filter(|&&n| n == with_index).count(),
        3,
        "{sizes:?}"
    );
}

/// `push IMAGE_FILE REF` pushes the image as built: an image option would be ignored, so it is
/// refused by name (exit 2) before anything is sent.
#[test]
fn pushing_an_image_file_refuses_image_options() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), "x").unwrap();
    let image = tmp.path().join("i.erofs");
    let store = tmp.path().join("store");
    fspack(&store)
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&image)
        .assert()
        .success();
    let layout = tmp.path().join("layout");
    let dest = format!("oci:{}:v1", layout.display());
    for (args, flag) in [
        (&["--format", "squashfs"][..], "--format"),
        (&["--compression", "gzip"][..], "--compression"),
        (&["--blob-size", "4M"][..], "--blob-size"),
        (&["--all-root"][..], "--all-root"),
    ] {
        fspack(&store)
            .arg("push")
            .arg(&image)
            .arg(&dest)
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "{flag} shapes an image built from a directory, but {} is an image file",
                image.display()
            )));
        assert!(!layout.exists(), "{args:?} wrote the layout");
    }
    // Taken from the environment, SOURCE_DATE_EPOCH is no request to this push.
    fspack(&store)
        .arg("push")
        .arg(&image)
        .arg(&dest)
        .env("SOURCE_DATE_EPOCH", "1")
        .assert()
        .success();
}

/// Report item 27: `ls`, `gc` and `images` refuse a world-writable store directory as `pull`
/// does, instead of reporting it empty.
#[test]
fn readers_refuse_a_store_that_pull_refuses() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("open");
    fs::create_dir(&store).unwrap();
    fs::set_permissions(&store, fs::Permissions::from_mode(0o777)).unwrap();
    let pull = fspack(&store)
        .args(["pull", "127.0.0.1:1/a/b:v1"])
        .output()
        .unwrap();
    let why = "writable by everyone";
    assert!(String::from_utf8_lossy(&pull.stderr).contains(why));
    // The hint is a line of its own, as every other hint (s12 fresh-eyes pass: "Hint:" sat
    // inside the cause).
    assert!(
        String::from_utf8_lossy(&pull.stderr).contains("\nhint: use a directory you own"),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    for cmd in [&["ls"][..], &["gc"], &["images"]] {
        let out = fspack(&store).args(cmd).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), pull.status.code(), "{cmd:?}: {stderr}");
        assert!(stderr.contains(why), "{cmd:?}: {stderr}");
    }
}

/// s9 fresh-eyes pass: `gc` waited without a word while a lazy mount was filling (its server
/// holds the store, as any running fspack command does); it now says what it waits for.
#[test]
fn gc_says_when_it_waits_for_another_process_using_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"a\n").unwrap();
    let layout = format!("oci:{}:v1", tmp.path().join("layout").display());
    let store = tmp.path().join("store");
    fspack(&tmp.path().join("push-store"))
        .args(["push", src.to_str().unwrap(), &layout])
        .assert()
        .success();
    fspack(&store).args(["pull", &layout]).assert().success();
    // Another process holding the store, as a running pull or lazy server does.
    let mut holder = std::process::Command::new("flock")
        .arg("-s")
        .arg(store.join("locks/gc.lock"))
        .args(["sleep", "1"])
        .spawn()
        .expect("flock(1) from util-linux");
    std::thread::sleep(std::time::Duration::from_millis(300));
    fspack(&store)
        .arg("gc")
        .assert()
        .success()
        .stderr(predicates::str::contains(
            "waiting for the other fspack processes using the store",
        ));
    holder.wait().unwrap();
    fspack(&store)
        .arg("gc")
        .assert()
        .success()
        .stderr(predicates::str::contains("waiting").not());
}

/// s10 fresh-eyes pass: `push FIFO REF` hung for ever in open(2) while looking for magic
/// bytes, and `push DIR REPO:TAG@DIGEST` moved the tag and reported a digest nobody pushed.
/// Both are bad usage now (exit 2), found before any network traffic.
#[test]
fn a_push_of_a_fifo_or_to_a_digest_reference_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("fifo");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    fspack(tmp.path())
        .arg("push")
        .arg(&fifo)
        .arg("127.0.0.1:1/a/b:v1")
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a special file"));
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let digest = format!("sha256:{}", "1".repeat(64));
    fspack(tmp.path())
        .arg("push")
        .arg(&src)
        .arg(format!("127.0.0.1:1/a/b:t1@{digest}"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "names a manifest digest ({digest})"
        )))
        .stderr(predicate::str::contains("push to 127.0.0.1:1/a/b:t1"));
}

/// s10 fresh-eyes pass: `build --format squashfs --shards` writes OUT.d/ and no OUT, so
/// `push OUT` failed with a bare "No such file", and `push OUT.d` built a new EROFS image with
/// the shard files as its content. Now `push OUT` points at OUT.d, and `push OUT.d` sends the
/// shards as built, one layer each, as a push of the source would.
#[test]
fn the_shards_of_a_squashfs_build_are_pushed_as_built() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("a")).unwrap();
    let big: Vec<u8> = (0..6u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    fs::write(src.join("a/big.bin"), &big).unwrap();
    fs::write(src.join("small.txt"), b"small\n").unwrap();
    let out = tmp.path().join("m.sq");
    fspack(tmp.path())
        .arg("build")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--format", "squashfs", "--shards", "auto"])
        .assert()
        .success();
    let shards_dir = tmp.path().join("m.sq.d");
    let mut shards: Vec<_> = fs::read_dir(&shards_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    shards.sort();
    assert!(shards.len() >= 2, "{shards:?}");
    let layout = format!("oci:{}:v1", tmp.path().join("layout").display());
    fspack(tmp.path())
        .arg("push")
        .arg(&out)
        .arg(&layout)
        .assert()
        .code(3)
        .stderr(predicate::str::contains(format!(
            "push {}, which holds them",
            shards_dir.display()
        )));
    fspack(tmp.path())
        .arg("push")
        .arg(&shards_dir)
        .arg(&layout)
        .args(["--shards", "2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "holds the shards of a SquashFS build",
        ));
    let report = run_json(
        fspack(tmp.path())
            .arg("push")
            .arg(&shards_dir)
            .arg(&layout)
            .arg("--json"),
    );
    assert_eq!(report["format"], "squashfs", "{report}");
    let pushed: Vec<String> = report["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    // Each layer is its shard as built, followed by the chunk index every push appends.
    assert_eq!(pushed.len(), shards.len());
    for (digest, shard) in pushed.iter().zip(&shards) {
        let blob = fs::read(
            tmp.path()
                .join("layout/blobs/sha256")
                .join(digest.strip_prefix("sha256:").unwrap()),
        )
        .unwrap();
        assert!(
            blob.starts_with(&fs::read(shard).unwrap()),
            "{digest} is not {}",
            shard.display()
        );
    }
}

/// s10 fresh-eyes pass: with FSPACK_STORE set, usage errors read `Usage: fspack verify --store
/// <DIR> <REF|--all>`, as if --store were required (clap counted its env value as given). The
/// variable still chooses the store.
#[test]
fn fspack_store_in_the_environment_stays_out_of_usage_lines() {
    let tmp = tempfile::tempdir().unwrap();
    fspack(&tmp.path().join("store"))
        .arg("verify")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Usage: fspack verify <REF|--all>"));
    let out = fspack(&tmp.path().join("store"))
        .args(["pull", "no-such.example/a/b:v1", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("[default: $FSPACK_STORE, else"));
}

/// s10 fresh-eyes pass: `login` of a registry that is not running said it "did not accept the
/// credentials", and `login http://HOST` asked `https://http//HOST`. Now: "cannot reach" (exit
/// 5), and a scheme is bad usage (exit 2) before any password is read or request sent.
#[test]
fn login_says_when_the_registry_cannot_be_reached_and_refuses_a_url() {
    let tmp = tempfile::tempdir().unwrap();
    fspack(tmp.path())
        .env("DOCKER_CONFIG", tmp.path().join("docker"))
        .args(["login", "127.0.0.1:1", "-u", "me", "--password-stdin"])
        .write_stdin("pw\n")
        .assert()
        .code(5)
        .stderr(predicate::str::contains(
            "cannot reach 127.0.0.1:1; nothing was stored",
        ));
    fspack(tmp.path())
        .env("DOCKER_CONFIG", tmp.path().join("docker"))
        .args([
            "login",
            "http://127.0.0.1:1",
            "-u",
            "me",
            "--password-stdin",
        ])
        .write_stdin("pw\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("drop http://"));
    assert!(!tmp.path().join("docker").exists());
}

/// s12 fresh-eyes pass: a registry that is not there gave a clear first cause, then five lines
/// of the HTTP client's internals; those now come with `-v` only.
#[test]
fn a_registry_that_is_not_there_is_said_once_and_v_shows_the_causes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out = fspack(&store)
        .args(["pull", "127.0.0.1:1/nothing/here:v1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(
        stderr.contains("nothing listens at 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(!stderr.contains("tcp connect error"), "{stderr}");
    let out = fspack(&store)
        .args(["-v", "pull", "127.0.0.1:1/nothing/here:v1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert!(stderr.contains("caused by: tcp connect error"), "{stderr}");
}
