//! `fspack inspect REF`: the manifest, layers, sizes and format, without downloading data.

use anyhow::Context;
use fspack_engine::artifact::{ANN_EROFS_ROLE, ANN_TITLE, MAX_MANIFEST, Manifest, MountPlan};
use fspack_engine::target::Target;
use serde::Serialize;

use crate::args::{GlobalArgs, InspectArgs};

#[derive(Serialize)]
struct Inspection {
    reference: String,
    digest: String,
    format: Option<String>,
    size: u64,
    manifest: Manifest,
}

pub async fn run(args: InspectArgs, _g: &GlobalArgs) -> anyhow::Result<()> {
    let (digest, manifest) = match Target::parse(&args.reference)? {
        Target::Registry(r) => {
            let client = super::client(&args.registry)?;
            let f = fspack_engine::pull::fetch_manifest(&client, &r)
                .await
                .with_context(|| format!("cannot read the manifest of {}", args.reference))?;
            (f.digest, f.manifest)
        }
        Target::Layout { path, tag } => {
            // Read-only: inspecting a layout must never write into it (issue 11).
            let layout = fspack_store::LayoutReader::open(&path).map_err(|_| {
                fspack_engine::EngineError::NotFound(format!(
                    "no OCI image layout at {} (no oci-layout file)",
                    path.display()
                ))
            })?;
            let d = layout.resolve(&tag)?.ok_or_else(|| {
                fspack_engine::EngineError::NotFound(format!(
                    "no tag {tag} in the OCI layout {}",
                    path.display()
                ))
            })?;
            let bytes = layout.read_blob(&d.digest, MAX_MANIFEST)?;
            (
                d.digest.clone(),
                fspack_engine::artifact::parse_manifest(&bytes, &args.reference)?,
            )
        }
    };
    let format = MountPlan::from_manifest(&manifest, &args.reference)
        .ok()
        .map(|p| p.format().to_string());
    let size = manifest.layers.iter().map(|l| l.size).sum();
    let view = Inspection {
        reference: args.reference.clone(),
        digest,
        format,
        size,
        manifest,
    };
    if args.json {
        return super::print_json(&view);
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "reference: {}", view.reference)?;
    writeln!(out, "digest:    {}", view.digest)?;
    writeln!(
        out,
        "format:    {}",
        view.format.as_deref().unwrap_or("not mountable by fspack")
    )?;
    if let Some(t) = &view.manifest.artifact_type {
        writeln!(out, "type:      {t}")?;
    }
    writeln!(
        out,
        "size:      {} bytes in {} layers",
        view.size,
        view.manifest.layers.len()
    )?;
    for (k, v) in &view.manifest.annotations {
        writeln!(out, "  {k}: {}", v.escape_default())?;
    }
    writeln!(
        out,
        "{:<20} {:>14}  {:<8} MEDIA TYPE / DIGEST",
        "LAYER", "SIZE", "ROLE"
    )?;
    // Model artifacts (issue 15) are listed file by file: the layer's file path, and how the
    // layer holds it (raw, or a tar whose members show once pulled and mounted).
    let flavor = fspack_engine::modelpack::detect(&view.manifest);
    for l in &view.manifest.layers {
        let title = l
            .annotations
            .get(fspack_engine::modelpack::ANN_FILEPATH)
            .filter(|_| flavor.is_some())
            .or_else(|| l.annotations.get(ANN_TITLE))
            .map(|s| s.escape_default().to_string())
            .unwrap_or_default();
        let packing = flavor.and_then(|f| fspack_engine::modelpack::packing(f, &l.media_type));
        let role = match packing {
            Some(fspack_engine::modelpack::Packing::Raw) => "file",
            Some(fspack_engine::modelpack::Packing::Tar) => "tar",
            Some(_) => "tar+z",
            None => l
                .annotations
                .get(ANN_EROFS_ROLE)
                .map(String::as_str)
                .unwrap_or("-"),
        };
        writeln!(
            out,
            "{title:<20} {:>14}  {role:<8} {}\n{:<46}{}",
            l.size, l.media_type, "", l.digest
        )?;
    }
    Ok(())
}
