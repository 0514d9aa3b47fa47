//! `fspack inspect REF`: the manifest, layers, sizes and format, without downloading data.

use fspack_engine::inspect::inspect;
use fspack_engine::target::Target;

use crate::args::{GlobalArgs, InspectArgs};

pub async fn run(args: InspectArgs, _g: &GlobalArgs) -> anyhow::Result<()> {
    let target = Target::parse(&args.reference)?;
    let client = match &target {
        Target::Registry(_) => Some(super::client(&args.registry)?),
        Target::Layout { .. } => None,
    };
    let view = inspect(&args.reference, &target, client.as_ref()).await?;
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
        "{:<20} {:>14}  {:<8} {:<6} MEDIA TYPE / DIGEST",
        "LAYER", "SIZE", "ROLE", "CHUNKS"
    )?;
    for l in view.layer_rows() {
        writeln!(
            out,
            "{:<20} {:>14}  {:<8} {:<6} {}\n{:<53}{}",
            l.title, l.size, l.role, l.chunk_index, l.media_type, "", l.digest
        )?;
    }
    Ok(())
}
