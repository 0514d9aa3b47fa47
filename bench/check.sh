#!/usr/bin/env bash
# The cost of the metadata walk fspack runs before every mount (issue 12), next to the time the
# same image takes to download: the walk must stay small beside the transfer it follows.
#
#   bench/check.sh [--quick] [--runs N] [--fspack PATH]
#
# Uses the data of bench/run.sh (bench/gen_data.py: the 2 GiB model and the 50k-file tree;
# --quick: 256 MiB and 10k files), builds each as fspack push would (chunked EROFS), as one
# EROFS image and as SquashFS, and times `check_image` (core/image/examples) on each. The page
# cache is warm, as it is right after a download; BENCH_COLD=1 drops it before each walk (root).
# The download column is the image's bytes at BENCH_JOBS x BENCH_RATE bytes/s, the remote profile
# of bench/run.sh. Prints a Markdown table (also saved to bench/out/check-<date>.md).
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
OUT=$BENCH/out
quick=0 runs=3
FSPACK=${FSPACK:-$ROOT/target/release/fspack}
while (($#)); do
    case $1 in
    --quick) quick=1 ;;
    --runs) runs=${2:?--runs needs a number}; shift ;;
    --fspack) FSPACK=${2:?--fspack needs a path}; shift ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "check.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((quick)); then
    MODEL_SIZE=256M FILES=10000 DATA=$OUT/data-quick
else
    MODEL_SIZE=2G FILES=50000 DATA=$OUT/data
fi
RATE=${BENCH_RATE:-40e6}
JOBS=${BENCH_JOBS:-4}
COLD=${BENCH_COLD:-0}
log() { printf '%s [check] %s\n' "$(date +%T)" "$*" >&2; }

[[ -x $FSPACK ]] || FSPACK=$ROOT/target/debug/fspack
log "building the checker (release)"
cargo build -q --release -p fspack-image --example check_image --manifest-path "$ROOT/Cargo.toml"
CHECK=$ROOT/target/release/examples/check_image

python3 "$BENCH/gen_data.py" --out "$DATA" --model-size "$MODEL_SIZE" --files "$FILES" >&2
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

drop_caches() {
    if ((COLD)) && [[ $(id -u) == 0 ]]; then
        sync
        echo 3 >/proc/sys/vm/drop_caches
    fi
}

# row NAME IMAGE [DEVICE...]: median of $runs timed walks.
rows=()
row() {
    local name=$1 image=$2 bytes times=() line s
    shift 2
    bytes=$(du -cb "$image" "$@" | tail -1 | cut -f1)
    for ((i = 0; i < runs; i++)); do
        drop_caches
        line=$("$CHECK" "$image" "$@")
        times+=("$(jq -r .seconds <<<"$line")")
    done
    s=$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(((runs + 1) / 2))p")
    rows+=("$(jq -r --arg name "$name" --argjson s "$s" --argjson bytes "$bytes" \
        --argjson rate "$RATE" --argjson jobs "$JOBS" \
        '"| \($name) | \($bytes / 1048576 | floor) MiB | \(.inodes) | \($s * 1e6 | round / 1000) ms | \($bytes / ($rate * $jobs) * 10 | round / 10) s | \($s / ($bytes / ($rate * $jobs)) * 1000 | round / 10) % |"' \
        <<<"$line")")
}

for part in model tree; do
    src=$DATA/$part
    log "building $part images"
    "$FSPACK" build "$src" -o "$WORK/$part-chunked.erofs" --layout chunked --json >"$WORK/$part.json"
    mapfile -t blobs < <(jq -r '.blobs[]' "$WORK/$part.json")
    "$FSPACK" build "$src" -o "$WORK/$part.erofs" -q
    "$FSPACK" build "$src" -o "$WORK/$part.sqfs" --format squashfs -q
    row "$part, chunked EROFS (as pushed)" "$WORK/$part-chunked.erofs" "${blobs[@]}"
    row "$part, single EROFS" "$WORK/$part.erofs"
    row "$part, SquashFS zstd" "$WORK/$part.sqfs"
    rm -rf "${WORK:?}/$part"*
done

{
    echo "Metadata walk before mount ($(date -u +%F), $runs runs, median, $( ((COLD)) && echo cold || echo warm) cache;"
    echo "download = bytes at $JOBS x $RATE B/s)"
    echo
    echo "| image | bytes | inodes | walk | download | walk / download |"
    echo "|---|---:|---:|---:|---:|---:|"
    printf '%s\n' "${rows[@]}"
} | tee "$OUT/check-$(date -u +%F).md"
