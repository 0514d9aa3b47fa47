#!/usr/bin/env bash
# ModelPack bench (issue 15): pull + mount of a ModelPack artifact with fspack (the layer blobs
# are the files; nothing is unpacked) against oras-py pulling the same layers to files, with the
# disk each leaves behind; then what 512-byte EROFS blocks (needed to map tar members) cost at
# read time against 4 KiB blocks, over the same blob.
#
#   bench/modelpack.sh [--size-mib N] [--runs N]     (root; default 2048 MiB, 3 runs)
#
# FSPACK=path/to/fspack picks the binary (default target/release/fspack). Data is generated
# (seeded, incompressible) under bench/out/modelpack; a registry (Debian docker-registry) runs on
# 127.0.0.1 for the duration. oras-py comes from PyPI into bench/out/venv, as in bench/run.sh.
set -euo pipefail

SIZE_MIB=2048
RUNS=3
while (($#)); do
    case $1 in
    --size-mib) SIZE_MIB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--size-mib N] [--runs N]" >&2; exit 2 ;;
    esac
done
[[ $(id -u) == 0 ]] || { echo "modelpack.sh: needs root (mounts)" >&2; exit 1; }
BENCH=$(cd "$(dirname "$0")" && pwd)
FSPACK=${FSPACK:-$BENCH/../target/release/fspack}
[[ -x $FSPACK ]] || { echo "modelpack.sh: no $FSPACK; cargo build --release -p fspack" >&2; exit 1; }
OUT=$BENCH/out
WORK=$OUT/modelpack
VENV=$OUT/venv
PY=$VENV/bin/python
mkdir -p "$WORK"
log() { echo "[modelpack] $*" >&2; }

if [[ ! -x $PY ]] || ! "$PY" -c 'import oras.client' 2>/dev/null; then
    log "installing oras (PyPI) into $VENV"
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q oras >/dev/null
fi

# Data: four weight files, a config, a tokenizer and a README; regenerated when the size changes.
SRC=$WORK/src-$SIZE_MIB
if [[ ! -f $SRC.done ]]; then
    log "generating a $SIZE_MIB MiB model in $SRC"
    rm -rf "$SRC"; mkdir -p "$SRC"
    python3 - "$SRC" "$SIZE_MIB" <<'EOF'
import os, random, sys
src, mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(15)
part = mib * (1 << 20) // 4
for i in range(4):
    # Sizes that are not block multiples, like real safetensors shards.
    n = part - 1 - rng.randrange(4096)
    with open(f"{src}/model-{i + 1:05d}-of-00004.safetensors", "wb") as f:
        left = n
        while left:
            k = min(left, 8 << 20)
            f.write(rng.randbytes(k))
            left -= k
open(f"{src}/config.json", "w").write('{"hidden_size": 4096, "num_hidden_layers": 32}\n')
open(f"{src}/tokenizer.json", "wb").write(rng.randbytes(2_000_000))
open(f"{src}/README.md", "w").write("# bench model\n")
EOF
    touch "$SRC.done"
fi
DATA_BYTES=$(find "$SRC" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.0f\n", s}')

REG_DIR=$(mktemp -d "$WORK/registry.XXXX")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$REG_DIR/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $REG_DIR/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$PORT}
EOF
docker-registry serve "$REG_DIR/config.yml" >"$REG_DIR/log" 2>&1 &
REG_PID=$!
MNTS=()
RUN=$WORK/run
cleanup() {
    # Unmount before anything under $RUN is removed.
    for m in "${MNTS[@]}"; do
        if mountpoint -q "$m"; then
            FSPACK_STORE=$RUN/store "$FSPACK" umount "$m" 2>/dev/null || umount "$m" || true
        fi
    done
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
    for m in "${MNTS[@]}"; do mountpoint -q "$m" && return; done
    rm -rf "$REG_DIR" "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/v2/" >/dev/null && break; sleep 0.1; done
REF=127.0.0.1:$PORT/bench/model:v1

log "pushing the model as ModelPack (fspack push --modelpack)"
FSPACK_STORE=$WORK/push-store "$FSPACK" push "$SRC" "$REF" --modelpack -q >/dev/null

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
now() { date +%s.%N; }
used() { du -sB1 "$1" | cut -f1; }

fs_t=(); fs_d=(); or_t=(); or_d=()
for r in $(seq "$RUNS"); do
    rm -rf "$RUN"; mkdir -p "$RUN/mnt"
    MNTS=("$RUN/mnt")
    sync
    t0=$(now)
    FSPACK_STORE=$RUN/store "$FSPACK" pull "$REF" --mount "$RUN/mnt" -q >/dev/null
    t1=$(now)
    fs_t+=("$(echo "$t1 - $t0" | bc)")
    fs_d+=("$(used "$RUN/store")")
    # The mounted tree must be the source, byte for byte (outside the timing).
    (cd "$SRC" && find . -type f -exec sha256sum {} + | sort -k2) >"$RUN/want"
    (cd "$RUN/mnt" && find . -type f -exec sha256sum {} + | sort -k2) >"$RUN/got"
    cmp -s "$RUN/want" "$RUN/got" || { log "the mounted tree differs from the source"; exit 1; }
    FSPACK_STORE=$RUN/store "$FSPACK" umount "$RUN/mnt"
    rm -rf "$RUN/store"
    sync
    t0=$(now)
    "$PY" "$BENCH/oras_tool.py" pull "$REF" "$RUN/oras" >/dev/null
    t1=$(now)
    or_t+=("$(echo "$t1 - $t0" | bc)")
    or_d+=("$(used "$RUN/oras")")
    rm -rf "$RUN/oras"
    log "run $r: fspack ${fs_t[-1]} s, ${fs_d[-1]} B; oras-py ${or_t[-1]} s, ${or_d[-1]} B"
done

# Read cost of 512-byte blocks: one artifact maps the weights with 4 KiB blocks (raw layers
# only), a second one, over the very same blobs, adds a one-file tar layer, which turns the
# whole image to 512-byte blocks. Cold reads drop the page cache of the blob and of the file.
log "read cost: 4 KiB vs 512-byte blocks over the same blob"
MANIFEST=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://127.0.0.1:$PORT/v2/bench/model/manifests/v1")
TAR=$WORK/extra.tar
(cd "$WORK" && printf 'tar member\n' >member.txt && tar --format=gnu --owner=0 --group=0 --mtime=@0 -cf extra.tar member.txt)
TAR_DIGEST=sha256:$(sha256sum "$TAR" | cut -d' ' -f1)
LOC=$(curl -fsS -X POST -D - -o /dev/null "http://127.0.0.1:$PORT/v2/bench/model/blobs/uploads/" | tr -d '\r' | awk -F': ' 'tolower($1)=="location" {print $2}')
case $LOC in http*) ;; *) LOC=http://127.0.0.1:$PORT$LOC ;; esac
SEP='?'; [[ $LOC == *'?'* ]] && SEP='&'
curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$TAR" "$LOC${SEP}digest=$TAR_DIGEST" >/dev/null
python3 - "$MANIFEST" "$TAR_DIGEST" "$(stat -c %s "$TAR")" >"$WORK/m512.json" <<'EOF'
import json, sys
m = json.loads(sys.argv[1])
m["layers"].append({"mediaType": "application/vnd.cncf.model.doc.v1.tar", "digest": sys.argv[2],
                    "size": int(sys.argv[3]), "annotations": {"org.cncf.model.filepath": "member.txt"}})
