//! Fault tests against the in-process fake registry: pushes that survive cuts, 500s, 429s and
//! token expiry or fail with a clear error; pulls that use parallel ranges, fall back when Range
//! is ignored, resume after a cut and refuse wrong content; auth and secret hygiene.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod pull;
mod push;
