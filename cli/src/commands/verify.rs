//! `fspack verify [REF…|--all] [--repair]`, and the check `pull --verify` runs after a pull.

use anyhow::Context;
use fspack_engine::EngineError;
use fspack_engine::verify::{BlobStatus, Scope, VerifyReport, VerifySettings, verify};

use crate::args::{GlobalArgs, VerifyArgs};

pub async fn run(args: VerifyArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let Some(store) = super::existing_store(g)? else {
        anyhow::bail!(EngineError::NotFound(
            "there is no store to verify (nothing was pulled yet); pass --store DIR if it lives elsewhere".into()
        ));
    };
    let scope = if args.all {
        Scope::All
    } else {
        Scope::Refs(
            args.references
                .iter()
                .map(|r| fspack_engine::open::store_name(r))
                .collect(),
        )
    };
    let client = super::client(&args.registry)?;
    let settings = VerifySettings {
        repair: args.repair,
        ranges: args.jobs.jobs.clamp(1, 8),
    };
    let report = verify(&store, &scope, &settings, Some(&client))
        .await
        .context("verify failed")?;
    finish(&report, args.json, args.repair, g.quiet)
}

/// Prints the report (a line per blob that is not fine, or JSON) and fails with exit 6 when a
/// blob is still bad. `quiet` (`-q`) keeps only the lines of blobs still bad, which say what
/// the failure is about: repairs and the closing count are messages.
pub fn finish(report: &VerifyReport, json: bool, repair: bool, quiet: bool) -> anyhow::Result<()> {
    if json {
        super::print_json(report)?;
    }
    for b in &report.blobs {
        if json || b.status == BlobStatus::Ok || (quiet && b.status == BlobStatus::Repaired) {
            continue;
        }
        let what = match b.status {
            BlobStatus::Missing => "missing".to_string(),
            BlobStatus::Repaired => format!("repaired ({} bytes fetched)", b.bytes_received),
            _ if b.expected_size.is_some() => format!(
                "corrupt: {} bytes on disk, its manifest says {} (truncated or extended)",
                b.size,
                b.expected_size.unwrap_or_default()
            ),
            _ if b.index_corrupt => "corrupt (its chunk index too)".to_string(),
            _ if !b.bad_chunks.is_empty() => {
                let list: Vec<String> = b
                    .bad_chunks
                    .iter()
                    .take(8)
                    .map(|c| format!("{} (bytes {}-{})", c.index, c.start, c.end))
                    .collect();
                let more = b.bad_chunks.len().saturating_sub(8);
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                format!("corrupt: chunk {}{more}", list.join(", "))
            }
            _ => "corrupt".to_string(),
        };
        eprintln!("{} {what}", b.digest);
        for r in &b.references {
            eprintln!("  used by {r}");
        }
        for m in &b.mounts {
            eprintln!("  mounted at {}", m.display());
        }
        if let Some(why) = &b.repair_error {
            eprintln!("  not repaired: {why}");
        }
    }
    if !json && !quiet {
        eprintln!(
            "checked {} ({}): {} bad, {} repaired",
            crate::output::count(report.blobs.len(), "blob"),
            crate::output::size(report.bytes_checked),
            report.bad,
            report.repaired
        );
    }
    Ok(report.ensure_clean(repair)?)
}
