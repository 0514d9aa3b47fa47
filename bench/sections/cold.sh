# shellcheck shell=bash
# Variables set here are read by bench/lib.sh (SECTION, ROW_*, SKIP_* by name).
# shellcheck disable=SC2034
# Section "cold": reads of every file (find -type f -exec cat) through each mount mode, the page
# cache dropped before every run (root).
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
        "$MKFS_EROFS_PIPE" "$img" "$src" >/dev/null 2>&1 || { record "cold.$key" "cold read" "$label" "n/a (no image could be built)"; return 0; }
    fi
    prep_mount_file() { mount -t erofs -o ro "$img" "$CMNT"; }
    if prep_mount_file 2>/dev/null && check_mounted_tree "$CMNT" "$src" >&2; then
        measure "cold.$key.kfile" "kernel mount, file-backed ($made_by image)" "$label" root prep_cold run_cold_read check_cold
    else
        record "cold.$key.kfile" "kernel mount, file-backed" "$label" "n/a (file-backed mount failed)"
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
        elif ! "$FSPACK" --store "$WORK/setup-store" push "$src" "$CHOST/bench/cold-$key:v1" --jobs "$JOBS" >"$C/setup.log" 2>&1; then reason=$(why "$C/setup.log")
        elif ! "$FSPACK" --store "$store" pull "$CHOST/bench/cold-$key:v1" --mount "$CMNT" --mount-mode "$mode" >"$C/setup.log" 2>&1; then reason=$(why "$C/setup.log")
        elif ! check_mounted_tree "$CMNT" "$src" >"$C/setup.log" 2>&1; then reason="FAILED ($(tail -1 "$C/setup.log"))"
        fi
        if [[ -n $reason ]]; then
            [[ $reason == n/a* || $reason == FAILED* ]] || reason="n/a ($reason)"
            record "cold.$key.fspack-$mode" "fspack pull --mount-mode $mode" "$label" "$reason [setup]"
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
    record cold.model "cold reads" "$MODEL_LABEL" "n/a (needs root)"
fi