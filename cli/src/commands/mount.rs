//! `fspack mount`, `umount`, `ls` and `gc`: the host side of the store.

use std::path::PathBuf;

use anyhow::Context;
use fspack_engine::lazy::LazyReport;
use fspack_engine::mount::MountPoint;
use fspack_engine::mount_ref::{MountRefSettings, Mounted, mount_ref};
use fspack_engine::pull::PullSettings;

use super::pull::mount_settings;
use super::{Signals, listen};
use crate::args::{GcArgs, GlobalArgs, LsArgs, MountArgs, UmountArgs};

pub async fn mount(args: MountArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    fspack_engine::mount_ref::privileges()
        .with_context(|| format!("cannot mount on {}", args.dir.display()))?;
    let store = super::store(g)?;
    let interrupt = listen()?;
    // The mount point is checked (and a missing one created) before anything is pulled.
    let point = MountPoint::prepare(&store, &args.dir)
        .with_context(|| format!("cannot mount on {}", args.dir.display()))?;
    warn_if_hiding(&point, g);
    let settings = match mount_ref_settings(&args) {
        Ok(s) => s,
        Err(e) => {
            point.discard();
            return Err(e);
        }
    };
    let bars = super::bars(g, args.json);
    // The canonical mount point, as `ls` and `images` show it, whatever the command line said.
    let at = point.path().to_path_buf();
    let undo = Some(Interrupted::new(interrupt, &store, &point));
    let mounted = or_interrupted(
        undo,
        mount_ref(&store, &args.reference, &args.dir, point, &settings, bars),
    )
    .await?;
    match mounted {
        Mounted::Lazy { name, report } => print_lazy(&name, &report, &args.dir, args.json, g),
        Mounted::Eager {
            name,
            digest,
            notes,
            trust_checks,
        } => {
            if args.json {
                // The same fields as a lazy mount's report, so scripts read one shape, in the
                // same order (json! sorted them by name: s12 fresh-eyes pass).
                #[derive(serde::Serialize)]
                struct EagerMount<'a> {
                    reference: &'a str,
                    manifest_digest: String,
                    lazy: bool,
                    mounted_at: &'a std::path::Path,
                    notes: &'a [String],
                    trust_checks: &'a [String],
                }
                return super::print_json(&EagerMount {
                    reference: &name,
                    manifest_digest: digest.to_string(),
                    lazy: false,
                    mounted_at: &at,
                    notes: &notes,
                    trust_checks: &trust_checks,
                });
            }
            if !g.quiet {
                for n in notes {
                    eprintln!("note: {n}");
                }
                eprintln!("mounted {name} ({digest}) on {}", args.dir.display());
                crate::output::print_trust_checks(&trust_checks);
            }
            Ok(())
        }
    }
}

/// Ctrl-C during a mount (report item 24): listened for from the start of the command, so an
/// interrupt that comes while the mount point is prepared is not lost, and undone by
/// [`or_interrupted`].
pub struct Interrupted {
    signal: Signals,
    store: std::sync::Arc<fspack_engine::Store>,
    target: PathBuf,
    created: Vec<PathBuf>,
}

impl Interrupted {
    /// What an interrupt heard on `signal` must undo: the mount on `point` and the directories
    /// fspack created for it.
    pub fn new(
        signal: Signals,
        store: &std::sync::Arc<fspack_engine::Store>,
        point: &MountPoint,
    ) -> Interrupted {
        Interrupted {
            signal,
            store: store.clone(),
            target: point.path().to_path_buf(),
            created: point.created().to_vec(),
        }
    }
}

/// Runs `work`; on Ctrl-C (SIGINT) or SIGTERM drops it, undoes what it left on the mount point
/// in `undo` (a finished mount with its loop devices and lazy server, the directories fspack
/// created; report item 24) and exits 130 as the interrupt would have. Partial downloads stay in the
/// store for the next pull to resume, as after a kill. Without `undo` the interrupt keeps its
/// default action.
pub async fn or_interrupted<T>(undo: Option<Interrupted>, work: impl Future<Output = T>) -> T {
    let Some(mut undo) = undo else {
        return work.await;
    };
    tokio::select! {
        out = work => out,
        _ = undo.signal.recv() => {
            let point = undo.target.display();
            let what = if fspack_engine::mount::abandon(&undo.store, &undo.target, &undo.created) {
                format!("nothing is left mounted on {point}")
            } else {
                format!(
                    "{point} is still mounted (`{} umount {}` removes it)",
                    undo.store.command(),
                    fspack_engine::shell_word(&undo.target)
                )
            };
            eprintln!(
                "\ninterrupted: {what}; the chunks already verified are kept: run the same command to resume"
            );
            std::process::exit(crate::exit::INTERRUPTED)
        }
    }
}