print(json.dumps(m))
EOF
curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$WORK/m512.json" \
    "http://127.0.0.1:$PORT/v2/bench/model/manifests/v512" >/dev/null
rm -rf "$RUN"; mkdir -p "$RUN/m4k" "$RUN/m512"
MNTS=("$RUN/m4k" "$RUN/m512")
export FSPACK_STORE=$RUN/store
"$FSPACK" pull "$REF" --mount "$RUN/m4k" -q >/dev/null
"$FSPACK" pull "${REF%:v1}:v512" --mount "$RUN/m512" -q >/dev/null
W=model-00001-of-00004.safetensors
read_cost() { # DIR -> "cold MB/s, warm MB/s, cold 4 KiB random reads/s"
    python3 - "$1/$W" "$RUN/store/blobs/sha256" <<'EOF'
import os, random, sys, time
path, blobs = sys.argv[1], sys.argv[2]
def drop():
    for p in [path] + [os.path.join(blobs, b) for b in os.listdir(blobs)]:
        fd = os.open(p, os.O_RDONLY); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
def seq():
    t = time.perf_counter(); n = 0
    with open(path, "rb", buffering=0) as f:
        while b := f.read(1 << 20): n += len(b)
    return n / (time.perf_counter() - t) / 1e6
drop(); cold = seq(); warm = seq()
drop(); size = os.path.getsize(path); rng = random.Random(1); fd = os.open(path, os.O_RDONLY)
t = time.perf_counter()
for _ in range(3000): os.pread(fd, 4096, rng.randrange(size // 4096) * 4096)
rand = 3000 / (time.perf_counter() - t); os.close(fd)
print(f"{cold:.0f} {warm:.0f} {rand:.0f}")
EOF
}
r4=(); r5=()
for r in $(seq "$RUNS"); do r4+=("$(read_cost "$RUN/m4k")"); r5+=("$(read_cost "$RUN/m512")"); done
"$FSPACK" umount "$RUN/m4k"; "$FSPACK" umount "$RUN/m512"
col() { local i=$1; shift; for x in "$@"; do echo "$x" | cut -d' ' -f"$i"; done | median; }

mib() { echo "scale=1; $1 / 1048576" | bc; }
echo
echo "## ModelPack pull + mount ($(mib "$DATA_BYTES") MiB in 7 raw layers, loopback registry, median of $RUNS)"
echo
echo "| client | what you get | wall s | disk used MiB |"
echo "|---|---|---:|---:|"
echo "| fspack pull --mount | mounted tree (layers verified, metadata image built) | $(printf '%.2f' "$(printf '%s\n' "${fs_t[@]}" | median)") | $(mib "$(printf '%s\n' "${fs_d[@]}" | median)") |"
echo "| oras-py pull | files in a directory (no mount) | $(printf '%.2f' "$(printf '%s\n' "${or_t[@]}" | median)") | $(mib "$(printf '%s\n' "${or_d[@]}" | median)") |"
echo
echo "## Read cost of 512-byte EROFS blocks ($W, $(mib "$(stat -c %s "$SRC/$W")") MiB, median of $RUNS)"
echo
echo "| image block size | cold sequential MB/s | warm sequential MB/s | cold random 4 KiB reads/s |"
echo "|---|---:|---:|---:|"
echo "| 4 KiB (raw layers only) | $(col 1 "${r4[@]}") | $(col 2 "${r4[@]}") | $(col 3 "${r4[@]}") |"
echo "| 512 B (a tar layer present) | $(col 1 "${r5[@]}") | $(col 2 "${r5[@]}") | $(col 3 "${r5[@]}") |"
