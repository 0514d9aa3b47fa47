//! A userspace walk of an image's metadata before `mount(2)` (issue 12).
//!
//! The kernel's EROFS and SquashFS parsers run as root on bytes from a registry, and crafted
//! filesystem images have a long CVE history. This kernel has no dm-verity or fs-verity, so the
//! defence is to read every structure the kernel would follow (superblock, device table,
//! inodes, xattrs, directories, chunk indexes, block lists, fragment and id tables) and refuse
//! the image unless each one lies within its device and agrees with the layers it came with.
//! An error names the rule that failed ([`crate::Error::Check`]); nothing here panics on
//! arbitrary bytes.
//!
//! This is separate from the EROFS writer's modules on purpose: it trusts nothing the writer
//! assumes, and it also reads images made by mkfs.erofs and mksquashfs.

mod erofs;
mod reader;
mod squashfs;

pub use erofs::{ErofsCheck, check_erofs};
pub use squashfs::{SquashfsCheck, check_squashfs};
