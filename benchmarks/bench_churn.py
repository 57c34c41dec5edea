"""Churn probe speed and memory: ours against a bare python-websockets client loop, same server, same run.

Two measurements, each contender in a fresh Python process (so RSS is its own), all against one
local python-websockets server in a process of its own (no compression, no keepalive, backlog
1024) on 127.0.0.1:

1. **Churn**: 1,000 concurrent connection slots opening and closing connections for
   ``--seconds`` (default 10): handshakes per second, p50/p99 opening-handshake latency (from
   the moment a slot may start its handshake) and the client's peak RSS over its baseline after
   imports. Contenders:

   - ``bare websockets loop``: 1,000 tasks, each ``async with connect(url): pass`` in a loop;
   - ``bare loop, 50 in flight``: the same with a semaphore of 50 around the handshake, the cap
     our probe applies by default;
   - ``ours: probe_churn hold_s=0``: ``runbook.probes.probe_churn(connections=1000, hold_s=0)``.

   Target: ours >= 0.8x the bare loop's handshakes/s.

2. **Hold**: 5,000 concurrent connections opened and held (no compression): client memory per
   connection (peak RSS over the baseline, divided by the connections held) for
   ``probe_churn(connections=5000)`` and for a bare loop holding as many.

``ulimit -n`` is checked and the soft limit raised within the hard limit (the children inherit
it); with a hard limit too low for 5,000 the hold test is skipped with the reason. Prints a
table, asserts nothing.

    python benchmarks/bench_churn.py [--seconds S] [--connections N] [--hold N]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

SERVER = r"""
import asyncio, sys
from websockets.asyncio.server import serve

async def handler(ws):
    await ws.wait_closed()

async def main(port):
    async with serve(handler, "127.0.0.1", port, ping_interval=None, compression=None,
                     close_timeout=2, backlog=1024):
        print("ready", flush=True)
        await asyncio.sleep(3600)

asyncio.run(main(int(sys.argv[1])))
"""

# One client contender; prints one JSON line. argv: mode url seconds connections
CLIENT = r"""
import asyncio, gc, json, sys, time
import psutil
from websockets.asyncio.client import connect
from runbook.probes import probe_churn

mode, url, seconds, connections = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
me = psutil.Process()
gc.collect()
baseline = me.memory_info().rss
peak = {"rss": baseline, "open": 0}

def sample(open_now):
    if open_now >= peak["open"] * 0.9:
        rss = me.memory_info().rss
        if rss > peak["rss"]:
            peak["rss"] = rss
        peak["open"] = max(peak["open"], open_now)

