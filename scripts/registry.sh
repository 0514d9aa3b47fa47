#!/usr/bin/env bash
# Starts a throwaway CNCF distribution registry (Debian's docker-registry) on 127.0.0.1.
# Usage: scripts/registry.sh start PORT DIR   (prints the PID; storage and config under DIR)
#        scripts/registry.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop}
case "$cmd" in
start)
    port=${2:?port}; dir=${3:?dir}
    mkdir -p "$dir/storage"
    cat > "$dir/config.yml" <<YML
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $dir/storage }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$port }
YML
    docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    echo $! > "$dir/registry.pid"
    for _ in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then exit 0; fi
        sleep 0.1
    done
    echo "registry did not start; log:" >&2; cat "$dir/registry.log" >&2; exit 1
    ;;
stop)
    dir=${2:?dir}
    if [[ -f "$dir/registry.pid" ]]; then kill "$(cat "$dir/registry.pid")" 2>/dev/null || true; rm -f "$dir/registry.pid"; fi
    ;;
*) echo "usage: $0 start PORT DIR | stop DIR" >&2; exit 2 ;;
esac
