//! `fspack images` and `fspack rmi`: the store's tags, and removing them so `gc` frees their blobs.

use std::io::Write;

use crate::args::{GlobalArgs, ImagesArgs, RmiArgs};
use crate::output::size;

pub fn images(args: ImagesArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let list = match super::existing_store(g)? {
        Some(store) => fspack_engine::images::images(&store)?,
        None => Vec::new(),
    };
    if args.json {
        return super::print_json(&list);
    }
    if list.is_empty() {
        if !g.quiet {
            eprintln!("the store holds no images (`fspack pull REF` adds one)");
        }
        return Ok(());
    }
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|i| {
            let mounted: Vec<String> = i
                .mounted_at
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            [
                i.reference.clone(),
                short(&i.manifest_digest).to_string(),
                i.format.clone(),
                size(i.size),
                if mounted.is_empty() {
                    "-".to_string()
                } else {
                    mounted.join(",")
                },
            ]
        })
        .collect();
    let header = ["REFERENCE", "DIGEST", "FORMAT", "SIZE", "MOUNTED AT"];
    // Columns as wide as their widest cell, so long references never push the rest askew.
    let width = |c: usize| {
        rows.iter()
            .map(|r| r[c].chars().count())
            .chain([header[c].len()])
            .max()
            .unwrap_or(0)
    };
    let widths = [width(0), width(1), width(2), width(3)];
    let mut out = std::io::stdout().lock();
    for r in std::iter::once(header.map(String::from)).chain(rows) {
        writeln!(
            out,
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        )?;
    }
    Ok(())
}

/// `sha256:` and the first 12 hex digits, as `docker images` shortens IDs.
fn short(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

pub fn rmi(args: RmiArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let store = super::store(g)?;
    let removed = fspack_engine::images::remove(&store, &args.references)?;
    if args.json {
        return super::print_json(&removed);
    }
    if !g.quiet {
        for r in &removed {
            eprintln!("untagged {} ({})", r.reference, r.manifest_digest);
            for m in &r.still_mounted {
                eprintln!(
                    "note: still mounted on {}; its blobs stay until it is unmounted",
                    m.display()
                );
            }
        }
        eprintln!("`fspack gc` removes the blobs no other tag or mount uses");
    }
    Ok(())
}
