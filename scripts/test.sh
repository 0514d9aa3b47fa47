#!/usr/bin/env bash
# Runs every test. Privileged tests (named privileged_*) mount images and attach loop devices;
# they run when this is root on a kernel with erofs, squashfs and loop, and skip with a message
# otherwise. Tests start their own registries (docker-registry) on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets "$@"
