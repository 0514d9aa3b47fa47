#!/usr/bin/env python3
"""The peer client of the push and pull rows: oras-py (PyPI `oras`) driven the documented way.

Why a script: oras-py is a library; the bench times `python oras_tool.py push|pull ...` as one
process, so its peak RSS and wall time include everything the library does.

    oras_tool.py push REF FILE[:MEDIATYPE]    upload FILE as the single layer of REF
    oras_tool.py pull REF OUTDIR              download every layer of REF into OUTDIR

Runs in the venv that bench/run.sh makes (bench/out/venv); plain HTTP to loopback only.
"""

import os
import sys

import oras.client


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("push", "pull"):
        sys.exit(__doc__)
    cmd, ref, arg = sys.argv[1:]
    host = ref.split("/", 1)[0]
    if not host.startswith(("127.0.0.1:", "localhost:")):
        sys.exit(f"oras_tool: {host} is not a loopback registry")
    client = oras.client.OrasClient(hostname=host, insecure=True)
    if cmd == "push":
        path, _, media_type = arg.partition(":")
        # oras-py wants paths under the working directory, and names the layer by that path.
        os.chdir(os.path.dirname(os.path.abspath(path)))
        name = os.path.basename(path)
        spec = f"{name}:{media_type}" if media_type else name
        resp = client.push(target=ref, files=[spec], quiet=True)
        if resp.status_code not in (200, 201):
            sys.exit(f"oras_tool: manifest push answered {resp.status_code}")
    else:
        os.makedirs(arg, exist_ok=True)
        files = client.pull(target=ref, outdir=arg)
        if not files:
            sys.exit(f"oras_tool: {ref} had no layers")
        for f in files:
            print(f)


if __name__ == "__main__":
    main()
