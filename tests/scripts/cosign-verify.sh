#!/usr/bin/env bash
# Verifies a cosign key-based signature of DIGEST in REGISTRY/REPO with openssl, curl and jq
# only (cosign specs/SIGNATURE_SPEC.md): some simple-signing layer of the sha256-<hex>.sig
# manifest must carry a base64 DER ECDSA signature that openssl verifies over the payload
# bytes with PUB, and the payload must name DIGEST and REGISTRY/REPO. Exit 0 when one does.
#
# Usage: cosign-verify.sh REGISTRY REPO DIGEST PUB.pem
set -euo pipefail
reg=$1 repo=$2 digest=$3 pub=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$reg/v2/$repo/manifests/${digest/:/-}.sig" >"$work/manifest"
n=$(jq '.layers | length' "$work/manifest")
for ((i = 0; i < n; i++)); do
    layer=$(jq -c ".layers[$i]" "$work/manifest")
    [[ $(jq -r .mediaType <<<"$layer") == application/vnd.dev.cosign.simplesigning.v1+json ]] || continue
    curl -fsS "http://$reg/v2/$repo/blobs/$(jq -r .digest <<<"$layer")" >"$work/payload"
    jq -r '.annotations["dev.cosignproject.cosign/signature"]' <<<"$layer" | base64 -d >"$work/sig.der"
    if openssl dgst -sha256 -verify "$pub" -signature "$work/sig.der" "$work/payload" >/dev/null &&
        jq -e --arg d "$digest" --arg id "$reg/$repo" \
            '.critical.image["docker-manifest-digest"] == $d and
             .critical.identity["docker-reference"] == $id and
             .critical.type == "cosign container image signature"' "$work/payload" >/dev/null; then
        echo "verified: layer $i of ${digest/:/-}.sig"
        exit 0
    fi
done
echo "no signature of $digest in $reg/$repo verifies with $pub" >&2
exit 1
