# shellcheck shell=bash
# Variables set here are read by bench/lib.sh (SECTION, ROW_*, SKIP_* by name).
# shellcheck disable=SC2034
# Section "pull": `fspack pull --mount` into a fresh store (sha256 verified, fsynced) on loopback
# against oras-py (one EROFS image + mount; tar+gzip + tar -x) and the limit (curl GETs to files).
SECTION="Pull on loopback (to a mounted or extracted tree, fresh store each run)"
SKIP_REG=$(unmet "cmd:docker-registry cmd:curl")
if [[ -z $SKIP_REG ]]; then
    registry_start pull
    HOSTPORT=127.0.0.1:$REG_PORT REPO=bench/pull SRC=$MODEL
    export HOSTPORT REPO SRC
    warm "$MODEL"
    SKIP_PFSPACK='' SKIP_PORAS='' SKIP_PTGZ=''
    if [[ -n $(unmet fspack) ]] || ! "$FSPACK" --store "$WORK/setup-store" push "$MODEL" "$HOSTPORT/$REPO:fspack" --jobs "$JOBS" >"$WORK/psetup.log" 2>&1; then
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
    # The same GETs with fspack's durability (every byte on disk before the command returns):
    # on this machine's virtio disk that, not the network or the hashing, sets the pace (#9).
    run_curl_get_fsync() { run_curl_get && sync "$DL"/*; }
    export -f run_curl_get_fsync
    measure pull.limit_fsync "limit, equal durability: the same curl GETs, then fsync of each file" "$MODEL_LABEL" "skip:SKIP_PLIMIT" prep_plimit run_curl_get_fsync check_curl_get "coreutils sync FILE...: fsync per file"
    # The disk alone: the model's byte count written from memory and fsynced, no network and no
    # hashing. A pull that must have every byte on disk before it returns cannot beat it (#9).
    DISK_FILE=$WORK/disk-floor DISK_COUNT=$(( (MODEL_BYTES + 4194303) / 4194304 ))
    export DISK_FILE DISK_COUNT
    prep_disk() { rm -f "$DISK_FILE"; sync; }
    run_disk() { dd if=/dev/zero of="$DISK_FILE" bs=4M count="$DISK_COUNT" conv=fsync status=none; }
    check_disk() { ROW_BYTES=$(stat -c %s "$DISK_FILE"); rm -f "$DISK_FILE"; }
    export -f run_disk
    measure pull.disk "disk alone: as many bytes written by dd bs=4M, then fsync" "$MODEL_LABEL" "" prep_disk run_disk check_disk "no network, no hashing: the floor of a durable pull on this disk"
    umount_quiet "$MNT"
    registry_stop pull
    rm -rf "$WORK/reg-pull" "$STORE" "$DL" "$WORK/x"
else
    record pull.fspack "pull" "$MODEL_LABEL" "n/a ($SKIP_REG)"
fi

target ratio "pull, loopback: fspack / limit wall time (#5)" pull.fspack pull.limit "<=" 1.2
target ratio "pull, loopback: fspack / oras pull wall time (#5)" pull.fspack pull.oras "<=" 0.7
target rss "pull: fspack peak RSS (#5)" pull.fspack 128
summary "pull $MODEL_LABEL and mount (verified, fsynced)" pull.fspack pull.limit pull.limit_fsync pull.disk pull.oras pull.targz
