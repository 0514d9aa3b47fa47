//! Filesystem images for fspack: one directory walk, encoders for EROFS and SquashFS, and format
//! detection. No network, no mounts: everything here works on `Read`/`Write` and source paths.
//! It must never know HTTP, registries, the store's layout or the kernel's mount calls.

pub mod check;
mod dedup;
pub mod detect;
pub mod erofs;
pub mod error;
pub mod source;
pub mod squashfs;
pub mod tar_index;
pub mod tree;

pub use error::{Error, ErrorKind, Result};
pub use source::{BlobPlan, Segment};
pub use tree::{Tree, WalkOptions};
