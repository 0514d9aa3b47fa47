//! The mount table as the kernel shows it in `/proc/self/mountinfo` (`proc(5)`), so `umount` and
//! `ls` can find what is really mounted, including leftovers of a crashed run.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::error::MountError;

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Unique id of the mount.
    pub id: u64,
    /// Id of the parent mount.
    pub parent_id: u64,
    /// `major:minor` of the filesystem's device.
    pub device: (u32, u32),
    /// The directory of the filesystem that forms the root of this mount.
    pub root: PathBuf,
    /// Where it is mounted, unescaped (`\040` becomes a space).
    pub mount_point: PathBuf,
    /// Per-mount options (`ro,nodev,nosuid,…`).
    pub mount_options: String,
    /// Optional fields such as `shared:1` or `master:2`.
    pub optional: Vec<String>,
    /// Filesystem type (`erofs`, `squashfs`, `overlay`, …), with any `fuse.` subtype.
    pub fstype: String,
    /// The mount source (a device, file, or free text such as `overlay`), unescaped.
    pub source: PathBuf,
    /// Per-superblock options (for erofs and overlay these name the devices and layers).
    pub super_options: String,
}

impl MountEntry {
    /// Whether the mount is read-only (per mount).
    pub fn read_only(&self) -> bool {
        self.mount_options.split(',').any(|o| o == "ro")
    }

    /// Whether `opt` (such as `nodev`) is among the per-mount options.
    pub fn has_option(&self, opt: &str) -> bool {
        self.mount_options.split(',').any(|o| o == opt)
    }
}

/// The mounts of this process's mount namespace, in the kernel's order (parents first).
pub fn mountinfo() -> Result<Vec<MountEntry>, MountError> {
    let path = Path::new("/proc/self/mountinfo");
    let bytes = std::fs::read(path).map_err(|e| MountError::open(path, e))?;
    parse_mountinfo(&bytes, path)
}

/// Parses mountinfo text; `path` only names the source in errors.
pub fn parse_mountinfo(bytes: &[u8], path: &Path) -> Result<Vec<MountEntry>, MountError> {
    let mut out = Vec::new();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let bad = || MountError::MountInfo {
            path: path.to_path_buf(),
            line: i + 1,
            text: String::from_utf8_lossy(line).into_owned(),
        };
        out.push(parse_line(line).ok_or_else(bad)?);
    }
    Ok(out)
}

fn parse_line(line: &[u8]) -> Option<MountEntry> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let sep = fields.iter().position(|f| *f == b"-")?;
    if sep < 6 || fields.len() < sep + 4 {
        return None;
    }
    let text = |b: &[u8]| String::from_utf8(unescape(b)).ok();
    let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
    let (major, minor) = std::str::from_utf8(fields[2]).ok()?.split_once(':')?;
    Some(MountEntry {
        id: num(fields[0])?,
        parent_id: num(fields[1])?,
        device: (major.parse().ok()?, minor.parse().ok()?),
        root: path(fields[3]),
        mount_point: path(fields[4]),
        mount_options: text(fields[5])?,
        optional: fields[6..sep]
            .iter()
            .map(|f| text(f))
            .collect::<Option<_>>()?,
        fstype: text(fields[sep + 1])?,
        source: path(fields[sep + 2]),
        // Super options may be absent on very old kernels; join any stray fields back.
        super_options: text(&fields[sep + 3..].join(&b' '))?,
    })
}

fn path(field: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

/// Undoes the kernel's `\ooo` octal escapes (space, tab, newline and backslash are escaped by
/// `seq_path`/`mangle`); anything that is not a valid escape is kept as it is.
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (u32::from(field[i + 1] - b'0') << 6)
                | (u32::from(field[i + 2] - b'0') << 3)
                | u32::from(field[i + 3] - b'0');
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
36 22 0:32 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
301 22 7:3 / /mnt/my\\040model\\011x ro,nosuid,nodev,noexec - erofs /dev/loop3 ro,user_xattr,acl,cache_strategy=readaround,device=/dev/loop4
302 22 0:88 / /var/lib/fspack/mounts/a ro,nosuid,nodev - erofs /var/lib/fspack/blobs/sha256/ab ro
303 22 0:90 / /srv/stack ro,nosuid,nodev master:7 shared:9 - overlay fspack ro,lowerdir=/a:/b,redirect_dir=nofollow
304 22 0:91 /sub /weird\\134name ro - squashfs /dev/loop5 ro
";

    #[test]
    fn parses_fields_and_unescapes() {
        let v = parse_mountinfo(SAMPLE.as_bytes(), Path::new("sample")).unwrap();
        assert_eq!(v.len(), 6);
        assert_eq!(v[0].mount_point, Path::new("/"));
        assert_eq!(v[0].optional, vec!["shared:1"]);
        let m = &v[2];
        assert_eq!(m.id, 301);
        assert_eq!(m.parent_id, 22);
        assert_eq!(m.device, (7, 3));
        assert_eq!(m.mount_point, Path::new("/mnt/my model\tx"));
        assert_eq!(m.fstype, "erofs");
        assert_eq!(m.source, Path::new("/dev/loop3"));
        assert!(m.read_only() && m.has_option("nodev") && m.has_option("noexec"));
        assert!(m.super_options.contains("device=/dev/loop4"));
        assert!(m.optional.is_empty());
        assert_eq!(v[4].optional, vec!["master:7", "shared:9"]);
        assert_eq!(v[4].source, Path::new("fspack"));
        assert_eq!(v[5].root, Path::new("/sub"));
        assert_eq!(v[5].mount_point, Path::new("/weird\\name"));
    }

    #[test]
    fn non_utf8_mount_points_survive() {
        let line = b"1 0 0:1 / /x\\377y ro - tmpfs tmpfs rw\n";
        let v = parse_mountinfo(line, Path::new("t")).unwrap();
        use std::os::unix::ffi::OsStrExt;
        assert_eq!(v[0].mount_point.as_os_str().as_bytes(), b"/x\xffy");
    }

    #[test]
    fn bad_escapes_are_kept_verbatim() {
        assert_eq!(unescape(b"a\\9b"), b"a\\9b");
        assert_eq!(unescape(b"a\\04"), b"a\\04");
        assert_eq!(unescape(b"\\777"), b"\\777");
        assert_eq!(unescape(b"end\\"), b"end\\");
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_line() {
        for bad in [
            "1 0 0:1 / /x ro tmpfs tmpfs rw",
            "x 0 0:1 / /x ro - tmpfs tmpfs rw",
            "1 0 01 / /x ro - t s o",
        ] {
            let text = format!("22 1 0:21 / / rw - ext4 /dev/vda rw\n{bad}\n");
            let e = parse_mountinfo(text.as_bytes(), Path::new("m")).unwrap_err();
            assert!(e.to_string().contains("line 2"), "{e}");
        }
    }

    #[test]
    fn the_live_table_parses() {
        let v = mountinfo().unwrap();
        assert!(v.iter().any(|m| m.mount_point == Path::new("/")));
    }
}