def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[max(0, min(len(values) - 1, int(-(-q * len(values) // 1)) - 1))]

async def bare(cap):
    latencies, state = [], {"open": 0, "failed": 0}
    gate = asyncio.Semaphore(cap) if cap else None
    deadline = time.monotonic() + seconds
    async def slot():
        while time.monotonic() < deadline:
            try:
                if gate:
                    async with gate:  # latency counted from the slot's turn, as the probe does
                        began = time.monotonic()
                        ws = await connect(url, compression=None, proxy=None, ping_interval=None)
                else:
                    began = time.monotonic()
                    ws = await connect(url, compression=None, proxy=None, ping_interval=None)
            except Exception:
                state["failed"] += 1
                await asyncio.sleep(0.2)
                continue
            latencies.append(time.monotonic() - began)
            state["open"] += 1
            sample(state["open"])
            await ws.close()
            state["open"] -= 1
    started = time.monotonic()
    await asyncio.gather(*(slot() for _ in range(connections)))
    return {"handshakes": len(latencies), "failed": state["failed"], "elapsed": time.monotonic() - started,
            "p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99)}

async def ours(hold):
    result = await probe_churn(url, connections=connections, duration_s=seconds, hold_s=hold,
                               max_in_flight=50 if hold == 0 else 200, open_timeout_s=30,
                               progress=lambda p: sample(p.open))
    return {"handshakes": result.opened, "failed": result.failed, "elapsed": result.elapsed_s,
            "p50": result.latency_p50_s, "p99": result.latency_p99_s, "error": result.error}

async def bare_hold():
    gate = asyncio.Semaphore(200)
    held, latencies = [], []
    async def one():
        async with gate:
            began = time.monotonic()
            ws = await connect(url, compression=None, proxy=None, ping_interval=None, open_timeout=30)
            latencies.append(time.monotonic() - began)
        held.append(ws)
        sample(len(held))
    started = time.monotonic()
    results = await asyncio.gather(*(one() for _ in range(connections)), return_exceptions=True)
    failed = sum(1 for r in results if isinstance(r, BaseException))
    await asyncio.sleep(min(seconds, 3))
    sample(len(held))
    await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
    return {"handshakes": len(held), "failed": failed, "elapsed": time.monotonic() - started,
            "p50": pct(latencies, 0.5), "p99": pct(latencies, 0.99)}

runs = {"bare": lambda: bare(0), "bare-capped": lambda: bare(50), "ours": lambda: ours(0),
        "hold-ours": lambda: ours(None), "hold-bare": bare_hold}
out = asyncio.run(runs[mode]())
out.update(peak_open=peak["open"], rss_delta=peak["rss"] - baseline, baseline_rss=baseline)
print(json.dumps(out))
"""


def raise_fd_limit(wanted: int) -> tuple[int, int, str]:
    """Raise the soft RLIMIT_NOFILE toward ``wanted`` within the hard limit; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    note = ""
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        note = f"raised soft limit {soft} -> {target}"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard, note


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def start_server(port: int) -> subprocess.Popen[str]:
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE,  # noqa: S603
                              text=True, cwd=ROOT)
    assert server.stdout is not None
    line = server.stdout.readline()
    if "ready" not in line:
        server.kill()
        raise SystemExit(f"benchmark server did not start: {line!r}")
    return server


def run_client(mode: str, url: str, seconds: float, connections: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", CLIENT, mode, url, str(seconds), str(connections)],  # noqa: S603
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=seconds * 4 + 120,
                          check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="churn window per contender")
    parser.add_argument("--connections", type=int, default=1000, help="concurrent churn slots")
    parser.add_argument("--hold", type=int, default=5000, help="connections held in the hold test")
    args = parser.parse_args()

    soft, hard, note = raise_fd_limit(max(args.connections, args.hold) * 2 + 1024)
    print(f"ulimit -n: soft {soft}, hard {hard}{'; ' + note if note else ''}; {os.cpu_count()} CPUs")
    port = free_port()
    url = f"ws://{HOST}:{port}/"
    server = start_server(port)
    try:
        rows = []
        for label, mode in (("bare websockets loop", "bare"), ("bare loop, 50 in flight", "bare-capped"),
                            ("ours: probe_churn hold_s=0", "ours")):
            rows.append((label, run_client(mode, url, args.seconds, args.connections)))
            time.sleep(2)  # let TIME_WAIT and the server settle between contenders
        bare_rate = rows[0][1].get("handshakes", 0) / max(rows[0][1].get("elapsed", 1), 1e-9)
        print(f"\nChurn: {args.connections} concurrent slots, {args.seconds:g} s each, server in its own process\n")
        print("| contender | handshakes | failed | handshakes/s | vs bare | p50 ms | p99 ms | peak open | client RSS delta MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for label, r in rows:
            if "handshakes" not in r:
                print(f"| {label} | error: {r.get('error')} |||||||")
                continue
            rate = r["handshakes"] / r["elapsed"]
            print(f"| {label} | {r['handshakes']:,} | {r['failed']} | {rate:,.0f} | {rate / bare_rate:.2f}x | "
                  f"{_ms(r['p50'])} | {_ms(r['p99'])} | {r['peak_open']:,} | {r['rss_delta'] / 2**20:.1f} |")

        if soft != resource.RLIM_INFINITY and soft < args.hold * 2 + 256:
            print(f"\nHold test skipped: ulimit -n {soft} is below the {args.hold * 2 + 256} descriptors "
                  "(client and server) it needs; raise the hard limit")
            return
        print(f"\nHold: {args.hold:,} concurrent connections, no compression\n")
        print("| contender | held | failed | open time s | p99 handshake ms | client RSS delta MiB | client KiB/conn |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for label, mode in (("ours: probe_churn hold to the end", "hold-ours"), ("bare websockets, held", "hold-bare")):
            time.sleep(2)
            r = run_client(mode, url, 5.0, args.hold)
            if "handshakes" not in r:
                print(f"| {label} | error: {r.get('error')} ||||||")
                continue
            print(f"| {label} | {r['peak_open']:,} | {r['failed']} | {r['elapsed']:.1f} | {_ms(r['p99'])} | "
                  f"{r['rss_delta'] / 2**20:.1f} | {r['rss_delta'] / max(r['peak_open'], 1) / 1024:.1f} |")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
