//! `fspack __complete`: candidates the completion scripts cannot know statically (mount points,
//! references in the store, a repository's tags). Never slow, never noisy: a registry that does
//! not answer within a second and a half yields no tags, and errors print nothing.

use std::time::Duration;

use fspack_engine::target::Target;

use crate::args::{CompleteArgs, CompleteKind, GlobalArgs, RegistryArgs};

pub async fn run(args: CompleteArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut out: Vec<String> = Vec::new();
    let store = super::existing_store(g).ok().flatten();
    match args.kind {
        CompleteKind::Mounts => {
            if let Some(store) = &store
                && let Ok(records) = store.mount_records()
            {
                out.extend(records.into_iter().map(|r| r.target.display().to_string()));
            }
        }
        CompleteKind::Refs => {
            if let Some(store) = &store
                && let Ok(tags) = store.tags()
            {
                out.extend(tags.into_iter().map(|(name, _)| name));
            }
            // host/repo:<TAB> asks the registry for the repository's tags.
            if let Some((repo, _)) = args.prefix.rsplit_once(':')
                && repo.contains('/')
                && let Ok(Target::Registry(r)) = Target::parse(repo)
            {
                let registry = RegistryArgs {
                    plain_http: false,
                    insecure: false,
                    plain_http_credentials: false,
                    username: None,
                    password: None,
                    jobs: 1,
                };
                if let Ok(client) = super::client(&registry)
                    && let Ok(Ok(tags)) =
                        tokio::time::timeout(Duration::from_millis(1500), client.list_tags(&r))
                            .await
                {
                    out.extend(tags.into_iter().map(|t| format!("{repo}:{t}")));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    for c in out.into_iter().filter(|c| c.starts_with(&args.prefix)) {
        println!("{c}");
    }
    Ok(())
}
