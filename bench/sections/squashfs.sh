# shellcheck shell=bash
# Variables set here are read by bench/lib.sh (SECTION, ROW_*, SKIP_* by name).
# shellcheck disable=SC2034
# Section "squashfs": `fspack build --format squashfs` against mksquashfs at the same codec, level
# and block size, page cache warm. mksquashfs does not fsync its output and fspack does, so the
# peer runs `sync FILE` after it (equal durability, issue 14).
SECTION="Build (SquashFS, zstd, page cache warm)"
run_fspack_sqfs() {
    "$FSPACK" build "$SRC" -o "$B/img" --format squashfs --compression zstd \
        --level "$SQFS_LEVEL" --block-size "$SQFS_BLOCK"
}
run_mksquashfs() {
    mksquashfs "$SRC" "$B/img" -comp zstd -Xcompression-level "$SQFS_LEVEL" -b "$SQFS_BLOCK" \
        -processors 2 -noappend -no-progress >/dev/null && sync "$B/img"
}
export -f run_fspack_sqfs run_mksquashfs
sqfs_rows() { # sqfs_rows DATA_DIR LABEL KEY
    SRC=$1
    export SRC
    warm "$1"
    measure "sqfs.$3.fspack" "fspack build --format squashfs (zstd $SQFS_LEVEL, $SQFS_BLOCK, fsynced)" "$2" fspack prep_build run_fspack_sqfs check_sqfs
    measure "sqfs.$3.mksquashfs" "mksquashfs $MKSQUASHFS_VERSION -comp zstd -processors 2 + fsync" "$2" cmd:mksquashfs prep_build run_mksquashfs check_sqfs \
        "level $SQFS_LEVEL, block $SQFS_BLOCK"
}
sqfs_rows "$MODEL" "$MODEL_LABEL" model
sqfs_rows "$TREE" "$TREE_LABEL" tree

target ratio "squashfs, model: fspack / mksquashfs wall time (#3, #14)" sqfs.model.fspack sqfs.model.mksquashfs "<=" 1.0
target ratio "squashfs, tree: fspack / mksquashfs wall time (#3, #14)" sqfs.tree.fspack sqfs.tree.mksquashfs "<=" 1.0
target size "squashfs, model: fspack image size vs mksquashfs (#3)" sqfs.model.fspack sqfs.model.mksquashfs 2
target size "squashfs, tree: fspack image size vs mksquashfs (#3)" sqfs.tree.fspack sqfs.tree.mksquashfs 2
target rss "squashfs, model: fspack peak RSS (#3)" sqfs.model.fspack 128
summary "build SquashFS zstd $SQFS_LEVEL, $MODEL_LABEL" sqfs.model.fspack sqfs.model.mksquashfs
summary "build SquashFS zstd $SQFS_LEVEL, $TREE_LABEL" sqfs.tree.fspack sqfs.tree.mksquashfs
