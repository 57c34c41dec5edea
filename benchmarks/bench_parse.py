"""Close-log parsing speed: our parsers against a reference reader on the same generated files.

Generates N lines of each format (default 1,000,000) into a temp dir, then runs every contender
in a fresh Python process (timing measured inside, peak RSS from ``os.wait4`` of that process).
The files are generated in a process of their own: Linux carries a parent's peak RSS into its
child's ``ru_maxrss`` at exec, so the launcher must stay small for the figures to mean anything.

- JSON lines: ``runbook.logs.parse_log`` (detection included; the Arrow path) vs its orjson
  path alone (``jsonlines.parse(..., fast_path=False)``, the reference the Arrow path must equal)
  vs ``pyarrow.json.read_json``.
- Node monitor: ``runbook.logs.parse_log`` vs a vectorized regex baseline (pandas
  ``.str.extract`` over the lines; it reads the single-line shape only, multi-line records are
  lost to it).

Every contender starts from the file's bytes in memory, so the timing covers decoding and parsing
but no disk. Targets (2-core machine): >= 500k lines/s JSON lines, >= 300k lines/s Node format.
Printed as a table, never asserted.

    python benchmarks/bench_parse.py [--lines N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent

USER_AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
]
REASONS = {1000: "normal closure", 1001: "going away", 1011: "keepalive ping timeout", 1008: "policy violation"}
ERRORS = ["read ECONNRESET", "Invalid WebSocket frame: RSV1 must be clear", "write EPIPE"]


# --- generators -------------------------------------------------------------------------------


def _connection_id(rng: random.Random) -> str:
    return "".join(rng.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(9))


def _inspect(entries: list[tuple[str, str]]) -> str:
    """An object as util.inspect prints it: one line when short enough, else one entry per line.

    Node keeps an object of up to 6 entries on one line while 2*entries + 11 + the entries'
    lengths stays within its breakLength of 80 (lib/internal/util/inspect.js, isBelowBreakLength).
    """
    output = [f"{key}: {value}" for key, value in entries]
    if sum(map(len, output)) + 2 * len(output) + 11 <= 80:
        return "{ " + ", ".join(output) + " }"
    return "{\n" + ",\n".join("  " + entry for entry in output) + "\n}"


def node_lines(count: int, seed: int = 1) -> str:
    """Node monitor output: mostly one-line 1006 disconnects, ~10% multi-line records."""
    rng = random.Random(seed)
    clock = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)
    out: list[str] = []
    lines = 0
    while lines < count:
        clock += timedelta(milliseconds=rng.randint(1, 40))
        stamp = clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{clock.microsecond // 1000:03d}Z"
        ident = f"'{_connection_id(rng)}'"
        roll = rng.random()
        if roll < 0.01:
            text = f"{stamp} Server heartbeat: {rng.randint(100, 999)} open connections"
        elif roll < 0.06:  # connect: a real user agent never fits on one line
            text = f"{stamp} WebSocket connected: " + _inspect(
                [("connectionId", ident), ("ip", f"'::ffff:10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}'"),
                 ("userAgent", f"'{rng.choice(USER_AGENTS)}'")]
            )
        elif roll < 0.11:  # a close with a reason: multi-line
            code = rng.choice(list(REASONS))
            text = f"{stamp} WebSocket disconnect: " + _inspect(
                [("connectionId", ident), ("code", str(code)), ("reason", f"'{REASONS[code]}'"),
                 ("duration", str(rng.randint(100, 3_600_000)))]
            )
        elif roll < 0.15:
            text = f"{stamp} WebSocket error: " + _inspect([("connectionId", ident), ("error", f"'{rng.choice(ERRORS)}'")])
        else:  # the bulk: an idle timeout, no close frame
            text = f"{stamp} WebSocket disconnect: " + _inspect(
                [("connectionId", ident), ("code", "1006"), ("reason", "''"), ("duration", str(rng.randint(59_000, 61_000)))]
            )
        out.append(text)
        lines += text.count("\n") + 1
    return "\n".join(out) + "\n"


def json_lines(count: int, seed: int = 2) -> str:
    """JSON-lines close log: connects and disconnects of the same connections, a few errors."""
    rng = random.Random(seed)
    clock = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)
    out: list[bytes] = []
    for _ in range(count):
        clock += timedelta(milliseconds=rng.randint(1, 40))
        record = {"ts": clock.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "connectionId": _connection_id(rng)}
        roll = rng.random()
        if roll < 0.45:
            record |= {"event": "connect", "ip": f"10.0.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                       "userAgent": rng.choice(USER_AGENTS)}
        elif roll < 0.97:
            code = rng.choice([1006] * 6 + list(REASONS))
            record |= {"event": "disconnect", "code": code, "reason": REASONS.get(code, ""),
                       "duration": rng.randint(100, 3_600_000)}
        else:
            record |= {"event": "error", "error": rng.choice(ERRORS)}
        out.append(orjson.dumps(record))
    return (b"\n".join(out) + b"\n").decode()


# --- contenders (each runs in a fresh process) --------------------------------------------------

PRELUDE = """
import json, sys, time
data = open(sys.argv[1], "rb").read()
"""

CONTENDERS = {
    "floor: imports + file bytes": ("any", """
