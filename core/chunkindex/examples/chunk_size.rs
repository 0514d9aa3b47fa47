//! Measures what the chunk size costs: index bytes per GiB and SHA-256 time per GiB when every
//! chunk is hashed on its own (as a pull verifies it), for chunk sizes from 16 KiB to 16 MiB.
//! Run by `bench/chunk-size.sh`; prints a Markdown table.

use std::time::Instant;

use fspack_chunkindex::{ChunkIndex, ChunkIndexBuilder};

fn main() {
    let mb: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    let data: Vec<u8> = (0..mb << 20)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3])
        .collect();
    println!(
        "| chunk size | index bytes per GiB | chunks per GiB | SHA-256 per GiB (s, best of 3) |"
    );
    println!("|---|---|---|---|");
    for shift in [14u32, 16, 18, 20, 22, 24] {
        let chunk = 1u64 << shift;
        let mut best = f64::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            let mut b = ChunkIndexBuilder::new(chunk);
            for piece in data.chunks(1 << 20) {
                b.update(piece);
            }
            std::hint::black_box(b.finish());
            best = best.min(t.elapsed().as_secs_f64());
        }
        let per_gib = 1024.0 / mb as f64;
        let chunks = ChunkIndex::chunks_for(1 << 30, chunk);
        println!(
            "| {} KiB | {} | {} | {:.3} |",
            chunk >> 10,
            ChunkIndex::encoded_len(chunks),
            chunks,
            best * per_gib
        );
    }
}
