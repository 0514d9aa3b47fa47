//! `fspack push SOURCE REF`.

use anyhow::Context;
use fspack_engine::push::{PushSettings, push};
use fspack_engine::target::Target;
use fspack_image::erofs::Layout;
use fspack_registry::UploadMode;

use super::build::image_settings;
use crate::args::{GlobalArgs, PushArgs, Shards};

pub async fn run(args: PushArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.reference)?;
    // Directories go up in the chunked layout: that is what lets several blobs travel at once.
    let settings = PushSettings {
        image: image_settings(&args.image, Layout::Chunked, Shards::Auto),
        jobs: args.registry.jobs.max(1),
        upload: match args.chunk_size {
            Some(chunk_size) => UploadMode::Chunked { chunk_size },
            None => UploadMode::Monolithic,
        },
        annotations: args.annotations.clone(),
        modelpack: args.modelpack,
        staging_store: Some(g.store.clone().unwrap_or_else(fspack_store::default_root)),
    };
    let client = match &target {
        Target::Registry(_) => Some(super::client(&args.registry)?),
        Target::Layout { .. } => None,
    };
    let bars = super::bars(g, args.json);
    let report = push(
        &args.source,
        &target,
        &settings,
        client.as_ref(),
        bars.clone(),
    )
    .await
    .with_context(|| {
        format!(
            "failed to push {} to {}",
            args.source.display(),
            args.reference
        )
    })?;
    drop(bars);
    if args.json {
        super::print_json(&report)?;
    } else if !g.quiet {
        let sent = report.layers.iter().filter(|l| !l.skipped).count();
        eprintln!(
            "pushed {} ({} layers: {} sent, {} already there; {} MB in {:.1}s)",
            report.reference,
            report.layers.len(),
            sent,
            report.layers.len() - sent,
            report.bytes_sent / 1_000_000,
            report.seconds
        );
        println!("{}", report.manifest_digest);
    }
    Ok(())
}
