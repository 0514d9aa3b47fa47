# shellcheck shell=bash
# Variables set here are read by bench/lib.sh (SECTION, ROW_*, SKIP_* by name).
# shellcheck disable=SC2034
# Section "build": `fspack build` (EROFS, uncompressed) against mkfs.erofs on the model and the
# tree, page cache warm. Sourced by bench/run.sh after bench/lib.sh.
#
# Equal durability (issue 14): fspack fsyncs its output before renaming it into place, the
# mkfs.erofs releases do not, so each peer row runs `sync FILE` (fsync(2) of the image) after
# mkfs.erofs; the upstream 1.9.3 row without it shows what the fsync costs the peer.
SECTION="Build (EROFS, page cache warm)"
run_fspack_single() { "$FSPACK" build "$SRC" -o "$B/img"; }
run_fspack_chunked() { "$FSPACK" build "$SRC" -o "$B/img" --layout chunked; }
run_mkfs_upstream_sync() { "$MKFS_EROFS_UPSTREAM" "$B/img" "$SRC" >/dev/null && sync "$B/img"; }
run_mkfs_upstream() { "$MKFS_EROFS_UPSTREAM" "$B/img" "$SRC" >/dev/null; }
run_mkfs_debian_sync() { mkfs.erofs "$B/img" "$SRC" >/dev/null && sync "$B/img"; }
export -f run_fspack_single run_fspack_chunked run_mkfs_upstream_sync run_mkfs_upstream run_mkfs_debian_sync

build_rows() { # build_rows DATA_DIR LABEL KEY
    SRC=$1
    export SRC
    log "warming the page cache with $1"
    warm "$1"
    # fspack and the 1.9.3 rows take turns run by run (as the push rows do): the target is a
    # ratio, and on this machine the tree's times drift by a tenth within a section.
    measure_alternating \
        "build.$3.fspack" "fspack build (EROFS single, fsynced)" "$2" fspack prep_build run_fspack_single check_erofs_single \
        -- "build.$3.mkfs" "mkfs.erofs ${MKFS_EROFS_UPSTREAM_VERSION:-1.9.3} + fsync" "$2" "exe:$MKFS_EROFS_UPSTREAM" prep_build run_mkfs_upstream_sync check_erofs_single \
        "upstream erofs-utils; runs alternate with fspack's" \
        -- "build.$3.mkfs-nosync" "mkfs.erofs ${MKFS_EROFS_UPSTREAM_VERSION:-1.9.3}, no fsync" "$2" "exe:$MKFS_EROFS_UPSTREAM" prep_build run_mkfs_upstream check_erofs_single \
        "output left in the page cache"
    measure "build.$3.mkfs-debian" "mkfs.erofs $MKFS_EROFS_VERSION + fsync" "$2" cmd:mkfs.erofs prep_build run_mkfs_debian_sync check_erofs_single \
        "Debian's package"
    measure "build.$3.chunked" "fspack build --layout chunked" "$2" fspack prep_build run_fspack_chunked check_erofs_chunked
}
build_rows "$MODEL" "$MODEL_LABEL" model
build_rows "$TREE" "$TREE_LABEL" tree

target ratio "build, model: fspack / mkfs.erofs ${MKFS_EROFS_UPSTREAM_VERSION:-1.9.3} + fsync, wall time (#14)" build.model.fspack build.model.mkfs "<=" 1.0
target ratio "build, tree: fspack / mkfs.erofs ${MKFS_EROFS_UPSTREAM_VERSION:-1.9.3} + fsync, wall time (#14)" build.tree.fspack build.tree.mkfs "<=" 1.0
target rss_vs "build, model: fspack peak RSS ≤ mkfs.erofs's (#14)" build.model.fspack build.model.mkfs
target rss_vs "build, tree: fspack peak RSS ≤ mkfs.erofs's (#14)" build.tree.fspack build.tree.mkfs
summary "build EROFS, $MODEL_LABEL" build.model.fspack build.model.mkfs build.model.mkfs-debian
summary "build EROFS, $TREE_LABEL" build.tree.fspack build.tree.mkfs build.tree.mkfs-debian