import pandas, pyarrow.json, orjson, runbook.logs
started = time.perf_counter()
rows = 0
"""),
    "ours: parse_log, jsonlines": ("json", """
from runbook.logs import parse_log
started = time.perf_counter()
result = parse_log(data, "bench.jsonl")
assert result.format == "jsonlines", result.error
rows = len(result.frame)
"""),
    "ours: jsonlines, orjson path": ("json", """
from runbook.logs import jsonlines
started = time.perf_counter()
result = jsonlines.parse(data, "bench.jsonl", fast_path=False)
rows = len(result.frame)
"""),
    "pyarrow.json.read_json": ("json", """
import io, pyarrow.json
started = time.perf_counter()
table = pyarrow.json.read_json(io.BytesIO(data))
rows = table.num_rows
"""),
    "ours: parse_log, node_monitor": ("node", """
from runbook.logs import parse_log
started = time.perf_counter()
result = parse_log(data, "bench.log")
assert result.format == "node_monitor", result.error
rows = len(result.frame)
"""),
    "regex baseline: .str.extract": ("node", r"""
import pandas as pd
started = time.perf_counter()
lines = pd.Series(data.decode("utf-8", errors="replace").split("\n"), dtype="string")
found = lines.str.extract(
    r"^(?P<ts>\S+) WebSocket (?P<event>disconnect|connected|error): "
    r"\{ connectionId: '(?P<connection_id>[^']*)', code: (?P<code>\d+), "
    r"reason: '(?P<reason>[^']*)', duration: (?P<duration>\d+) \}$"
).dropna(subset=["ts"])
found["ts"] = pd.to_datetime(found["ts"], format="ISO8601", utc=True)
found["code"] = pd.to_numeric(found["code"]).astype("Int64")
found["duration_s"] = pd.to_numeric(found["duration"]) / 1000
rows = len(found)
"""),
}
EPILOGUE = """
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "rows": rows}))
"""


def run_contender(code: str, path: Path) -> tuple[float, int, float]:
    """(seconds, rows, peak RSS in MiB) of ``code`` run on ``path`` in a fresh interpreter."""
    script = PRELUDE + textwrap.dedent(code) + EPILOGUE
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, env=env, cwd=ROOT)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage, not the running maximum
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"contender failed with exit code {child.returncode}")
    result = json.loads(output)
    return result["seconds"], result["rows"], usage.ru_maxrss / 1024  # ru_maxrss is KiB on Linux


def count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines per generated file")
    parser.add_argument("--keep", type=Path, help="write the generated files here and keep them")
    parser.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)  # the generator process
    args = parser.parse_args()
    if args.generate_into:
        (args.generate_into / "close-log.jsonl").write_text(json_lines(args.lines))
        (args.generate_into / "server.log").write_text(node_lines(args.lines))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        files = {"json": folder / "close-log.jsonl", "node": folder / "server.log"}
        subprocess.run(
            [sys.executable, __file__, "--lines", str(args.lines), "--generate-into", str(folder)], check=True
        )
        line_counts = {kind: count_lines(path) for kind, path in files.items()}
        targets = {"json": 500_000, "node": 300_000}

        header = f"{'contender':<32} {'file':<5} {'lines':>9} {'rows':>9} {'seconds':>8} {'lines/s':>10} {'peak RSS MiB':>13} {'target':>10}"
        print(header)
        print("-" * len(header))
        for name, (kind, code) in CONTENDERS.items():
            path = files["json" if kind == "any" else kind]
            seconds, rows, rss = run_contender(code, path)
            lines = line_counts["json" if kind == "any" else kind]
            if kind == "any":
                print(f"{name:<32} {'-':<5} {'-':>9} {'-':>9} {'-':>8} {'-':>10} {rss:>13.0f} {'-':>10}")
                continue
            rate = lines / seconds
            target = f">= {targets[kind] // 1000}k" if name.startswith("ours: parse_log") else "-"
            print(f"{name:<32} {kind:<5} {lines:>9,} {rows:>9,} {seconds:>8.2f} {rate:>10,.0f} {rss:>13.0f} {target:>10}")
        print(f"\n{os.cpu_count()} CPUs; timing inside each process from the file's bytes in memory; "
              "RSS includes the interpreter, imports and the JSON file's bytes (the floor row).")


if __name__ == "__main__":
    main()
