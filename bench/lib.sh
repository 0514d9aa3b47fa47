# shellcheck shell=bash
# The shared half of fspack's benchmark suite, sourced by bench/run.sh (and by nothing else):
# argument parsing, tools, the work area and its cleanup, registries and proxies, data
# generation, the timer (`measure`) and the result writer (`record`, `target`, `summary`).
# Sections (bench/sections/*.sh) only call these; see "Adding a section" in bench/README.md.
#
# Results are JSON lines in $RESULTS (one array per line, its first element the record type);
# bench/tables.py turns them into results-<date>.json and renders every table from that file.

# SKIP_* variables are read indirectly, by name, in unmet(); HOSTPORT, REPO and the like are set
# by the sections before they call the helpers that read them.
# shellcheck disable=SC2034,SC2153

BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH")
OUT=${BENCH_OUT:-$BENCH/out}
# The sections run in this order; any other bench/sections/NAME.sh runs after them, by name.
BENCH_SECTION_ORDER=(build squashfs push remote pull cold)

# bench_sections: every section name, in running order.
bench_sections() {
    local s f
    for s in "${BENCH_SECTION_ORDER[@]}"; do [[ -f $BENCH/sections/$s.sh ]] && echo "$s"; done
    for f in "$BENCH"/sections/*.sh; do
        s=$(basename "$f" .sh)
        [[ " ${BENCH_SECTION_ORDER[*]} " == *" $s "* ]] || echo "$s"
    done
}

# bench_parse_args "$@": the CLI of bench/run.sh (see its header). Sets quick, RUNS, sections,
# FSPACK, MODEL_SIZE, FILES, REMOTE_SIZE, DATA and the knobs.
bench_parse_args() {
    quick=0
    local runs='' s
    sections=$(bench_sections | paste -sd, -)
    local own_build=0
    [[ -z ${FSPACK:-} ]] && own_build=1
    FSPACK=${FSPACK:-$ROOT/target/release/fspack}
    while (($#)); do
        case $1 in
        --quick) quick=1 ;;
        --runs) runs=${2:?--runs needs a number}; shift ;;
        --only) sections=${2:?--only needs a list}; shift ;;
        --fspack) FSPACK=${2:?--fspack needs a path}; own_build=0; shift ;;
        -h | --help) sed -n '2,/^$/p' "$BENCH/run.sh" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
        esac
        shift
    done
    for s in ${sections//,/ }; do
        [[ -f $BENCH/sections/$s.sh ]] || { echo "run.sh: no section '$s' (have: $(bench_sections | paste -sd' ' -))" >&2; exit 2; }
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
    # Upstream erofs-utils (the build target's peer, issue 14); Debian's 1.5 is the other row.
    MKFS_EROFS_UPSTREAM=${BENCH_MKFS_EROFS:-$ROOT/../shared/tools/erofs-utils-1.9.3/bin/mkfs.erofs}
    [[ -x $MKFS_EROFS_UPSTREAM ]] || MKFS_EROFS_UPSTREAM=/work/shared/tools/erofs-utils-1.9.3/bin/mkfs.erofs
    # The results name the commit the binary was built from, so the default binary is built
    # from this work tree first (a no-op when it is fresh) rather than trusted to match it.
    if ((own_build)) && command -v cargo >/dev/null; then
        echo "run.sh: building the fspack under test (cargo build --release -p fspack)" >&2
        (cd "$ROOT" && cargo build --release -q -p fspack) || { echo "run.sh: the build failed" >&2; exit 1; }
    fi
    FSPACK=$(realpath -m "$FSPACK")
    VENV=$OUT/venv
    PY=$VENV/bin/python
    TIME=/usr/bin/time
    export FSPACK PY BENCH RUNS JOBS SQFS_LEVEL SQFS_BLOCK MKFS_EROFS_UPSTREAM
}

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
# bench_work: the work area under $OUT, removed (with everything mounted in it) on exit.
bench_work() {
    mkdir -p "$OUT"
    # The lazy section alone puts an 8 GiB model in a registry and a store: with too little
    # room the rows fail halfway with ENOSPC and logs too truncated to say so.
    local need_gib=$((quick ? 10 : 30)) avail_gib
    avail_gib=$(($(df --output=avail -k "$OUT" | tail -1) / 1048576))
    if ((avail_gib < need_gib)); then
        echo "bench: $avail_gib GiB free under $OUT; a $( ((quick)) && echo quick || echo full) run needs $need_gib GiB (free some space, or set BENCH_OUT)" >&2
        exit 1
    fi
    WORK=$(mktemp -d "$OUT/work.XXXXXX")
    RESULTS=$WORK/results.jsonl
    : >"$RESULTS"
    export WORK
    trap cleanup EXIT
    trap 'exit 130' INT TERM
}
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
# registry_cpu NAME: CPU seconds (user + system) the registry NAME has used since it started.
registry_cpu() {
    local pid=${REG_PID[$1]:-}
    [[ -n $pid && -r /proc/$pid/stat ]] || { echo "?"; return; }
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.1f", ($12 + $13) / hz }' "/proc/$pid/stat"
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
data_bytes() { find "$1" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }'; }
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
# Results. Every record is one JSON object per line in $RESULTS: {"type": ..., field: value}.
# bench/tables.py reads them (see bench/README.md, "Adding a section", for the fields).
# ---------------------------------------------------------------------------------------------
# jrec TYPE NAME=VALUE...: append one record; values are strings (tables.py parses numbers).
jrec() {
    # shellcheck disable=SC2094 # $RESULTS is only appended to
    python3 -c 'import json, sys
rec = {"type": sys.argv[1]}
for a in sys.argv[2:]:
    k, _, v = a.partition("=")
    rec[k] = v
print(json.dumps(rec))' "$@" >>"$RESULTS"
}
# record KEY LABEL DATA STATUS [NOTE]: a row that was not measured; STATUS says why
# ("n/a (reason)" or "FAILED (reason)").
record() { jrec row key="$1" section="$SECTION" label="$2" data="$3" status="$4" note="${5:-}"; }
# meta NAME VALUE: one fact about the run (machine, versions, load), shown above the tables.
meta() { jrec meta name="$1" value="$2"; }
# target KIND TEXT ARGS...: a target that tables.py checks against the rows (issue given in TEXT):
#   target ratio     TEXT KEY_A KEY_B OP LIMIT   median A / median B (OP is <= or >=)
#   target throughput TEXT KEY_A KEY_B OP LIMIT  median B / median A (A's throughput over B's)
#   target time      TEXT KEY OP SECONDS         median of KEY OP SECONDS
#   target rss       TEXT KEY MIB                peak RSS of KEY <= MIB
#   target rss_vs    TEXT KEY_A KEY_B            peak RSS of A <= peak RSS of B
#   target size      TEXT KEY_A KEY_B PERCENT    |size A / size B - 1| <= PERCENT %
#   target sent      TEXT KEY PERCENT            ROW_SENT_PCT of KEY <= PERCENT
target() {
    local kind=$1 text=$2
    shift 2
    jrec target kind="$kind" text="$text" args="$*"
}
# summary JOB FSPACK_KEY PEER_KEY...: one line of README's summary table.
summary() {
    local job=$1 key=$2
    shift 2
    jrec summary job="$job" key="$key" peers="$*"
}

# ---------------------------------------------------------------------------------------------
# Measuring. measure KEY LABEL DATA REQS PREP RUN CHECK [NOTE]
#   (measure_alternating: several such rows, separated by --, whose runs take turns.)
#   REQS: space-separated needs: root, oras, fspack, cmd:NAME, exe:PATH, skip:VAR (unmet when
#         $VAR is non-empty: its value is the reason); PREP and CHECK run here, untimed; RUN is
#         an exported function, timed in its own bash under /usr/bin/time. CHECK may set
#         ROW_BYTES (for MB/s), ROW_SIZE (bytes of the output, or a text), ROW_SENT_PCT (bytes
#         sent as a percentage of the data, for the `sent` target) and ROW_NOTE. Recorded per run: wall time, CPU time (user +
#         system of RUN's whole process tree) and peak RSS (the largest of any process in the
#         tree, from wait4 rusage).
# ---------------------------------------------------------------------------------------------
unmet() {
    local r
    for r in $1; do
        case $r in
        root) is_root || { echo "needs root"; return; } ;;
        oras) "$PY" -c 'import oras.client' 2>/dev/null || { echo "oras (PyPI) not installed"; return; } ;;
        fspack) [[ -x $FSPACK ]] || { echo "no fspack binary at $FSPACK"; return; } ;;
        cmd:*) command -v "${r#cmd:}" >/dev/null 2>&1 || { echo "${r#cmd:} not installed"; return; } ;;
        exe:*) [[ -x ${r#exe:} ]] || { echo "no ${r#exe:}"; return; } ;;
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
    # An empty log is what a full disk leaves: say so rather than FAILED ().
    [[ -n $line ]] || line="no message; $(df -h --output=avail "$1" | tail -1 | tr -d ' ') free on its disk"
    echo "FAILED (${line:0:160})"
}
SECTION=
measure() { measure_rows "$@"; }
# measure_alternating ROW -- ROW [-- ROW ...]: each ROW is measure's arguments; the rows' runs take
# turns, each round starting one row later (A1 B1 C1, B2 C2 A2, C3 A3 B3 ...), so a drift in the
# machine's speed during the section, or a cost of coming right after another row, falls on every
# row alike and a ratio target between them compares runs made under the same conditions.
measure_alternating() { measure_rows "$@"; }
measure_rows() {
    local -a key label data prep run check note runs times cpus maxrss size bytes rnote sent done
    local n=0 r i t0 t1 rss cpu reason more
    local -a group=()
    while (($# > 0)); do
        if [[ $1 == -- ]]; then shift; continue; fi
        group=("$@")
        key[n]=${group[0]} label[n]=${group[1]} data[n]=${group[2]} prep[n]=${group[4]}
        run[n]=${group[5]} check[n]=${group[6]} note[n]=''
        [[ ${group[7]:-} != -- ]] && note[n]=${group[7]:-}
        runs[n]=$RUNS times[n]='' cpus[n]='' maxrss[n]=0 size[n]='' bytes[n]='' rnote[n]='' sent[n]='' done[n]=''
        reason=$(unmet "${group[3]}")
        if [[ -n $reason ]]; then
            log "${label[n]} [${data[n]}]: n/a ($reason)"
            record "${key[n]}" "${label[n]}" "${data[n]}" "n/a ($reason)" "${note[n]}"
            done[n]=skipped
        fi
        local take=7
        [[ ${group[7]:-} != -- && $# -ge 8 ]] && take=8
        shift "$take"
        n=$((n + 1))
    done
    for ((i = 1; ; i++)); do
        more=
        local k
        for ((k = 0; k < n; k++)); do
            r=$(((k + i - 1) % n))
            [[ -z ${done[r]} ]] || continue
            if ((i > runs[r])); then done[r]=measured; continue; fi
            more=1
            RUN_INDEX=$i ROW_BYTES=${bytes[r]} ROW_SIZE='' ROW_NOTE=${rnote[r]} ROW_SENT_PCT=${sent[r]}
            if ! ${prep[r]} >"$WORK/prep.log" 2>&1; then
                record "${key[r]}" "${label[r]}" "${data[r]}" "$(why "$WORK/prep.log") [setup]" "${note[r]}"
                log "${label[r]} [${data[r]}]: setup failed"; cat "$WORK/prep.log" >&2
                done[r]=failed; continue
            fi
            t0=$(date +%s%N)
            if ! "$TIME" -f '%M %U %S' -o "$WORK/time.out" bash -c "set -euo pipefail; ${run[r]}" \
                >"$WORK/run.out" 2>"$WORK/run.err"; then
                reason=$(why "$WORK/run.err")
                log "${label[r]} [${data[r]}]: $reason"; tail -5 "$WORK/run.err" >&2
                record "${key[r]}" "${label[r]}" "${data[r]}" "$reason" "${note[r]}"
                ${check[r]} >/dev/null 2>&1 || true # lets the check undo mounts
                done[r]=failed; continue
            fi
            t1=$(date +%s%N)
            read -r rss cpu < <(grep -E '^[0-9]+ [0-9.]+ [0-9.]+$' "$WORK/time.out" | tail -1 |
                awk '{ printf "%d %d\n", $1, ($2 + $3) * 1000 }')
            if ! ${check[r]} >"$WORK/check.log" 2>&1; then
                reason="FAILED (check: $(tail -1 "$WORK/check.log"))"
                log "${label[r]} [${data[r]}]: $reason"
                record "${key[r]}" "${label[r]}" "${data[r]}" "$reason" "${note[r]}"
                done[r]=failed; continue
            fi
            local ms=$(((t1 - t0) / 1000000))
            times[r]+="${times[r]:+,}$ms" cpus[r]+="${cpus[r]:+,}$cpu"
            # Long rows stop at 3 runs, very long ones (the slow peers) at 2 (see bench/run.sh --runs).
            if ((i == 1 && runs[r] > 3 && ms > ${BENCH_LONG_S:-5} * 1000)); then runs[r]=3; fi
            if ((i == 1 && runs[r] > 2 && ms > ${BENCH_VERY_LONG_S:-10} * 1000)); then runs[r]=2; fi
            ((rss > maxrss[r])) && maxrss[r]=$rss
            [[ -n $ROW_SIZE ]] && size[r]=$ROW_SIZE
            bytes[r]=$ROW_BYTES rnote[r]=$ROW_NOTE sent[r]=$ROW_SENT_PCT
            log "${label[r]} [${data[r]}] run $i/${runs[r]}: $(awk -v ms="$ms" -v c="$cpu" 'BEGIN { printf "%.2f s (cpu %.2f s)", ms / 1000, c / 1000 }'), ${rss} KiB"
        done
        [[ -n $more ]] || break
    done
    for ((r = 0; r < n; r++)); do
        [[ ${done[r]} == measured ]] || continue
        [[ -n ${rnote[r]} ]] && note[r]="${note[r]:+${note[r]}; }${rnote[r]}"
        jrec row key="${key[r]}" section="$SECTION" label="${label[r]}" data="${data[r]}" status=ok \
            wall_ms="${times[r]}" cpu_ms="${cpus[r]}" rss_kib="${maxrss[r]}" size="${size[r]}" \
            bytes="${bytes[r]}" sent_pct="${sent[r]}" note="${note[r]}"
    done
}
# human BYTES prints KiB/MiB/GiB.
human() { awk -v b="$1" 'BEGIN { if (b >= 2^30) printf "%.2f GiB", b / 2^30; else if (b >= 2^20) printf "%.1f MiB", b / 2^20; else printf "%.0f KiB", b / 1024 }'; }
size_of() { du -sb "$@" | awk '{ s += $1 } END { printf "%.0f", s }'; }

# ---------------------------------------------------------------------------------------------
# Data: bench/gen_data.py, seeded, regenerated only when its parameters change.
# ---------------------------------------------------------------------------------------------
# bench_data: makes (or reuses) the data and sets MODEL, TREE, RMODEL, their byte counts and
# their labels (the Data column), and the facts about the run (meta records).
bench_data() {
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
    MKFS_EROFS_VERSION=$(dpkg-query -W -f='${Version}' erofs-utils 2>/dev/null | sed 's/-[^-]*$//' || true)
    MKFS_EROFS_UPSTREAM_VERSION=$("$MKFS_EROFS_UPSTREAM" --version 2>/dev/null | awk 'NR == 1 { print $NF }' || true)
    MKSQUASHFS_VERSION=$(mksquashfs -version 2>/dev/null | awk 'NR == 1 { print $3 }' || true)
    ORAS_VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("oras"))' 2>/dev/null || echo '?')
    # The peer pipelines (push, pull) use the fastest mkfs.erofs there is.
    MKFS_EROFS_PIPE=mkfs.erofs
    [[ -x $MKFS_EROFS_UPSTREAM ]] && MKFS_EROFS_PIPE=$MKFS_EROFS_UPSTREAM
    export MKFS_EROFS_PIPE
    meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
    meta machine "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 2^20 }' /proc/meminfo) RAM, Linux $(uname -r)"
    meta fspack "$FSPACK_VERSION, binary ${FSPACK#"$ROOT"/}, ${BENCH_FSPACK_DESC:-built from the work tree at $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- cli core Cargo.toml Cargo.lock 2>/dev/null || echo ' with uncommitted changes')}"
    meta peers "mkfs.erofs ${MKFS_EROFS_UPSTREAM_VERSION:-missing} (upstream) and ${MKFS_EROFS_VERSION:-?} (Debian), mksquashfs ${MKSQUASHFS_VERSION:-?}, oras-py $ORAS_VERSION, curl $(curl --version 2>/dev/null | awk 'NR == 1 { print $2 }'), docker-registry $(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null | sed 's/+.*//')"
    meta runs "$RUNS"
    meta long_s "${BENCH_LONG_S:-5}"
    meta very_long_s "${BENCH_VERY_LONG_S:-10}"
    meta quick "$quick"
    meta load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
    B=$WORK/build
    export B
}

