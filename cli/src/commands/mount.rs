//! `fspack mount`, `umount`, `ls` and `gc`: the host side of the store.

use anyhow::Context;
use fspack_engine::mount::MountPoint;
use fspack_engine::pull::{PullSettings, pull};
use fspack_engine::target::Target;

use super::pull::mount_settings;
use crate::args::{GcArgs, GlobalArgs, LsArgs, MountArgs, UmountArgs};

pub async fn mount(args: MountArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    fspack_mount::privileges()
        .with_context(|| format!("cannot mount on {}", args.dir.display()))?;
    let store = super::store(g)?;
    // The mount point is checked (and a missing one created) before anything is pulled.
    let point = MountPoint::prepare(&store, &args.dir)
        .with_context(|| format!("cannot mount on {}", args.dir.display()))?;
    if args.lazy {
        let trust = super::trust(&args.trust)?;
        let in_store = trust.is_empty() && store.resolve(&args.reference)?.is_some()
            || store
                .resolve(&super::store_name(&args.reference))?
                .is_some();
        if let (false, Target::Registry(r)) = (in_store, Target::parse(&args.reference)?) {
            let lazy = LazyArgs {
                reference: &r,
                dir: &args.dir,
                registry: &args.registry,
                mount_opts: &args.mount_opts,
                trust,
                json: args.json,
            };
            return mount_lazily(lazy, point, &store, g).await;
        }
    }
    let resolved = resolve(&args, g, &store).await;
    let (name, digest) = match resolved {
        Ok(r) => r,
        Err(e) => {
            point.discard();
            return Err(e);
        }
    };
    let settings = mount_settings(&args.mount_opts);
    let (s, n, d) = (store.clone(), name.clone(), digest.clone());
    let notes = tokio::task::spawn_blocking(move || {
        let mut notes = Vec::new();
        fspack_engine::mount::mount_at(&s, &n, &d, point, &settings, &mut notes).map(|_| notes)
    })
    .await?
    .with_context(|| format!("failed to mount {name} on {}", args.dir.display()))?;
    if !g.quiet {
        for n in notes {
            eprintln!("note: {n}");
        }
        eprintln!("mounted {name} ({digest}) on {}", args.dir.display());
    }
    Ok(())
}

/// The store's name and manifest digest of the reference, pulling it first when missing.
async fn resolve(
    args: &MountArgs,
    g: &GlobalArgs,
    store: &std::sync::Arc<fspack_store::Store>,
) -> anyhow::Result<(String, String)> {
    let trust = super::trust(&args.trust)?;
    // A name in the store as it was tagged (what completion offers) comes first, unless keys or
    // a policy apply: those are checked on the reference below. Anything else is a reference,
    // pulled or copied into the store when missing.
    if trust.is_empty()
        && let Some(d) = store.resolve(&args.reference)?
    {
        return Ok((args.reference.clone(), d.digest));
    }
    Ok(match Target::parse(&args.reference)? {
        Target::Registry(r) => {
            let name = r.to_string();
            match store.resolve(&name)? {
                Some(d) => {
                    // Pulled earlier, maybe under another policy: the rules of today apply.
                    if !trust.is_empty() {
                        let client = super::client(&args.registry)?;
                        trust
                            .check(&client, &r, &d.digest)
                            .await
                            .with_context(|| format!("refusing to mount {name}"))?;
                    }
                    (name, d.digest)
                }
                None => {
                    let client = super::client(&args.registry)?;
                    let settings = PullSettings {
                        trust: trust.clone(),
                        jobs: args.registry.jobs.max(1),
                        ranges: args.registry.jobs.clamp(1, 8),
                    };
                    let bars = super::bars(g, false);
                    let (report, _) = pull(&client, &r, store.clone(), &settings, bars)
                        .await
                        .with_context(|| {
                            format!("{name} is not in the store and pulling it failed")
                        })?;
                    (name, report.manifest_digest)
                }
            }
        }
        Target::Layout { path, tag } => {
            // Copied into the store (verified) unless it is there already: see engine::import.
            let name = fspack_engine::import::layout_name(&path, &tag)?;
            match store.resolve(&name)? {
                Some(d) => (name, d.digest),
                None => {
                    let (s, bars) = (store.clone(), super::bars(g, false));
                    let report = tokio::task::spawn_blocking(move || {
                        fspack_engine::import::import(&path, &tag, &s, bars)
                    })
                    .await?
                    .with_context(|| format!("cannot copy {} into the store", args.reference))?;
                    (name, report.manifest_digest)
                }
            }
        }
    })
}

