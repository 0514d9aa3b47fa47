//! `fspack images` and `fspack rmi`: the store's tags, and removing them so `gc` frees their blobs.

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
            eprintln!(
                "the store holds no images (`{} pull REF` adds one)",
                super::fspack_command(g)
            );
        }
        return Ok(());
    }
    let rows: Vec<[String; 5]> = list
        .iter()
        .map(|i| {
            let mut mounted: Vec<String> = i
                .mounted_at
                .iter()
                .map(|p| p.display().to_string())
                .collect();
            if i.filling {
                mounted.push("(lazy, filling: tagged when complete)".into());
            }
            [
                i.reference.clone(),
                crate::output::short_digest(i.manifest_digest.as_str()).to_string(),
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
    print!("{}", crate::output::table(header, &rows, &[3]));
    Ok(())
}

pub fn rmi(args: RmiArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let store = super::store(g)?;
    let removed = fspack_engine::images::remove(&store, &args.references)?;
    if args.json {
        return super::print_json(&removed);
    }
    if !g.quiet {
        for r in &removed {
            // A reference by digest names it already (s12 fresh-eyes pass: said twice).
            if r.reference.contains(r.manifest_digest.as_str()) {
                eprintln!("untagged {}", r.reference);
            } else {
                eprintln!("untagged {} ({})", r.reference, r.manifest_digest);
            }
            // The mount may have been made under another name of the same manifest.
            for m in &r.still_mounted {
                eprintln!(
                    "note: this manifest is still mounted on {}; its blobs stay until that mount is unmounted",
                    m.display()
                );
            }
        }
        eprintln!(
            "`{} gc` removes the blobs no other tag or mount uses",
            super::fspack_command(g)
        );
    }
    Ok(())
}
