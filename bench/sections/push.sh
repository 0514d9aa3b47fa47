# shellcheck shell=bash
# Variables set here are read by bench/lib.sh (SECTION, ROW_*, SKIP_* by name).
# shellcheck disable=SC2034
# Section "push": `fspack push DIR` (build included) on loopback against mkfs.erofs + oras-py and
# against the limit (curl PUTs of the same bytes, digests computed beforehand); then re-push
# after editing one small file, with the bytes really sent counted by a pass-through proxy.
SECTION="Push on loopback (registry: Debian docker-registry $(dpkg-query -W -f='${Version}' docker-registry 2>/dev/null | sed 's/+.*//'))"
SKIP_REG=$(unmet "cmd:docker-registry cmd:curl")
if [[ -z $SKIP_REG ]]; then
    registry_start push
    PUSH_PORT=$REG_PORT
    SRC=$MODEL HOSTPORT=127.0.0.1:$PUSH_PORT REPO=bench/model PUSH_JOBS=$JOBS
    export SRC HOSTPORT REPO PUSH_JOBS
    warm "$MODEL"
    prep_push() { registry_reset push "$PUSH_PORT"; rm -rf "$WORK/push-store"; PUSH_STORE=$WORK/push-store; export PUSH_STORE; rm -rf "$WORK/oras-img"; sync; REF=$HOSTPORT/$REPO:run$RUN_INDEX; export REF; }
    # The registry shares the two cores with the pusher: its CPU seconds go in each row's note.
    check_push_cpu() { check_push_ref && ROW_NOTE="registry CPU $(registry_cpu push) s (last run)"; }
    check_put_cpu() { check_curl_put && ROW_NOTE="registry CPU $(registry_cpu push) s (last run)"; }
    SKIP_PARTS=
    make_parts "$MODEL" model || SKIP_PARTS="mkfs.erofs failed"
    # The same push with every digest already in fspack's digest cache (an untimed push into
    # that store first) sends the same bytes without hashing them: fspack's upload path alone,
    # and what the hashing costs when it shares the two cores with the registry.
    prep_push_cached() {
        prep_push
        PUSH_STORE=$WORK/push-cached-store; export PUSH_STORE
        if ((RUN_INDEX == 1)); then
            rm -rf "$PUSH_STORE"
            "$FSPACK" --store "$PUSH_STORE" push "$SRC" "$HOSTPORT/$REPO:warm" --jobs "$PUSH_JOBS" --quiet >/dev/null
            registry_reset push "$PUSH_PORT"; sync
        fi
    }
    # The rows take turns, run by run: the push target is a ratio, and this machine's upload rate
    # drifts (the limit's own runs spread 6.7-9.2 s in results-20261201-1424).
    measure_alternating \
        push.fspack "fspack push DIR --jobs $JOBS (build included)" "$MODEL_LABEL" "fspack skip:SKIP_REG" \
        prep_push run_fspack_push check_push_cpu \
        -- push.cached "fspack push DIR, every digest from its digest cache (upload alone)" "$MODEL_LABEL" "fspack skip:SKIP_REG" \
        prep_push_cached run_fspack_push check_push_cpu "same bytes sent; no hashing" \
        -- push.limit "limit: curl PUT, same image as 4 parallel blobs" "$MODEL_LABEL" "skip:SKIP_REG skip:SKIP_PARTS" \
        prep_push run_curl_put check_put_cpu "digests computed beforehand, untimed; runs alternate with fspack's"
    measure push.oras "mkfs.erofs + oras push (oras-py $ORAS_VERSION)" \
        "$MODEL_LABEL" "cmd:mkfs.erofs oras skip:SKIP_REG" prep_push run_oras_pipeline check_push_ref

    # Re-push after editing one small file: bytes really sent, counted by an uncapped proxy.
    proxy_start count "$PUSH_PORT" 0
    COUNT_PORT=$PROXY_PORT
    EDIT=$WORK/edit/model
    prep_repush_base() {
        registry_reset push "$PUSH_PORT"
        rm -rf "$WORK/edit"; mkdir -p "$WORK/edit"; cp -al "$MODEL" "$EDIT"
        # Linking moved every file's ctime; fspack's digest cache records only files whose
        # ctime is older than 2 s (core/engine/src/digest_cache.rs), as an untouched tree's is.
        sleep 2.2
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
        ROW_SIZE="sent $(human "$up") = ${pct}%" ROW_SENT_PCT=$pct
        ROW_NOTE="registry storage grew $(human "$st")"
        [[ ${1:-} == fspack ]] && ROW_NOTE+="$(json_sent "$WORK/push.json" | sed 's/^/; --json /' | tr '\n' ' ')"
        ROW_BYTES=$up
    }
    prep_repush_fspack() {
        PUSH_STORE=$WORK/repush-store
        export PUSH_STORE
        if ((RUN_INDEX == 1)); then
            rm -rf "$PUSH_STORE"
            prep_repush_base "\"$FSPACK\" --store \"$PUSH_STORE\" push \"$EDIT\" \"\$REF\" --jobs $JOBS"
        fi
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
    rm -rf "$WORK/edit" "$WORK/reg-push" "$WORK/push-store" "$WORK/push-cached-store" "$WORK/repush-store"
else
    for k in fspack cached oras limit; do record "push.$k" "push ($k)" "$MODEL_LABEL" "n/a ($SKIP_REG)"; done
fi

target throughput "push, loopback: fspack throughput / limit throughput (#4)" push.fspack push.limit ">=" 0.85
target rss "push: fspack peak RSS (#4)" push.fspack 128
target sent "re-push after a small edit: bytes sent (#4)" push.repush.fspack 1
target ratio "re-push after a small edit: time / first push (#14)" push.repush.fspack push.fspack "<=" 0.1
summary "push $MODEL_LABEL (build included)" push.fspack push.limit push.oras
summary "push $MODEL_LABEL, digests cached (upload alone)" push.cached push.limit
summary "re-push after editing one small file" push.repush.fspack push.repush.oras