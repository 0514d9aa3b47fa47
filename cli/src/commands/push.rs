//! `fspack push SOURCE REF`.

use anyhow::Context;
use fspack_engine::UploadMode;
use fspack_engine::push::{PushSettings, push};
use fspack_engine::target::Target;
use fspack_image::erofs::Layout;

use super::build::image_settings;
use crate::args::{GlobalArgs, PushArgs, Shards};
use crate::output::{count, size};

pub async fn run(args: PushArgs, g: &GlobalArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.reference)?;
    // An image file (or a sharded build's shards) is pushed as built: an image option would be
    // silently ignored.
    if let Some(flag) = args.image.first_given() {
        let built = if args.source.is_file() {
            Some("is an image file already built")
        } else if fspack_engine::push::built_shards(&args.source)?.is_some() {
            Some("holds the shards of a SquashFS build")
        } else {
            None
        };
        if let Some(what) = built {
            return Err(crate::exit::UsageError(format!(
                "{flag} shapes an image built from a directory, but {} {what}; drop {flag}, or push the source directory",
                args.source.display()
            ))
            .into());
        }
    }
    // Directories go up in the chunked layout: that is what lets several blobs travel at once.
    let settings = PushSettings {
        image: image_settings(&args.image, Layout::Chunked, Shards::Auto)?,
        jobs: args.jobs.jobs.max(1),
        upload: match args.chunk_size {
            Some(chunk_size) => UploadMode::Chunked { chunk_size },
            None => UploadMode::Monolithic,
        },
        annotations: args.annotations.clone(),
        modelpack: args.modelpack,
        staging_store: Some(
            g.store
                .clone()
                .unwrap_or_else(fspack_engine::open::default_store_root),
        ),
    };
    let client = match &target {
        Target::Registry(_) => Some(super::client(&args.registry)?),
        Target::Layout { .. } => None,
    };
    // Loaded before the push: a bad key must not leave an unsigned image behind.
    let sign_key = match (&args.sign_key, &target) {
        (None, _) => None,
        (Some(_), Target::Layout { .. }) => {
            return Err(fspack_engine::EngineError::Usage(
                "--sign-key needs a registry destination (signatures live in the registry)".into(),
            )
            .into());
        }
        (Some(path), Target::Registry(_)) => Some(
            fspack_engine::trust::SigningKey::from_pem_file(path)
                .map_err(fspack_engine::EngineError::from)
                .context("cannot use --sign-key")?,
        ),
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
    // On stderr even with --json (whose report carries them too): a script reading stdout
    // keeps valid JSON, and the person running it still hears what was left out.
    if !g.quiet {
        for n in &report.notes {
            eprintln!("note: {n}");
        }
    }
    if let (Some(key), Target::Registry(r)) = (&sign_key, &target) {
        let client = client.as_ref().expect("set for registries");
        let signed = fspack_engine::sign::sign(client, r, &report.manifest_digest, key)
            .await
            .with_context(|| {
                format!(
                    "pushed {} ({}) but could not sign it",
                    args.reference, report.manifest_digest
                )
            })?;
        if !g.quiet && !args.json {
            eprintln!(
                "signed {} at {}",
                signed.manifest_digest, signed.signature_ref
            );
        }
    }
    if args.json {
        return super::print_json(&report);
    }
    if !g.quiet {
        let sent = report.layers.iter().filter(|l| !l.skipped).count();
        eprintln!(
            "pushed {} ({}: {sent} sent, {} already there; {} sent in {:.1}s)",
            report.reference,
            count(report.layers.len(), "layer"),
            report.layers.len() - sent,
            size(report.bytes_sent),
            report.seconds
        );
    }
    // The digest is the data asked for, so `-q` keeps it: `D=$(fspack push -q DIR REF)`.
    println!("{}", report.manifest_digest);
    Ok(())
}