/// What a lazy mount needs from `pull --mount --lazy` or `mount --lazy`.
pub struct LazyArgs<'a> {
    pub reference: &'a fspack_registry::Reference,
    pub dir: &'a std::path::Path,
    pub registry: &'a crate::args::RegistryArgs,
    pub mount_opts: &'a crate::args::MountOptsArgs,
    pub trust: std::sync::Arc<fspack_engine::trust::Trust>,
    pub json: bool,
}

/// Mounts lazily (issue 10), printing the report.
pub async fn mount_lazily(
    a: LazyArgs<'_>,
    point: MountPoint,
    store: &std::sync::Arc<fspack_store::Store>,
    g: &GlobalArgs,
) -> anyhow::Result<()> {
    use fspack_engine::lazy::{LazySettings, backend, mount_lazy};
    let name = a.reference.to_string();
    if let Err(e) = backend::detect() {
        point.discard();
        return Err(e).with_context(|| format!("cannot mount {name} lazily"));
    }
    let client = match super::client(a.registry) {
        Ok(c) => c,
        Err(e) => {
            point.discard();
            return Err(e);
        }
    };
    let exe = std::env::current_exe()
        .context("cannot find the fspack binary to start the lazy server")?;
    let settings = LazySettings {
        pull: PullSettings {
            trust: a.trust.clone(),
            jobs: a.registry.jobs.max(1),
            ranges: a.registry.jobs.clamp(1, 8),
        },
        mount: mount_settings(a.mount_opts),
        client: super::client_options(a.registry),
        server: vec![exe.into_os_string(), "-v".into(), "lazy-serve".into()],
    };
    let bars = super::bars(g, a.json);
    let report = mount_lazy(&client, a.reference, store.clone(), point, &settings, bars)
        .await
        .with_context(|| format!("failed to mount {name} lazily on {}", a.dir.display()))?;
    if a.json {
        return super::print_json(&report);
    }
    if !g.quiet {
        for n in &report.notes {
            eprintln!("note: {n}");
        }
        if report.lazy {
            eprintln!(
                "mounted {name} ({}) on {} in {:.2}s; {} MB in {} blobs are fetched on first read and in the background (`fspack ls` shows progress)",
                report.manifest_digest,
                a.dir.display(),
                report.seconds,
                report.lazy_bytes / 1_000_000,
                report.lazy_blobs
            );
        } else {
            eprintln!(
                "mounted {name} ({}) on {}",
                report.manifest_digest,
                a.dir.display()
            );
        }
    }
    Ok(())
}

/// `fspack lazy-serve`: the server of a lazy mount, talking to its setup over stdin/stdout.
pub async fn lazy_serve() -> anyhow::Result<()> {
    let input = Box::new(std::io::BufReader::new(std::io::stdin()));
    let output = Box::new(std::io::stdout());
    fspack_engine::lazy::server::serve(input, output)
        .await
        .context("the lazy server failed")
}

pub fn umount(args: UmountArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let Some(store) = super::existing_store(g)? else {
        return Err(fspack_engine::EngineError::NotFound(format!(
            "{} is not mounted by fspack (there is no fspack store yet)",
            args.dir.display()
        ))
        .into());
    };
    fspack_engine::mount::umount(&store, &args.dir)
        .with_context(|| format!("failed to unmount {}", args.dir.display()))
}

