//! fspack's use cases (build, push, pull, mount) wired from the core crates.
//!
//! The CLI resolves its arguments into the plain settings structs here; the core crates know
//! nothing of each other. Progress goes through [`report::Reporter`] so the library never draws.

pub mod artifact;
pub mod build;
pub mod digest_cache;
pub mod error;
pub mod fetch;
pub mod gc;
pub mod import;
pub mod inspect;
pub mod lazy;
pub mod login;
pub mod modelpack;
pub mod modelpack_push;
pub mod mount;
pub mod mount_ref;
pub mod names;
pub mod open;
pub mod pull;
pub mod pull_ref;
pub mod push;
pub mod report;
pub mod sign;
pub mod target;
pub mod trust;
pub mod verify;

pub use error::{EngineError, ErrorKind, Result};

// The lower crates' types that use cases take or return, so the CLI can name them without
// depending on those crates.
pub use fspack_registry::{Client, ClientOptions, Reference, UploadMode};
pub use fspack_store::{GcReport, Store};
