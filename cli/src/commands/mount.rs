//! `fspack mount`, `umount`, `ls` and `gc`: the host side of the store.

use anyhow::Context;
use fspack_engine::pull::{PullSettings, pull};
use fspack_engine::target::Target;

use super::pull::mount_settings;
use crate::args::{GcArgs, GlobalArgs, LsArgs, MountArgs, UmountArgs};

pub async fn mount(args: MountArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    fspack_mount::privileges()
        .with_context(|| format!("cannot mount on {}", args.dir.display()))?;
    let store = super::store(g)?;
    let (name, digest) = match Target::parse(&args.reference)? {
        Target::Registry(r) => {
            let name = r.to_string();
            match store.resolve(&name)? {
                Some(d) => (name, d.digest),
                None => {
                    let client = super::client(&args.registry)?;
                    let settings = PullSettings {
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
        Target::Layout { .. } => anyhow::bail!(
            "mount takes a registry reference that is (or can be) pulled into the store"
        ),
    };
    let settings = mount_settings(&args.mount_opts);
    let (s, n, d, dir) = (
        store.clone(),
        name.clone(),
        digest.clone(),
        args.dir.clone(),
    );
    let (record, notes) = tokio::task::spawn_blocking(move || {
        let mut notes = Vec::new();
        fspack_engine::mount::mount_noted(&s, &n, &d, &dir, &settings, &mut notes)
            .map(|r| (r, notes))
    })
    .await?
    .with_context(|| format!("failed to mount {name} on {}", args.dir.display()))?;
    drop(record);
    if !g.quiet {
        for n in notes {
            eprintln!("note: {n}");
        }
        eprintln!("mounted {name} ({digest}) on {}", args.dir.display());
    }
    Ok(())
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
        let state = if m.mounted {
            ""
        } else {
            " (stale: not mounted)"
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

pub fn gc(args: GcArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let report = match super::existing_store(g)? {
        Some(store) => store.gc(&[]).context("garbage collection failed")?,
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
