//! `fspack build DIR -o OUT`.

use anyhow::Context;
use fspack_engine::build::{ImageFormat, ImageSettings, build_erofs, build_squashfs};
use fspack_image::WalkOptions;
use fspack_image::erofs::{ErofsOptions, Layout};
use fspack_image::squashfs::{Compression, ShardSpec, SquashfsOptions};

use crate::args::{BuildArgs, CompressionArg, FormatArg, GlobalArgs, ImageArgs, LayoutArg, Shards};
use crate::exit::usage;

pub async fn run(args: BuildArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let layout = match args.layout {
        Some(LayoutArg::Chunked) if args.image.format() == FormatArg::Squashfs => usage!(
            "--layout chunked is an EROFS layout; SquashFS images are split with --shards N instead"
        ),
        Some(LayoutArg::Chunked) => Layout::Chunked,
        Some(LayoutArg::Single) | None => Layout::Single,
    };
    let settings = image_settings(&args.image, layout, Shards::Count(1))?;
    check_output(&args.output)?;
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

/// Refuses an output that cannot be written before anything is built (report item 20): an
/// existing directory is a usage error (exit 2), a missing parent directory is named (exit 3)
/// rather than surfacing as the temporary file the image is first written to.
fn check_output(out: &std::path::Path) -> anyhow::Result<()> {
    if out.is_dir() {
        usage!(
            "-o {} is a directory; name the image file to write, e.g. -o {}",
            out.display(),
            out.join("image.erofs").display()
        );
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.exists() {
        return Err(fspack_engine::EngineError::NotFound(format!(
            "the directory {} for -o {} does not exist; create it first",
            parent.display(),
            out.display()
        ))
        .into());
    }
    Ok(())
}

/// Resolves image options into engine settings; `default_shards` applies when `--shards` is absent.
///
/// Errors: a usage error (exit 2) for an option the chosen format ignores (report item 12: a
/// silently ignored option reads as if it took effect), and for a `--blob-size` below one chunk.
pub fn image_settings(
    a: &ImageArgs,
    layout: Layout,
    default_shards: Shards,
) -> anyhow::Result<ImageSettings> {
    let chunk_size = a
        .erofs_chunk_size
        .unwrap_or(fspack_image::erofs::DEFAULT_CHUNK_SIZE);
    match a.format() {
        FormatArg::Erofs => {
            let squashfs_only = [
                ("--compression", a.compression.is_some()),
                ("--level", a.level.is_some()),
                ("--block-size", a.block_size.is_some()),
                ("--shards", a.shards.is_some()),
                ("--strict-acls", a.strict_acls),
            ];
            if let Some((flag, _)) = squashfs_only.iter().find(|(_, given)| *given) {
                usage!(
                    "{flag} applies to SquashFS images only (EROFS images are uncompressed and unsharded); add --format squashfs or drop {flag}"
                );
            }
        }
        FormatArg::Squashfs => {
            if a.erofs_chunk_size.is_some() {
                usage!(
                    "--erofs-chunk-size applies to EROFS images only; SquashFS blocks are set with --block-size"
                );
            }
        }
    }
    // The engine sizes blobs and SquashFS packs in whole EROFS chunks (ImageSettings::sized_for).
    if let Some(b) = a.blob_size
        && b < chunk_size
    {
        let why = match a.format() {
            FormatArg::Erofs => " (one --erofs-chunk-size chunk)",
            FormatArg::Squashfs => "",
        };
        usage!(
            "--blob-size {} is below its minimum of {}{why}",
            size_text(b),
            size_text(chunk_size)
        );
    }
    let shards = match a.shards.unwrap_or(default_shards) {
        Shards::Auto => ShardSpec::Auto,
        Shards::Count(n) => ShardSpec::Count(n),
    };
    Ok(ImageSettings {
        format: match a.format() {
            FormatArg::Erofs => ImageFormat::Erofs,
            FormatArg::Squashfs => ImageFormat::Squashfs,
        },
        walk: WalkOptions {
            all_root: a.all_root,
            mtime: a.mtime,
            one_file_system: a.one_file_system,
            ..Default::default()
        },
        erofs: ErofsOptions {
            layout,
            chunk_size,
            // Resolved per tree by the engine (ImageSettings::sized_for).
            blob_size: fspack_image::erofs::DEFAULT_BLOB_SIZE,
            large_file: fspack_image::erofs::DEFAULT_LARGE_FILE,
            build_time: a.mtime.unwrap_or(0).max(0) as u64,
        },
        squashfs: SquashfsOptions {
            compression: match a.compression.unwrap_or(CompressionArg::Zstd) {
                CompressionArg::Zstd => Compression::Zstd,
                CompressionArg::Gzip => Compression::Gzip,
                CompressionArg::Xz => Compression::Xz,
                CompressionArg::Lz4 => Compression::Lz4,
                CompressionArg::Lzo => Compression::Lzo,
            },
            level: a.level,
            block_size: a
                .block_size
                .map_or(fspack_image::squashfs::DEFAULT_BLOCK_SIZE, |b| {
                    u32::try_from(b).unwrap_or(u32::MAX)
                }),
            mkfs_time: a.mtime.unwrap_or(0).clamp(0, u32::MAX as i64) as u32,
        },
        shards,
        shard_rules: fspack_image::squashfs::ShardRules::default(),
        blob_size: a.blob_size,
        strict_acls: a.strict_acls,
    })
}

/// A byte count as the size options spell it (`1M`, `4K`, `3000`).
fn size_text(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n.is_multiple_of(1 << 20) => format!("{}M", n >> 20),
        n if n.is_multiple_of(1 << 10) => format!("{}K", n >> 10),
        n => n.to_string(),
    }
}