/// Warns (one line) when the mount point holds files: the mount hides them until `umount`.
pub fn warn_if_hiding(point: &MountPoint, g: &GlobalArgs) {
    let dir = point.path();
    let hides = point.created().is_empty()
        && std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if hides && !g.quiet {
        eprintln!(
            "warning: {} is not empty: its files are hidden until `{} umount {}`",
            dir.display(),
            super::fspack_command(g),
            fspack_engine::shell_word(dir)
        );
    }
}

fn mount_ref_settings(args: &MountArgs) -> anyhow::Result<MountRefSettings> {
    Ok(MountRefSettings {
        pull: pull_settings(&args.jobs, &args.trust)?,
        mount: mount_settings(&args.mount_opts),
        client: super::client_options(&args.registry),
        lazy: if args.lazy {
            Some(lazy_server()?)
        } else {
            None
        },
    })
}

/// Pull settings from the transfer and trust flags.
pub fn pull_settings(
    jobs: &crate::args::JobsArgs,
    trust: &crate::args::TrustArgs,
) -> anyhow::Result<PullSettings> {
    let jobs = jobs.jobs;
    Ok(PullSettings {
        trust: super::trust(trust)?,
        jobs: jobs.max(1),
        ranges: jobs.clamp(1, 8),
    })
}

/// The command that starts a lazy mount's server: this binary's `lazy-serve`.
pub fn lazy_server() -> anyhow::Result<Vec<std::ffi::OsString>> {
    let exe = std::env::current_exe()
        .context("cannot find the fspack binary to start the lazy server")?;
    Ok(vec![exe.into_os_string(), "-v".into(), "lazy-serve".into()])
}

/// Prints what a lazy mount did (issue 10).
pub fn print_lazy(
    name: &str,
    report: &LazyReport,
    dir: &std::path::Path,
    json: bool,
    g: &GlobalArgs,
) -> anyhow::Result<()> {
    if json {
        return super::print_json(report);
    }
    if !g.quiet {
        for n in &report.notes {
            eprintln!("note: {n}");
        }
        if report.lazy {
            eprintln!(
                "mounted {name} ({}) on {} in {:.2}s; {} in {} are fetched on first read and in the background (`{} ls` shows progress)",
                report.manifest_digest,
                dir.display(),
                report.seconds,
                crate::output::size(report.lazy_bytes),
                crate::output::count(report.lazy_blobs, "blob"),
                super::fspack_command(g)
            );
        } else {
            eprintln!(
                "mounted {name} ({}) on {}",
                report.manifest_digest,
                dir.display()
            );
        }
        crate::output::print_trust_checks(&report.trust_checks);
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
        return Err(fspack_engine::mounts::not_mounted(&args.dir, None).into());
    };
    let was_mounted = fspack_engine::mounts::umount(&store, &args.dir)
        .with_context(|| format!("failed to unmount {}", args.dir.display()))?;
    // Silence here read as if nothing had happened (s10 fresh-eyes pass).
    if !was_mounted && !g.quiet {
        eprintln!(
            "{} was unmounted already (without fspack): released what it left and forgot its record",
            args.dir.display()
        );
    }
    Ok(())
}

pub fn ls(args: LsArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    use std::io::Write;
    if args.wait
        && let Some(store) = super::existing_store(g)?
    {
        wait_lazy(&store, g)?;
    }
    let mounts = match super::existing_store(g)? {
        Some(store) => fspack_engine::mounts::list(&store)?,
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
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut failing: Vec<String> = Vec::new();
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
            " (not mounted: unmounted without fspack; `fspack gc` releases what is left and forgets it)".to_string()
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
            let failed = match l.reads_failed {
                0 => String::new(),
                n => format!("; {} failed", crate::output::count(n as usize, "read")),
            };
            if let Some(f) = &l.failing {
                failing.push(format!("{}: {f}", r.target.display()));
            }
            if let Some(e) = l
                .fetch_error
                .as_ref()
                .filter(|_| l.state == ServerState::Filling)
            {
                failing.push(format!(
                    "{}: fetching from the registry fails, trying again: {e}",
                    r.target.display()
                ));
            }
            format!(
                " (lazy: {} of {} present, {what}{failed})",
                crate::output::size(l.bytes_present),
                crate::output::size(l.bytes_total)
            )
        } else {
            String::new()
        };
        rows.push([
            r.target.display().to_string(),
            r.reference.clone(),
            crate::output::short_digest(r.manifest_digest.as_str()).to_string(),
            r.format.clone(),
            format!("{devices}{state}"),
        ]);
    }
    let header = ["MOUNTPOINT", "REFERENCE", "DIGEST", "FORMAT", "DEVICES"];
    write!(out, "{}", crate::output::table(header, &rows, &[]))?;
    for f in failing {
        eprintln!("warning: {f}");
    }
    Ok(())
}

