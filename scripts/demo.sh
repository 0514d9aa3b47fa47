#!/usr/bin/env bash
# The main job end to end on a fresh machine, as root: a local registry, a sample model, push,
# pull and mount, look inside, unmount. Everything it starts is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo build --release -p fspack
fspack=$PWD/target/release/fspack
work=$(mktemp -d /tmp/fspack-demo.XXXXXX)
port=${FSPACK_DEMO_PORT:-5055}
cleanup() {
    mountpoint -q "$work/mnt" 2>/dev/null && "$fspack" --store "$work/store" umount "$work/mnt" || true
    scripts/registry.sh stop "$work/registry"
    rm -rf "$work"
}
trap cleanup EXIT

echo "== a registry on 127.0.0.1:$port"
scripts/registry.sh start "$port" "$work/registry"

echo "== a sample model (3 x 96 MiB of weights, configs)"
model=$work/model
mkdir -p "$model/tokenizer"
for i in 1 2 3; do
    head -c $((96 << 20)) /dev/urandom > "$model/model-0000$i-of-00003.safetensors"
done
echo '{"architectures":["DemoForCausalLM"],"hidden_size":4096}' > "$model/config.json"
echo '{"version":"1.0","model":{"type":"BPE"}}' > "$model/tokenizer/tokenizer.json"
printf '# Demo model\nWeights for the fspack demo.\n' > "$model/README.md"

ref=127.0.0.1:$port/demo/model:v1
echo "== fspack push $model $ref"
"$fspack" push "$model" "$ref" --blob-size 64M
echo "== fspack inspect $ref"
"$fspack" inspect "$ref"
echo "== fspack pull $ref --mount $work/mnt"
mkdir -p "$work/mnt"
"$fspack" --store "$work/store" pull "$ref" --mount "$work/mnt"
echo "== fspack ls"
"$fspack" --store "$work/store" ls
echo "== look inside"
ls -la "$work/mnt"
cat "$work/mnt/config.json"
(cd "$model" && sha256sum model-*.safetensors) > "$work/expected.sha256"
(cd "$work/mnt" && sha256sum -c "$work/expected.sha256")
echo "== fspack umount"
"$fspack" --store "$work/store" umount "$work/mnt"
"$fspack" --store "$work/store" ls
echo "demo: OK"
