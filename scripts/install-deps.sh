#!/usr/bin/env bash
# Installs the system packages fspack's tests and demo use: the real registry (CNCF distribution
# from Debian), the independent image validators, skopeo as a second client, and the shells the
# completion tests run in. Idempotent; needs root.
set -euo pipefail
pkgs=(docker-registry erofs-utils squashfs-tools skopeo attr apache2-utils bash zsh fish shellcheck groff man-db time curl bc kmod jq openssl)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian package starts a registry service on :5000 on some machines; tests start their own.
if command -v systemctl >/dev/null 2>&1; then systemctl stop docker-registry 2>/dev/null || true; fi
# The ModelPack tests check configs against model-spec's rules with python-jsonschema, in whatever
# python3 is first on PATH (a pyenv python does not see Debian's python3-jsonschema).
python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install -q jsonschema
