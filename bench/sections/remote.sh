# shellcheck shell=bash
# Variables set here are read by bench/lib.sh (SECTION, ROW_*, SKIP_* by name).
# shellcheck disable=SC2034
# Section "remote": the same push and pull through bench/rate-proxy.py, which caps every TCP
# connection at $RATE bytes/s (a bandwidth-delay-limited link, where parallel connections add
# up): --jobs 1 against --jobs $JOBS against the peers and the limit, on a smaller model.
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
    prep_rpush() { registry_reset remote "$REMOTE_PORT"; rm -rf "$WORK/push-store"; PUSH_STORE=$WORK/push-store; export PUSH_STORE; rm -rf "$WORK/oras-img"; sync; REF=$HOSTPORT/$REPO:run$RUN_INDEX; export REF; }
    prep_rpush_j1() { prep_rpush; PUSH_JOBS=1; export PUSH_JOBS; }
    prep_rpush_j4() { prep_rpush; PUSH_JOBS=$JOBS; export PUSH_JOBS; }
    measure remote.push.j1 "fspack push --jobs 1" "$RMODEL_LABEL" "fspack" prep_rpush_j1 run_fspack_push check_push_ref
    measure remote.push.j4 "fspack push --jobs $JOBS" "$RMODEL_LABEL" "fspack" prep_rpush_j4 run_fspack_push check_push_ref
    measure remote.push.oras "mkfs.erofs + oras push" "$RMODEL_LABEL" "cmd:mkfs.erofs oras" prep_rpush run_oras_pipeline check_push_ref
    SKIP_PARTS=
    make_parts "$RMODEL" remote || SKIP_PARTS="mkfs.erofs failed"
    measure remote.push.limit "limit: curl PUT as 4 parallel blobs" "$RMODEL_LABEL" "skip:SKIP_PARTS" prep_rpush run_curl_put check_curl_put
    # The link's own speed-up bounds fspack's: every stream shares the 2 cores with the proxy
    # and the registry, so 4 streams each get less than 1 does.
    measure remote.push.limit_j1 "limit: curl PUT of the same 4 blobs, one at a time" "$RMODEL_LABEL" "skip:SKIP_PARTS" prep_rpush run_curl_put_serial check_curl_put

    # Pull rows: push once straight to the registry (untimed), then pull through the proxy.
    registry_reset remote "$REMOTE_PORT"
    SKIP_RFSPACK='' SKIP_RORAS=''
    if [[ -z $(unmet fspack) ]] && "$FSPACK" --store "$WORK/setup-store" push "$RMODEL" "$DIRECT/$REPO:fspack" --jobs "$JOBS" >"$WORK/rsetup.log" 2>&1; then :; else
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
    record remote.push.j1 "remote profile" "$RMODEL_LABEL" "n/a ($SKIP_REG)"
fi

target ratio "push, capped: fspack --jobs $JOBS / oras pipeline wall time (#4)" remote.push.j4 remote.push.oras "<=" 0.5
target ratio "push, capped: speed-up --jobs $JOBS over --jobs 1 (#4)" remote.push.j1 remote.push.j4 ">=" 3.5
target ceiling "push, capped: the link's own speed-up, curl one blob at a time / 4 at a time (bounds the row above)" remote.push.limit_j1 remote.push.limit
target ratio "pull, capped: fspack --jobs $JOBS / oras pull wall time (#5)" remote.pull.j4 remote.pull.oras "<=" 0.5
target ratio "pull, capped: speed-up --jobs $JOBS over --jobs 1 (#5)" remote.pull.j1 remote.pull.j4 ">=" 3.5
summary "push, each TCP connection capped at $RATE_MB MB/s, $RMODEL_LABEL" remote.push.j4 remote.push.j1 remote.push.limit remote.push.limit_j1 remote.push.oras
summary "pull, each TCP connection capped at $RATE_MB MB/s, $RMODEL_LABEL" remote.pull.j4 remote.pull.j1 remote.pull.limit remote.pull.oras
