# shellcheck shell=bash
# Variables set here are read by bench/lib.sh (SECTION, ROW_*, SKIP_* by name).
# shellcheck disable=SC2034
# Section "check": the metadata walk fspack runs before every mount (issue 12), on the images
# fspack pushes (chunked EROFS with its data blobs as devices; SquashFS for the tree), page cache
# warm as it is right after a download. Peers: fsck.erofs 1.9.3 without --extract (metadata
# only, as here) and unsquashfs -lls (lists every inode, reads no data). The target
# compares the walk with the pull it precedes (section "pull", the same model).
SECTION="Image check before mount (metadata walk, page cache warm)"
SKIP_CHECK=$(unmet fspack)
CHECK_IMAGE=$ROOT/target/release/examples/check_image
if [[ -z $SKIP_CHECK ]] && ! cargo build -q --release -p fspack-image --example check_image \
    --manifest-path "$ROOT/Cargo.toml" >"$WORK/check-build.log" 2>&1; then
    SKIP_CHECK="could not build the check_image example: $(tail -1 "$WORK/check-build.log")"
fi
FSCK_EROFS_UPSTREAM=$(dirname "$MKFS_EROFS_UPSTREAM")/fsck.erofs
CK=$WORK/check
export CHECK_IMAGE FSCK_EROFS_UPSTREAM CK
# check_images DATA_DIR KEY: the images fspack push would make, built once (untimed).
check_images() {
    mkdir -p "$CK"
    "$FSPACK" build "$1" -o "$CK/$2.erofs" --layout chunked --json >"$CK/$2.json" &&
        jq -r '.blobs[]' "$CK/$2.json" >"$CK/$2.devices" &&
        "$FSPACK" build "$1" -o "$CK/$2.sqfs" --format squashfs -q
}
run_check_erofs() { mapfile -t d <"$CK/$KEY.devices"; "$CHECK_IMAGE" "$CK/$KEY.erofs" "${d[@]}" >"$CK/out.json"; }
run_fsck_erofs() {
    mapfile -t d <"$CK/$KEY.devices"
    "$FSCK_EROFS_UPSTREAM" "${d[@]/#/--device=}" "$CK/$KEY.erofs" >/dev/null
}
run_check_sqfs() { "$CHECK_IMAGE" "$CK/$KEY.sqfs" >"$CK/out.json"; }
run_unsquashfs_lls() { unsquashfs -lls "$CK/$KEY.sqfs" >/dev/null; }
export -f run_check_erofs run_fsck_erofs run_check_sqfs run_unsquashfs_lls
prep_check() { :; }
check_walked() { jq -e '.inodes > 0' "$CK/out.json" >/dev/null || { echo "no inodes walked"; return 1; }; }
check_none() { :; }
check_rows() { # check_rows DATA_DIR LABEL KEY
    KEY=$3
    export KEY
    local skip=$SKIP_CHECK
    if [[ -z $skip ]] && ! check_images "$1" "$3" >"$WORK/check-prep.log" 2>&1; then
        skip="setup: $(why "$WORK/check-prep.log")"
    fi
    SKIP_ROW=$skip
    warm "$CK"
    measure "check.$3.erofs" "fspack image check, chunked EROFS + data blobs" "$2" "skip:SKIP_ROW" prep_check run_check_erofs check_walked
    measure "check.$3.fsck" "fsck.erofs ${MKFS_EROFS_UPSTREAM_VERSION:-1.9.3}, same image" "$2" "skip:SKIP_ROW exe:$FSCK_EROFS_UPSTREAM" prep_check run_fsck_erofs check_none \
        "metadata only (no --extract)"
    measure "check.$3.sqfs" "fspack image check, SquashFS zstd" "$2" "skip:SKIP_ROW" prep_check run_check_sqfs check_walked
    measure "check.$3.unsquashfs" "unsquashfs -lls, same image" "$2" "skip:SKIP_ROW cmd:unsquashfs" prep_check run_unsquashfs_lls check_none \
        "lists every inode"
    rm -rf "$CK"
}
check_rows "$MODEL" "$MODEL_LABEL" model
check_rows "$TREE" "$TREE_LABEL" tree

target ratio "image check, model: walk / pull --mount wall time, loopback (#12)" check.model.erofs pull.fspack "<=" 0.05
target time "image check, tree: walk of the chunked EROFS image (#12)" check.tree.erofs "<=" 0.5
summary "image check before mount, $MODEL_LABEL" check.model.erofs check.model.fsck
summary "image check before mount, $TREE_LABEL" check.tree.erofs check.tree.fsck check.tree.sqfs check.tree.unsquashfs
