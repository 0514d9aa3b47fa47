//! Builds a SquashFS image (or a shard set) with the library alone, to time the writer without
//! the CLI: `mksqfs DIR OUT [--comp zstd|gzip|xz|lz4|lzo] [--level N] [--block-size N]
//! [--shards auto|N]`. With `--shards`, OUT is a directory.

use fspack_image::squashfs::{self, ShardRules, ShardSpec, SquashfsOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!(
            "usage: mksqfs DIR OUT [--comp C] [--level N] [--block-size N] [--shards auto|N]"
        );
        std::process::exit(2);
    }
    let mut opts = SquashfsOptions::default();
    let mut shards = None;
    let mut i = 3;
    while i + 1 < args.len() {
        let v = &args[i + 1];
        match args[i].as_str() {
            "--comp" => opts.compression = v.parse()?,
            "--level" => opts.level = Some(v.parse()?),
            "--block-size" => opts.block_size = v.parse()?,
            "--shards" => {
                shards = Some(if v == "auto" {
                    ShardSpec::Auto
                } else {
                    ShardSpec::Count(v.parse()?)
                })
            }
            other => return Err(format!("unknown option {other}").into()),
        }
        i += 2;
    }
    let tree = fspack_image::Tree::walk(args[1].as_ref(), &Default::default())?;
    match shards {
        None => {
            let r = squashfs::write(&tree, &opts, args[2].as_ref())?;
            eprintln!("{r:?}");
        }
        Some(spec) => {
            let r = squashfs::write_shards_report(
                &tree,
                &opts,
                spec,
                &ShardRules::default(),
                args[2].as_ref(),
            )?;
            for (p, rep) in r.shards.iter().zip(&r.reports) {
                eprintln!("{}: {} bytes", p.display(), rep.bytes);
            }
            if let Some(n) = r.note {
                eprintln!("note: {n}");
            }
        }
    }
    Ok(())
}
