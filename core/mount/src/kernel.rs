//! What this kernel and this process can do: filesystems, privileges, and the one kernel version
//! difference fspack cares about (file-backed EROFS, Linux 6.12+).
//!
//! None of these checks loads a module or changes anything; they read `/proc` and `/sys` only.
//! They exist to turn an `EPERM` or `ENODEV` deep inside a mount into an early, clear error.

use std::path::Path;

use crate::error::MountError;

/// Whether the kernel can mount `fstype` (`erofs`, `squashfs`, `overlay`, …).
///
/// True when `/proc/filesystems` lists it, or when it is an installed module that the kernel
/// would load on the first mount (`request_module("fs-<type>")`), found in `modules.dep`.
pub fn filesystem_supported(fstype: &str) -> bool {
    let listed = std::fs::read_to_string("/proc/filesystems").is_ok_and(|list| {
        list.lines()
            .any(|l| l.split_whitespace().last() == Some(fstype))
    });
    if listed {
        return true;
    }
    // Not loaded yet: the first mount would load it (`request_module("fs-<type>")`) if the module
    // is installed, e.g. `kernel/fs/erofs/erofs.ko.zst`.
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    let dep = Path::new("/lib/modules").join(release).join("modules.dep");
    std::fs::read_to_string(dep).is_ok_and(|text| {
        text.lines().filter_map(|l| l.split(':').next()).any(|m| {
            let name = m.rsplit('/').next().unwrap_or(m);
            name.split_once(".ko")
                .is_some_and(|(base, _)| base == fstype)
        })
    })
}

/// Checks that this process may attach loop devices and mount: `CAP_SYS_ADMIN` in its effective
/// set, and a `/dev/loop-control` to ask for devices. The error names everything that is missing.
pub fn privileges() -> Result<(), MountError> {
    let mut missing = Vec::new();
    let mut hint = "";
    if !has_cap_sys_admin() {
        missing.push(format!(
            "this process (uid {}) lacks CAP_SYS_ADMIN",
            rustix::process::geteuid().as_raw()
        ));
        hint = "mounting needs root (CAP_SYS_ADMIN): run fspack with sudo";
    }
    if !Path::new("/dev/loop-control").exists() {
        missing.push(
            "/dev/loop-control is missing (no loop driver, or a container without loop devices)"
                .into(),
        );
        if hint.is_empty() {
            hint = "load the loop driver (modprobe loop) or give the container /dev/loop-control and /dev/loop*";
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MountError::Privileges {
            missing: format!("cannot mount: {}", missing.join("; ")),
            hint,
        })
    }
}

/// `CAP_SYS_ADMIN` (bit 21) in the effective set, from the `CapEff:` line of `/proc/self/status`.
fn has_cap_sys_admin() -> bool {
    match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => cap_sys_admin_in(&status),
        Err(_) => rustix::process::geteuid().is_root(),
    }
}

/// Whether a `/proc/<pid>/status` text grants `CAP_SYS_ADMIN` (bit 21 of `CapEff:`).
fn cap_sys_admin_in(status: &str) -> bool {
    const CAP_SYS_ADMIN: u32 = 21;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_ADMIN) != 0)
}

/// The running kernel's `(major, minor)` version, from `uname`.
pub fn kernel_version() -> Option<(u32, u32)> {
    let uts = rustix::system::uname();
    let release = uts.release().to_str().ok()?;
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Whether EROFS can probably be mounted straight from a regular file.
///
/// File-backed EROFS arrived in Linux 6.12 (`CONFIG_EROFS_FS_BACKED_BY_FILE`); it is a config
/// option, so a new kernel may still lack it. The mount itself is the real test: it fails with
/// `ENOTBLK` where unsupported, and callers then fall back to a loop device.
pub fn erofs_file_backed_likely() -> bool {
    kernel_version().is_some_and(|v| v >= (6, 12)) && filesystem_supported("erofs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_filesystems_is_consulted() {
        // Every Linux kernel that runs this test has procfs.
        assert!(filesystem_supported("proc"));
        assert!(!filesystem_supported("no-such-fs-xyz"));
    }

    #[test]
    fn kernel_version_parses() {
        let (major, _) = kernel_version().unwrap();
        assert!(major >= 3);
    }

    /// Asserts in both directions, so it can fail as root (how CI runs it) too: the verdict must
    /// follow this process's real capability set and `/dev/loop-control`.
    #[test]
    fn privileges_agrees_with_the_capability_set() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let cap = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        let expected = cap & (1 << 21) != 0 && Path::new("/dev/loop-control").exists();
        match privileges() {
            Ok(()) => assert!(expected, "privileges() said yes; CapEff {cap:#x}"),
            Err(e) => {
                assert!(!expected, "privileges() said no as root: {e}");
                let e = e.to_string();
                assert!(
                    e.contains("CAP_SYS_ADMIN") || e.contains("/dev/loop-control"),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn cap_sys_admin_is_bit_21_of_the_effective_set() {
        assert!(cap_sys_admin_in(
            "Name:\tx\nCapPrm:\t0000000000000000\nCapEff:\t000001ffffffffff\n"
        ));
        assert!(cap_sys_admin_in("CapEff:\t0000000000200000\n"));
        assert!(!cap_sys_admin_in("CapEff:\t00000000001fffff\n"));
        assert!(!cap_sys_admin_in("CapPrm:\t0000000000200000\nCapEff:\t0\n"));
        assert!(!cap_sys_admin_in("no caps here"));
    }
}
