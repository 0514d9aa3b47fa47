#!/usr/bin/env python3
"""A TCP proxy on 127.0.0.1 that caps each connection's rate and counts the bytes it carries.

Why: on loopback the registry is the bottleneck, which hides what parallel blobs buy on a real
link, where each TCP connection is limited by its bandwidth-delay product. This proxy models
such a "remote registry": every connection gets its own token bucket per direction (default
40 MB/s), so N parallel connections get N times the bandwidth, as across a WAN. With --rate 0 it
only counts bytes, which is how the re-push row measures what a client really sent.

    bench/rate-proxy.py --target 127.0.0.1:5000 [--rate 40e6] [--port 0] [--port-file F]
                        [--stats F]

Standard library only. The stats file (JSON: bytes up = client to server, bytes down,
connections, active) is rewritten whenever a connection closes. Stops on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import json
import os
import signal
import time

CHUNK = 256 * 1024


class Bucket:
    """A token bucket: `rate` bytes per second, bursts of at most `burst` bytes."""

    def __init__(self, rate, burst):
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    async def take(self, n):
        if self.rate <= 0:
            return
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        if self.tokens < 0:
            # Sleep off the debt; the next refill starts from the (negative) balance, so the
            # long-run rate is exact even when sleeps overshoot.
            await asyncio.sleep(-self.tokens / self.rate)


class Stats:
    def __init__(self, path):
        self.path = path
        self.up = 0
        self.down = 0
        self.connections = 0
        self.active = 0

    def write(self):
        if not self.path:
            return
        tmp = f"{self.path}.tmp"
        with open(tmp, "w") as f:
            json.dump(
                {"bytes_up": self.up, "bytes_down": self.down,
                 "connections": self.connections, "active": self.active}, f)
        os.replace(tmp, self.path)


async def pump(reader, writer, bucket, stats, direction):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            await bucket.take(len(data))
            if direction == "up":
                stats.up += len(data)
            else:
                stats.down += len(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def handle(client_reader, client_writer, args, stats):
    stats.connections += 1
    stats.active += 1
    server_writer = None
    try:
        server_reader, server_writer = await asyncio.open_connection(args.target_host, args.target_port)
        burst = max(CHUNK, int(args.rate / 50)) if args.rate > 0 else 0
        await asyncio.gather(
            pump(client_reader, server_writer, Bucket(args.rate, burst), stats, "up"),
            pump(server_reader, client_writer, Bucket(args.rate, burst), stats, "down"),
        )
    except OSError:
        pass
    finally:
        for w in (client_writer, server_writer):
            if w is not None:
                w.close()
        stats.active -= 1
        stats.write()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True, help="HOST:PORT to forward to (loopback only)")
    ap.add_argument("--rate", type=float, default=40e6,
                    help="bytes per second per connection and direction; 0 = unlimited (40e6)")
    ap.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (0 = any free)")
    ap.add_argument("--port-file", help="write the listening port here once ready")
    ap.add_argument("--stats", help="JSON byte counters, rewritten as connections close")
    args = ap.parse_args()
    host, _, port = args.target.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        ap.error("--target must be a loopback address")
    args.target_host, args.target_port = host, int(port)

    stats = Stats(args.stats)
    stats.write()
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args, stats), "127.0.0.1", args.port, reuse_address=True)
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        with open(f"{args.port_file}.tmp", "w") as f:
            f.write(f"{port}\n")
        os.replace(f"{args.port_file}.tmp", args.port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    stats.write()


if __name__ == "__main__":
    asyncio.run(main())
