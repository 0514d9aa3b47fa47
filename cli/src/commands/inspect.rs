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
    if let Some(index) = &view.index_digest {
        writeln!(
            out,
            "index:     {index} (an image index; shown: the manifest it lists for fspack, else its first)"
        )?;
    }
    writeln!(out, "digest:    {}", view.manifest_digest)?;
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
        "size:      {} ({} bytes) in {}",
        crate::output::size(view.size),
        view.size,
        crate::output::count(view.manifest.layers.len(), "layer")
    )?;
    for (k, v) in &view.manifest.annotations {
        writeln!(out, "  {k}: {}", v.escape_default())?;
    }
    let rows: Vec<[String; 6]> = view
        .layer_rows()
        .into_iter()
        .map(|l| {
            [
                l.title,
                l.size.to_string(),
                l.role.to_string(),
                l.chunk_index.to_string(),
                l.media_type,
                l.digest.to_string(),
            ]
        })
        .collect();
    let header = ["LAYER", "SIZE", "ROLE", "CHUNKS", "MEDIA TYPE", "DIGEST"];
    write!(out, "{}", crate::output::table(header, &rows, &[1]))?;
    writeln!(
        out,
        "CHUNKS: where the layer's chunk index is (tail: appended to the blob; blob: a blob of \
         its own; -: none, verified whole)"
    )?;
    Ok(())
}
