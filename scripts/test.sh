#!/usr/bin/env bash
# Runs every test. Installs the packages the tests use when run as root (idempotent). Privileged
# tests (named privileged_*) mount images and attach loop devices; they run as root on a kernel
# with erofs, squashfs and loop, and skip with a message otherwise. Tests start their own
# registries (docker-registry) on 127.0.0.1. Extra arguments go to `cargo test` (a name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) == 0 ]]; then
    scripts/install-deps.sh
else
    echo "not root: installing nothing; privileged tests will skip" >&2
fi
cargo test --workspace --all-targets --no-fail-fast "$@"
