#!/usr/bin/env bash
# fspack's benchmark suite: every tool side by side in one run, on the same deterministic data,
# printing a Markdown table (also saved to bench/out/results-<date>.md). See bench/README.md for
# what each row measures and the targets from the issues.
#
#   bench/run.sh [--quick] [--runs N] [--only SECTIONS] [--fspack PATH]
#
#   --quick        small data (256 MiB model, 10k files, 128 MiB remote model) and 3 runs
#   --runs N       runs per row (default 5, 3 with --quick)
#   --only LIST    comma-separated sections: build,squashfs,push,remote,pull,cold (default: all)
#   --fspack PATH  the binary to measure (default: target/release/fspack, or $FSPACK)
#
# Environment knobs: BENCH_MODEL_SIZE, BENCH_FILES, BENCH_REMOTE_SIZE, BENCH_RATE (bytes/s per
# connection in the remote profile, default 40e6), BENCH_JOBS (default 4), BENCH_SQFS_LEVEL
# (zstd level, default 3), BENCH_SQFS_BLOCK (default 128K).
#
# A row whose tool is missing, or whose fspack command is not implemented yet, prints
# "n/a (reason)"; a row whose result fails verification prints "FAILED (reason)". Nothing else
# stops the run. Every server started here is stopped, and everything mounted is unmounted, on
# exit (also on failure or Ctrl-C). Needs root for mounts, loop devices and cold-cache rows.

# SKIP_* variables are read indirectly, by name, in unmet().
# shellcheck disable=SC2034
set -euo pipefail

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
OUT=$BENCH/out

quick=0
runs=
sections=build,squashfs,push,remote,pull,cold
FSPACK=${FSPACK:-$ROOT/target/release/fspack}
while (($#)); do
    case $1 in
    --quick) quick=1 ;;
    --runs) runs=${2:?--runs needs a number}; shift ;;
    --only) sections=${2:?--only needs a list}; shift ;;
    --fspack) FSPACK=${2:?--fspack needs a path}; shift ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if ((quick)); then
    MODEL_SIZE=${BENCH_MODEL_SIZE:-256M} FILES=${BENCH_FILES:-10000}
    REMOTE_SIZE=${BENCH_REMOTE_SIZE:-128M} RUNS=${runs:-3} DATA=$OUT/data-quick
else
    MODEL_SIZE=${BENCH_MODEL_SIZE:-2G} FILES=${BENCH_FILES:-50000}
    REMOTE_SIZE=${BENCH_REMOTE_SIZE:-512M} RUNS=${runs:-5} DATA=$OUT/data
fi
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --runs must be a positive number" >&2; exit 2; }
RATE=${BENCH_RATE:-40e6}
JOBS=${BENCH_JOBS:-4}
SQFS_LEVEL=${BENCH_SQFS_LEVEL:-3}
SQFS_BLOCK=${BENCH_SQFS_BLOCK:-128K}
FSPACK=$(realpath -m "$FSPACK")
VENV=$OUT/venv
PY=$VENV/bin/python
TIME=/usr/bin/time
export FSPACK PY BENCH RUNS JOBS