pub fn ls(args: LsArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    use std::io::Write;
    if args.wait
        && let Some(store) = super::existing_store(g)?
    {
        wait_lazy(&store, g)?;
    }
    let mounts = match super::existing_store(g)? {
        Some(store) => fspack_engine::mount::list(&store)?,
        None => Vec::new(),
    };
    if args.json {
        return super::print_json(&mounts);
    }
    let mut out = std::io::stdout().lock();
    if mounts.is_empty() {
        if !g.quiet {
            eprintln!("nothing mounted by fspack");
        }
        return Ok(());
    }
    writeln!(
        out,
        "{:<30} {:<40} {:<19} {:<8} DEVICES",
        "MOUNTPOINT", "REFERENCE", "DIGEST", "FORMAT"
    )?;
    for m in mounts {
        let r = &m.record;
        let devices: Vec<String> = r
            .loop_devices
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let devices = if devices.is_empty() {
            "file-backed".to_string()
        } else {
            devices.join(",")
        };
        let state = if !m.mounted {
            " (stale: not mounted; `fspack gc` releases it)".to_string()
        } else if let Some(l) = &m.lazy_status {
            use fspack_engine::lazy::status::ServerState;
            let what = match l.state {
                ServerState::Filling => "filling",
                ServerState::Complete => "complete",
                ServerState::Stopped => "stopped",
                ServerState::Dead => {
                    "server gone: reads of missing data fail; `fspack umount` cleans up"
                }
            };
            format!(
                " (lazy: {} of {} MB present, {what})",
                l.bytes_present / 1_000_000,
                l.bytes_total / 1_000_000
            )
        } else {
            String::new()
        };
        writeln!(
            out,
            "{:<30} {:<40} {:<19} {:<8} {devices}{state}",
            r.target.display(),
            r.reference,
            &r.manifest_digest[..r.manifest_digest.len().min(19)],
            r.format
        )?;
    }
    Ok(())
}

/// Waits for every lazy mount's fill, drawing one bar per mount (issue 10).
fn wait_lazy(store: &fspack_store::Store, g: &GlobalArgs) -> anyhow::Result<()> {
    use fspack_engine::lazy::status::ServerState;
    use fspack_engine::report::Reporter;
    let bars = super::bars(g, false);
    let mut shown: std::collections::HashMap<std::path::PathBuf, (usize, u64)> =
        std::collections::HashMap::new();
    loop {
        let lazy: Vec<_> = fspack_engine::mount::list(store)?
            .into_iter()
            .filter(|m| m.mounted)
            .filter_map(|m| m.lazy_status.map(|s| (m.record.target, s)))
            .collect();
        for (target, _) in shown
            .iter()
            .filter(|(t, _)| !lazy.iter().any(|(l, _)| l == *t))
        {
            bars.finish(shown[target].0);
        }
        shown.retain(|t, _| lazy.iter().any(|(l, _)| l == t));
        if lazy.is_empty() {
            return Ok(());
        }
        for (target, st) in &lazy {
            if st.state == ServerState::Dead {
                return Err(fspack_engine::EngineError::NotFound(format!(
                    "the lazy server of {} is gone, so its missing data will not arrive\nhint: run `fspack umount {}`, then mount it again: the chunks already fetched are kept",
                    target.display(),
                    target.display()
                ))
                .into());
            }
            let name = target
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (id, seen) = *shown
                .entry(target.clone())
                .or_insert_with(|| (bars.start(&name, st.bytes_total), 0));
            if st.bytes_present > seen {
                bars.advance(id, st.bytes_present - seen);
                shown.insert(target.clone(), (id, st.bytes_present));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

pub fn gc(args: GcArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let report = match super::existing_store(g)? {
        Some(store) => {
            // Mounts released by a plain umount(8) first, so their blobs and shards go too.
            let released = fspack_engine::mount::release_orphans(&store)
                .context("cannot release what unmounted fspack mounts left behind")?;
            for t in &released {
                if !g.quiet {
                    eprintln!(
                        "released the leftovers of {} (unmounted without fspack)",
                        t.display()
                    );
                }
            }
            store.gc(&[]).context("garbage collection failed")?
        }
        None => fspack_store::GcReport::default(),
    };
    if args.json {
        return super::print_json(&report);
    }
    if !g.quiet {
        eprintln!("{report}");
    }
    Ok(())
}
