//! The committed completion scripts, run in their real shells: static candidates for commands and
//! flags, and dynamic ones (references in the local store) from `fspack __complete`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// PATH with the freshly built fspack first, so the scripts call this build.
fn path_with_fspack() -> String {
    let bin = assert_cmd::cargo::cargo_bin("fspack");
    format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs bash completion for the words of `line` (the last word is being completed), with
/// `FSPACK_STORE` set to `store`.
fn bash_complete(line: &str, store: &Path) -> Vec<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let script = format!(
        "source {}; COMP_WORDS=({}); COMP_CWORD={}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}; _fspack_dynamic fspack '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        repo().join("completions/fspack.bash").display(),
        words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" "),
        words.len() - 1,
        words.last().unwrap(),
        words.get(words.len().wrapping_sub(2)).unwrap_or(&""),
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("PATH", path_with_fspack())
        .env("FSPACK_STORE", store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .filter(|s| !s.is_empty())
        .collect()
}

/// A store holding one tag, made by pushing to it as an OCI layout.
fn store_with_tag(tmp: &Path) -> PathBuf {
    let src = tmp.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let store = tmp.join("store");
    fspack(&store)
        .arg("push")
        .arg(&src)
        .arg(format!("oci:{}:my-model-v1", store.display()))
        .assert()
        .success();
    store
}

#[test]
fn bash_completes_subcommands_flags_and_store_references() {
    if !trees::have_tool("bash") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_tag(tmp.path());
    let subs = bash_complete("fspack pu", &store);
    assert!(
        subs.contains(&"push".to_string()) && subs.contains(&"pull".to_string()),
        "{subs:?}"
    );
    let flags = bash_complete("fspack push --jo", &store);
    assert_eq!(flags, vec!["--jobs".to_string()]);
    let refs = bash_complete("fspack mount my-", &store);
    assert_eq!(refs, vec!["my-model-v1".to_string()]);
}

/// Issue 13: a candidate that `fspack mount` cannot resolve is worse than none. The store tag
/// completion offers (here made by an `oci:` push into the store) must mount.
#[test]
fn privileged_a_completed_reference_mounts() {
    if !trees::have_tool("bash") || !trees::can_mount("erofs") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_tag(tmp.path());
    let refs = bash_complete("fspack mount my-", &store);
    assert_eq!(refs, vec!["my-model-v1".to_string()]);
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    fspack(&store)
        .args(["mount", &refs[0]])
        .arg(&mnt)
        .assert()
        .success();
    let content = std::fs::read(mnt.join("f"));
    fspack(&store).arg("umount").arg(&mnt).assert().success();
    assert_eq!(content.unwrap(), b"x");
}

/// Records a (fake) fspack mount on `target` in the store at `store`: completion reads only the
/// record.
fn record_mount(store: &Path, target: &str) {
    fspack_store::Store::open(store)
        .unwrap()
        .record_mount(&fspack_store::MountRecord {
            target: target.into(),
            reference: "r".into(),
            manifest_digest: fspack_store::parse_digest(&format!("sha256:{}", "0".repeat(64)))
                .unwrap(),
            format: "erofs".into(),
            blobs: vec![],
            loop_devices: vec![],
            lower_mounts: vec![],
            created_dirs: vec![],
            lazy: None,
            created: 0,
        })
        .unwrap();
}

/// Review finding A: a `--store` on the line (before or after the command, `--store DIR` or
/// `--store=DIR`) is the store completion reads, over `FSPACK_STORE`; and an option's value is
/// not a positional argument, so `push --format squashfs DIR <TAB>` completes the reference.
#[test]
fn bash_completion_follows_store_on_the_line_and_skips_option_values() {
    if !trees::have_tool("bash") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_tag(tmp.path());
    record_mount(&store, "/mnt/models/llama");
    // FSPACK_STORE names another, empty store: only the --store on the line can find these.
    let decoy = tmp.path().join("decoy");
    fspack_store::Store::open(&decoy).unwrap();
    let s = store.display();
    let mounts = vec!["/mnt/models/llama".to_string()];
    let refs = vec!["my-model-v1".to_string()];
    for line in [
        format!("fspack --store {s} umount /mnt/"),
        format!("fspack umount --store {s} /mnt/"),
        format!("fspack umount --store={s} /mnt/"),
        format!("fspack -q --store {s} unmount /mnt/"),
    ] {
        assert_eq!(bash_complete(&line, &decoy), mounts, "{line}");
    }
    for line in [
        format!("fspack --store {s} mount my-"),
        format!("fspack pull --store {s} --mount-mode ro my-"),
        format!("fspack --store {s} push --format squashfs src my-"),
        format!("fspack --store {s} push -j 2 --annotation a=b src my-"),
        format!("fspack --store {s} push src --format erofs my-"),
        format!("fspack --store {s} rmi my-model-v1 --store {s} my-"),
    ] {
        assert_eq!(bash_complete(&line, &decoy), refs, "{line}");
    }
    // With FSPACK_STORE alone, option values skipped all the same.
    assert_eq!(
        bash_complete("fspack push --format squashfs src my-", &store),
        refs
    );
    // An option's value, or the source of a push, is no reference.
    for line in [
        format!("fspack --store {s} push src --format my-"),
        format!("fspack --store {s} push --format squashfs my-"),
    ] {
        let got = bash_complete(&line, &decoy);
        assert!(!got.contains(&refs[0]), "{line}: {got:?}");
    }
}

#[test]
fn bash_completes_mount_points_for_umount() {
    if !trees::have_tool("bash") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store_dir = tmp.path().join("store");
    for target in ["/mnt/models/llama", "/mnt/models/mistral", "/srv/other"] {
        record_mount(&store_dir, target);
    }
    let got = bash_complete("fspack umount /mnt/models/", &store_dir);
    assert_eq!(
        got,
        vec![
            "/mnt/models/llama".to_string(),
            "/mnt/models/mistral".to_string()
        ]
    );
}

#[test]
fn bash_completes_a_repositorys_tags_from_the_registry() {
    if !trees::have_tool("bash") {
        return;
    }
    let Some(reg) = Registry::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    for tag in ["v1", "v2-rc", "latest"] {
        fspack(tmp.path())
            .arg("push")
            .arg(&src)
            .arg(format!("{}/team/model:{tag}", reg.addr))
            .assert()
            .success();
    }
    let store = tmp.path().join("store");
    // bash completes only the part after the last ':' of the word.
    let got = bash_complete(&format!("fspack pull {}/team/model:v", reg.addr), &store);
    assert_eq!(got, vec!["v1".to_string(), "v2-rc".to_string()]);
}

/// Runs fish completion for `line`, with `FSPACK_STORE` set to `store`; returns its candidates.
fn fish_complete(line: &str, store: &Path, home: &Path) -> String {
    let script = format!(
        "source {}; complete -C '{line}'",
        repo().join("completions/fspack.fish").display()
    );
    let out = Command::new("fish")
        .arg("--no-config")
        .arg("-c")
        .arg(script)
        .env("PATH", path_with_fspack())
        .env("FSPACK_STORE", store)
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn fish_completes_subcommands_and_store_references() {
    if !trees::have_tool("fish") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_tag(tmp.path());
    let run = |line: &str| fish_complete(line, &store, tmp.path());
    let subs = run("fspack pu");
    assert!(subs.contains("push") && subs.contains("pull"), "{subs}");
    assert!(run("fspack mount my-").contains("my-model-v1"));
}

/// Review finding A, in fish: a `--store` on the line is the store completion reads, and only
/// the reference of a push (not its source, not an option's value) completes references.
#[test]
fn fish_completion_follows_store_on_the_line_and_skips_option_values() {
    if !trees::have_tool("fish") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_tag(tmp.path());
    record_mount(&store, "/mnt/models/llama");
    let decoy = tmp.path().join("decoy");
    fspack_store::Store::open(&decoy).unwrap();
    let s = store.display();
    let run = |line: &str| fish_complete(line, &decoy, tmp.path());
    for line in [
        format!("fspack --store {s} umount /mnt/"),
        format!("fspack umount --store={s} /mnt/"),
    ] {
        let got = run(&line);
        assert!(got.contains("/mnt/models/llama"), "{line}: {got}");
    }
    for line in [
        format!("fspack --store {s} mount my-"),
        format!("fspack --store {s} push --format squashfs src my-"),
        format!("fspack push -j 2 --store {s} src my-"),
    ] {
        let got = run(&line);
        assert!(got.contains("my-model-v1"), "{line}: {got}");
    }
    for line in [
        format!("fspack --store {s} push my-"),
        format!("fspack --store {s} push src --annotation my-"),
    ] {
        let got = run(&line);
        assert!(!got.contains("my-model-v1"), "{line}: {got}");
    }
}

/// Types `line` and two TABs into an interactive zsh (driven through zsh/zpty) that loads the
/// committed completion with compinit, and returns everything zsh drew once `expect` shows up
/// (or after 20 s, so a slow machine makes the test slower, not flaky).
fn zsh_complete(line: &str, expect: &str, store: &Path, home: &Path) -> String {
    let script = format!(
        r#"zmodload zsh/zpty
zpty z 'zsh -f -i'
zpty -w z 'PROMPT="> "; fpath=({comp} $fpath); autoload -U compinit; compinit -u -D; export PATH={path} FSPACK_STORE={store}'
zpty -w -n z $'{line}\t\t'
out=""
for i in {{1..200}}; do
    while zpty -r -t z chunk; do out+=$chunk; done
    [[ $out == *{expect}* ]] && break
    sleep 0.1
done
print -r -- "$out"
zpty -d z
"#,
        comp = repo().join("completions").display(),
        path = path_with_fspack(),
        store = store.display(),
    );
    let out = Command::new("zsh")
        .arg("-f")
        .arg("-c")
        .arg(script)
        .env("HOME", home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zsh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn zsh_completes_subcommands_store_references_and_mount_points() {
    if !trees::have_tool("zsh") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_tag(tmp.path());
    record_mount(&store, "/mnt/models/llama");
    let subs = zsh_complete("fspack pu", "push", &store, tmp.path());
    assert!(subs.contains("push") && subs.contains("pull"), "{subs}");
    let refs = zsh_complete("fspack mount my-", "my-model-v1", &store, tmp.path());
    assert!(refs.contains("my-model-v1"), "{refs}");
    let mounts = zsh_complete("fspack umount /mnt/mod", "models/llama", &store, tmp.path());
    assert!(mounts.contains("/mnt/models/llama"), "{mounts}");
}

/// Review finding A, in zsh: a `--store` on the line (before or after the command) is the store
/// completion reads, over `FSPACK_STORE`.
#[test]
fn zsh_completion_follows_store_on_the_line() {
    if !trees::have_tool("zsh") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = store_with_tag(tmp.path());
    record_mount(&store, "/mnt/models/llama");
    let decoy = tmp.path().join("decoy");
    fspack_store::Store::open(&decoy).unwrap();
    let s = store.display();
    let mounts = zsh_complete(
        &format!("fspack --store {s} umount /mnt/mod"),
        "models/llama",
        &decoy,
        tmp.path(),
    );
    assert!(mounts.contains("/mnt/models/llama"), "{mounts}");
    let refs = zsh_complete(
        &format!("fspack push --store={s} --format squashfs src my-"),
        "my-model-v1",
        &decoy,
        tmp.path(),
    );
    assert!(refs.contains("my-model-v1"), "{refs}");
}

#[test]
fn zsh_and_bash_scripts_parse_and_shellcheck_passes() {
    if trees::have_tool("zsh") {
        let st = Command::new("zsh")
            .arg("-n")
            .arg(repo().join("completions/_fspack"))
            .status()
            .unwrap();
        assert!(st.success(), "zsh -n rejects completions/_fspack");
    }
    if trees::have_tool("shellcheck") {
        let out = Command::new("shellcheck")
            .args(["-s", "bash"])
            .arg(repo().join("completions/fspack.bash"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn man_pages_render_without_warnings() {
    if !trees::have_tool("groff") {
        return;
    }
    for page in std::fs::read_dir(repo().join("man")).unwrap() {
        let page = page.unwrap().path();
        let out = Command::new("groff")
            .args(["-ww", "-man", "-Tutf8", "-z"])
            .arg(&page)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff warns on {}:\n{}",
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
