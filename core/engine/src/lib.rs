//! fspack's use cases (build, push, pull, mount) wired from the core crates.
//!
//! The CLI resolves its arguments into the plain settings structs here; the core crates know
//! nothing of each other. Progress goes through [`report::Reporter`] so the library never draws.

pub mod artifact;
pub mod build;
pub mod digest_cache;
pub mod error;
pub mod fetch;
pub mod import;
pub mod lazy;
pub mod modelpack;
pub mod modelpack_push;
pub mod mount;
pub mod pull;
pub mod push;
pub mod report;
pub mod sign;
pub mod target;
pub mod trust;
pub mod verify;

pub use error::{EngineError, ErrorKind, Result};
