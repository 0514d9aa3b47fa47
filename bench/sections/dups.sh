# shellcheck shell=bash
# Variables set here are read by bench/lib.sh (SECTION, ROW_*, SKIP_* by name).
# shellcheck disable=SC2034
# Section "dups" (issue 11): image sizes on a duplicate-heavy tree, 20,000 files of 0-64 KiB
# drawn from 900 distinct contents (half text-like, half random; seeded), built by fspack
# (SquashFS, EROFS single and chunked) and by mksquashfs (which stores each content once) with
# the same compressor, level, block size and -all-root. Size is what matters here; the rows are
# timed too, 3 runs each. Tree made once under $DATA (BENCH_DUP_FILES, BENCH_DUP_DISTINCT).
SECTION="Duplicate-heavy tree (sizes; 3 runs per row)"
DUP_FILES=${BENCH_DUP_FILES:-20000} DUP_DISTINCT=${BENCH_DUP_DISTINCT:-900}
((${quick:-0})) && DUP_FILES=${BENCH_DUP_FILES:-5000}
DUPS=$DATA/dups-$DUP_FILES-$DUP_DISTINCT
if [[ ! -f $DUPS.done ]]; then
    log "making the duplicate-heavy tree $DUPS (once)"
    rm -rf "$DUPS"
    python3 - "$DUPS" "$DUP_FILES" "$DUP_DISTINCT" <<'EOF'
import os, random, sys
root, files, distinct = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(11)
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
    touch "$DUPS.done"
fi
DUPS_BYTES=$(data_bytes "$DUPS")
DUPS_LABEL="$DUP_FILES files, $DUP_DISTINCT distinct, $(human "$DUPS_BYTES")"
export DUPS
run_dups_fspack_sqfs() {
    "$FSPACK" build "$DUPS" -o "$B/img" --format squashfs --compression zstd --level "$SQFS_LEVEL" \
        --block-size "$SQFS_BLOCK" --all-root -q
}
run_dups_mksquashfs() {
    mksquashfs "$DUPS" "$B/img" -comp zstd -Xcompression-level "$SQFS_LEVEL" -b "$SQFS_BLOCK" -all-root \
        -processors 2 -noappend -no-progress >/dev/null && sync "$B/img"
}
run_dups_erofs() { "$FSPACK" build "$DUPS" -o "$B/img" --all-root -q; }
run_dups_erofs_chunked() { "$FSPACK" build "$DUPS" -o "$B/img" --layout chunked --all-root -q; }
export -f run_dups_fspack_sqfs run_dups_mksquashfs run_dups_erofs run_dups_erofs_chunked
dups_size() { ROW_SIZE=$(size_of "$B"); ROW_NOTE="$(awk -v a="$ROW_SIZE" -v b="$DUPS_BYTES" 'BEGIN { printf "%.3f of the raw bytes", a / b }')"; }
check_dups_sqfs() { sqfs_magic "$B/img" || { echo "no SquashFS image"; return 1; }; dups_size; }
check_dups_erofs() { erofs_magic "$B/img" || { echo "no EROFS image"; return 1; }; dups_size; }
warm "$DUPS"
dups_runs=$RUNS
RUNS=$((RUNS < 3 ? RUNS : 3))
measure dups.fspack-sqfs "fspack build --format squashfs (zstd $SQFS_LEVEL, $SQFS_BLOCK, fsynced)" "$DUPS_LABEL" fspack prep_build run_dups_fspack_sqfs check_dups_sqfs
measure dups.mksquashfs "mksquashfs $MKSQUASHFS_VERSION + fsync" "$DUPS_LABEL" cmd:mksquashfs prep_build run_dups_mksquashfs check_dups_sqfs \
    "stores each content once"
measure dups.erofs "fspack build (EROFS single, uncompressed)" "$DUPS_LABEL" fspack prep_build run_dups_erofs check_dups_erofs
measure dups.erofs-chunked "fspack build --layout chunked (metadata + blobs)" "$DUPS_LABEL" fspack prep_build run_dups_erofs_chunked check_dups_erofs
RUNS=$dups_runs
rm -rf "$B"

target size "duplicate-heavy tree: fspack SquashFS size vs mksquashfs (#11)" dups.fspack-sqfs dups.mksquashfs 2
summary "SquashFS of a duplicate-heavy tree ($DUPS_LABEL): size" dups.fspack-sqfs dups.mksquashfs
