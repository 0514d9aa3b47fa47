//! Builds an EROFS image with the library alone: `mkerofs DIR OUT [chunked]`. Used to time the
//! writer without the CLI (bench/ compares the full `fspack build`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: mkerofs DIR OUT [chunked]");
        std::process::exit(2);
    }
    let tree = fspack_image::Tree::walk(args[1].as_ref(), &Default::default())?;
    let mut opts = fspack_image::erofs::ErofsOptions::default();
    if args.get(3).map(String::as_str) == Some("chunked") {
        opts.layout = fspack_image::erofs::Layout::Chunked;
    }
    let img = fspack_image::erofs::plan(&tree, &opts)?;
    img.meta.write_file(args[2].as_ref())?;
    for b in &img.blobs {
        b.write_file(&std::path::Path::new(&args[2]).with_extension(&b.name))?;
    }
    Ok(())
}
