#!/usr/bin/env bash
# What the chunk size of fspack's chunk index costs, to back the choice of 1 MiB (docs/format.md):
# index bytes and SHA-256 time per GiB at each size, on this machine. Usage: bench/chunk-size.sh [MiB]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run -q --release -p fspack-chunkindex --example chunk_size -- "${1:-512}"
