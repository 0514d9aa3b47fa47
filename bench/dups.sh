#!/usr/bin/env bash
# Image sizes on a duplicate-heavy tree (issue 11, case 3): fspack SquashFS against mksquashfs
# (which stores each content once) and fspack EROFS against the raw bytes.
#
# Why a script of its own: bench/run.sh times builds on data without duplicates; this one only
# compares sizes, on a tree shaped like the report (20,000 files with 900 distinct contents of
# 0-64 KiB), and takes seconds. Run from the repository root after `cargo build --release -p fspack`:
#
#     bench/dups.sh [--files N] [--distinct N] [--out DIR]
#
# Prints a Markdown table on stdout (also saved to bench/out/dups-<date>.md).
set -euo pipefail

FILES=20000
DISTINCT=900
WORK=${TMPDIR:-/tmp}/fspack-bench-dups
while [[ $# -gt 0 ]]; do
    case $1 in
        --files) FILES=$2; shift 2 ;;
        --distinct) DISTINCT=$2; shift 2 ;;
        --out) WORK=$2; shift 2 ;;
        *) echo "usage: $0 [--files N] [--distinct N] [--out DIR]" >&2; exit 2 ;;
    esac
done
FSPACK=${FSPACK:-target/release/fspack}
[[ -x $FSPACK ]] || { echo "build first: cargo build --release -p fspack" >&2; exit 1; }
command -v mksquashfs >/dev/null || { echo "mksquashfs is missing (apt-get install squashfs-tools)" >&2; exit 1; }
LEVEL=3
BLOCK=128K

SRC=$WORK/tree-$FILES-$DISTINCT
if [[ ! -f $SRC.done ]]; then
    rm -rf "$SRC"
    python3 - "$SRC" "$FILES" "$DISTINCT" <<'EOF'
import os, random, sys
root, files, distinct = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(11)
# Half-compressible contents (text-like runs and random bytes), 0-64 KiB.
contents = []
for i in range(distinct):
    size = rng.randrange(0, 64 << 10)
    words = [rng.choice([b"weight", b"bias", b"layer", b"token", b"0.125", b"-3.5e-2"]) for _ in range(size // 16 + 1)]
    text = b" ".join(words)[: size // 2]
    contents.append(text + rng.randbytes(size - len(text)))
for i in range(files):
    d = os.path.join(root, f"d{i % 97:02d}", f"s{i % 13}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}"), "wb") as f:
        f.write(contents[rng.randrange(distinct)])
EOF
    touch "$SRC.done"
fi
RAW=$(find "$SRC" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')
DISTINCT_BYTES=$(find "$SRC" -type f -exec sha256sum {} + | sort -u -k1,1 | awk '{ print $2 }' |
    xargs stat -c %s | awk '{ s += $1 } END { printf "%d", s }')

OUT=$WORK/out
rm -rf "$OUT"
mkdir -p "$OUT"
"$FSPACK" build "$SRC" -o "$OUT/fspack.sqfs" --format squashfs --compression zstd --level $LEVEL --block-size $BLOCK --all-root -q
mksquashfs "$SRC" "$OUT/mksquashfs.sqfs" -comp zstd -Xcompression-level $LEVEL -b $BLOCK -all-root \
    -processors 2 -noappend -no-progress >/dev/null
"$FSPACK" build "$SRC" -o "$OUT/fspack.erofs" --all-root -q
"$FSPACK" build "$SRC" -o "$OUT/fspack-chunked.erofs" --layout chunked --all-root -q
size() { du -sb "$@" | awk '{ s += $1 } END { printf "%d", s }'; }
SQ=$(size "$OUT/fspack.sqfs")
MSQ=$(size "$OUT/mksquashfs.sqfs")
ER=$(size "$OUT/fspack.erofs")
ERC=$(size "$OUT/fspack-chunked.erofs" "$OUT/fspack-chunked.erofs.d")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

mkdir -p bench/out
REPORT=bench/out/dups-$(date +%Y%m%d-%H%M).md
{
    echo "### Duplicate-heavy tree: $FILES files, $DISTINCT distinct contents"
    echo
    echo "Raw bytes $RAW; distinct contents $DISTINCT_BYTES bytes. SquashFS: zstd $LEVEL, $BLOCK blocks, --all-root."
    echo
    echo "| Image | Bytes | vs mksquashfs | vs raw bytes |"
    echo "|---|---:|---:|---:|"
    echo "| mksquashfs $(mksquashfs -version 2>/dev/null | awk 'NR == 1 { print $3 }') | $MSQ | 1.000 | $(ratio "$MSQ" "$RAW") |"
    echo "| fspack SquashFS | $SQ | $(ratio "$SQ" "$MSQ") | $(ratio "$SQ" "$RAW") |"
    echo "| fspack EROFS single | $ER | $(ratio "$ER" "$MSQ") | $(ratio "$ER" "$RAW") |"
    echo "| fspack EROFS chunked (meta + blobs) | $ERC | $(ratio "$ERC" "$MSQ") | $(ratio "$ERC" "$RAW") |"
    echo
    echo "Target (issue 11): fspack SquashFS within 2 % of mksquashfs (ratio <= 1.02); EROFS well under the raw bytes."
} | tee "$REPORT"
