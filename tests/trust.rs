//! Trust before mount (issue 12) against a real registry: fspack's signatures verify with
//! openssl, signatures made by an independent cosign-style script verify with fspack, and every
//! way an image can be unsigned or wrongly signed is refused with exit 6 before any layer is
//! fetched, with nothing mounted and the store's tag untouched.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::trees::{can_mount, have_tool};
use common::*;
use predicates::prelude::*;

const SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/scripts");

/// A P-256 key pair from openssl: (PKCS#8 private key, public key).
fn keypair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    let st = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
        ])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(st.success());
    (key, public)
}

fn tools() -> bool {
    have_tool("openssl") && have_tool("jq") && have_tool("curl")
}

fn tree(dir: &Path, tag: &str) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("weights.bin"), vec![7u8; 300_000]).unwrap();
    fs::write(dir.join("sub/version.txt"), tag).unwrap();
}

/// Pushes a small tree (content depends on `tag`); returns the manifest digest.
fn push(store: &Path, src: &Path, reference: &str, extra: &[&std::ffi::OsStr]) -> String {
    let out = fspack(store)
        .arg("push")
        .arg(src)
        .arg(reference)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn script(name: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new("bash")
        .arg(format!("{SCRIPTS}/{name}"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The store's tags (the manifests of its index.json), `[]` for a store not made yet.
fn tags(store: &Path) -> serde_json::Value {
    fs::read(store.join("index.json"))
        .map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap()["manifests"].clone())
        .unwrap_or_else(|_| serde_json::json!([]))
}

/// Layer blobs in the store (anything under blobs/ but the manifest and the empty config).
fn stored_blobs(store: &Path) -> usize {
    fs::read_dir(store.join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_signature_made_by_fspack_verifies_with_openssl() {
    if !tools() {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "signer");
    let src = tmp.path().join("src");
    tree(&src, "v1");
    let reference = format!("{}/models/signed:v1", reg.addr);
    let digest = push(
        tmp.path(),
        &src,
        &reference,
        &["--sign-key".as_ref(), key.as_os_str()],
    );
    let out = script(
        "cosign-verify.sh",
        &[
            &reg.addr,
            "models/signed",
            &digest,
            public.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "openssl refused fspack's signature: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Signing again with the same key adds nothing; `fspack sign` resolves the tag itself.
    fspack(tmp.path())
        .args(["sign", &reference, "--key"])
        .arg(&key)
        .assert()
        .success()
        .stdout(format!("{digest}\n"))
        .stderr(predicate::str::contains("already signed"));
    // And another key's signature goes beside it, both verifiable.
    let (key2, public2) = keypair(tmp.path(), "second");
    fspack(tmp.path())
        .args(["sign", &reference, "--key"])
        .arg(&key2)
        .assert()
        .success();
    for p in [&public, &public2] {
        let out = script(
            "cosign-verify.sh",
            &[&reg.addr, "models/signed", &digest, p.to_str().unwrap()],
            &[],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every file path under `dir`, sorted (what a registry's storage holds).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn sign_refuses_a_digest_the_repository_does_not_hold_with_exit_3_before_uploading() {
    if !have_tool("openssl") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (key, _) = keypair(tmp.path(), "signer");
    let src = tmp.path().join("src");
    tree(&src, "v1");
    let real = push(
        tmp.path(),
        &src,
        &format!("{}/models/real:v1", reg.addr),
        &[],
    );
    let missing = format!("sha256:{}", "ab".repeat(32));
    let before = files_under(&reg.storage());
    // A repository that never existed, a digest the existing one does not hold, and a real
    // manifest digest asked of the wrong repository.
    for reference in [
        format!("{}/models/never@{missing}", reg.addr),
        format!("{}/models/real@{missing}", reg.addr),
        format!("{}/models/other@{real}", reg.addr),
    ] {
        let digest = reference.split_once('@').unwrap().1;
        fspack(tmp.path())
            .args(["sign", &reference, "--key"])
            .arg(&key)
            .assert()
            .code(3)
            .stdout("")
            .stderr(predicate::str::contains(&reference))
            .stderr(predicate::str::contains(format!(
                "manifest {digest} not found"
            )));
    }
    assert_eq!(
        files_under(&reg.storage()),
        before,
        "sign uploaded something for a manifest that does not exist"
    );
}

#[test]
fn a_cosign_style_signature_from_an_independent_script_verifies_with_fspack() {
    if !tools() {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "cosign");
    let src = tmp.path().join("src");
    tree(&src, "v1");
    let reference = format!("{}/models/cosigned:v1", reg.addr);
    let digest = push(tmp.path(), &src, &reference, &[]);
    let out = script(
        "cosign-sign.sh",
        &[&reg.addr, "models/cosigned", &digest, key.to_str().unwrap()],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = tmp.path().join("store");
    fspack(&store)
        .args(["pull", &reference, "--verify-key"])
        .arg(&public)
        .assert()
        .success()
        .stdout(format!("{digest}\n"))
        // The human summary names the rule that passed, without `--json` or `-v`.
        .stderr(predicate::str::contains(format!(
            "trust: passed --verify-key {}",
            public.display()
        )));
    // The report says what was checked, also when nothing had to be fetched.
    let report = run_json(
        fspack(&store)
            .args(["pull", &reference, "--json", "--verify-key"])
            .arg(&public),
    );
    assert_eq!(
        report["trust_checks"],
        serde_json::json!([format!("--verify-key {}", public.display())]),
        "{report}"
    );
}

/// Pulls with `--verify-key` and expects exit 6 naming the reference, the digest and the
/// rule, with no layer fetched, nothing mounted and the store's tag as it was.
fn assert_refused(store: &Path, reference: &str, digest: &str, public: &Path, reason: &str) {
    let tag_before = tags(store);
    let blobs_before = stored_blobs(store);
    let mnt = store.with_extension("mnt");
    fs::create_dir_all(&mnt).unwrap();
    let mut cmd = fspack(store);
    cmd.args(["pull", reference, "--verify-key"]).arg(public);
    let mounting = can_mount("erofs");
    if mounting {
        cmd.arg("--mount").arg(&mnt);
    }
    cmd.assert()
        .code(6)
        .stderr(predicate::str::contains(reference))
        .stderr(predicate::str::contains(digest))
        .stderr(predicate::str::contains(format!(
            "--verify-key {}",
            public.display()
        )))
        .stderr(predicate::str::contains(reason));
    assert_eq!(
        stored_blobs(store),
        blobs_before,
        "a refused pull stored blobs"
    );
    assert_eq!(tags(store), tag_before, "a refused pull moved the tag");
    assert!(
        leftovers(&mnt).is_empty(),
        "a refused pull mounted something"
    );
}

#[test]
fn unsigned_other_key_moved_tag_tampered_and_other_repository_are_refused_with_exit_6() {
    if !tools() {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "good");
    let (other_key, _) = keypair(tmp.path(), "other");
    let store = tmp.path().join("store");
    let a = tmp.path().join("a");
    tree(&a, "a");

    // Unsigned: the message says the signature tag is missing, not that it is empty.
    let unsigned = format!("{}/models/unsigned:v1", reg.addr);
    let d = push(tmp.path(), &a, &unsigned, &[]);
    assert_refused(
        &store,
        &unsigned,
        &d,
        &public,
        "no signature: the registry has no signature tag",
    );

    // Signed, but by another key.
    let other = format!("{}/models/otherkey:v1", reg.addr);
    let d = push(
        tmp.path(),
        &a,
        &other,
        &["--sign-key".as_ref(), other_key.as_os_str()],
    );
    assert_refused(&store, &other, &d, &public, "does not verify with this key");

    // A signed tag that is pulled, then moved to an unsigned manifest: refused, and the store
    // keeps the signed digest under the tag.
    let moved = format!("{}/models/moved:v1", reg.addr);
    let signed = push(
        tmp.path(),
        &a,
        &moved,
        &["--sign-key".as_ref(), key.as_os_str()],
    );
    fspack(&store)
        .args(["pull", &moved, "--verify-key"])
        .arg(&public)
        .assert()
        .success();
    let b = tmp.path().join("b");
    tree(&b, "b");
    let d = push(tmp.path(), &b, &moved, &[]);
    assert_ne!(d, signed);
    assert_refused(&store, &moved, &d, &public, "no signature");
    assert!(
        fs::read_to_string(store.join("index.json"))
            .unwrap()
            .contains(&signed)
    );

    // A payload changed after it was signed.
    let tampered = format!("{}/models/tampered:v1", reg.addr);
    let d = push(tmp.path(), &a, &tampered, &[]);
    let out = script(
        "cosign-sign.sh",
        &[&reg.addr, "models/tampered", &d, key.to_str().unwrap()],
        &[("TAMPER", "1")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_refused(
        &store,
        &tampered,
        &d,
        &public,
        "does not verify with this key",
    );

    // A valid signature by the right key, but made for another repository and copied here.
    let copied = format!("{}/models/copied:v1", reg.addr);
    let d = push(tmp.path(), &a, &copied, &[]);
    let out = script(
        "cosign-sign.sh",
        &[
            &reg.addr,
            "models/copied",
            &d,
            key.to_str().unwrap(),
            &format!("{}/models/elsewhere", reg.addr),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_refused(&store, &copied, &d, &public, "payload signs repository");
}

#[test]
fn the_policy_file_picks_the_most_specific_scope_and_names_the_rule() {
    if !tools() {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (key, public) = keypair(tmp.path(), "team");
    let src = tmp.path().join("src");
    tree(&src, "v1");
    let signed = format!("{}/team/model:v1", reg.addr);
    let signed_digest = push(
        tmp.path(),
        &src,
        &signed,
        &["--sign-key".as_ref(), key.as_os_str()],
    );
    let loose = format!("{}/scratch/model:v1", reg.addr);
    let loose_digest = push(tmp.path(), &src, &loose, &[]);
    let pinned = format!("{}/pinned/model:v1", reg.addr);
    push(tmp.path(), &src, &pinned, &[]);
    let policy = tmp.path().join("policy.json");
    fs::write(
        &policy,
        serde_json::json!({
            "default": [{"type": "reject"}],
            "transports": {"docker": {
                format!("{}/team", reg.addr): [{"type": "sigstoreSigned", "keyPath": public}],
                format!("{}/scratch", reg.addr): [{"type": "insecureAcceptAnything"}],
                format!("{}/pinned", reg.addr): [{"type": "pinnedDigest", "digests": [signed_digest]}],
            }}
        })
        .to_string(),
    )
    .unwrap();
    let store = tmp.path().join("store");
    let pull = |r: &str| {
        let mut c = fspack(&store);
        c.args(["pull", r, "--policy"]).arg(&policy);
        c
    };
    pull(&signed).assert().success();
    pull(&loose)
        .assert()
        .success()
        .stdout(format!("{loose_digest}\n"));
    // Same content as the signed one, so the same digest: the pin admits it.
    pull(&pinned).assert().success();
    let unknown = format!("{}/other/model:v1", reg.addr);
    push(tmp.path(), &src, &unknown, &[]);
    pull(&unknown)
        .assert()
        .code(6)
        .stderr(predicate::str::contains("default[0] reject"));
    // An unsigned manifest under the signed scope.
    let unsigned = format!("{}/team/model:v2", reg.addr);
    let other = tmp.path().join("other");
    tree(&other, "v2");
    push(tmp.path(), &other, &unsigned, &[]);
    pull(&unsigned)
        .assert()
        .code(6)
        .stderr(predicate::str::contains(format!("{}/team", reg.addr)))
        .stderr(predicate::str::contains("sigstoreSigned"));
    // A pin that the tag no longer matches.
    push(tmp.path(), &other, &pinned, &[]);
    pull(&pinned)
        .assert()
        .code(6)
        .stderr(predicate::str::contains("not one of the pinned digests"));
    // A policy that cannot be read is a usage error, never "accept".
    fs::write(&policy, r#"{"default": [{"type": "signedBy"}]}"#).unwrap();
    pull(&loose)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("policy"));
    // A policy or key file that does not exist is a path not found (exit 3), named.
    let gone = tmp.path().join("gone.json");
    fspack(&tmp.path().join("store"))
        .args(["pull", &loose, "--policy"])
        .arg(&gone)
        .assert()
        .code(3)
        .stderr(predicate::str::contains(format!(
            "{}: no such policy file",
            gone.display()
        )));
    fspack(&tmp.path().join("store"))
        .args(["pull", &loose, "--verify-key"])
        .arg(tmp.path().join("gone.pub"))
        .assert()
        .code(3)
        .stderr(predicate::str::contains("gone.pub: no such key file"));
}

#[test]
fn an_oci_layout_is_held_to_the_keys_and_the_policy_and_fails_closed_without_a_signature() {
    if !have_tool("openssl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_, public) = keypair(tmp.path(), "team");
    let src = tmp.path().join("src");
    tree(&src, "v1");
    let layout = tmp.path().join("usb/models");
    let reference = format!("oci:{}:v1", layout.display());
    let digest = push(&tmp.path().join("push-store"), &src, &reference, &[]);
    let store = tmp.path().join("store");
    let pull = |extra: &[&std::ffi::OsStr]| {
        let mut c = fspack(&store);
        c.args(["pull", &reference]).args(extra);
        c
    };
    // A key asks for a signature that a layout on disk cannot carry: refused, nothing copied.
    pull(&["--verify-key".as_ref(), public.as_os_str()])
        .assert()
        .code(6)
        .stderr(predicate::str::contains(&reference))
        .stderr(predicate::str::contains("--verify-key"))
        .stderr(predicate::str::contains("oci: layout carries none"));
    assert_eq!(
        tags(&store),
        serde_json::json!([]),
        "no tag after a refusal"
    );
    assert_eq!(stored_blobs(&store), 0, "no blob copied before the check");
    let policy = tmp.path().join("policy.json");
    let write_policy = |oci: serde_json::Value| {
        let p = serde_json::json!({"default": [{"type": "reject"}], "transports": {"oci": oci}});
        fs::write(&policy, p.to_string()).unwrap();
    };
    let with_policy = || pull(&["--policy".as_ref(), policy.as_os_str()]);
    // The default applies to layouts too.
    write_policy(serde_json::json!({}));
    with_policy()
        .assert()
        .code(6)
        .stderr(predicate::str::contains("default[0] reject"));
    // A parent directory's scope admits it; a pin on the path:tag scope wins over it.
    let usb = tmp.path().join("usb").canonicalize().unwrap();
    let tagged = format!("{}:v1", usb.join("models").display());
    write_policy(serde_json::json!({
        usb.display().to_string(): [{"type": "insecureAcceptAnything"}],
    }));
    with_policy()
        .assert()
        .success()
        .stdout(format!("{digest}\n"));
    write_policy(serde_json::json!({
        usb.display().to_string(): [{"type": "insecureAcceptAnything"}],
        tagged: [{"type": "pinnedDigest", "digests": ["sha256:".to_string() + &"0".repeat(64)]}],
    }));
    // Already copied: the rules of today still apply when it is mounted again.
    let point = tmp.path().join("mnt");
    fspack(&store)
        .args(["mount", &reference])
        .arg(&point)
        .arg("--policy")
        .arg(&policy)
        .assert()
        .code(6)
        .stderr(predicate::str::contains("not one of the pinned digests"));
    assert!(!point.join("weights.bin").exists(), "nothing mounted");
}

#[test]
fn privileged_a_crafted_image_is_refused_before_mount_with_exit_6() {
    if !can_mount("erofs") || !can_mount("squashfs") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    tree(&src, "v1");
    // (format, offset, bytes written there, the check that must refuse it)
    let cases: [(&str, usize, &[u8], &str); 2] = [
        // EROFS: build_time changed, the superblock checksum not updated.
        ("erofs", 1024 + 24, &[0x5a, 0x5a], "superblock checksum"),
        // SquashFS: the root inode reference points past the inode table.
        ("squashfs", 32, &[0, 0, 0xff, 0xff, 0, 0, 0, 0], "`inode`"),
    ];
    for (format, at, bytes, check) in cases {
        let image = tmp.path().join(format!("img.{format}"));
        fspack(tmp.path())
            .arg("build")
            .arg(&src)
            .arg("-o")
            .arg(&image)
            .args(["--format", format])
            .assert()
            .success();
        let mut data = fs::read(&image).unwrap();
        data[at..at + bytes.len()].copy_from_slice(bytes);
        fs::write(&image, &data).unwrap();
        let reference = format!("{}/crafted/{format}:v1", reg.addr);
        push(tmp.path(), &image, &reference, &[]);
        let store = tmp.path().join(format!("store-{format}"));
        let mnt = tmp.path().join(format!("mnt-{format}"));
        fs::create_dir(&mnt).unwrap();
        fspack(&store)
            .args(["pull", &reference, "--mount"])
            .arg(&mnt)
            .assert()
            .code(6)
            .stderr(predicate::str::contains(check))
            .stderr(predicate::str::contains("image check"));
        assert!(
            leftovers(&mnt).is_empty(),
            "{format}: something was mounted"
        );
    }
}