/// Waits for every lazy mount's fill, drawing one bar per mount (issue 10).
fn wait_lazy(store: &fspack_engine::Store, g: &GlobalArgs) -> anyhow::Result<()> {
    use fspack_engine::lazy::status::ServerState;
    use fspack_engine::report::Reporter;
    let bars = super::bars(g, false);
    let mut shown: std::collections::HashMap<std::path::PathBuf, (usize, u64)> =
        std::collections::HashMap::new();
    loop {
        let lazy: Vec<_> = fspack_engine::mounts::list(store)?
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
                    "the lazy server of {} is gone, so its missing data will not arrive\nhint: run `{} umount {}`, then mount it again: the chunks already fetched are kept",
                    target.display(),
                    store.command(),
                    fspack_engine::shell_word(target)
                ))
                .into());
            }
            if let Some(f) = &st.failing {
                // The server keeps trying, but a chunk that failed verification on every try
                // is wrong at the registry: waiting will not fix it (exit 6, as for a pull).
                return Err(fspack_engine::EngineError::Integrity(format!(
                    "the lazy mount at {} cannot complete: {f}\nhint: the registry serves other bytes than the manifest names; its lazy server tries again every few seconds; `{} umount {}` stops it",
                    target.display(),
                    store.command(),
                    fspack_engine::shell_word(target)
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
            let ttl = if args.partial {
                std::time::Duration::ZERO
            } else {
                fspack_engine::DEFAULT_INGEST_TTL
            };
            let collected = fspack_engine::gc::gc_with(&store, ttl, !args.no_wait)?;
            for t in &collected.released {
                if !g.quiet {
                    eprintln!(
                        "released the leftovers of {} (unmounted without fspack)",
                        t.display()
                    );
                }
            }
            collected.report
        }
        None => fspack_engine::GcReport::default(),
    };
    if args.json {
        return super::print_json(&report);
    }
    if !g.quiet {
        eprintln!("{}", gc_summary(&report));
    }
    Ok(())
}

/// One line on what `gc` did, sizes in the binary units the other commands' summaries use (s12
/// fresh-eyes pass: gc said "freed 52441828 bytes" where pull says MiB).
fn gc_summary(r: &fspack_engine::GcReport) -> String {
    use crate::output::{count, size};
    let scratch = match r.removed_scratch {
        0 => String::new(),
        1 => ", 1 scratch entry a killed push left in tmp/".to_string(),
        k => format!(", {k} scratch entries a killed push left in tmp/"),
    };
    let mut line = format!(
        "removed {} and {}{scratch}, freed {}; kept {}",
        count(r.removed_blobs, "blob"),
        count(r.removed_ingests, "partial download"),
        size(r.freed_bytes),
        count(r.kept_blobs, "blob")
    );
    if r.kept_ingests > 0 {
        // Said, so that a store that stays large after gc is not a mystery.
        line.push_str(&format!(
            " and {} ({}) for a resume; they go once untouched for a day (`gc --partial`: now)",
            count(r.kept_ingests, "partial download"),
            size(r.kept_ingest_bytes)
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gc_summary_gives_sizes_in_binary_units() {
        let r = fspack_engine::GcReport {
            removed_blobs: 7,
            removed_ingests: 1,
            freed_bytes: 52_441_828,
            kept_blobs: 1,
            kept_ingests: 2,
            kept_ingest_bytes: 3 << 20,
            removed_scratch: 0,
        };
        assert_eq!(
            gc_summary(&r),
            "removed 7 blobs and 1 partial download, freed 50.01 MiB; kept 1 blob and 2 partial \
             downloads (3.00 MiB) for a resume; they go once untouched for a day (`gc --partial`: now)"
        );
    }
}
