//! Times the metadata walk that runs before every mount (issue 12), for the bench section `bench/sections/check.sh`:
//! `check_image IMAGE [DEVICE...]` prints one JSON line with the format, the seconds taken and
//! what was walked. Exits 1 with the check's message when the image is refused.

use std::path::PathBuf;
use std::time::Instant;

use fspack_image::check::{check_erofs, check_squashfs};
use fspack_image::detect::{Format, detect_reader};

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let Some((image, devices)) = args.split_first() else {
        eprintln!("usage: check_image IMAGE [DEVICE...]");
        std::process::exit(2);
    };
    let file = std::fs::File::open(image).unwrap_or_else(|e| {
        eprintln!("{}: {e}", image.display());
        std::process::exit(1);
    });
    let started = Instant::now();
    let result = match detect_reader(file) {
        Ok(Some(Format::Erofs)) => {
            check_erofs(image, devices).map(|c| ("erofs", c.inodes, c.entries, c.directories))
        }
        Ok(Some(Format::Squashfs)) => {
            check_squashfs(image).map(|c| ("squashfs", c.inodes, c.entries, c.directories))
        }
        _ => {
            eprintln!("{}: not an EROFS or SquashFS image", image.display());
            std::process::exit(1);
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok((format, inodes, entries, directories)) => println!(
            "{{\"format\":\"{format}\",\"seconds\":{seconds:.6},\"inodes\":{inodes},\"entries\":{entries},\"directories\":{directories}}}"
        ),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
