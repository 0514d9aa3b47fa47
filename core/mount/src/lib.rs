//! Linux loop devices and read-only mounts behind a small, safe API. It must never know image
//! formats, registries or the store: it attaches files and mounts them.
//!
//! fspack never unpacks an image: a verified blob from the store is handed to the kernel as it
//! is, either directly (file-backed EROFS, Linux 6.12+) or through a read-only, autoclearing loop
//! device, and mounted `ro,nodev,nosuid`. This crate is the only place in the workspace that may
//! use `unsafe` (the loop ioctls in `sys.rs`); everything else goes through `rustix`.
//!
//! Kernel differences live in [`kernel`]; `mount(2)` and the new mount API meet in [`fs`]; the
//! mount table and the loop list are read in [`mod@mountinfo`] and [`loopdev`].

#![allow(unsafe_code)]

mod error;
pub mod fs;
pub mod kernel;
mod kmsg;
pub mod loopdev;
pub mod mountinfo;
mod newapi;
mod sys;

pub use error::{ErrorKind, MountError};
pub use fs::{
    ErofsSource, MountOptions, StackError, mount_erofs, mount_overlay_ro, mount_squashfs,
    mount_squashfs_stack, unmount,
};
pub use kernel::{filesystem_supported, privileges};
pub use loopdev::{LoopDevice, LoopOptions, change_backing_file, loop_devices};
pub use mountinfo::{MountEntry, mountinfo};
