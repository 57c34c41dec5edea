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

Both run ``--rounds`` times (default 5), the contenders alternating in an order rotated each
round, so that machine noise and the server's state (TIME_WAIT, its heap) hit every contender
alike. Printed per contender: the median of each figure over the rounds with its spread
(min-max), the ratio of the medians to the bare loop's, and the spread of the per-round ratios
(each contender against the bare loop of the same round).

``ulimit -n`` is checked and the soft limit raised within the hard limit (the children inherit
it); with a hard limit too low for 5,000 the hold test is skipped with the reason. Prints a
table, asserts nothing.

    python benchmarks/bench_churn.py [--seconds S] [--connections N] [--hold N] [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MAX_ROUNDS = 20  # bounds the run: 20 rounds of the defaults take about 20 minutes
SETTLE_S = 2.0  # pause before each contender: TIME_WAIT and the server settle

CHURN = (("bare websockets loop", "bare"), ("bare loop, 50 in flight", "bare-capped"),
         ("ours: probe_churn hold_s=0", "ours"))
HOLD = (("ours: probe_churn hold to the end", "hold-ours"), ("bare websockets, held", "hold-bare"))

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


def rotated(contenders: Sequence[tuple[str, str]], round_no: int) -> list[tuple[str, str]]:
    """The contenders in the order of round ``round_no``: each one goes first in turn."""
    k = round_no % len(contenders)
    return [*contenders[k:], *contenders[:k]]


def run_rounds(contenders: Sequence[tuple[str, str]], rounds: int, run: Callable[[str], dict]) -> dict[str, list[dict]]:
    """Every contender once per round, in rotated order; per label, its results in round order."""
    results: dict[str, list[dict]] = {label: [] for label, _ in contenders}
    for round_no in range(rounds):
        for label, mode in rotated(contenders, round_no):
            time.sleep(SETTLE_S)
            results[label].append(run(mode))
        print(f"  round {round_no + 1}/{rounds} done", file=sys.stderr, flush=True)
    return results


def spread(values: list[float], fmt: str = ",.0f") -> str:
    """``median [min-max]`` of ``values`` ("-" when there are none)."""
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def _ok(results: list[dict]) -> list[dict]:
    return [r for r in results if "handshakes" in r]


def _errors(results: list[dict]) -> str:
    errors = [r.get("error") for r in results if "handshakes" not in r]
    return f" ({len(errors)} round(s) failed: {errors[0]})" if errors else ""


def _rate(r: dict) -> float:
    return r["handshakes"] / max(r["elapsed"], 1e-9)


def print_churn(results: dict[str, list[dict]], target: float = 0.8) -> None:
    bare_label = CHURN[0][0]
    bare = results[bare_label]
    bare_median = statistics.median([_rate(r) for r in _ok(bare)]) if _ok(bare) else float("nan")
    print("| contender | rounds | handshakes/s | vs bare (ratio of medians) | per-round ratio | failed | "
          "p50 ms | p99 ms | peak open | client RSS delta MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, runs in results.items():
        ok = _ok(runs)
        rates = [_rate(r) for r in ok]
        ratio = statistics.median(rates) / bare_median if rates else float("nan")
        paired = [_rate(r) / _rate(b) for r, b in zip(runs, bare) if "handshakes" in r and "handshakes" in b]
        verdict = ""
        if label.startswith("ours"):
            verdict = " (target met)" if ratio >= target else f" (target {target}x not met)"
        print(f"| {label}{_errors(runs)} | {len(ok)} | {spread(rates)} | {ratio:.2f}x{verdict} | "
              f"{spread(paired, '.2f')} | {sum(r['failed'] for r in ok)} | "
              f"{spread([r['p50'] * 1000 for r in ok if r['p50'] is not None])} | "
              f"{spread([r['p99'] * 1000 for r in ok if r['p99'] is not None])} | "
              f"{spread([r['peak_open'] for r in ok])} | {spread([r['rss_delta'] / 2**20 for r in ok], '.1f')} |")


def print_hold(results: dict[str, list[dict]]) -> None:
    print("| contender | rounds | held | failed | open time s | p99 handshake ms | client RSS delta MiB | "
          "client KiB/conn |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, runs in results.items():
        ok = _ok(runs)
        print(f"| {label}{_errors(runs)} | {len(ok)} | {spread([r['peak_open'] for r in ok])} | "
              f"{sum(r['failed'] for r in ok)} | {spread([r['elapsed'] for r in ok], '.1f')} | "
              f"{spread([r['p99'] * 1000 for r in ok if r['p99'] is not None])} | "
              f"{spread([r['rss_delta'] / 2**20 for r in ok], '.1f')} | "
              f"{spread([r['rss_delta'] / max(r['peak_open'], 1) / 1024 for r in ok], '.1f')} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="churn window per contender and round")
    parser.add_argument("--connections", type=int, default=1000, help="concurrent churn slots")
    parser.add_argument("--hold", type=int, default=5000, help="connections held in the hold test")
    parser.add_argument("--rounds", type=int, default=5, help=f"rounds of every contender (1-{MAX_ROUNDS})")
    args = parser.parse_args()
    if not 1 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds must be between 1 and {MAX_ROUNDS}")

    soft, hard, note = raise_fd_limit(max(args.connections, args.hold) * 2 + 1024)
    print(f"ulimit -n: soft {soft}, hard {hard}{'; ' + note if note else ''}; {os.cpu_count()} CPUs; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start")
    port = free_port()
    url = f"ws://{HOST}:{port}/"
    server = start_server(port)
    try:
        churn = run_rounds(CHURN, args.rounds, lambda mode: run_client(mode, url, args.seconds, args.connections))
        print(f"\nChurn: {args.connections} concurrent slots, {args.seconds:g} s each, {args.rounds} rounds "
              "(order rotated each round), server in its own process; median [min-max] over the rounds\n")
        print_churn(churn)

        if soft != resource.RLIM_INFINITY and soft < args.hold * 2 + 256:
            print(f"\nHold test skipped: ulimit -n {soft} is below the {args.hold * 2 + 256} descriptors "
                  "(client and server) it needs; raise the hard limit")
            return
        hold = run_rounds(HOLD, args.rounds, lambda mode: run_client(mode, url, 5.0, args.hold))
        print(f"\nHold: {args.hold:,} concurrent connections, no compression, {args.rounds} rounds; "
              "median [min-max]\n")
        print_hold(hold)
        print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