# ---------------------------------------------------------------------------------------------
# Images (build and squashfs sections): the output goes to $B/img, a fresh directory each run.
# ---------------------------------------------------------------------------------------------
prep_build() { rm -rf "$B"; mkdir -p "$B"; sync; }
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


# =============================================================================================
# Push and pull: shared pieces.
# =============================================================================================
# A single EROFS image of SRC made by mkfs.erofs, cut into 4 parts for the limit rows; digests
# are computed here, untimed. Sets PARTS_DIR (part-N and part-N.digest files).
make_parts() { # make_parts SRC NAME
    PARTS_DIR=$WORK/parts-$2
    rm -rf "$PARTS_DIR"; mkdir -p "$PARTS_DIR"
    "$MKFS_EROFS_PIPE" "$PARTS_DIR/image.erofs" "$1" >/dev/null
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
# run_curl_put_serial: the same uploads one after another (the link's speed-up: its time over
# run_curl_put's).
run_curl_put_serial() {
    local p
    for p in "$PARTS_DIR"/part-?; do curl_put_one "$p" || return 1; done
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
export -f curl_put_one run_curl_put run_curl_put_serial run_curl_get
# The fspack and oras pipelines.
# fspack push keeps a digest cache in its store (issue 14): the rows of a first push start from an
# empty store each run (prep removes $PUSH_STORE), the re-push rows keep theirs.
run_fspack_push() { "$FSPACK" --store "$PUSH_STORE" push "$SRC" "$REF" --jobs "$PUSH_JOBS" --json >"$WORK/push.json"; }
run_oras_pipeline() {
    rm -rf "$WORK/oras-img"; mkdir -p "$WORK/oras-img"
    "$MKFS_EROFS_PIPE" "$WORK/oras-img/model.erofs" "$SRC" >/dev/null
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

