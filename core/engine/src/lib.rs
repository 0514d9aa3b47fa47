//! fspack's use cases, wired from the core crates: build, push, pull ([`pull_ref`]), mount
//! ([`mount_ref`], lazily through [`lazy`]), [`inspect`], [`verify`], [`sign`], [`gc`],
//! [`login`], tag and name listing ([`names`]), and opening the client and the store ([`open`]).
//!
//! The CLI resolves its arguments into the plain settings structs here, calls one use case and
//! renders its typed result; it names no lower crate (the types it needs are re-exported below,
//! the error kinds in [`error::kinds`]). The core crates know nothing of each other. Progress
//! goes through [`report::Reporter`] so the library never draws. The engine must never know
//! terminals, clap or exit codes.

pub mod artifact;
pub mod build;
pub mod digest_cache;
pub mod error;
pub mod fetch;
pub mod gc;
pub mod images;
pub mod import;
pub mod inspect;
mod layer_hash;
pub mod lazy;
mod lazy_process;
pub mod login;
pub mod modelpack;
pub mod modelpack_push;
pub mod mount;
pub mod mount_ref;
pub mod mounts;
pub mod names;
pub mod open;
pub mod plan;
pub mod pull;
pub mod pull_ref;
pub mod push;
pub mod referrers;
pub mod report;
pub mod sign;
pub mod staged;
pub mod target;
pub mod trust;
pub mod verify;

pub use error::{EngineError, ErrorKind, Result};

// The lower crates' types that use cases take or return, so the CLI can name them without
// depending on those crates.
pub use fspack_registry::reference::url_scheme;
pub use fspack_registry::{Client, ClientOptions, Reference, UploadMode};
pub use fspack_store::{DEFAULT_INGEST_TTL, GcReport, Store, command_for, shell_word};
