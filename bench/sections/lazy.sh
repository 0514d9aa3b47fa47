# shellcheck shell=bash
# Variables set here are read by bench/lib.sh (SECTION, ROW_*, SKIP_* by name).
# shellcheck disable=SC2034
# Section "lazy" (issue 10): `fspack mount --lazy` against an eager `fspack pull --mount` of the
# same artifact, into a fresh store each run: time until config.json is read, on loopback for
# models of growing size (the lazy figure should stay flat) and through the per-connection cap;
# the whole model read through a cold lazy mount against eager pull + the same read; and the
# peak RSS of the lazy server (sampled from /proc while it runs: it outlives the command).
SECTION="Lazy mounts (fresh store each run; the eager rows are fspack pull --mount)"
SKIP_LAZY=$(unmet "root fspack cmd:docker-registry")
[[ -z $SKIP_LAZY && ! -e /dev/fuse ]] && SKIP_LAZY="no /dev/fuse"
if ((${quick:-0})); then
    LAZY_SIZES=${BENCH_LAZY_SIZES:-128M 256M}
else
    LAZY_SIZES=${BENCH_LAZY_SIZES:-512M 2G 8G}
fi
# The size the whole-model rows read on loopback (the section's second size), and the capped size.
read -r -a _lz <<<"$LAZY_SIZES"
LAZY_FULL=${_lz[1]:-${_lz[0]}}
LAZY_CAPPED=${_lz[0]}
LMNT=$WORK/lazy-mnt LSTORE=$WORK/lazy-store
export LMNT LSTORE
lazy_prep() {
    if mountpoint -q "$LMNT"; then "$FSPACK" --store "$LSTORE" umount "$LMNT" || umount -l "$LMNT"; fi
    rm -rf "$LSTORE"
    mkdir -p "$LSTORE"
    sync
    echo 3 >/proc/sys/vm/drop_caches
}
# The server's pid, from `fspack ls --json`.
lazy_server_pid() { "$FSPACK" --store "$LSTORE" ls --json | python3 -c 'import json, sys
for m in json.load(sys.stdin):
    print((m.get("lazy_status") or {}).get("pid", ""))' | head -1; }
run_lazy_first() {
    "$FSPACK" --store "$LSTORE" mount "$LREF" "$LMNT" --lazy --jobs "$JOBS" >/dev/null
    cat "$LMNT/config.json" >/dev/null
}
run_eager_first() {
    "$FSPACK" --store "$LSTORE" pull "$LREF" --mount "$LMNT" --jobs "$JOBS" >/dev/null
    cat "$LMNT/config.json" >/dev/null
}
run_lazy_first16() {
    run_lazy_first
    dd if="$LMNT/$LSHARD" of=/dev/null bs=1M count=16 status=none
}
run_eager_first16() {
    run_eager_first
    dd if="$LMNT/$LSHARD" of=/dev/null bs=1M count=16 status=none
}
# The whole model through a cold lazy mount; samples the server's peak RSS (VmHWM) meanwhile.
run_lazy_full() {
    "$FSPACK" --store "$LSTORE" mount "$LREF" "$LMNT" --lazy --jobs "$JOBS" >/dev/null
    local pid
    pid=$(lazy_server_pid)
    (
        peak=0
        while [[ -n $pid && -r /proc/$pid/status ]]; do
            hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
            ((${hwm:-0} > peak)) && peak=$hwm && echo "$peak" >"$WORK/lazy-server-rss"
            sleep 0.05
        done
    ) &
    find "$LMNT" -type f -exec cat {} + >/dev/null
}
run_eager_full() {
    "$FSPACK" --store "$LSTORE" pull "$LREF" --mount "$LMNT" --jobs "$JOBS" >/dev/null
    find "$LMNT" -type f -exec cat {} + >/dev/null
}
lazy_check() {
    local rc=0
    cmp -s "$LMNT/config.json" "$LSRC/config.json" || { echo "config.json differs from the source"; rc=1; }
    ROW_BYTES=$(data_bytes "$LSRC")
    "$FSPACK" --store "$LSTORE" umount "$LMNT" || { echo "fspack umount failed"; umount -l "$LMNT"; rc=1; }
    return "$rc"
}
lazy_check_full() {
    local rc=0
    check_mounted_tree "$LMNT" "$LSRC" || rc=1
    lazy_check || rc=1
    return "$rc"
}
export -f lazy_server_pid run_lazy_first run_eager_first run_lazy_first16 run_eager_first16 run_lazy_full run_eager_full
# lazy_push SIZE HOSTPORT: the model of SIZE, pushed once (untimed); sets LSRC, LREF, LSHARD.
lazy_push() {
    local size=$1 hostport=$2
    python3 "$BENCH/gen_data.py" --out "$DATA/lazy-$size" --model-size "$size" --only model >&2
    LSRC=$DATA/lazy-$size/model LREF=$hostport/bench/lazy:$size
    LSHARD=$(find "$LSRC" -maxdepth 1 -name "*.safetensors" -printf "%s %f\n" | sort -rn | awk "NR == 1 { print \$2 }")
    export LSRC LREF LSHARD
    local rc=0
    "$FSPACK" --store "$WORK/lazy-push-store" push "$LSRC" "$LREF" --jobs "$JOBS" >"$WORK/lsetup.log" 2>&1 || rc=$?
    # The registry holds the blobs now; the push store would hold every size's image at once.
    rm -rf "$WORK/lazy-push-store"
    return "$rc"
}
if [[ -z $SKIP_LAZY ]]; then
    registry_start lazy
    LAZY_PORT=$REG_PORT
    for size in $LAZY_SIZES; do
        SKIP_LSIZE=
        lazy_push "$size" "127.0.0.1:$LAZY_PORT" || SKIP_LSIZE="setup: $(why "$WORK/lsetup.log")"
        label="model $(human "$(data_bytes "$LSRC")")"
        measure "lazy.first.$size" "fspack mount --lazy + read config.json" "$label" "skip:SKIP_LSIZE" \
            lazy_prep run_lazy_first lazy_check
        if [[ $size != "${_lz[2]:-}" ]]; then
            measure "lazy.first.eager.$size" "eager: fspack pull --mount + read config.json" "$label" "skip:SKIP_LSIZE" \
                lazy_prep run_eager_first lazy_check
        fi
        target time "lazy mount + first read of config.json ≤ 0.5 s on loopback, flat as the model grows: $label (#10)" \
            "lazy.first.$size" "<=" 0.5
        if [[ $size == "$LAZY_FULL" ]]; then
            measure "lazy.full.$size" "fspack mount --lazy + read every file" "$label" "skip:SKIP_LSIZE" \
                lazy_prep run_lazy_full lazy_check_full "server peak RSS in the next row"
            if [[ -s $WORK/lazy-server-rss ]]; then
                jrec row key="lazy.server_rss" section="$SECTION" label="lazy server peak RSS (VmHWM while reading every file)" \
                    data="$label" status=ok wall_ms=0 cpu_ms=0 rss_kib="$(cat "$WORK/lazy-server-rss")" size='' bytes='' sent_pct='' \
                    note="sampled every 50 ms from /proc"
                target rss "lazy server RSS < 128 MiB (#10)" lazy.server_rss 128
            fi
            measure "lazy.full.eager.$size" "eager: fspack pull --mount + read every file" "$label" "skip:SKIP_LSIZE" \
                lazy_prep run_eager_full lazy_check_full
            target ratio "whole model through a cold lazy mount ≤ 1.3× eager pull + the same read, loopback (#10)" \
                "lazy.full.$size" "lazy.full.eager.$size" "<=" 1.3
            summary "lazy mount + read every file ($label, loopback)" "lazy.full.$size" "lazy.full.eager.$size"
        fi
    done

    # Capped profile: every TCP connection at $RATE bytes/s through bench/rate-proxy.py.
    proxy_start lazy "$LAZY_PORT" "$RATE"
    SKIP_LCAP=
    lazy_push "$LAZY_CAPPED" "127.0.0.1:$PROXY_PORT" || SKIP_LCAP="setup: $(why "$WORK/lsetup.log")"
    label="model $(human "$(data_bytes "$LSRC")"), capped at $(awk -v r="$RATE" 'BEGIN { printf "%g", r / 1e6 }') MB/s per connection"
    measure "lazy.capped.first16" "fspack mount --lazy + config.json + first 16 MiB of a shard" "$label" "skip:SKIP_LCAP" \
        lazy_prep run_lazy_first16 lazy_check
    measure "lazy.capped.first16.eager" "eager: fspack pull --mount + the same reads" "$label" "skip:SKIP_LCAP" \
        lazy_prep run_eager_first16 lazy_check
    target time "capped: mount + config.json + first 16 MiB of a shard ≤ 1.5 s (#10)" \
        lazy.capped.first16 "<=" 1.5
    measure "lazy.capped.full" "fspack mount --lazy + read every file" "$label" "skip:SKIP_LCAP" \
        lazy_prep run_lazy_full lazy_check_full
    measure "lazy.capped.full.eager" "eager: fspack pull --mount + read every file" "$label" "skip:SKIP_LCAP" \
        lazy_prep run_eager_full lazy_check_full
    target ratio "capped: whole model through a cold lazy mount ≤ 1.3× eager + the same read (#10)" \
        lazy.capped.full lazy.capped.full.eager "<=" 1.3
    summary "lazy mount + config.json + 16 MiB (capped)" lazy.capped.first16 lazy.capped.first16.eager
    lazy_prep
    registry_stop lazy
else
    record lazy.first "fspack mount --lazy" "-" "n/a ($SKIP_LAZY)"
fi
