//! Names a user may type, for shell completion: mount points and references in the store, and a
//! repository's tags in the registry. Never slow, never noisy: a registry that does not answer
//! in time yields no tags, and an unreadable store yields nothing.

use std::time::Duration;

use fspack_registry::{Client, ClientOptions, Reference};
use fspack_store::Store;

use crate::error::Result;
use crate::target::Target;

/// How long completion waits for a registry's tag list.
pub const TAGS_TIMEOUT: Duration = Duration::from_millis(1500);

/// The mount points of fspack's mounts recorded in `store`.
pub fn mount_points(store: &Store) -> Vec<String> {
    store
        .mount_records()
        .map(|rs| {
            rs.into_iter()
                .map(|r| r.target.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The names tagged in `store`.
pub fn stored_references(store: &Store) -> Vec<String> {
    store
        .tags()
        .map(|tags| tags.into_iter().map(|(name, _)| name).collect())
        .unwrap_or_default()
}

/// The tags of the repository `r` names (every page of `GET /v2/<name>/tags/list`).
///
/// Errors: the registry's (not found, auth, network).
pub async fn list_tags(client: &Client, r: &Reference) -> Result<Vec<String>> {
    Ok(client.list_tags(r).await?)
}

/// `host/repo:TAG` candidates for a completion `prefix` of the form `host/repo:…`, from the
/// registry (a client with `opts`, set up only then) within [`TAGS_TIMEOUT`]; empty for any
/// other prefix, a slow or failing registry.
pub async fn registry_references(opts: &ClientOptions, prefix: &str) -> Vec<String> {
    let Some((repo, _)) = prefix.rsplit_once(':') else {
        return Vec::new();
    };
    if !repo.contains('/') {
        return Vec::new();
    }
    let Ok(Target::Registry(r)) = Target::parse(repo) else {
        return Vec::new();
    };
    let Ok(client) = crate::open::client(opts.clone()) else {
        return Vec::new();
    };
    match tokio::time::timeout(TAGS_TIMEOUT, list_tags(&client, &r)).await {
        Ok(Ok(tags)) => tags.into_iter().map(|t| format!("{repo}:{t}")).collect(),
        _ => Vec::new(),
    }
}
