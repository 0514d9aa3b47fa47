//! POSIX ACLs in a SquashFS build: the format stores only `user.`, `trusted.` and `security.`
//! attributes, so `system.posix_acl_access` / `system.posix_acl_default` cannot be kept.
//!
//! systemd sets default ACLs on `/var/log/journal` and every file below inherits them, so
//! refusing the tree (as fspack once did) leaves no way past; mksquashfs warns and builds. We do
//! the same: drop them with one summary (issue 11), and let a caller make that fatal. EROFS
//! stores them, so the EROFS writer never calls this.

use crate::error::{Error, Result};
use crate::tree::Tree;

/// The ACL attributes SquashFS cannot store.
pub const ACL_XATTRS: [&[u8]; 2] = [b"system.posix_acl_access", b"system.posix_acl_default"];

/// How many paths a summary names before "…".
const NAMED: usize = 3;

/// What [`drop_acls`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DroppedAcls {
    /// Inodes that lost at least one ACL attribute.
    pub inodes: u64,
    /// The first few of their paths, `/`-rooted, in inode order.
    pub first: Vec<String>,
}

impl DroppedAcls {
    /// One warning line for the user, `None` when nothing was dropped.
    pub fn warning(&self) -> Option<String> {
        (self.inodes > 0).then(|| {
            format!(
                "SquashFS cannot store POSIX ACLs: dropped them from {} inode(s) ({}{}); EROFS keeps them, and --strict-acls makes this an error",
                self.inodes,
                self.first.join(", "),
                if self.inodes > self.first.len() as u64 { ", …" } else { "" }
            )
        })
    }
}

/// Removes POSIX ACL attributes from every inode of `tree`.
///
/// With `strict`, the first inode carrying one is an error ([`Error::Xattr`]) and the tree is
/// left as it was.
pub fn drop_acls(tree: &mut Tree, strict: bool) -> Result<DroppedAcls> {
    let mut out = DroppedAcls::default();
    for inode in &mut tree.inodes {
        let is_acl = |n: &[u8]| ACL_XATTRS.contains(&n);
        let Some((name, _)) = inode.xattrs.iter().find(|(n, _)| is_acl(n)) else {
            continue;
        };
        if strict {
            return Err(Error::Xattr {
                path: inode.path.clone(),
                name: String::from_utf8_lossy(name).into_owned(),
                why: "SquashFS cannot store POSIX ACLs (build EROFS to keep them, or drop --strict-acls)",
            });
        }
        inode.xattrs.retain(|(n, _)| !is_acl(n));
        out.inodes += 1;
        if out.first.len() < NAMED {
            out.first.push(format!("/{}", inode.path.display()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Inode, Kind};
    use std::path::PathBuf;

    fn tree(n: usize) -> Tree {
        let inode = |i: usize| Inode {
            kind: Kind::Fifo,
            perm: 0o644,
            uid: 0,
            gid: 0,
            mtime: 0,
            mtime_nsec: 0,
            xattrs: vec![
                (b"system.posix_acl_access".to_vec(), vec![2, 0, 0, 0]),
                (b"user.keep".to_vec(), b"1".to_vec()),
            ],
            nlink: 1,
            path: PathBuf::from(format!("f{i}")),
        };
        Tree {
            inodes: (0..n).map(inode).collect(),
            root: PathBuf::from("/src"),
        }
    }

    #[test]
    fn acls_are_dropped_with_a_count_and_the_first_paths() {
        let mut t = tree(5);
        let d = drop_acls(&mut t, false).unwrap();
        assert_eq!(d.inodes, 5);
        assert_eq!(d.first, ["/f0", "/f1", "/f2"]);
        let w = d.warning().unwrap();
        assert!(
            w.contains("5 inode(s)") && w.contains("/f0") && w.contains('…'),
            "{w}"
        );
        assert!(
            t.inodes
                .iter()
                .all(|i| i.xattrs == [(b"user.keep".to_vec(), b"1".to_vec())])
        );
    }

    #[test]
    fn strict_mode_refuses_and_names_the_path() {
        let mut t = tree(2);
        let e = drop_acls(&mut t, true).unwrap_err().to_string();
        assert!(e.contains("f0") && e.contains("posix_acl_access"), "{e}");
        assert_eq!(t.inodes[0].xattrs.len(), 2, "the tree is untouched");
        assert_eq!(drop_acls(&mut tree(0), false).unwrap().warning(), None);
    }
}
