//! `fspack pull REF [--mount DIR]`.

use anyhow::Context;
use fspack_engine::mount::{MountMode, MountPoint, MountSettings};
use fspack_engine::pull::{PullSettings, pull};
use fspack_engine::target::Target;

use crate::args::{GlobalArgs, MountModeArg, MountOptsArgs, PullArgs};

pub fn mount_settings(a: &MountOptsArgs) -> MountSettings {
    MountSettings {
        noexec: a.noexec,
        mode: match a.mount_mode {
            MountModeArg::Auto => MountMode::Auto,
            MountModeArg::File => MountMode::File,
            MountModeArg::Loop => MountMode::Loop,
        },
    }
}

pub async fn run(args: PullArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.reference)?;
    if let Some(dir) = &args.mount {
        fspack_mount::privileges().with_context(|| format!("cannot mount on {}", dir.display()))?;
    }
    let store = super::store(g)?;
    // The mount point is checked (and a missing one created) before any byte is fetched.
    let point = match &args.mount {
        Some(dir) => Some(
            MountPoint::prepare(&store, dir)
                .with_context(|| format!("cannot mount on {}", dir.display()))?,
        ),
        None => None,
    };
    if let (true, Some(dir), Target::Registry(r)) = (args.lazy, &args.mount, &target) {
        let point = point.expect("prepared for --mount");
        let lazy = super::mount::LazyArgs {
            reference: r,
            dir,
            registry: &args.registry,
            mount_opts: &args.mount_opts,
            trust: super::trust(&args.trust)?,
            json: args.json,
        };
        return super::mount::mount_lazily(lazy, point, &store, g).await;
    }
    let bars = super::bars(g, args.json);
    let ranges = args.registry.jobs.clamp(1, 8);
    let mut client = None;
    let pulled: anyhow::Result<_> = async {
        Ok(match &target {
            Target::Registry(r) => {
                let c = client.insert(super::client(&args.registry)?);
                let settings = PullSettings {
                    trust: super::trust(&args.trust)?,
                    jobs: args.registry.jobs.max(1),
                    ranges,
                };
                pull(c, r, store.clone(), &settings, bars.clone()).await?.0
            }
            Target::Layout { path, tag } => {
                let (s, path, tag, bars) = (store.clone(), path.clone(), tag.clone(), bars.clone());
                tokio::task::spawn_blocking(move || {
                    fspack_engine::import::import(&path, &tag, &s, bars)
                })
                .await??
            }
        })
    }
    .await;
    let mut report = match pulled {
        Ok(p) => p,
        Err(e) => {
            if let Some(point) = point {
                point.discard();
            }
            return Err(e).with_context(|| format!("failed to pull {}", args.reference));
        }
    };
    drop(bars);
    if args.verify {
        use fspack_engine::verify::{Scope, VerifySettings, verify};
        // A layout is verified without repair: there is no registry to fetch good bytes from.
        let checked = verify(
            &store,
            &Scope::Refs(vec![report.reference.clone()]),
            &VerifySettings {
                repair: client.is_some(),
                ranges,
            },
            client.as_ref(),
        )
        .await
        .with_context(|| format!("pulled {} but could not verify it", args.reference));
        let checked = match checked {
            Ok(c) => c,
            Err(e) => {
                if let Some(point) = point {
                    point.discard();
                }
                return Err(e);
            }
        };
        super::verify::finish(&checked, false, true)?;
    }
    if let (Some(dir), Some(point)) = (&args.mount, point) {
        let ms = mount_settings(&args.mount_opts);
        let (s, reference, digest) = (
            store.clone(),
            report.reference.clone(),
            report.manifest_digest.clone(),
        );
        let notes = tokio::task::spawn_blocking(move || {
            let mut notes = Vec::new();
            fspack_engine::mount::mount_at(&s, &reference, &digest, point, &ms, &mut notes)
                .map(|_| notes)
        })
        .await?
        .with_context(|| {
            format!(
                "pulled {} but could not mount it on {}",
                args.reference,
                dir.display()
            )
        })?;
        if !g.quiet {
            for n in notes {
                eprintln!("note: {n}");
            }
        }
        report.mounted_at = Some(dir.clone());
    }
    if args.json {
        super::print_json(&report)?;
    } else if !g.quiet {
        let cached = report.layers.iter().filter(|l| l.cached).count();
        eprintln!(
            "pulled {} ({} layers, {} cached; {} MB in {:.1}s){}",
            report.reference,
            report.layers.len(),
            cached,
            report.bytes_fetched / 1_000_000,
            report.seconds,
            report
                .mounted_at
                .as_ref()
                .map(|d| format!(", mounted on {}", d.display()))
                .unwrap_or_default()
        );
        println!("{}", report.manifest_digest);
    }
    Ok(())
}
