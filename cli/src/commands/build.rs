//! `fspack build DIR -o OUT`.

use anyhow::Context;
use fspack_engine::build::{ImageSettings, build_erofs};
use fspack_image::WalkOptions;
use fspack_image::erofs::{ErofsOptions, Layout};

use crate::args::{BuildArgs, FormatArg, GlobalArgs, ImageArgs, LayoutArg};

pub async fn run(args: BuildArgs, _global: &GlobalArgs) -> anyhow::Result<()> {
    let layout = match args.layout {
        LayoutArg::Single => Layout::Single,
        LayoutArg::Chunked => Layout::Chunked,
    };
    let settings = image_settings(&args.image, layout);
    match args.image.format {
        FormatArg::Erofs => {
            let dir = args.dir.clone();
            let out = args.output.clone();
            let report = tokio::task::spawn_blocking(move || build_erofs(&dir, &out, &settings))
                .await?
                .with_context(|| {
                    format!(
                        "failed to build {} from {}",
                        args.output.display(),
                        args.dir.display()
                    )
                })?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
        FormatArg::Squashfs => anyhow::bail!("squashfs is not implemented yet"),
    }
}

/// Resolves image options into engine settings.
pub fn image_settings(a: &ImageArgs, layout: Layout) -> ImageSettings {
    ImageSettings {
        walk: WalkOptions {
            all_root: a.all_root,
            mtime: a.mtime,
            ..Default::default()
        },
        erofs: ErofsOptions {
            layout,
            chunk_size: a.erofs_chunk_size,
            blob_size: a.blob_size,
            large_file: (a.blob_size / 4).max(a.erofs_chunk_size),
            build_time: a.mtime.unwrap_or(0).max(0) as u64,
        },
    }
}
