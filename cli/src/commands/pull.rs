//! `fspack pull REF [--mount DIR]`.

use anyhow::Context;
use fspack_engine::lazy::LazySettings;
use fspack_engine::mount::{MountMode, MountPoint, MountSettings};
use fspack_engine::mount_ref::mount_lazily;
use fspack_engine::pull_ref::{PullRefSettings, pull_ref};
use fspack_engine::target::Target;

use super::mount::{
    Interrupted, lazy_server, or_interrupted, print_lazy, pull_settings, warn_if_hiding,
};

use crate::args::{GlobalArgs, MountModeArg, MountOptsArgs, PullArgs};
use crate::output::{count, size};

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
        fspack_engine::mount_ref::privileges()
            .with_context(|| format!("cannot mount on {}", dir.display()))?;
    }
    let store = super::store(g)?;
    // Listened for in every pull: with --mount an interrupt undoes the mount; without, it
    // says that what arrived is kept (s10 fresh-eyes pass: a plain pull died by the signal).
    let interrupt = Some(super::listen()?);
    // The mount point is checked (and a missing one created) before any byte is fetched.
    let point = match &args.mount {
        Some(dir) => {
            let point = MountPoint::prepare(&store, dir)
                .with_context(|| format!("cannot mount on {}", dir.display()))?;
            warn_if_hiding(&point, g);
            Some(point)
        }
        None => None,
    };
    if let (true, Some(dir), Target::Registry(r)) = (args.lazy, &args.mount, &target) {
        let point = point.expect("prepared for --mount");
        let settings = LazySettings {
            pull: pull_settings(&args.jobs, &args.trust)?,
            mount: mount_settings(&args.mount_opts),
            client: super::client_options(&args.registry),
            server: lazy_server()?,
        };
        let bars = super::bars(g, args.json);
        let undo = interrupt.map(|i| Interrupted::new(i, &store, &point));
        let report =
            or_interrupted(undo, mount_lazily(&store, r, dir, point, &settings, bars)).await?;
        return print_lazy(&r.to_string(), &report, dir, args.json, g);
    }
    let settings = match pull_settings(&args.jobs, &args.trust) {
        Ok(pull) => PullRefSettings {
            pull,
            client: super::client_options(&args.registry),
            verify: args.verify,
            mount: mount_settings(&args.mount_opts),
        },
        Err(e) => {
            if let Some(point) = point {
                point.discard();
            }
            return Err(e).with_context(|| format!("failed to pull {}", args.reference));
        }
    };
    let bars = super::bars(g, args.json);
    let (undo, plain) = match (interrupt, point.as_ref()) {
        (Some(i), Some(p)) => (Some(Interrupted::new(i, &store, p)), None),
        (i, _) => (None, i),
    };
    let mount = args.mount.as_deref().zip(point);
    let work = or_interrupted(
        undo,
        pull_ref(&store, &args.reference, &target, mount, &settings, bars),
    );
    let pulled = match plain {
        Some(mut signal) => tokio::select! {
            out = work => out,
            _ = signal.recv() => {
                eprintln!(
                    "\ninterrupted: the chunks already verified are kept, and the tag is unchanged; run the same pull to resume"
                );
                std::process::exit(crate::exit::INTERRUPTED)
            }
        },
        None => work.await,
    }?;
    if let Some(checked) = &pulled.verified {
        super::verify::finish(checked, false, true, g.quiet)?;
    }
    if !g.quiet {
        for n in &pulled.report.notes {
            eprintln!("note: {n}");
        }
    }
    let report = pulled.report;
    if args.json {
        return super::print_json(&report);
    }
    if !g.quiet {
        let cached = report.layers.iter().filter(|l| l.cached).count();
        let repaired = match report.blobs_repaired {
            // A resumed pull receives less than its layers hold; chunks fetched again, more.
            0 if report.bytes_received != report.bytes_fetched => {
                format!(", {} received", size(report.bytes_received))
            }
            0 => String::new(),
            n => format!(
                "; {} repaired, {} received",
                count(n as usize, "blob"),
                size(report.bytes_received)
            ),
        };
        eprintln!(
            "pulled {} ({}, {cached} cached; {} fetched in {:.1}s{repaired}){}",
            report.reference,
            count(report.layers.len(), "layer"),
            size(report.bytes_fetched),
            report.seconds,
            report
                .mounted_at
                .as_ref()
                .map(|d| format!(", mounted on {}", d.display()))
                .unwrap_or_default()
        );
        crate::output::print_trust_checks(&report.trust_checks);
    }
    // The digest is the data asked for, so `-q` keeps it.
    println!("{}", report.manifest_digest);
    Ok(())
}
