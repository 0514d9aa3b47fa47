//! `fspack __complete`: candidates the completion scripts cannot know statically (mount points,
//! references in the store, a repository's tags). Never slow, never noisy: the engine gives a
//! registry a second and a half, and errors print nothing.

use fspack_engine::names;

use crate::args::{CompleteArgs, CompleteKind, GlobalArgs, RegistryArgs};

pub async fn run(args: CompleteArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let mut out: Vec<String> = Vec::new();
    let store = super::existing_store(g).ok().flatten();
    match args.kind {
        CompleteKind::Mounts => {
            if let Some(store) = &store {
                out.extend(names::mount_points(store));
            }
        }
        CompleteKind::Refs => {
            if let Some(store) = &store {
                out.extend(names::stored_references(store));
            }
            // host/repo:<TAB> asks the registry for the repository's tags.
            let registry = RegistryArgs {
                plain_http: false,
                insecure: false,
                plain_http_credentials: false,
                username: None,
                password: None,
            };
            let opts = super::client_options(&registry);
            out.extend(names::registry_references(&opts, &args.prefix).await);
        }
    }
    out.sort();
    out.dedup();
    // A shell that stops reading (a closed pipe) ends the listing quietly: println! would panic.
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    for c in out.into_iter().filter(|c| c.starts_with(&args.prefix)) {
        writeln!(stdout, "{c}")?;
    }
    Ok(())
}
