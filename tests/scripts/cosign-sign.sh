#!/usr/bin/env bash
# Signs a manifest digest the way `cosign sign --key` stores a signature (cosign
# specs/SIGNATURE_SPEC.md: simple-signing payload blob, ECDSA P-256 DER signature in base64 in
# the layer annotation, manifest under the sha256-<hex>.sig tag), using only openssl, curl and
# jq: an implementation independent of fspack, for its tests. Plain HTTP, no auth.
#
# Usage: cosign-sign.sh REGISTRY REPO DIGEST KEY.pem [IDENTITY]
#   IDENTITY  docker-reference written into the payload [default: REGISTRY/REPO]
#   TAMPER=1  upload a payload that differs from the one that was signed
set -euo pipefail
reg=$1 repo=$2 digest=$3 key=$4 identity=${5:-$1/$2}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

jq -cn --arg id "$identity" --arg d "$digest" \
    '{critical: {identity: {"docker-reference": $id}, image: {"docker-manifest-digest": $d},
      type: "cosign container image signature"}, optional: null}' >"$work/payload"
openssl dgst -sha256 -sign "$key" -out "$work/sig.der" "$work/payload"
sig=$(base64 -w0 "$work/sig.der")
if [[ ${TAMPER:-} == 1 ]]; then
    jq -c '.optional = {"note": "changed after signing"}' "$work/payload" >"$work/p2"
    mv "$work/p2" "$work/payload"
fi

# Monolithic blob upload (distribution-spec: POST, then PUT ?digest=).
upload() {
    local d loc sep
    d="sha256:$(sha256sum "$1" | cut -d' ' -f1)"
    loc=$(curl -fsS -X POST -D - -o /dev/null "http://$reg/v2/$repo/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
    [[ $loc == http* ]] || loc="http://$reg$loc"
    sep='?'
    [[ $loc == *\?* ]] && sep='&'
    curl -fsS -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary "@$1" "$loc${sep}digest=$d" >/dev/null
    echo "$d"
}

pd=$(upload "$work/payload")
jq -cn --arg d "$pd" '{architecture: "", os: "", config: {}, rootfs: {type: "layers", diff_ids: [$d]}}' \
    >"$work/config"
cfg=$(upload "$work/config")
jq -cn --arg cd "$cfg" --argjson cs "$(stat -c %s "$work/config")" \
    --arg pd "$pd" --argjson ps "$(stat -c %s "$work/payload")" --arg sig "$sig" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $cd, size: $cs},
      layers: [{mediaType: "application/vnd.dev.cosign.simplesigning.v1+json", digest: $pd,
                size: $ps, annotations: {"dev.cosignproject.cosign/signature": $sig}}]}' \
    >"$work/manifest"
curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$work/manifest" "http://$reg/v2/$repo/manifests/${digest/:/-}.sig" >/dev/null
