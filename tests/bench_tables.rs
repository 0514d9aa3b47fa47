//! The benchmark tables in README.md and bench/README.md are generated from one committed results
//! file (issue 14): these tests fail when a table was edited by hand or its file changed, without
//! running a benchmark (`bench/tables.py check` only re-renders).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `bench/tables.py ARGS` in `root`.
fn tables(root: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new("python3")
        .arg(root.join("bench/tables.py"))
        .args(args)
        .current_dir(root)
        .output()
        .expect("python3 runs bench/tables.py (Debian: python3)")
}

fn tables_check(root: &Path) -> Output {
    tables(root, &["check".as_ref()])
}

#[test]
fn readme_tables_match_their_results_file() {
    let out = tables_check(&repo());
    assert!(
        out.status.success(),
        "README tables differ from their results file; run `bench/tables.py publish FILE`:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A copy of the documents, the generator and the results files, so a test can edit them.
fn copy_of_repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = repo();
    fs::create_dir_all(dir.path().join("bench/results")).unwrap();
    for f in ["README.md", "bench/README.md", "bench/tables.py"] {
        fs::copy(root.join(f), dir.path().join(f)).unwrap();
    }
    for entry in fs::read_dir(root.join("bench/results")).unwrap() {
        let entry = entry.unwrap();
        fs::copy(
            entry.path(),
            dir.path().join("bench/results").join(entry.file_name()),
        )
        .unwrap();
    }
    dir
}

#[test]
fn a_hand_edited_table_fails_the_check() {
    let dir = copy_of_repo();
    let readme = dir.path().join("README.md");
    let text = fs::read_to_string(&readme).unwrap();
    let begin = text
        .find("<!-- bench-tables:begin")
        .expect("README has a table block");
    // Change the first time in the block, as a hand edit of a number would.
    let pos = begin + text[begin..].find(" s, ").expect("a time in the table");
    let mut edited = text.clone();
    edited.replace_range(
        pos - 1..pos,
        if &text[pos - 1..pos] == "9" { "8" } else { "9" },
    );
    fs::write(&readme, edited).unwrap();
    let out = tables_check(dir.path());
    assert!(!out.status.success(), "the check passed an edited table");
    assert!(String::from_utf8_lossy(&out.stderr).contains("README.md"));
}

#[test]
fn a_changed_results_file_fails_the_check() {
    let dir = copy_of_repo();
    let readme = fs::read_to_string(dir.path().join("README.md")).unwrap();
    let named = readme
        .split("<!-- bench-tables:begin summary ")
        .nth(1)
        .and_then(|rest| rest.split(" -->").next())
        .expect("README names its results file");
    let results = dir.path().join(named);
    let text = fs::read_to_string(&results).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut doc = doc;
    // The first measured row gets one more second: every table that shows it must change.
    let row = doc["rows"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["status"] == "ok")
        .expect("a measured row");
    let median = row["median_s"].as_f64().unwrap();
    row["median_s"] = serde_json::json!(median + 1.0);
    fs::write(&results, serde_json::to_string(&doc).unwrap()).unwrap();
    let out = tables_check(dir.path());
    assert!(
        !out.status.success(),
        "the check passed a changed results file"
    );
}

/// `publish` of a `--quick` run repoints only the `quick` blocks, and a full-size run only the
/// others: each block keeps coming from exactly one run of its own profile.
#[test]
fn publish_routes_a_quick_run_to_the_quick_blocks_only() {
    let dir = copy_of_repo();
    let readme = dir.path().join("README.md");
    let full_before = fs::read_to_string(&readme).unwrap();
    let named = full_before
        .split("<!-- bench-tables:begin summary ")
        .nth(1)
        .and_then(|rest| rest.split(" -->").next())
        .expect("README names its results file")
        .to_string();
    let mut doc: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.path().join(&named)).unwrap()).unwrap();
    doc["meta"]["quick"] = serde_json::json!("1");
    let quick = dir.path().join("results-quick.json");
    fs::write(&quick, serde_json::to_string(&doc).unwrap()).unwrap();
    let bench_readme = dir.path().join("bench/README.md");
    let mut text = fs::read_to_string(&bench_readme).unwrap();
    text.push_str(&format!(
        "\n<!-- bench-tables:begin quick {named} -->\n<!-- bench-tables:end -->\n"
    ));
    fs::write(&bench_readme, text).unwrap();
    let out = tables(dir.path(), &["publish".as_ref(), quick.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = fs::read_to_string(&bench_readme).unwrap();
    assert!(text.contains("<!-- bench-tables:begin quick bench/results/results-quick.json -->"));
    assert!(text.contains(&format!("<!-- bench-tables:begin full {named} -->")));
    assert_eq!(fs::read_to_string(&readme).unwrap(), full_before);
    assert!(tables_check(dir.path()).status.success());
}
