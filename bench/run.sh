#!/usr/bin/env bash
# fspack's benchmark suite: every tool side by side in one run, on the same deterministic data.
# Every row of the run goes into one results file, bench/out/results-<date>.json, and the
# Markdown tables rendered from it (printed, and saved as bench/out/results-<date>.md). The
# README tables are generated from such a file: bench/tables.py publish FILE (bench/README.md).
#
#   bench/run.sh [--quick] [--runs N] [--only SECTIONS] [--fspack PATH]
#
#   --quick        small data (256 MiB model, 10k files, 128 MiB remote model) and 3 runs
#   --runs N       runs per row (default 5, 3 with --quick); a row whose first run takes longer
#                  than BENCH_LONG_S seconds (default 5) stops after 3 runs, and one over
#                  BENCH_VERY_LONG_S (default 10: the slowest peers and the capped rows) after
#                  2, which keeps the whole run under 30 minutes (issue 14; a quiet run took
#                  1669 s with 15) and still gives a median with a range
#   --only LIST    comma-separated sections (bench/sections/NAME.sh; default: all of them):
#                  build,squashfs,push,remote,pull,cold, then any others by name
#   --fspack PATH  the binary to measure (default: target/release/fspack, or $FSPACK)
#
# Environment knobs: BENCH_MODEL_SIZE, BENCH_FILES, BENCH_REMOTE_SIZE, BENCH_RATE (bytes/s per
# connection in the remote profile, default 40e6), BENCH_JOBS (default 4), BENCH_SQFS_LEVEL
# (zstd level, default 3), BENCH_SQFS_BLOCK (default 128K), BENCH_MKFS_EROFS (the upstream
# mkfs.erofs, default ../shared/tools/erofs-utils-1.9.3/bin/mkfs.erofs), BENCH_OUT (bench/out).
#
# A row whose tool is missing, or whose fspack command is not implemented yet, says
# "n/a (reason)"; a row whose result fails verification says "FAILED (reason)". Nothing else
# stops the run. Every server started here is stopped, and everything mounted is unmounted, on
# exit (also on failure or Ctrl-C). Needs root for mounts, loop devices and cold-cache rows.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
bench_parse_args "$@"
START=$(date +%s)
STAMP=$(date '+%Y%m%d-%H%M')
bench_work
ensure_tools
bench_data
meta sections "$sections"
section_times=()
for s in ${sections//,/ }; do
    log "section $s"
    t_section=$(date +%s)
    # shellcheck source=/dev/null
    source "$BENCH/sections/$s.sh"
    section_times+=("$s $(($(date +%s) - t_section)) s")
done
joined=$(IFS=,; echo "${section_times[*]}")
meta section_times "${joined//,/, }"
meta load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
meta duration_s "$(($(date +%s) - START))"

RESULT_FILE=$OUT/results-$STAMP.json
python3 "$BENCH/tables.py" collect "$RESULTS" "$RESULT_FILE"
python3 "$BENCH/tables.py" render "$RESULT_FILE" | tee "${RESULT_FILE%.json}.md"
log "saved $RESULT_FILE (and .md); publish with: bench/tables.py publish $RESULT_FILE"
