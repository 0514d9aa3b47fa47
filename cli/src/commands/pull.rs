//! `fspack pull REF [--mount DIR]`.

use anyhow::Context;
use fspack_engine::mount::{MountMode, MountSettings};
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
    let Target::Registry(r) = Target::parse(&args.reference)? else {
        anyhow::bail!(
            "pull reads from a registry; an oci: layout is already local (use `fspack mount`)"
        );
    };
    if let Some(dir) = &args.mount {
        fspack_mount::privileges().with_context(|| format!("cannot mount on {}", dir.display()))?;
    }
    let store = super::store(g)?;
    let client = super::client(&args.registry)?;
    let settings = PullSettings {
        jobs: args.registry.jobs.max(1),
        ranges: args.registry.jobs.clamp(1, 8),
    };
    let bars = super::bars(g, args.json);
    let (mut report, _) = pull(&client, &r, store.clone(), &settings, bars.clone())
        .await
        .with_context(|| format!("failed to pull {}", args.reference))?;
    drop(bars);
    if args.verify {
        use fspack_engine::verify::{Scope, VerifySettings, verify};
        let checked = verify(
            &store,
            &Scope::Refs(vec![report.reference.clone()]),
            &VerifySettings {
                repair: true,
                ranges: settings.ranges,
            },
            Some(&client),
        )
        .await
        .with_context(|| format!("pulled {} but could not verify it", args.reference))?;
        super::verify::finish(&checked, false, true)?;
    }
    if let Some(dir) = &args.mount {
        let ms = mount_settings(&args.mount_opts);
        let (s, reference, digest, dir2) = (
            store.clone(),
            report.reference.clone(),
            report.manifest_digest.clone(),
            dir.clone(),
        );
        let notes = tokio::task::spawn_blocking(move || {
            let mut notes = Vec::new();
            fspack_engine::mount::mount_noted(&s, &reference, &digest, &dir2, &ms, &mut notes)
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