has_section() { [[ ,$sections, == *,$1,* ]]; }
log() { printf '%s [bench] %s\n' "$(date +%T)" "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Tools. Installs what is missing when root (idempotent); rows that still lack a tool say so.
# ---------------------------------------------------------------------------------------------
ensure_tools() {
    local -A pkg_of=([/usr/bin/time]=time [mkfs.erofs]=erofs-utils [mksquashfs]=squashfs-tools
        [docker-registry]=docker-registry [curl]=curl [losetup]=mount)
    local missing=() t
    for t in "${!pkg_of[@]}"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("${pkg_of[$t]}")
    done
    if ((${#missing[@]})) && [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${missing[@]}" >/dev/null 2>&1 || log "apt-get install failed; those rows will say n/a"
    fi
    # The Debian package may start a registry service of its own; ours are separate processes.
    if [[ ! -x $PY ]] || ! "$PY" -c 'import oras.client' 2>/dev/null; then
        log "installing oras (PyPI) into $VENV"
        { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q oras; } >/dev/null 2>&1 ||
            log "could not install oras; the oras rows will say n/a"
    fi
}

# ---------------------------------------------------------------------------------------------
# Work area, servers, cleanup.
# ---------------------------------------------------------------------------------------------
mkdir -p "$OUT"
WORK=$(mktemp -d "$OUT/work.XXXXXX")
export WORK
PIDS=()
declare -A REG_PID=()
cleanup() {
    local rc=$? m l p
    set +e
    # Unmount everything under WORK, deepest first, then detach loop devices backed by its files.
    while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m"
    done < <(awk -v w="$WORK" 'index($2, w) == 1 { print $2 }' /proc/self/mounts | sort -r)
    for l in $(losetup -l -n -O NAME,BACK-FILE 2>/dev/null | awk -v w="$WORK" 'index($2, w) == 1 { print $1 }'); do
        losetup -d "$l"
    done
    # Only our own children: proxies and the registries still running (stopped ones are reaped).
    for p in "${PIDS[@]}" "${REG_PID[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}" "${REG_PID[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# registry_start NAME: a CNCF distribution registry (Debian docker-registry) on 127.0.0.1 with
# storage in WORK/reg-NAME; sets REG_PORT and REG_DIR. Restarting keeps the port.
registry_start() {
    local name=$1 port=${2:-}
    REG_DIR=$WORK/reg-$name
    [[ -n $port ]] || port=$(free_port)
    mkdir -p "$REG_DIR/storage"
    cat >"$REG_DIR/config.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $REG_DIR/storage }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$port }
YML
    docker-registry serve "$REG_DIR/config.yml" >>"$REG_DIR/registry.log" 2>&1 &
    REG_PID[$name]=$!
    REG_PORT=$port
    local _
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && return 0
        sleep 0.1
    done
    log "registry $name did not start:"; cat "$REG_DIR/registry.log" >&2
    return 1
}
registry_stop() {
    local name=$1 pid=${REG_PID[$1]:-}
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "REG_PID[$name]"
}
# registry_reset NAME PORT: stop, empty the storage, start on the same port.
registry_reset() {
    registry_stop "$1"
    rm -rf "$WORK/reg-$1/storage"
    registry_start "$1" "$2"
}
storage_bytes() { du -sb "$WORK/reg-$1/storage" 2>/dev/null | cut -f1; }

# proxy_start NAME TARGET_PORT RATE: the rate-capping, byte-counting proxy; sets PROXY_PORT.
proxy_start() {
    local name=$1 dir=$WORK/proxy-$1 _
    mkdir -p "$dir"
    rm -f "$dir/port"
    python3 "$BENCH/rate-proxy.py" --target "127.0.0.1:$2" --rate "$3" \
        --port-file "$dir/port" --stats "$dir/stats.json" 2>"$dir/proxy.log" &
    PIDS+=("$!")
    for _ in $(seq 1 100); do
        [[ -s $dir/port ]] && { PROXY_PORT=$(cat "$dir/port"); return 0; }
        sleep 0.05
    done
    log "proxy $name did not start:"; cat "$dir/proxy.log" >&2
    return 1
}
# proxy_up NAME: bytes sent client to server so far, once every connection has closed.
proxy_up() {
    local f=$WORK/proxy-$1/stats.json _
    for _ in $(seq 1 50); do
        python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1]))["active"] != 0)' "$f" 2>/dev/null && break
        sleep 0.1
    done
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes_up"])' "$f"
}

# ---------------------------------------------------------------------------------------------
# Registry checks: did the registry really receive what a client claims to have pushed?
# ---------------------------------------------------------------------------------------------
# manifest_layers REF: prints "digest size" per layer (and the config) of a pushed manifest.
manifest_layers() {
    local ref=$1 hostport=${1%%/*} rest=${1#*/} repo tag
    repo=${rest%:*} tag=${rest##*:}
    curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json' \
        "http://$hostport/v2/$repo/manifests/$tag" |
        python3 -c 'import json,sys
m = json.load(sys.stdin)
for d in m.get("layers", []) + [m["config"]]:
    print(d["digest"], d["size"])'
}
# check_pushed REF MIN_BYTES: the manifest resolves, every blob it names is there with its size,
# and the layers add up to at least MIN_BYTES. Sets ROW_BYTES to the layers' total.
check_pushed() {
    local ref=$1 min=$2 hostport=${1%%/*} rest=${1#*/} repo digest size total=0 got
    repo=${rest%:*}
    local layers
    layers=$(manifest_layers "$ref") || { echo "no manifest at $ref"; return 1; }
    while read -r digest size; do
        got=$(curl -fsS -I "http://$hostport/v2/$repo/blobs/$digest" | tr -d '\r' |
            awk 'tolower($1) == "content-length:" { print $2 }') || { echo "blob $digest missing"; return 1; }
        [[ $got == "$size" ]] || { echo "blob $digest has $got bytes, manifest says $size"; return 1; }
        total=$((total + size))
    done <<<"$layers"
    ((total >= min)) || { echo "layers hold $total bytes, expected at least $min"; return 1; }
    ROW_BYTES=$total
}
# blob_urls REF: the blob URLs of a manifest's layers (for the curl limit rows).
blob_urls() {
    local hostport=${1%%/*} rest=${1#*/} repo
    repo=${rest%:*}
    manifest_layers "$1" | head -n -1 | awk -v b="http://$hostport/v2/$repo/blobs/" '{ print b $1 }'
}

# ---------------------------------------------------------------------------------------------
# Trees: counts for verification, page cache warming, cache dropping.
# ---------------------------------------------------------------------------------------------
# tree_sig DIR: "entries files bytes" (dirs, files, symlinks; regular files; their bytes).
tree_sig() {
    local entries files_bytes
    entries=$(find "$1" -mindepth 1 | wc -l)
    files_bytes=$(find "$1" -type f -printf '%s\n' | awk '{ n++; s += $1 } END { printf "%d %d", n, s }')
    echo "$entries $files_bytes"
}
data_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }'; }
warm() { find "$1" -type f -exec cat {} + >/dev/null; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
is_root() { [[ $(id -u) == 0 ]]; }
erofs_magic() { [[ $(od -An -tx1 -j1024 -N4 "$1" | tr -d ' \n') == e2e1f5e0 ]]; }
sqfs_magic() { [[ $(head -c4 "$1") == hsqs ]]; }
# check_mounted_tree DIR SRC: the mounted tree has the source's entries, files and bytes.
check_mounted_tree() {
    local got want
    mountpoint -q "$1" || { echo "$1 is not a mount point"; return 1; }
    got=$(tree_sig "$1") want=$(tree_sig "$2")
    [[ $got == "$want" ]] || { echo "mounted tree has (entries files bytes) $got, source $want"; return 1; }
}
umount_quiet() { mountpoint -q "$1" && umount "$1"; return 0; }

# ---------------------------------------------------------------------------------------------
# Measuring. measure KEY LABEL DATA REQS PREP RUN CHECK [NOTE]
#   REQS: space-separated needs: root, oras, cmd:NAME, skip:VAR (unmet when $VAR is non-empty:
#         its value is the reason); PREP and CHECK run here, untimed; RUN is an exported
#         function, timed in its own bash under /usr/bin/time. CHECK may set ROW_BYTES (for
#         MB/s), ROW_SIZE (Size column) and ROW_NOTE. The peak RSS is the largest of any
#         process in RUN's tree (wait4 rusage).
# ---------------------------------------------------------------------------------------------
RESULTS=$WORK/results.tsv
: >"$RESULTS"
unmet() {
    local r
    for r in $1; do
        case $r in
        root) is_root || { echo "needs root"; return; } ;;
        oras) "$PY" -c 'import oras.client' 2>/dev/null || { echo "oras (PyPI) not installed"; return; } ;;
        fspack) [[ -x $FSPACK ]] || { echo "no fspack binary at $FSPACK"; return; } ;;
        cmd:*) command -v "${r#cmd:}" >/dev/null 2>&1 || { echo "${r#cmd:} not installed"; return; } ;;
        skip:*) local v=${r#skip:}; [[ -z ${!v:-} ]] || { echo "${!v}"; return; } ;;
        esac
    done
}
# why FILE: a one-line reason from a failed command's stderr.
why() {
    local line
    if grep -qi 'not implemented' "$1"; then echo "n/a (not implemented yet in this fspack build)"; return; fi
    if grep -qiE "unrecognized subcommand|unexpected argument|invalid value" "$1"; then
        line=$(grep -iE "unrecognized subcommand|unexpected argument|invalid value" "$1" | head -1)
        echo "n/a (this fspack build lacks it: ${line#error: })"; return
    fi
    line=$(grep -v '^\s*$' "$1" | grep -iv '^command exited' | tail -1)
    echo "FAILED (${line:0:160})"
}
record() { # record KEY SECTION LABEL DATA MEDIAN MIN MAX RSS SIZE MBPS NOTE
    local IFS=$'\t'
    echo "$*" >>"$RESULTS"
}
SECTION=
measure() {
    local key=$1 label=$2 data=$3 reqs=$4 prep=$5 run=$6 check=$7 note=${8:-}
    local reason i t0 t1 rss maxrss=0 times=() bytes sizes=()
    reason=$(unmet "$reqs")
    if [[ -n $reason ]]; then
        log "$label [$data]: n/a ($reason)"
        record "$key" "$SECTION" "$label" "$data" "n/a ($reason)" - - - - - "$note"
        return 0
    fi
    ROW_BYTES='' ROW_SIZE='' ROW_NOTE=''
    for ((i = 1; i <= RUNS; i++)); do
        RUN_INDEX=$i
        if ! $prep >"$WORK/prep.log" 2>&1; then
            record "$key" "$SECTION" "$label" "$data" "$(why "$WORK/prep.log") [setup]" - - - - - "$note"
            log "$label [$data]: setup failed"; cat "$WORK/prep.log" >&2
            return 0
        fi
        t0=$(date +%s%N)
        if ! "$TIME" -f %M -o "$WORK/time.out" bash -c "set -euo pipefail; $run" \
            >"$WORK/run.out" 2>"$WORK/run.err"; then
            reason=$(why "$WORK/run.err")
            log "$label [$data]: $reason"; tail -5 "$WORK/run.err" >&2
            record "$key" "$SECTION" "$label" "$data" "$reason" - - - - - "$note"
            $check >/dev/null 2>&1 || true # lets the check undo mounts
            return 0
        fi
        t1=$(date +%s%N)
        rss=$(grep -E '^[0-9]+$' "$WORK/time.out" | tail -1)
        if ! $check >"$WORK/check.log" 2>&1; then
            reason="FAILED (check: $(tail -1 "$WORK/check.log"))"
            log "$label [$data]: $reason"
            record "$key" "$SECTION" "$label" "$data" "$reason" - - - - - "$note"
            return 0
        fi
        times+=("$(((t1 - t0) / 1000000))")
        ((rss > maxrss)) && maxrss=$rss
        [[ -n $ROW_SIZE ]] && sizes+=("$ROW_SIZE")
        log "$label [$data] run $i/$RUNS: $(awk -v ms="${times[-1]}" 'BEGIN { printf "%.2f s", ms / 1000 }'), ${rss} KiB"
    done
    local stats
    stats=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ v[NR] = $1 } END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f\t%.2f\t%.2f", m / 1000, v[1] / 1000, v[NR] / 1000 }')
    local median=${stats%%$'\t'*} mbps=- last_size=-
    ((${#sizes[@]})) && last_size=${sizes[-1]}
    bytes=${ROW_BYTES:-}
    [[ -n $bytes ]] && mbps=$(awk -v b="$bytes" -v s="$median" 'BEGIN { if (s > 0) printf "%.0f", b / s / 1e6; else print "-" }')
    [[ -n $ROW_NOTE ]] && note="${note:+$note; }$ROW_NOTE"
    record "$key" "$SECTION" "$label" "$data" "$stats" "$(awk -v k="$maxrss" 'BEGIN { printf "%.0f", k / 1024 }')" \
        "$last_size" "$mbps" "$note"
}
# Records are "key section label data median min max rss size mbps note"; n/a rows carry the
# reason in the median field. human SIZE_BYTES prints MiB/GiB.
human() { awk -v b="$1" 'BEGIN { if (b >= 2^30) printf "%.2f GiB", b / 2^30; else if (b >= 2^20) printf "%.1f MiB", b / 2^20; else printf "%.0f KiB", b / 1024 }'; }
size_of() { du -sb "$@" | awk '{ s += $1 } END { printf "%d", s }'; }

# =============================================================================================
# Data.
# =============================================================================================
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ensure_tools
log "data: model $MODEL_SIZE, tree $FILES files, remote model $REMOTE_SIZE in $DATA"
python3 "$BENCH/gen_data.py" --out "$DATA" --model-size "$MODEL_SIZE" --files "$FILES"
python3 "$BENCH/gen_data.py" --out "$DATA/remote" --model-size "$REMOTE_SIZE" --only model
MODEL=$DATA/model TREE=$DATA/tree RMODEL=$DATA/remote/model
export MODEL TREE RMODEL
MODEL_BYTES=$(data_bytes "$MODEL") TREE_BYTES=$(data_bytes "$TREE") RMODEL_BYTES=$(data_bytes "$RMODEL")
MODEL_LABEL="model $(human "$MODEL_BYTES")"
TREE_LABEL="tree $(find "$TREE" -type f | wc -l) files, $(human "$TREE_BYTES")"
RMODEL_LABEL="model $(human "$RMODEL_BYTES")"
FSPACK_VERSION=$("$FSPACK" --version 2>/dev/null || echo "none")

# =============================================================================================
# Build: fspack build vs mkfs.erofs (uncompressed), and SquashFS vs mksquashfs.
# =============================================================================================
B=$WORK/build
export B
prep_build() { rm -rf "$B"; mkdir -p "$B"; sync; }
run_fspack_single() { "$FSPACK" build "$SRC" -o "$B/img"; }
run_fspack_chunked() { "$FSPACK" build "$SRC" -o "$B/img" --layout chunked; }
run_mkfs_erofs() { mkfs.erofs "$B/img" "$SRC" >/dev/null; }
run_fspack_sqfs() {
    "$FSPACK" build "$SRC" -o "$B/img" --format squashfs --compression zstd \
        --level "$SQFS_LEVEL" --block-size "$SQFS_BLOCK"
}
run_mksquashfs() {
    mksquashfs "$SRC" "$B/img" -comp zstd -Xcompression-level "$SQFS_LEVEL" -b "$SQFS_BLOCK" \
        -processors 2 -noappend -no-progress >/dev/null
}
export -f run_fspack_single run_fspack_chunked run_mkfs_erofs run_fspack_sqfs run_mksquashfs
export SQFS_LEVEL SQFS_BLOCK

# Checks: magic bytes every run; on the last run, mount the image and compare the tree.
check_erofs_single() {
    erofs_magic "$B/img" || { echo "no EROFS superblock in output"; return 1; }
    ROW_SIZE=$(size_of "$B/img") ROW_BYTES=$(data_bytes "$SRC")
    if ((RUN_INDEX == RUNS)) && is_root; then
        mkdir -p "$B/mnt"
        mount -t erofs -o ro "$B/img" "$B/mnt" || { echo "image does not mount"; return 1; }
        check_mounted_tree "$B/mnt" "$SRC" || { umount "$B/mnt"; return 1; }
        umount "$B/mnt"
    fi
}
check_erofs_chunked() {
    erofs_magic "$B/img" || { echo "no EROFS superblock in the metadata image"; return 1; }
    ROW_SIZE=$(size_of "$B/img" "$B/img.d") ROW_BYTES=$(data_bytes "$SRC")
    if ((RUN_INDEX == RUNS)) && is_root; then
        # Multi-device: each data blob on a read-only loop device, passed as device=. (mount(8)
        # loops the metadata image itself, and then the kernel wants block devices for the rest.)
        local opts=ro blob loops=() l rc=0
        for blob in "$B"/img.d/*; do
            l=$(losetup -r -f --show "$blob") || { echo "losetup $blob failed"; rc=1; break; }
            loops+=("$l") opts+=",device=$l"
        done
        mkdir -p "$B/mnt"
        if ((rc == 0)) && mount -t erofs -o "$opts" "$B/img" "$B/mnt"; then
            check_mounted_tree "$B/mnt" "$SRC" || rc=1
            umount "$B/mnt"
        else
            echo "the chunked image does not mount"; rc=1
        fi
        for l in "${loops[@]}"; do losetup -d "$l"; done
        return "$rc"
    fi
}
check_sqfs() {
    sqfs_magic "$B/img" || { echo "no SquashFS superblock in output"; return 1; }
    ROW_SIZE=$(size_of "$B/img") ROW_BYTES=$(data_bytes "$SRC")
    if ((RUN_INDEX == RUNS)) && is_root; then
        mkdir -p "$B/mnt"
        mount -t squashfs -o ro,loop "$B/img" "$B/mnt" || { echo "image does not mount"; return 1; }
        check_mounted_tree "$B/mnt" "$SRC" || { umount "$B/mnt"; return 1; }
        umount "$B/mnt"
    fi
}

build_rows() { # build_rows DATA_DIR LABEL KEY
    SRC=$1
    export SRC
    log "warming the page cache with $1"
    warm "$1"
    measure "build.$3.fspack" "fspack build (EROFS single)" "$2" fspack prep_build run_fspack_single check_erofs_single
    measure "build.$3.mkfs" "mkfs.erofs $MKFS_EROFS_VERSION (uncompressed)" "$2" cmd:mkfs.erofs prep_build run_mkfs_erofs check_erofs_single
    measure "build.$3.chunked" "fspack build --layout chunked" "$2" fspack prep_build run_fspack_chunked check_erofs_chunked
}
sqfs_rows() {
    SRC=$1
    export SRC
    warm "$1"
    measure "sqfs.$3.fspack" "fspack build --format squashfs (zstd $SQFS_LEVEL, $SQFS_BLOCK)" "$2" fspack prep_build run_fspack_sqfs check_sqfs
    measure "sqfs.$3.mksquashfs" "mksquashfs $MKSQUASHFS_VERSION -comp zstd -processors 2" "$2" cmd:mksquashfs prep_build run_mksquashfs check_sqfs \
        "level $SQFS_LEVEL, block $SQFS_BLOCK"
}
MKFS_EROFS_VERSION=$(dpkg-query -W -f='${Version}' erofs-utils 2>/dev/null | sed 's/-[^-]*$//' || true)
MKSQUASHFS_VERSION=$(mksquashfs -version 2>/dev/null | awk 'NR == 1 { print $3 }' || true)

if has_section build; then
    SECTION="Build (EROFS, page cache warm)"
    build_rows "$MODEL" "$MODEL_LABEL" model
    build_rows "$TREE" "$TREE_LABEL" tree
fi
if has_section squashfs; then
    SECTION="Build (SquashFS, zstd, page cache warm)"
    sqfs_rows "$MODEL" "$MODEL_LABEL" model
    sqfs_rows "$TREE" "$TREE_LABEL" tree
fi

# =============================================================================================
# Push and pull: shared pieces.
# =============================================================================================
# A single EROFS image of SRC made by mkfs.erofs, cut into 4 parts for the limit rows; digests
# are computed here, untimed. Sets PARTS_DIR (part-N and part-N.digest files).
make_parts() { # make_parts SRC NAME
    PARTS_DIR=$WORK/parts-$2
    rm -rf "$PARTS_DIR"; mkdir -p "$PARTS_DIR"
    mkfs.erofs "$PARTS_DIR/image.erofs" "$1" >/dev/null
    (cd "$PARTS_DIR" && split -n 4 -d -a 1 image.erofs part-)
    local p
    for p in "$PARTS_DIR"/part-?; do
        echo "sha256:$(sha256sum "$p" | cut -c1-64)" >"$p.digest"
    done
    rm "$PARTS_DIR/image.erofs"
    export PARTS_DIR
}
# run_curl_put: 4 parallel monolithic uploads (POST, then PUT with the digest), one per part.
curl_put_one() {
    local part=$1 loc code
    loc=$(curl -fsS -D - -o /dev/null -X POST "http://$HOSTPORT/v2/$REPO/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    [[ $loc == http* ]] || loc="http://$HOSTPORT$loc"
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H 'Expect:' \
        -H 'Content-Type: application/octet-stream' -T "$part" "$loc&digest=$(cat "$part.digest")")
    [[ $code == 201 ]] || { echo "PUT of $part answered $code" >&2; return 1; }
}
run_curl_put() {
    local p pids=() rc=0
    for p in "$PARTS_DIR"/part-?; do curl_put_one "$p" & pids+=("$!"); done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    return "$rc"
}
check_curl_put() {
    local p total=0 size
    for p in "$PARTS_DIR"/part-?; do
        curl -fsS -I -o /dev/null "http://$HOSTPORT/v2/$REPO/blobs/$(cat "$p.digest")" || { echo "blob $p missing"; return 1; }
        size=$(stat -c %s "$p"); total=$((total + size))
    done
    ROW_BYTES=$total
}
# run_curl_get: parallel GETs of every URL in $URLS_FILE into $DL (4 at a time).
run_curl_get() {
    mkdir -p "$DL"
    # shellcheck disable=SC2016 # $1 and $2 belong to the inner sh
    xargs -P 4 -I{} sh -c 'curl -fsS -o "$1/$(basename "$2")" "$2"' _ "$DL" {} <"$URLS_FILE"
}
check_curl_get() {
    local n want
    n=$(find "$DL" -type f | wc -l) want=$(wc -l <"$URLS_FILE")
    [[ $n == "$want" ]] || { echo "got $n of $want blobs"; return 1; }
    ROW_BYTES=$(size_of "$DL")
    [[ -z ${WANT_BYTES:-} || $ROW_BYTES == "$WANT_BYTES" ]] || { echo "got $ROW_BYTES bytes, expected $WANT_BYTES"; return 1; }
}
export -f curl_put_one run_curl_put run_curl_get
# The fspack and oras pipelines.
run_fspack_push() { "$FSPACK" push "$SRC" "$REF" --jobs "$PUSH_JOBS" --json >"$WORK/push.json"; }
run_oras_pipeline() {
    rm -rf "$WORK/oras-img"; mkdir -p "$WORK/oras-img"
    mkfs.erofs "$WORK/oras-img/model.erofs" "$SRC" >/dev/null
    "$PY" "$BENCH/oras_tool.py" push "$REF" "$WORK/oras-img/model.erofs:application/vnd.erofs"
}
export -f run_fspack_push run_oras_pipeline
check_push_ref() { check_pushed "$REF" "$(data_bytes "$SRC")"; }
# json_field FILE: a byte count from fspack's --json summary, whatever its key, if any.
json_sent() {
    python3 - "$1" <<'PY' 2>/dev/null || true
import json, sys
try:
    doc = json.load(open(sys.argv[1]))
except Exception:
    sys.exit(0)
def walk(d, path=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from walk(v, f"{path}.{k}" if path else k)
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        yield path, d
for k, v in walk(doc):
    if "byte" in k.lower() and ("sent" in k.lower() or "upload" in k.lower() or "pushed" in k.lower()):
        print(f"{k}={v}")
PY
}

# =============================================================================================
# Push on loopback.
# =============================================================================================
if has_section push; then
    SECTION="Push on loopback (registry: Debian docker-registry $(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null | sed 's/+.*//'))"
    SKIP_REG=$(unmet "cmd:docker-registry cmd:curl")
    if [[ -z $SKIP_REG ]]; then
        registry_start push
        PUSH_PORT=$REG_PORT
        SRC=$MODEL HOSTPORT=127.0.0.1:$PUSH_PORT REPO=bench/model PUSH_JOBS=$JOBS
        export SRC HOSTPORT REPO PUSH_JOBS
        warm "$MODEL"
        prep_push() { registry_reset push "$PUSH_PORT"; rm -rf "$WORK/oras-img"; sync; REF=$HOSTPORT/$REPO:run$RUN_INDEX; export REF; }
        measure push.fspack "fspack push DIR --jobs $JOBS (build included)" "$MODEL_LABEL" "fspack skip:SKIP_REG" \
            prep_push run_fspack_push check_push_ref
        measure push.oras "mkfs.erofs + oras push (oras-py $("$PY" -c 'import importlib.metadata as m; print(m.version("oras"))' 2>/dev/null))" \
            "$MODEL_LABEL" "cmd:mkfs.erofs oras skip:SKIP_REG" prep_push run_oras_pipeline check_push_ref
        SKIP_PARTS=
        make_parts "$MODEL" model || SKIP_PARTS="mkfs.erofs failed"
        measure push.limit "limit: curl PUT, same image as 4 parallel blobs" "$MODEL_LABEL" "skip:SKIP_REG skip:SKIP_PARTS" \
            prep_push run_curl_put check_curl_put "digests computed beforehand, untimed"

        # Re-push after editing one small file: bytes really sent, counted by an uncapped proxy.
        proxy_start count "$PUSH_PORT" 0
        COUNT_PORT=$PROXY_PORT
        EDIT=$WORK/edit/model
        prep_repush_base() {
            registry_reset push "$PUSH_PORT"
            rm -rf "$WORK/edit"; mkdir -p "$WORK/edit"; cp -al "$MODEL" "$EDIT"
            REF=$HOSTPORT/$REPO:base; export REF; SRC=$EDIT; export SRC
            bash -c "set -euo pipefail; $1" >"$WORK/base.log" 2>&1 || { cat "$WORK/base.log"; return 1; }
        }
        edit_one_file() {
            # Replace (not rewrite in place: the copy shares inodes with the data set) config.json.
            rm "$EDIT/config.json"
            printf '{"edited_by_bench_run": %d, "hidden_size": 4096}\n' "$RUN_INDEX" >"$EDIT/config.json"
            REF=127.0.0.1:$COUNT_PORT/$REPO:edit$RUN_INDEX; export REF
            UP0=$(proxy_up count) ST0=$(storage_bytes push)
            sync
        }
        check_repush() {
            local up st pct
            up=$(($(proxy_up count) - UP0)) st=$(($(storage_bytes push) - ST0))
            check_pushed "$HOSTPORT/$REPO:edit$RUN_INDEX" "$(data_bytes "$EDIT")" || return 1
            pct=$(awk -v a="$up" -v b="$ROW_BYTES" 'BEGIN { printf "%.2f", 100 * a / b }')
            ROW_SIZE="sent $(human "$up") = ${pct}%"
            ROW_NOTE="registry storage grew $(human "$st")"
            [[ ${1:-} == fspack ]] && ROW_NOTE+="$(json_sent "$WORK/push.json" | sed 's/^/; --json /' | tr '\n' ' ')"
            ROW_BYTES=$up
        }
        prep_repush_fspack() {
            if ((RUN_INDEX == 1)); then prep_repush_base "\"$FSPACK\" push \"$EDIT\" \"\$REF\" --jobs $JOBS"; fi
            edit_one_file
        }
        prep_repush_oras() {
            if ((RUN_INDEX == 1)); then prep_repush_base run_oras_pipeline; fi
            edit_one_file
        }
        check_repush_fspack() { check_repush fspack; }
        measure push.repush.fspack "fspack push after editing one small file" "$MODEL_LABEL" "fspack skip:SKIP_REG" \
            prep_repush_fspack run_fspack_push check_repush_fspack "bytes counted by a pass-through proxy"
        measure push.repush.oras "mkfs.erofs + oras push after editing one small file" "$MODEL_LABEL" "cmd:mkfs.erofs oras skip:SKIP_REG" \
            prep_repush_oras run_oras_pipeline check_repush "bytes counted by a pass-through proxy"
        registry_stop push
        rm -rf "$WORK/edit" "$WORK/reg-push"
    else
        for k in fspack oras limit; do record "push.$k" "$SECTION" "push ($k)" "$MODEL_LABEL" "n/a ($SKIP_REG)" - - - - - ""; done
    fi
fi

# =============================================================================================
# Remote registry profile: every TCP connection capped at $RATE bytes/s by the proxy.
# =============================================================================================
if has_section remote; then
    RATE_MB=$(awk -v r="$RATE" 'BEGIN { printf "%g", r / 1e6 }')
    SECTION="Remote registry profile (each TCP connection capped at $RATE_MB MB/s by bench/rate-proxy.py; smaller model)"
    SKIP_REG=$(unmet "cmd:docker-registry cmd:curl")
    if [[ -z $SKIP_REG ]]; then
        registry_start remote
        REMOTE_PORT=$REG_PORT
        proxy_start remote "$REMOTE_PORT" "$RATE"
        SRC=$RMODEL HOSTPORT=127.0.0.1:$PROXY_PORT REPO=bench/remote DIRECT=127.0.0.1:$REMOTE_PORT
        export SRC HOSTPORT REPO
        warm "$RMODEL"
        prep_rpush() { registry_reset remote "$REMOTE_PORT"; rm -rf "$WORK/oras-img"; sync; REF=$HOSTPORT/$REPO:run$RUN_INDEX; export REF; }
        prep_rpush_j1() { prep_rpush; PUSH_JOBS=1; export PUSH_JOBS; }
        prep_rpush_j4() { prep_rpush; PUSH_JOBS=$JOBS; export PUSH_JOBS; }
        measure remote.push.j1 "fspack push --jobs 1" "$RMODEL_LABEL" "fspack" prep_rpush_j1 run_fspack_push check_push_ref
        measure remote.push.j4 "fspack push --jobs $JOBS" "$RMODEL_LABEL" "fspack" prep_rpush_j4 run_fspack_push check_push_ref
        measure remote.push.oras "mkfs.erofs + oras push" "$RMODEL_LABEL" "cmd:mkfs.erofs oras" prep_rpush run_oras_pipeline check_push_ref
        SKIP_PARTS=
        make_parts "$RMODEL" remote || SKIP_PARTS="mkfs.erofs failed"
        measure remote.push.limit "limit: curl PUT as 4 parallel blobs" "$RMODEL_LABEL" "skip:SKIP_PARTS" prep_rpush run_curl_put check_curl_put

        # Pull rows: push once straight to the registry (untimed), then pull through the proxy.
        registry_reset remote "$REMOTE_PORT"
        SKIP_RFSPACK='' SKIP_RORAS=''
        if [[ -z $(unmet fspack) ]] && "$FSPACK" push "$RMODEL" "$DIRECT/$REPO:fspack" --jobs "$JOBS" >"$WORK/rsetup.log" 2>&1; then :; else
            SKIP_RFSPACK="setup: $(why "$WORK/rsetup.log" 2>/dev/null || echo 'fspack push failed')"
        fi
        if [[ -z $(unmet "oras cmd:mkfs.erofs") ]] && SRC=$RMODEL REF=$DIRECT/$REPO:erofs bash -c run_oras_pipeline >"$WORK/rsetup.log" 2>&1; then :; else
            SKIP_RORAS="setup: oras push failed"
        fi
        prep_rpull() { rm -rf "$WORK/store" "$WORK/dl"; mkdir -p "$WORK/store"; sync; }
        prep_rpull_j1() { prep_rpull; PULL_JOBS=1; export PULL_JOBS; }
        prep_rpull_j4() { prep_rpull; PULL_JOBS=$JOBS; export PULL_JOBS; }
        run_fspack_pull_only() { "$FSPACK" --store "$WORK/store" pull "$HOSTPORT/$REPO:fspack" --jobs "$PULL_JOBS" >/dev/null; }
        run_oras_pull() { "$PY" "$BENCH/oras_tool.py" pull "$HOSTPORT/$REPO:erofs" "$WORK/dl" >/dev/null; }
        export -f run_fspack_pull_only run_oras_pull
        check_store() {
            local n
            ROW_BYTES=$(size_of "$WORK/store")
            n=$(find "$WORK/store" -type f -size +1M | wc -l)
            ((ROW_BYTES >= RMODEL_BYTES && n > 0)) || { echo "store holds only $ROW_BYTES bytes"; return 1; }
        }
        check_oras_dl() {
            ROW_BYTES=$(size_of "$WORK/dl/model.erofs")
            erofs_magic "$WORK/dl/model.erofs" || { echo "pulled file is no EROFS image"; return 1; }
            ((ROW_BYTES >= RMODEL_BYTES)) || { echo "pulled only $ROW_BYTES bytes"; return 1; }
        }
        measure remote.pull.j1 "fspack pull --jobs 1 (into a fresh store)" "$RMODEL_LABEL" "fspack skip:SKIP_RFSPACK" prep_rpull_j1 run_fspack_pull_only check_store
        measure remote.pull.j4 "fspack pull --jobs $JOBS (into a fresh store)" "$RMODEL_LABEL" "fspack skip:SKIP_RFSPACK" prep_rpull_j4 run_fspack_pull_only check_store
        measure remote.pull.oras "oras pull (single EROFS image)" "$RMODEL_LABEL" "oras skip:SKIP_RORAS" prep_rpull run_oras_pull check_oras_dl
        # The limit: the same blobs as the fspack artifact (else the oras image), 4 GETs at a time.
        if [[ -z $SKIP_RFSPACK ]]; then
            blob_urls "$HOSTPORT/$REPO:fspack" >"$WORK/urls-remote"; RLIMIT_NOTE="the fspack artifact's blobs"
        else
            # Push the 4 parts straight to the registry so the limit row has something to fetch.
            (HOSTPORT=$DIRECT run_curl_put) >/dev/null 2>&1 || true
            for p in "$PARTS_DIR"/part-?; do echo "http://$HOSTPORT/v2/$REPO/blobs/$(cat "$p.digest")"; done >"$WORK/urls-remote"
            RLIMIT_NOTE="4 parts of the mkfs.erofs image (no fspack artifact)"
        fi
        prep_rlimit() { prep_rpull; URLS_FILE=$WORK/urls-remote DL=$WORK/dl WANT_BYTES=; export URLS_FILE DL; }
        measure remote.pull.limit "limit: parallel curl GET, 4 at a time" "$RMODEL_LABEL" "" prep_rlimit run_curl_get check_curl_get "$RLIMIT_NOTE"
        registry_stop remote
        rm -rf "$WORK/reg-remote" "$WORK/store" "$WORK/dl"
    else
        record remote.push.j1 "$SECTION" "remote profile" "$RMODEL_LABEL" "n/a ($SKIP_REG)" - - - - - ""
    fi
fi

# =============================================================================================
# Pull on loopback, to a mounted tree.
# =============================================================================================
if has_section pull; then
    SECTION="Pull on loopback (to a mounted or extracted tree, fresh store each run)"
    SKIP_REG=$(unmet "cmd:docker-registry cmd:curl")
    if [[ -z $SKIP_REG ]]; then
        registry_start pull
        HOSTPORT=127.0.0.1:$REG_PORT REPO=bench/pull SRC=$MODEL
        export HOSTPORT REPO SRC
        warm "$MODEL"
        SKIP_PFSPACK='' SKIP_PORAS='' SKIP_PTGZ=''
        if [[ -n $(unmet fspack) ]] || ! "$FSPACK" push "$MODEL" "$HOSTPORT/$REPO:fspack" --jobs "$JOBS" >"$WORK/psetup.log" 2>&1; then
            SKIP_PFSPACK="setup: $(why "$WORK/psetup.log" 2>/dev/null || echo 'fspack push failed')"
        fi
        if [[ -n $(unmet "oras cmd:mkfs.erofs") ]] || ! REF=$HOSTPORT/$REPO:erofs bash -c run_oras_pipeline >"$WORK/psetup.log" 2>&1; then
            SKIP_PORAS="setup: oras push of the EROFS image failed"
        fi
        # tar+gzip of the directory, cached beside the data (gzip of 2 GiB takes a minute). Its
        # layer is typed application/gzip: with the tar+gzip layer type oras-py would unpack it
        # itself with Python's tarfile, which is slower than GNU tar.
        TGZ=$DATA/model.tar.gz
        if [[ ! -s $TGZ || $TGZ -ot $DATA/model.stamp ]]; then
            log "making $TGZ (once)"
            tar -C "$DATA" -czf "$TGZ.tmp" model && mv "$TGZ.tmp" "$TGZ"
        fi
        if [[ -n $(unmet oras) ]] || ! (cd "$DATA" && "$PY" "$BENCH/oras_tool.py" push "$HOSTPORT/$REPO:targz" \
            "$TGZ:application/gzip") >"$WORK/psetup.log" 2>&1; then
            SKIP_PTGZ="setup: oras push of the tar.gz failed"
        fi
        MNT=$WORK/mnt DL=$WORK/dl STORE=$WORK/store
        export MNT DL STORE
        prep_pull() { umount_quiet "$MNT"; rm -rf "$STORE" "$DL" "$WORK/x"; mkdir -p "$STORE" "$MNT" "$WORK/x"; sync; }
        run_fspack_pull_mount() { "$FSPACK" --store "$STORE" pull "$HOSTPORT/$REPO:fspack" --mount "$MNT" --jobs "$JOBS" >/dev/null; }
        run_oras_pull_mount() {
            "$PY" "$BENCH/oras_tool.py" pull "$HOSTPORT/$REPO:erofs" "$DL" >/dev/null
            mount -t erofs -o ro "$DL/model.erofs" "$MNT"
        }
        run_oras_pull_tgz() {
            "$PY" "$BENCH/oras_tool.py" pull "$HOSTPORT/$REPO:targz" "$DL" >/dev/null
            tar -xzf "$DL/model.tar.gz" -C "$WORK/x"
        }
        export -f run_fspack_pull_mount run_oras_pull_mount run_oras_pull_tgz
        check_fspack_mounted() {
            local rc=0
            check_mounted_tree "$MNT" "$MODEL" || rc=1
            ROW_BYTES=$MODEL_BYTES
            if mountpoint -q "$MNT"; then
                "$FSPACK" --store "$STORE" umount "$MNT" || { echo "fspack umount failed"; umount "$MNT"; rc=1; }
            fi
            ! mountpoint -q "$MNT" || { echo "still mounted after fspack umount"; umount -l "$MNT"; rc=1; }
            return "$rc"
        }
        check_oras_mounted() {
            local rc=0
            check_mounted_tree "$MNT" "$MODEL" || rc=1
            umount_quiet "$MNT"
            ROW_BYTES=$(size_of "$DL")
            return "$rc"
        }
        check_extracted() { check_mounted_tree_dir "$WORK/x/model" "$MODEL"; ROW_BYTES=$(size_of "$DL"); }
        check_mounted_tree_dir() {
            local got want
            got=$(tree_sig "$1") want=$(tree_sig "$2")
            [[ $got == "$want" ]] || { echo "extracted tree has $got, source $want"; return 1; }
        }
        measure pull.fspack "fspack pull --mount --jobs $JOBS" "$MODEL_LABEL" "root fspack skip:SKIP_PFSPACK" prep_pull run_fspack_pull_mount check_fspack_mounted \
            "fspack verifies sha256 and fsyncs"
        measure pull.oras "oras pull (single EROFS image) + mount" "$MODEL_LABEL" "root oras skip:SKIP_PORAS" prep_pull run_oras_pull_mount check_oras_mounted
        measure pull.targz "oras pull (tar+gzip) + tar -xzf" "$MODEL_LABEL" "oras skip:SKIP_PTGZ" prep_pull run_oras_pull_tgz check_extracted
        if [[ -z $SKIP_PFSPACK ]]; then
            blob_urls "$HOSTPORT/$REPO:fspack" >"$WORK/urls-pull"; PLIMIT_NOTE="the fspack artifact's blobs; no hashing, no fsync"
        elif [[ -z $SKIP_PORAS ]]; then
            make_parts "$MODEL" pull
            (run_curl_put) >/dev/null 2>&1 || true
            for p in "$PARTS_DIR"/part-?; do echo "http://$HOSTPORT/v2/$REPO/blobs/$(cat "$p.digest")"; done >"$WORK/urls-pull"
            PLIMIT_NOTE="4 parts of the mkfs.erofs image (no fspack artifact); no hashing, no fsync"
        else
            : >"$WORK/urls-pull"; SKIP_PLIMIT="nothing pushed to fetch"
        fi
        prep_plimit() { prep_pull; URLS_FILE=$WORK/urls-pull WANT_BYTES=; export URLS_FILE; }
        measure pull.limit "limit: parallel curl GET to files, 4 at a time" "$MODEL_LABEL" "skip:SKIP_PLIMIT" prep_plimit run_curl_get check_curl_get "${PLIMIT_NOTE:-}"
        umount_quiet "$MNT"
        registry_stop pull
        rm -rf "$WORK/reg-pull" "$STORE" "$DL" "$WORK/x"
    else
        record pull.fspack "$SECTION" "pull" "$MODEL_LABEL" "n/a ($SKIP_REG)" - - - - - ""
    fi
fi

# =============================================================================================
# Cold reads through each mount mode (caches dropped before every run).
# =============================================================================================
if has_section cold; then
    SECTION="Cold reads: find -type f -exec cat (caches dropped before each run)"
    C=$WORK/cold
    mkdir -p "$C"
    export C
    run_cold_read() { find "$CMNT" -type f -exec cat {} + >/dev/null; }
    export -f run_cold_read
    prep_cold() { drop_caches; }
    check_cold() { ROW_BYTES=$CBYTES; mountpoint -q "$CMNT" || { echo "not mounted"; return 1; }; }
    cold_kernel_rows() { # cold_kernel_rows SRC LABEL KEY
        local src=$1 label=$2 key=$3 img=$C/$3.erofs loopdev made_by=fspack
        CMNT=$C/mnt-$3 CBYTES=$(data_bytes "$src")
        export CMNT
        mkdir -p "$CMNT"
        if ! "$FSPACK" build "$src" -o "$img" >/dev/null 2>&1; then
            made_by=mkfs.erofs
            mkfs.erofs "$img" "$src" >/dev/null 2>&1 || { record "cold.$key" "$SECTION" "cold read" "$label" "n/a (no image could be built)" - - - - - ""; return 0; }
        fi
        prep_mount_file() { mount -t erofs -o ro "$img" "$CMNT"; }
        if prep_mount_file 2>/dev/null && check_mounted_tree "$CMNT" "$src" >&2; then
            measure "cold.$key.kfile" "kernel mount, file-backed ($made_by image)" "$label" root prep_cold run_cold_read check_cold
        else
            record "cold.$key.kfile" "$SECTION" "kernel mount, file-backed" "$label" "n/a (file-backed mount failed)" - - - - - ""
        fi
        umount_quiet "$CMNT"
        local dio
        for dio in off on; do
            loopdev=$(losetup -r -f --show --direct-io="$dio" "$img") || continue
            if mount -t erofs -o ro "$loopdev" "$CMNT"; then
                measure "cold.$key.kloop-$dio" "kernel mount, loop device (direct-io=$dio) ($made_by image)" "$label" root prep_cold run_cold_read check_cold
                umount "$CMNT"
            fi
            losetup -d "$loopdev" 2>/dev/null || true
        done
    }
    cold_fspack_rows() { # cold_fspack_rows SRC LABEL KEY: fspack's own mount modes, after a pull
        local src=$1 label=$2 key=$3 mode
        CMNT=$C/mnt-$3 CBYTES=$(data_bytes "$src")
        export CMNT
        for mode in file loop; do
            local store=$C/store-$key-$mode
            rm -rf "$store"; mkdir -p "$store" "$CMNT"
            local reason=
            if [[ -n $SKIP_CREG ]]; then reason=$SKIP_CREG
            elif ! "$FSPACK" push "$src" "$CHOST/bench/cold-$key:v1" --jobs "$JOBS" >"$C/setup.log" 2>&1; then reason=$(why "$C/setup.log")
            elif ! "$FSPACK" --store "$store" pull "$CHOST/bench/cold-$key:v1" --mount "$CMNT" --mount-mode "$mode" >"$C/setup.log" 2>&1; then reason=$(why "$C/setup.log")
            elif ! check_mounted_tree "$CMNT" "$src" >"$C/setup.log" 2>&1; then reason="FAILED ($(tail -1 "$C/setup.log"))"
            fi
            if [[ -n $reason ]]; then
                [[ $reason == n/a* || $reason == FAILED* ]] || reason="n/a ($reason)"
                record "cold.$key.fspack-$mode" "$SECTION" "fspack pull --mount-mode $mode" "$label" "$reason [setup]" - - - - - ""
            else
                measure "cold.$key.fspack-$mode" "fspack pull --mount-mode $mode" "$label" root prep_cold run_cold_read check_cold
            fi
            if mountpoint -q "$CMNT"; then "$FSPACK" --store "$store" umount "$CMNT" || umount "$CMNT"; fi
            rm -rf "$store"
        done
    }
    if is_root; then
        SKIP_CREG=$(unmet "fspack cmd:docker-registry")
        if [[ -z $SKIP_CREG ]]; then registry_start cold; CHOST=127.0.0.1:$REG_PORT; fi
        cold_kernel_rows "$MODEL" "$MODEL_LABEL" model
        cold_fspack_rows "$MODEL" "$MODEL_LABEL" model
        cold_kernel_rows "$TREE" "$TREE_LABEL" tree
        cold_fspack_rows "$TREE" "$TREE_LABEL" tree
        [[ -n $SKIP_CREG ]] || registry_stop cold
    else
        record cold.model "$SECTION" "cold reads" "$MODEL_LABEL" "n/a (needs root)" - - - - - ""
    fi
fi

# =============================================================================================
# Report.
# =============================================================================================
median_of() { awk -F'\t' -v k="$1" '$1 == k && $5 ~ /^[0-9.]+$/ { print $5 }' "$RESULTS"; }
rss_of() { awk -F'\t' -v k="$1" '$1 == k && $5 ~ /^[0-9.]+$/ { print $8 }' "$RESULTS"; }
target() { # target TEXT KEY_A KEY_B OP LIMIT [inverse]: A/B (or B/A with inverse) OP LIMIT
    local text=$1 a b r verdict
    a=$(median_of "$2") b=$(median_of "$3")
    if [[ -z $a || -z $b ]]; then echo "- $text: not measured (a row is n/a)"; return; fi
    r=$(awk -v a="$a" -v b="$b" -v inv="${6:-}" 'BEGIN { if (inv) printf "%.2f", b / a; else printf "%.2f", a / b }')
    verdict=$(awk -v r="$r" -v l="$5" -v op="$4" 'BEGIN { ok = (op == "<=") ? (r <= l) : (r >= l); print ok ? "met" : "NOT met" }')
    echo "- $text: ${r}× (target $4 $5×): **$verdict**"
}
rss_target() { # rss_target TEXT KEY MIB
    local r
    r=$(rss_of "$2")
    if [[ -z $r ]]; then echo "- $1: not measured"; return; fi
    if ((r <= $3)); then echo "- $1: $r MiB (target < $3 MiB): **met**"; else echo "- $1: $r MiB (target < $3 MiB): **NOT met**"; fi
}
size_target() { # size_target TEXT KEY_A KEY_B PERCENT: |size A / size B - 1| <= PERCENT
    local a b
    a=$(awk -F'\t' -v k="$2" '$1 == k && $5 ~ /^[0-9.]+$/ { print $9 }' "$RESULTS")
    b=$(awk -F'\t' -v k="$3" '$1 == k && $5 ~ /^[0-9.]+$/ { print $9 }' "$RESULTS")
    if [[ ! $a =~ ^[0-9]+$ || ! $b =~ ^[0-9]+$ ]]; then echo "- $1: not measured"; return; fi
    awk -v a="$a" -v b="$b" -v p="$4" -v t="$1" 'BEGIN { d = 100 * (a / b - 1); ad = d < 0 ? -d : d
        printf "- %s: %+.2f%% (target within %s%%): **%s**\n", t, d, p, (ad <= p) ? "met" : "NOT met" }'
}
repush_target() {
    local size
    size=$(awk -F'\t' '$1 == "push.repush.fspack" && $5 ~ /^[0-9.]+$/ { print $9 }' "$RESULTS")
    [[ -n $size ]] || { echo "- re-push after a small edit sends < 1% of the bytes: not measured"; return; }
    local pct=${size##*= }
    pct=${pct%\%}
    if awk -v p="$pct" 'BEGIN { exit !(p < 1) }'; then v=met; else v="NOT met"; fi
    echo "- re-push after a small edit sends < 1% of the bytes: ${pct}%: **$v**"
}

report() {
    local host
    host="$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 2^20 }' /proc/meminfo) RAM, Linux $(uname -r)"
    echo "## Results: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "Machine: $host. fspack: \`$FSPACK_VERSION\`, binary \`${FSPACK#"$ROOT"/}\`, ${BENCH_FSPACK_DESC:-built from the work tree at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')}."
    echo "Peers: mkfs.erofs ${MKFS_EROFS_VERSION:-?} (Debian; upstream 1.9.3 is about 3× faster), mksquashfs ${MKSQUASHFS_VERSION:-?}, oras-py $("$PY" -c 'import importlib.metadata as m; print(m.version("oras"))' 2>/dev/null || echo '?'), curl $(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }')."
    echo "Load average at start: $LOAD_START; at end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows up in the ranges)."
    echo "Runs per row: $RUNS$( ((quick)) && echo ' (--quick)'). Times are wall-clock seconds: median and min–max. Peak RSS is the largest of any process of the row (GNU time %M). Page cache warm unless the section says cold."
    echo
    local section=
    while IFS=$'\t' read -r key sec label data median min max rss size mbps note; do
        : "$key"
        if [[ $sec != "$section" ]]; then
            section=$sec
            echo
            echo "### $sec"
            echo
            echo "| Row | Data | Median s | Range s | Peak RSS MiB | Size | MB/s | Notes |"
            echo "|---|---|---:|---:|---:|---:|---:|---|"
        fi
        if [[ $median =~ ^[0-9.]+$ ]]; then
            [[ $size =~ ^[0-9]+$ ]] && size=$(human "$size")
            echo "| $label | $data | $median | $min–$max | $rss | $size | $mbps | $note |"
        else
            echo "| $label | $data | $median | | | | | $note |"
        fi
    done <"$RESULTS"
    echo
    echo "### Targets (from issues 2–5)"
    echo
    target "build, model: fspack / mkfs.erofs wall time" build.model.fspack build.model.mkfs "<=" 1.0
    target "build, tree: fspack / mkfs.erofs wall time" build.tree.fspack build.tree.mkfs "<=" 1.0
    rss_target "build, model: fspack peak RSS" build.model.fspack 64
    target "squashfs, model: fspack / mksquashfs wall time" sqfs.model.fspack sqfs.model.mksquashfs "<=" 1.0
    target "squashfs, tree: fspack / mksquashfs wall time" sqfs.tree.fspack sqfs.tree.mksquashfs "<=" 1.0
    size_target "squashfs, model: fspack image size vs mksquashfs" sqfs.model.fspack sqfs.model.mksquashfs 2
    size_target "squashfs, tree: fspack image size vs mksquashfs" sqfs.tree.fspack sqfs.tree.mksquashfs 2
    rss_target "squashfs: fspack peak RSS (model)" sqfs.model.fspack 128
    target "push, loopback: fspack throughput / limit throughput" push.fspack push.limit ">=" 0.85 inverse
    rss_target "push: fspack peak RSS" push.fspack 128
    repush_target
    target "push, capped: fspack --jobs $JOBS / oras pipeline wall time" remote.push.j4 remote.push.oras "<=" 0.5
    target "push, capped: speed-up --jobs $JOBS over --jobs 1" remote.push.j1 remote.push.j4 ">=" 3.5
    target "pull, loopback: fspack / limit wall time" pull.fspack pull.limit "<=" 1.2
    target "pull, loopback: fspack / oras pull wall time" pull.fspack pull.oras "<=" 0.7
    rss_target "pull: fspack peak RSS" pull.fspack 128
    target "pull, capped: fspack --jobs $JOBS / oras pull wall time" remote.pull.j4 remote.pull.oras "<=" 0.5
    target "pull, capped: speed-up --jobs $JOBS over --jobs 1" remote.pull.j1 remote.pull.j4 ">=" 3.5
    echo
    echo "Note: the push and pull throughput targets compare ratios of wall time over nearly the same bytes; MB/s is bytes moved (layers, blobs or file data) over the median."
}
RESULT_FILE=$OUT/results-$(date '+%Y%m%d-%H%M').md
report | tee "$RESULT_FILE"
log "saved $RESULT_FILE"
