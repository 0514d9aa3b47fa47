# shellcheck shell=bash
# Variables set here are read by bench/lib.sh (SECTION, ROW_*, SKIP_* by name).
# shellcheck disable=SC2034
# Section "modelpack" (issue 15): the model pushed as a ModelPack artifact (`push --modelpack`,
# one raw layer per file), then, into a fresh store each run, `fspack pull --mount` (the layer
# blobs are the files, nothing unpacked) and `mount --lazy` until config.json is read, against
# oras-py pulling the same layers to files, with the disk each leaves behind (Size column).
# Then the read cost of the 512-byte EROFS blocks that mapping tar members needs: one weight
# file read cold through a mount with 4 KiB blocks (raw layers only) and through one with
# 512-byte blocks (a second manifest over the same blobs plus a one-file tar layer).
SECTION="ModelPack artifacts (loopback, fresh store each run; Size is the disk used)"
SKIP_MP=$(unmet "root fspack cmd:docker-registry cmd:curl")
[[ -z $SKIP_MP && ! -e /dev/fuse ]] && SKIP_MP="no /dev/fuse"
if [[ -z $SKIP_MP ]]; then
    registry_start modelpack
    MREF=127.0.0.1:$REG_PORT/bench/model:v1
    MMNT=$WORK/mp-mnt MSTORE=$WORK/mp-store MDL=$WORK/mp-dl
    export MREF MMNT MSTORE MDL
    if ! "$FSPACK" --store "$WORK/mp-push-store" push "$MODEL" "$MREF" --modelpack -q >"$WORK/mp-setup.log" 2>&1; then
        SKIP_MP="setup: $(why "$WORK/mp-setup.log")"
    fi
    rm -rf "$WORK/mp-push-store"
    mp_umount() {
        if mountpoint -q "$1"; then "$FSPACK" --store "$MSTORE" umount "$1" || umount -l "$1"; fi
    }
    prep_mp() { mp_umount "$MMNT"; rm -rf "$MSTORE" "$MDL"; mkdir -p "$MSTORE" "$MMNT"; sync; }
    run_mp_pull() { "$FSPACK" --store "$MSTORE" pull "$MREF" --mount "$MMNT" --jobs "$JOBS" >/dev/null; }
    run_mp_lazy() {
        "$FSPACK" --store "$MSTORE" mount "$MREF" "$MMNT" --lazy --jobs "$JOBS" >/dev/null
        cat "$MMNT/config.json" >/dev/null
    }
    run_mp_oras() { "$PY" "$BENCH/oras_tool.py" pull "$MREF" "$MDL" >/dev/null; }
    export -f run_mp_pull run_mp_lazy run_mp_oras
    check_mp_mounted() {
        local rc=0
        check_mounted_tree "$MMNT" "$MODEL" || rc=1
        ROW_BYTES=$MODEL_BYTES ROW_SIZE=$(size_of "$MSTORE")
        mp_umount "$MMNT" || rc=1
        return "$rc"
    }
    check_mp_lazy() { mp_umount "$MMNT"; }
    check_mp_files() {
        local got
        got=$(find "$MDL" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s }')
        [[ $got == "$MODEL_BYTES" ]] || { echo "oras-py wrote $got bytes, the model has $MODEL_BYTES"; return 1; }
        ROW_BYTES=$MODEL_BYTES ROW_SIZE=$(size_of "$MDL")
    }
    measure modelpack.pull "fspack pull --mount --jobs $JOBS (ModelPack)" "$MODEL_LABEL" "skip:SKIP_MP" prep_mp run_mp_pull check_mp_mounted \
        "layers verified, metadata image built and mounted"
    measure modelpack.lazy "fspack mount --lazy, then read config.json (ModelPack)" "$MODEL_LABEL" "skip:SKIP_MP" prep_mp run_mp_lazy check_mp_lazy
    measure modelpack.oras "oras-py pull of the same layers to files" "$MODEL_LABEL" "oras skip:SKIP_MP" prep_mp run_mp_oras check_mp_files \
        "files in a directory, nothing mounted"

    # 512-byte blocks: the same manifest plus a one-file tar layer, pushed with curl; both
    # artifacts are then mounted from one store (so over the same weight blobs).
    mp512_setup() {
        local base manifest tar_digest loc sep
        base=http://127.0.0.1:$REG_PORT/v2/bench/model
        manifest=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$base/manifests/v1") || return 1
        (cd "$WORK" && printf 'tar member\n' >member.txt &&
            tar --format=gnu --owner=0 --group=0 --mtime=@0 -cf extra.tar member.txt) || return 1
        tar_digest=sha256:$(sha256sum "$WORK/extra.tar" | cut -d' ' -f1)
        loc=$(curl -fsS -X POST -D - -o /dev/null "$base/blobs/uploads/" | tr -d '\r' |
            awk -F': ' 'tolower($1) == "location" { print $2 }')
        [[ -n $loc ]] || return 1
        [[ $loc == http* ]] || loc=http://127.0.0.1:$REG_PORT$loc
        sep='?' && [[ $loc == *'?'* ]] && sep='&'
        curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$WORK/extra.tar" \
            "$loc${sep}digest=$tar_digest" >/dev/null || return 1
        python3 - "$manifest" "$tar_digest" "$(stat -c %s "$WORK/extra.tar")" >"$WORK/m512.json" <<'EOF' || return 1
import json, sys
m = json.loads(sys.argv[1])
m["layers"].append({"mediaType": "application/vnd.cncf.model.doc.v1.tar", "digest": sys.argv[2],
                    "size": int(sys.argv[3]), "annotations": {"org.cncf.model.filepath": "member.txt"}})
print(json.dumps(m))
EOF
        curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
            --data-binary "@$WORK/m512.json" "$base/manifests/v512" >/dev/null || return 1
        prep_mp && mkdir -p "$WORK/mp-m512" &&
            "$FSPACK" --store "$MSTORE" pull "$MREF" --mount "$MMNT" -q >/dev/null &&
            "$FSPACK" --store "$MSTORE" pull "${MREF%:v1}:v512" --mount "$WORK/mp-m512" -q >/dev/null
    }
    SKIP_MP512=$SKIP_MP
    if [[ -z $SKIP_MP512 ]] && ! mp512_setup >"$WORK/mp-setup.log" 2>&1; then
        SKIP_MP512="setup: $(why "$WORK/mp-setup.log")"
    fi
    MP_FILE=$(cd "$MODEL" && find . -name '*.safetensors' | sort | head -1)
    MP_FILE_BYTES=$(stat -c %s "$MODEL/$MP_FILE" 2>/dev/null || echo 0)
    export MP_FILE
    prep_mp_cold() { drop_caches; }
    run_mp_read4k() { cat "$MMNT/$MP_FILE" >/dev/null; }
    run_mp_read512() { cat "$WORK/mp-m512/$MP_FILE" >/dev/null; }
    export -f run_mp_read4k run_mp_read512
    check_mp_read() { ROW_BYTES=$MP_FILE_BYTES; }
    measure modelpack.read.4k "cold sequential read of one weight file, 4 KiB EROFS blocks" "$(human "$MP_FILE_BYTES") file" "skip:SKIP_MP512" prep_mp_cold run_mp_read4k check_mp_read \
        "raw layers only"
    measure modelpack.read.512 "the same file, 512-byte EROFS blocks" "$(human "$MP_FILE_BYTES") file" "skip:SKIP_MP512" prep_mp_cold run_mp_read512 check_mp_read \
        "a tar layer present: same blob, same chunks"
    mp_umount "$WORK/mp-m512"
    mp_umount "$MMNT"
    registry_stop modelpack
    rm -rf "$WORK/reg-modelpack" "$MSTORE" "$MDL"
else
    record modelpack.pull "ModelPack pull" "$MODEL_LABEL" "n/a ($SKIP_MP)"
fi

target size "modelpack: disk used, fspack pull --mount vs oras-py's files (#15: each weight byte stored once)" modelpack.pull modelpack.oras 1
target time "modelpack: mount --lazy until config.json is read, loopback (#15, #10)" modelpack.lazy "<=" 1.0
target ratio "modelpack: cold read with 512-byte blocks / 4 KiB blocks (#15: what tar mapping costs)" modelpack.read.512 modelpack.read.4k "<=" 1.1
summary "ModelPack pull + mount, $MODEL_LABEL" modelpack.pull modelpack.oras
summary "ModelPack lazy mount until config.json, $MODEL_LABEL" modelpack.lazy modelpack.pull
