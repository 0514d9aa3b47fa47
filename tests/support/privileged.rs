//! Skips that CI can forbid, and a tally of the privileged tests that ran (issue 13).
//!
//! `cargo test` captures a passing test's output, so a `SKIP:` line is invisible and a machine
//! without root, kernel modules or tools passes every privileged test without running one. With
//! `FSPACK_REQUIRE_PRIVILEGED=1` (set by `.ci/run`) every skip is a failure; and each privileged
//! test that gets past its checks appends its name to the file named by
//! `FSPACK_PRIVILEGED_LOG`, which `scripts/test.sh` counts. Shared by the test crates through
//! `#[path]`.
#![allow(dead_code)]

use std::io::Write;

/// Whether skips are failures here (`FSPACK_REQUIRE_PRIVILEGED=1`).
pub fn required() -> bool {
    std::env::var_os("FSPACK_REQUIRE_PRIVILEGED").is_some_and(|v| v == "1")
}

/// Skips the calling test (returns false after saying why), or fails it when `required`.
pub fn skip_or_fail(required: bool, why: &str) -> bool {
    if required {
        panic!("FSPACK_REQUIRE_PRIVILEGED=1 and this test cannot run: {why}");
    }
    eprintln!("SKIP: {why}");
    false
}

/// [`skip_or_fail`] with the policy from the environment.
pub fn skip(why: &str) -> bool {
    skip_or_fail(required(), why)
}

/// Records that the current privileged test is running (its name is the test thread's name).
pub fn ran() {
    let Some(log) = std::env::var_os("FSPACK_PRIVILEGED_LOG") else {
        return;
    };
    let name = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_string();
    // One write(2) per line: O_APPEND makes a single short write atomic between the test
    // processes, but `writeln!` writes the name and the newline separately, and two tests
    // finishing together then left "nameAnameB" in the log (seen in CI: 49 of 50 counted).
    let line = format!("{name}\n");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// Loads a kernel module (`modprobe`), quietly; whether it succeeded.
pub fn modprobe(module: &str) -> bool {
    std::process::Command::new("modprobe")
        .arg(module)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
