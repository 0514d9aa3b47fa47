//! `fspack build DIR -o OUT`.

use anyhow::Context;
use fspack_engine::build::{ImageFormat, ImageSettings, build_erofs, build_squashfs};
use fspack_image::WalkOptions;
use fspack_image::erofs::{ErofsOptions, Layout};
use fspack_image::squashfs::{Compression, ShardSpec, SquashfsOptions};

use crate::args::{BuildArgs, CompressionArg, FormatArg, GlobalArgs, ImageArgs, LayoutArg, Shards};

pub async fn run(args: BuildArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let layout = match args.layout {
        LayoutArg::Single => Layout::Single,
        LayoutArg::Chunked => Layout::Chunked,
    };
    let settings = image_settings(&args.image, layout, Shards::Count(1));
    let (dir, out) = (args.dir.clone(), args.output.clone());
    let report = tokio::task::spawn_blocking(move || match settings.format {
        ImageFormat::Erofs => build_erofs(&dir, &out, &settings),
        ImageFormat::Squashfs => build_squashfs(&dir, &out, &settings),
    })
    .await?
    .with_context(|| {
        format!(
            "failed to build {} from {}",
            args.output.display(),
            args.dir.display()
        )
    })?;
    for note in &report.notes {
        tracing::warn!("{note}");
    }
    if args.json {
        return super::print_json(&report);
    }
    if !g.quiet {
        let blobs = match report.blobs.len() {
            0 => String::new(),
            n => format!(" and {}", crate::output::count(n, "data blob")),
        };
        eprintln!(
            "built {}{blobs} ({}, {}) in {:.1}s",
            report.image.display(),
            crate::output::count(report.inodes as usize, "inode"),
            crate::output::size(report.bytes),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Resolves image options into engine settings; `default_shards` applies when `--shards` is absent.
pub fn image_settings(a: &ImageArgs, layout: Layout, default_shards: Shards) -> ImageSettings {
    let shards = match a.shards.unwrap_or(default_shards) {
        Shards::Auto => ShardSpec::Auto,
        Shards::Count(n) => ShardSpec::Count(n),
    };
    ImageSettings {
        format: match a.format {
            FormatArg::Erofs => ImageFormat::Erofs,
            FormatArg::Squashfs => ImageFormat::Squashfs,
        },
        walk: WalkOptions {
            all_root: a.all_root,
            mtime: a.mtime,
            ..Default::default()
        },
        erofs: ErofsOptions {
            layout,
            chunk_size: a.erofs_chunk_size,
            // Resolved per tree by the engine (ImageSettings::sized_for).
            blob_size: fspack_image::erofs::DEFAULT_BLOB_SIZE,
            large_file: fspack_image::erofs::DEFAULT_LARGE_FILE,
            build_time: a.mtime.unwrap_or(0).max(0) as u64,
        },
        squashfs: SquashfsOptions {
            compression: match a.compression {
                CompressionArg::Zstd => Compression::Zstd,
                CompressionArg::Gzip => Compression::Gzip,
                CompressionArg::Xz => Compression::Xz,
                CompressionArg::Lz4 => Compression::Lz4,
                CompressionArg::Lzo => Compression::Lzo,
            },
            level: a.level,
            block_size: u32::try_from(a.block_size).unwrap_or(u32::MAX),
            mkfs_time: a.mtime.unwrap_or(0).clamp(0, u32::MAX as i64) as u32,
        },
        shards,
        shard_rules: fspack_image::squashfs::ShardRules::default(),
        blob_size: a.blob_size,
        strict_acls: a.strict_acls,
    }
}
