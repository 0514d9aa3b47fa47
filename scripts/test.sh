#!/usr/bin/env bash
# Runs every test. Installs the packages the tests use when run as root (idempotent). Privileged
# tests (named privileged_*) mount images and attach loop devices; they run as root on a kernel
# with erofs, squashfs and loop, and skip with a message otherwise. Tests start their own
# registries (docker-registry) on 127.0.0.1. Extra arguments go to `cargo test` (a name filter).
#
# FSPACK_REQUIRE_PRIVILEGED=1 (set by .ci/run) turns every skip into a failure. At the end the
# script prints how many privileged tests ran (each one that gets past its checks writes its name
# to $FSPACK_PRIVILEGED_LOG), and fails when skips are forbidden but none ran.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) == 0 ]]; then
    scripts/install-deps.sh
else
    echo "not root: installing nothing; privileged tests will skip" >&2
fi
if [[ $(id -u) == 0 ]]; then
    # Filesystems built as modules load on the first mount anyway; loading them here keeps a
    # missing module from looking like a skip later.
    for m in loop erofs squashfs overlay fuse; do
        modprobe "$m" 2>/dev/null || echo "note: modprobe $m failed" >&2
    done
fi
FSPACK_PRIVILEGED_LOG=$(mktemp)
export FSPACK_PRIVILEGED_LOG
trap 'rm -f "$FSPACK_PRIVILEGED_LOG" "$FSPACK_PRIVILEGED_LOG.all"' EXIT
# Property tests: bounded case counts keep CI time bounded.
export PROPTEST_CASES=${PROPTEST_CASES:-256}
status=0
cargo test --workspace --all-targets --no-fail-fast "$@" || status=$?
# Thread names carry a module path (mod::privileged_x); both sides count bare names, and only
# names of privileged tests (helpers that log also run in other tests).
grep -rhoE --include='*.rs' 'fn privileged_[a-z0-9_]+' core tests cli | sed 's/^fn //' | sort -u >"$FSPACK_PRIVILEGED_LOG.all"
ran=$(sed 's/.*:://' "$FSPACK_PRIVILEGED_LOG" | sort -u | comm -12 - "$FSPACK_PRIVILEGED_LOG.all" | grep -c . || true)
total=$(wc -l <"$FSPACK_PRIVILEGED_LOG.all")
echo "privileged tests that ran: $ran of $total"
if [[ ${FSPACK_REQUIRE_PRIVILEGED:-} == 1 && $ran == 0 && $# == 0 ]]; then
    echo "error: FSPACK_REQUIRE_PRIVILEGED=1 but no privileged test ran" >&2
    status=1
fi
exit "$status"
