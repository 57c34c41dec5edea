"""The issue-11 figures side by side in one run: the whole runbook, parsing + summarizing, and the
fastest columnar engine computing the same aggregates, on 1M lines of each major log format.

For each format (JSON lines, Node monitor, nginx access, HAProxy HTTP) a file of ``--lines``
lines (default 1,000,000) is generated, checked (``runbook.logs.parse_log`` must detect its
format and find ~no malformed line), then every contender runs in a fresh process, ``--rounds``
times (default 3) in an order shuffled each round; medians are printed:

- ``ws-runbook run``: ``ws-runbook run -p close_logs FILE --output-dir TMP`` end to end (wall time
  of the command; its report.html size);
- ``duckdb`` / ``polars``: the engine reads the same file into a pandas frame of its records
  (JSON: the typed fields; text formats: the engine's own regex extraction over the lines) and
  computes the per-minute counts (connects, disconnects), the close-code counts and the lifetime
  aggregates (count, percentiles, a 1-second histogram; JSON lines: joining connects to
  disconnects by connection id); see ENGINE_* below and benchmarks/README.md;
- ``papermill``: papermill running a notebook with one empty cell (the kernel's floor);
- ``parse + summarize``: ``runbook.logs.pipeline.observe_close_logs([path])``, timed inside the
  process (the entry point the runbook step uses).

Bars: ``ws-runbook run`` within 1.5x of (fastest engine + papermill), wall times; parse + summarize
at >= 0.8x the fastest engine's speed, times inside the processes; report.html < 6 MiB. Peak RSS
comes from ``os.wait4`` of each process: the largest single process of its tree (the kernel, for
``ws-runbook run``). Printed as tables, never asserted.

``--big-gb G`` also writes a G-GB JSON-lines log (an 85 MB block generated once, then written
again and again with its times shifted and its connection ids made unique per copy) and times
``observe_close_logs`` on it in a fresh process (bar: peak RSS < 2 GiB).

    python benchmarks/bench_scale.py [--lines N] [--rounds R] [--formats json,node,nginx,haproxy]
                                     [--keep DIR] [--big-gb G] [--big-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from bench_parse import ERRORS, REASONS, USER_AGENTS, node_lines  # noqa: E402 - the sibling benchmark's generators

BIN = Path(sys.executable).parent
FORMATS = {"json": "close-log.jsonl", "node": "server.log", "nginx": "access.log", "haproxy": "haproxy.log"}
EXPECTED_FORMAT = {"json": "jsonlines", "node": "node_monitor", "nginx": "nginx_access", "haproxy": "haproxy"}
START = datetime(2026, 11, 28, 3, 0, tzinfo=timezone.utc)
START_MS = int(START.timestamp() * 1000)
MAX_ROUNDS = 10
BIG_BLOCK_BYTES = 100 << 20  # the block the --big-gb log repeats
SECONDS_PER_CONNECTION = 0.04  # 25 new connections a second: a busy gateway

# --- generated logs -------------------------------------------------------------------------------


def lifetimes(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lifetimes (s), close codes and reasons of ``count`` connections: 30% cut at 60 s by an idle
    timer (1006, no reason), half closed normally after a log-normal spread of seconds to hours,
    15% dropped (1006) and 5% closed by the server (1011 ping timeout, 1008)."""
    kind = rng.random(count)
    life = np.exp(rng.normal(np.log(20), 1.6, count))  # normal closes: median 20 s
    dropped = (kind >= 0.80) & (kind < 0.95)
    life[dropped] = np.exp(rng.normal(np.log(120), 1.2, int(dropped.sum())))
    server = kind >= 0.95
    life[server] = np.exp(rng.normal(np.log(300), 1.0, int(server.sum())))
    idle = kind < 0.30
    life[idle] = 60.0 + rng.normal(0, 0.02, int(idle.sum()))
    life = np.clip(life, 0.05, 4 * 3600)
    code = np.where(rng.random(count) < 0.7, 1000, 1001)
    code[idle | dropped] = 1006
    code[server] = np.where(rng.random(int(server.sum())) < 0.8, 1011, 1008)
    reason = np.array([REASONS.get(int(c), "") for c in code.tolist()], dtype=object)
    return life, code, reason


def _ids(rng: np.random.Generator, count: int, width: int = 9) -> list[str]:
    letters = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyz", np.uint8)
    raw = letters[rng.integers(0, 36, (count, width))]
    return raw.view(f"S{width}").ravel().astype(str).tolist()


def _ips(rng: np.random.Generator, count: int) -> list[str]:
    third, fourth = rng.integers(0, 256, count).tolist(), rng.integers(1, 255, count).tolist()
    return [f"10.0.{a}.{b}" for a, b in zip(third, fourth)]


@dataclass
class JsonBlock:
    """JSON lines of ``span_ms`` of a close log, with what a copy of it needs rewritten: where each
    line starts, its time (ms after START) and whether its record belongs to a connection
    opened in the span before (its disconnect or error wrapped around the block's end)."""

    data: bytearray
    starts: np.ndarray
    ts_ms: np.ndarray
    wrapped: np.ndarray
    span_ms: int

    TS_AT = len('{"ts":"')  # the time's offset in a line: "2026-11-28T03:00:00.004" (23 bytes)
    COPY_AT = TS_AT + len('2026-11-28T03:00:00.004Z","connectionId":"')  # the id's 5-digit copy field

    def copy(self, number: int) -> bytearray:
        """The block as copy ``number`` of the timeline: times shifted by ``number`` spans, ids
        prefixed by the copy their connection was opened in (``number`` + 1, or ``number`` for a
        wrapped record), so a connection's records share its id across the seam."""
        data = bytearray(self.data)
        view = np.frombuffer(data, np.uint8)
        stamps = np.datetime_as_string((self.ts_ms + START_MS + number * self.span_ms).astype("datetime64[ms]"), "ms")
        stamp_bytes = stamps.astype("S23").view(np.uint8).reshape(-1, 23)
        for j in range(23):
            view[self.starts + self.TS_AT + j] = stamp_bytes[:, j]
        owner = number + 1 - self.wrapped.astype(np.int64)
        for j, power in enumerate((10_000, 1000, 100, 10, 1)):
            view[self.starts + self.COPY_AT + j] = ord("0") + owner // power % 10
        return data


def json_block(lines: int, seed: int = 2) -> JsonBlock:
    """About ``lines`` JSON lines of a close log as bench_parse's ``json_lines`` writes its records
    (same fields, user agents, reasons, errors), but of real connections: each connection's
    connect, its disconnect (with its duration) and, for 3%, an error in between share its id;
    lifetimes from ``lifetimes``. Records are in time order; a disconnect due after the span
    wraps around to its start (a connection opened before the log began)."""
    rng = np.random.default_rng(seed)
    connections = max(1, round(lines / 2.03))
    span_s = connections * SECONDS_PER_CONNECTION
    opened = np.sort(rng.uniform(0, span_s, connections))
    life, code, reason = lifetimes(rng, connections)
    life = np.minimum(life, 0.9 * span_s)
    erred = np.flatnonzero(rng.random(connections) < 0.03)
    who = np.concatenate([np.arange(connections), np.arange(connections), erred])
    kind = np.concatenate([np.zeros(connections, np.int8), np.ones(connections, np.int8), np.full(len(erred), 2, np.int8)])
    at = np.concatenate([opened, opened + life, opened[erred] + rng.random(len(erred)) * life[erred]])
    ts_ms = np.round(at * 1000).astype(np.int64)
    span_ms = round(span_s * 1000)
    wrapped = ts_ms >= span_ms
    ts_ms %= span_ms
    order = np.lexsort((kind, ts_ms))
    who, kind, ts_ms, wrapped = who[order], kind[order], ts_ms[order], wrapped[order]
    ids, ips = _ids(rng, connections), _ips(rng, connections)
    agents = rng.integers(0, len(USER_AGENTS), connections).tolist()
    errors = rng.integers(0, len(ERRORS), connections).tolist()
    duration = np.round(life * 1000).astype(np.int64).tolist()
    stamp = "2026-11-28T03:00:00.000"  # rewritten by JsonBlock.copy
    out = []
    for k, w in zip(kind.tolist(), who.tolist()):
        head = f'{{"ts":"{stamp}Z","connectionId":"00000-{ids[w]}"'
        if k == 0:
            out.append(f'{head},"event":"connect","ip":"{ips[w]}","userAgent":"{USER_AGENTS[agents[w]]}"}}')
        elif k == 1:
            out.append(f'{head},"event":"disconnect","code":{code[w]},"reason":"{reason[w]}","duration":{duration[w]}}}')
        else:
            out.append(f'{head},"event":"error","error":"{ERRORS[errors[w]]}"}}')
    text = ("\n".join(out) + "\n").encode()
    lengths = np.fromiter(map(len, out), np.int64, len(out)) + 1
    starts = np.cumsum(lengths) - lengths
    return JsonBlock(bytearray(text), starts, ts_ms, wrapped, span_ms)


def _sessions(lines: int, seed: int) -> tuple[np.random.Generator, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Proxy sessions in the order their lines are written (when they end): end times (s after
    START), lifetimes, close codes (for their kind) and what each line is: 0 a WebSocket session,
    1 a failed upgrade, 2 an ordinary request."""
    rng = np.random.default_rng(seed)
    life, code, _ = lifetimes(rng, lines)
    what = np.select([rng.random(lines) < 0.03, rng.random(lines) < 0.02], [2, 1], 0)
    life[what > 0] = rng.uniform(0.001, 0.2, int((what > 0).sum()))
    ends = np.sort(rng.uniform(0, lines * SECONDS_PER_CONNECTION, lines)) + 4 * 3600  # sessions end after they start
    return rng, ends, life, code, what


def nginx_lines(lines: int, seed: int = 3) -> str:
    """nginx access log, combined + ``rt=$request_time uct uht urt`` (the bundled samples' format):
    WebSocket sessions ending (101, ``$request_time`` their lifetime), 2% failed upgrades (426, 502,
    400 on /ws/chat), 3% ordinary requests."""
    rng, ends, life, _, what = _sessions(lines, seed)
    ips = [f"198.51.100.{b}" for b in rng.integers(1, 255, lines).tolist()]
    agents = rng.integers(0, len(USER_AGENTS), lines).tolist()
    failed = rng.choice([426, 502, 400], lines).tolist()
    sizes = rng.integers(20, 5000, lines).tolist()
    stamps: dict[int, str] = {}
    out = []
    for k, (end, rt, kind) in enumerate(zip(ends.tolist(), life.tolist(), what.tolist())):
        second = int(end)
        if second not in stamps:
            stamps[second] = datetime.fromtimestamp(START.timestamp() + second, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000")
        request, status = ("GET /ws/chat HTTP/1.1", 101) if kind == 0 else ("GET /ws/chat HTTP/1.1", failed[k])
        if kind == 2:
            request, status = f"GET /api/messages?page={k % 50} HTTP/1.1", 200
        upstream = f"{rt:.3f}" if status != 502 else "-"
        out.append(f'{ips[k]} - - [{stamps[second]}] "{request}" {status} {sizes[k]} "-" "{USER_AGENTS[agents[k]]}" '
                   f'rt={rt:.3f} uct="0.000" uht="0.001" urt="{upstream}"')
    return "\n".join(out) + "\n"


def haproxy_lines(lines: int, seed: int = 4) -> str:
    """HAProxy HTTP log (``option httplog``, a captured client address) as HAProxy 2.6 writes it in
    data/formats/haproxy-http.log: a line per session when it ends, dated when it was accepted,
    ``Tt`` its length. Idle cuts end ``cD--`` (timeout tunnel), drops ``CD--``/``SD--``, normal
    closes ``----``; 2% failed upgrades (503 ``SC--``), 3% ordinary requests (200)."""
    rng, ends, life, code, what = _sessions(lines, seed)
    term = np.where(code == 1006, np.where(np.abs(life - 60) < 0.5, "cD--", np.where(rng.random(lines) < 0.7, "CD--", "SD--")), "----")
    ports = rng.integers(30000, 60000, lines).tolist()
    clients = [f"203.0.113.{b}" for b in rng.integers(1, 255, lines).tolist()]
    out = []
    for k, (end, total, kind) in enumerate(zip(ends.tolist(), np.round(life * 1000).astype(np.int64).tolist(), what.tolist())):
        accepted = START.timestamp() + end - total / 1000
        stamp = datetime.fromtimestamp(accepted, timezone.utc).strftime("%d/%b/%Y:%H:%M:%S.%f")[:-3]
        status, state, request = 101, term[k], "GET /ws/chat HTTP/1.1"
        if kind == 1:
            status, state = 503, "SC--"
        elif kind == 2:
            status, state, request = 200, "----", f"GET /api/messages?page={k % 50} HTTP/1.1"
        out.append(f"127.0.0.1:{ports[k]} [{stamp}] ws_front chat/s1 0/0/0/{3 + k % 40}/{total} {status} {200 + k % 900} "
                   f"- - {state} {k % 900 + 1}/{k % 900 + 1}/{k % 450}/{k % 450}/0 0/0 {{{clients[k]}}} \"{request}\"")
    return "\n".join(out) + "\n"


def generate(folder: Path, lines: int, formats: list[str]) -> None:
    writers = {
        "json": lambda: json_block(lines).copy(0),
        "node": lambda: node_lines(lines).encode(),
        "nginx": lambda: nginx_lines(lines).encode(),
        "haproxy": lambda: haproxy_lines(lines).encode(),
    }
    for name in formats:
        (folder / FORMATS[name]).write_bytes(writers[name]())


def generate_big(path: Path, gigabytes: float) -> None:
    """A ``gigabytes`` GB JSON-lines log: one ~85 MB block, written as consecutive copies."""
    block = json_block(int(BIG_BLOCK_BYTES / 230))
    target, written, number = int(gigabytes * 1e9), 0, 0
    with path.open("wb") as out:
        while written < target:
            data = block.copy(number)
            if written + len(data) > target:  # the last copy, cut at a line end
                out.write(data[: data.rfind(b"\n", 0, target - written) + 1])
                break
            out.write(data)
            written, number = written + len(data), number + 1


# --- the engines' regular expressions over the text formats --------------------------------------
# Single-line records only (as bench_parse's regex baseline): the Node monitor's multi-line records
# (every connect, closes with a reason) are lost to both engines.

NODE_RE = (r"^(?P<ts>\S+) WebSocket (?P<event>disconnect|connected|error): \{ connectionId: '(?P<connection_id>[^']*)'"
           r"(?:, code: (?P<code>\d+), reason: '(?P<reason>[^']*)', duration: (?P<duration>\d+))?")
NGINX_RE = (r'^(?P<client_ip>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>[^ "]+)[^"]*" (?P<status>\d{3}) \d+ '
            r'"[^"]*" "(?P<user_agent>[^"]*)" rt=(?P<rt>[0-9.]+)')
HAPROXY_RE = (r"^(?P<peer>\S+):\d+ \[(?P<accepted>[^\]]+)\] \S+ \S+ -?\d+/-?\d+/-?\d+/-?\d+/\+?(?P<tt>-?\d+) "
              r"(?P<status>\d{3}) \d+ \S+ \S+ (?P<term>\S{4}) \S+ \S+(?: \{(?P<client_ip>[^}]*)\})? \"\S+ (?P<path>\S+)")


def _groups(pattern: str) -> list[str]:
    import re

    return list(re.compile(pattern).groupindex)


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _duckdb_lines(pattern: str) -> str:
    """The file's lines as one VARCHAR column, each split by ``pattern`` into a struct ``r``."""
    names = ", ".join(_sql_text(name) for name in _groups(pattern))  # RE2 reads Python's (?P<name>...)
    return (f"SELECT regexp_extract(line, {_sql_text(pattern)}, [{names}]) AS r FROM read_csv({{path}}, "
            "columns={'line': 'VARCHAR'}, delim=chr(31), header=false, quote='', escape='', auto_detect=false)")


# Per format: the records as a frame (``records``), then three views the common aggregates read:
# events(ts, event), closes(label), lifetimes(lifetime, joined).
DUCKDB_FORMATS = {
    "json": (
        "SELECT ts, connectionId AS connection_id, event, code, coalesce(reason, error) AS reason, "
        "duration / 1000.0 AS duration_s, ip AS client_ip, userAgent AS user_agent "
        "FROM read_json({path}, format='newline_delimited', columns={'ts': 'TIMESTAMPTZ', 'connectionId': 'VARCHAR', "
        "'event': 'VARCHAR', 'code': 'INTEGER', 'reason': 'VARCHAR', 'duration': 'DOUBLE', 'ip': 'VARCHAR', "
        "'userAgent': 'VARCHAR', 'error': 'VARCHAR'})",
        {
            "events": "SELECT ts, event FROM records",
            "closes": "SELECT CAST(code AS VARCHAR) AS label FROM records WHERE event = 'disconnect'",
            "lifetimes": (
                "SELECT coalesce(d.duration_s, epoch(d.ts - c.ts)) AS lifetime, c.ts IS NOT NULL AS joined FROM "
                "(SELECT connection_id, max(ts) AS ts, max(duration_s) AS duration_s FROM records "
                "WHERE event = 'disconnect' GROUP BY 1) d LEFT JOIN "
                "(SELECT connection_id, min(ts) AS ts FROM records WHERE event = 'connect' GROUP BY 1) c USING (connection_id)"
            ),
        },
    ),
    "node": (
        "SELECT CAST(r.ts AS TIMESTAMPTZ) AS ts, CASE r.event WHEN 'connected' THEN 'connect' ELSE r.event END AS event, "
        "r.connection_id, TRY_CAST(nullif(r.code, '') AS INTEGER) AS code, r.reason, "
        "TRY_CAST(nullif(r.duration, '') AS DOUBLE) / 1000 AS duration_s FROM (" + _duckdb_lines(NODE_RE) + ") WHERE r.ts <> ''",
        {
            "events": "SELECT ts, event FROM records",
            "closes": "SELECT CAST(code AS VARCHAR) AS label FROM records WHERE event = 'disconnect'",
            "lifetimes": "SELECT duration_s AS lifetime, false AS joined FROM records WHERE duration_s IS NOT NULL",
        },
    ),
    "nginx": (
        "SELECT strptime(r.time, '%d/%b/%Y:%H:%M:%S %z') AS ts, r.client_ip, r.path, CAST(r.status AS INTEGER) AS status, "
        "r.user_agent, CAST(r.rt AS DOUBLE) AS duration_s FROM (" + _duckdb_lines(NGINX_RE) + ") WHERE r.time <> ''",
        {
            "events": (
                "SELECT ts - to_microseconds(CAST(duration_s * 1e6 AS BIGINT)) AS ts, 'connect' AS event FROM records "
                "WHERE status = 101 UNION ALL SELECT ts, 'disconnect' FROM records WHERE status = 101 "
                "UNION ALL SELECT ts, 'error' FROM records WHERE status <> 101 AND path LIKE '/ws%'"
            ),
            "closes": "SELECT CAST(status AS VARCHAR) AS label FROM records WHERE path LIKE '/ws%'",
            "lifetimes": "SELECT duration_s AS lifetime, false AS joined FROM records WHERE status = 101",
        },
    ),
    "haproxy": (
        "SELECT CAST(strptime(r.accepted, '%d/%b/%Y:%H:%M:%S.%g') AS TIMESTAMPTZ) AS accepted, r.client_ip, r.path, "
        "CAST(r.status AS INTEGER) AS status, r.term, CAST(r.tt AS BIGINT) / 1000.0 AS duration_s "
        "FROM (" + _duckdb_lines(HAPROXY_RE) + ") WHERE r.accepted <> ''",
        {
            "events": (
                "SELECT accepted AS ts, 'connect' AS event FROM records WHERE status = 101 UNION ALL "
                "SELECT accepted + to_microseconds(CAST(duration_s * 1e6 AS BIGINT)), 'disconnect' FROM records "
                "WHERE status = 101 UNION ALL SELECT accepted, 'error' FROM records WHERE status <> 101 AND path LIKE '/ws%'"
            ),
            "closes": "SELECT term || ' ' || CAST(status AS VARCHAR) AS label FROM records WHERE path LIKE '/ws%'",
            "lifetimes": "SELECT duration_s AS lifetime, false AS joined FROM records WHERE status = 101",
        },
    ),
}
DUCKDB_AGGREGATES = {
    "per_minute": (
        "SELECT date_trunc('minute', ts) AS minute, count(*) FILTER (WHERE event = 'connect') AS connects, "
        "count(*) FILTER (WHERE event = 'disconnect') AS disconnects, count(*) FILTER (WHERE event = 'error') AS errors "
        "FROM events GROUP BY 1 ORDER BY 1"
    ),
    "codes": "SELECT label, count(*) AS n FROM closes GROUP BY 1 ORDER BY n DESC",
    "lifetime_stats": (
        "SELECT count(*) AS n, count(*) FILTER (WHERE joined) AS joined, min(lifetime) AS min, "
        "quantile_cont(lifetime, [0.5, 0.9, 0.99]) AS quantiles, max(lifetime) AS max, avg(lifetime) AS mean FROM lifetimes"
    ),
    "histogram": "SELECT floor(lifetime) AS second, count(*) AS n FROM lifetimes GROUP BY 1 ORDER BY 1",
}

ENGINE_DUCKDB = """
import duckdb
con = duckdb.connect()
records = con.sql(LOAD.replace("{path}", "'" + path.replace("'", "''") + "'")).df()  # the records as a pandas frame
con.register("records", records)
for name, sql in VIEWS.items():
    con.execute(f"CREATE TEMP VIEW {name} AS {sql}")
results = {name: con.sql(sql).df() for name, sql in AGGREGATES.items()}
"""

ENGINE_POLARS = r"""
import polars as pl

def lines(pattern):
    text = pl.read_csv(path, has_header=False, separator="\x1f", quote_char=None, schema={"line": pl.String})
    return text.select(pl.col("line").str.extract_groups(pattern)).unnest("line")

def micro(seconds):
    return pl.duration(microseconds=(seconds * 1e6).cast(pl.Int64))

if fmt == "json":
    raw = pl.read_ndjson(path, schema={"ts": pl.String, "connectionId": pl.String, "event": pl.String, "code": pl.Int64,
                                       "reason": pl.String, "duration": pl.Float64, "ip": pl.String,
                                       "userAgent": pl.String, "error": pl.String})
    frame = raw.select(ts=pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC", time_unit="ms"),
                       connection_id="connectionId", event="event", code="code",
                       reason=pl.coalesce("reason", "error"), duration_s=pl.col("duration") / 1000,
                       client_ip="ip", user_agent="userAgent")
    events = frame.select("ts", "event")
    closes = frame.filter(pl.col("event") == "disconnect").select(label=pl.col("code").cast(pl.String))
    ends = frame.filter(pl.col("event") == "disconnect").group_by("connection_id").agg(pl.col("ts").max(), pl.col("duration_s").max())
    starts = frame.filter(pl.col("event") == "connect").group_by("connection_id").agg(start=pl.col("ts").min())
    joined = ends.join(starts, on="connection_id", how="left")
    lifetimes = joined.select(
        lifetime=pl.coalesce("duration_s", (pl.col("ts") - pl.col("start")).dt.total_milliseconds() / 1000),
        joined=pl.col("start").is_not_null())
elif fmt == "node":
    raw = lines(NODE_RE).filter(pl.col("ts").is_not_null())
    frame = raw.select(ts=pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC", time_unit="ms"),
                       event=pl.col("event").replace("connected", "connect"), connection_id="connection_id",
                       code=pl.col("code").cast(pl.Int64, strict=False), reason="reason",
                       duration_s=pl.col("duration").cast(pl.Float64, strict=False) / 1000)
    events = frame.select("ts", "event")
    closes = frame.filter(pl.col("event") == "disconnect").select(label=pl.col("code").cast(pl.String))
    lifetimes = frame.filter(pl.col("duration_s").is_not_null()).select(lifetime="duration_s", joined=pl.lit(False))
else:
    if fmt == "nginx":
        raw = lines(NGINX_RE).filter(pl.col("time").is_not_null())
        frame = raw.select(end=pl.col("time").str.to_datetime("%d/%b/%Y:%H:%M:%S %z", time_unit="ms", time_zone="UTC"),
                           client_ip="client_ip", path="path", status=pl.col("status").cast(pl.Int64),
                           user_agent="user_agent", duration_s=pl.col("rt").cast(pl.Float64))
        frame = frame.with_columns(start=pl.col("end") - micro(pl.col("duration_s")))
        closes = frame.filter(pl.col("path").str.starts_with("/ws")).select(label=pl.col("status").cast(pl.String))
    else:
        raw = lines(HAPROXY_RE).filter(pl.col("accepted").is_not_null())
        frame = raw.select(start=pl.col("accepted").str.to_datetime("%d/%b/%Y:%H:%M:%S%.3f", time_unit="ms", time_zone="UTC"),
                           client_ip="client_ip", path="path", status=pl.col("status").cast(pl.Int64), term="term",
                           duration_s=pl.col("tt").cast(pl.Int64) / 1000)
        frame = frame.with_columns(end=pl.col("start") + micro(pl.col("duration_s")))
        closes = frame.filter(pl.col("path").str.starts_with("/ws")).select(
            label=pl.col("term") + " " + pl.col("status").cast(pl.String))
    sessions = frame.filter(pl.col("status") == 101)
    failed = frame.filter((pl.col("status") != 101) & pl.col("path").str.starts_with("/ws"))
    events = pl.concat([sessions.select(ts="start", event=pl.lit("connect")),
                        sessions.select(ts="end", event=pl.lit("disconnect")),
                        failed.select(ts="start" if fmt == "haproxy" else "end", event=pl.lit("error"))])
    lifetimes = sessions.select(lifetime="duration_s", joined=pl.lit(False))

records = frame.to_pandas()  # the records as a pandas frame
results = {
    "per_minute": events.group_by(minute=pl.col("ts").dt.truncate("1m")).agg(
        connects=(pl.col("event") == "connect").sum(), disconnects=(pl.col("event") == "disconnect").sum(),
        errors=(pl.col("event") == "error").sum()).sort("minute").to_pandas(),
    "codes": closes.group_by("label").len().sort("len", descending=True).to_pandas(),
    "lifetime_stats": lifetimes.select(
        n=pl.len(), joined=pl.col("joined").sum(), min=pl.col("lifetime").min(),
        q50=pl.col("lifetime").quantile(0.5, "linear"), q90=pl.col("lifetime").quantile(0.9, "linear"),
        q99=pl.col("lifetime").quantile(0.99, "linear"), max=pl.col("lifetime").max(),
        mean=pl.col("lifetime").mean()).to_pandas(),
    "histogram": lifetimes.group_by(second=pl.col("lifetime").floor()).len().sort("second").to_pandas(),
}
"""

ENGINE_PRELUDE = """
import json, sys, time
path, fmt = sys.argv[1], sys.argv[2]
started = time.perf_counter()
"""
ENGINE_EPILOGUE = """
elapsed = time.perf_counter() - started
stats = results["lifetime_stats"]
print(json.dumps({"seconds": elapsed, "records": len(records), "minutes": len(results["per_minute"]),
                  "codes": len(results["codes"]), "lifetimes": int(stats["n"].iloc[0]),
                  "joined": int(stats["joined"].iloc[0])}))
"""

OURS = """
import json, sys, time
from runbook.logs.pipeline import observe_close_logs
started = time.perf_counter()
observed = observe_close_logs([sys.argv[1]])
elapsed = time.perf_counter() - started
sources = [{"format": s.format, "lines": s.lines_total, "rows": None if s.frame is None else len(s.frame),
            "malformed": s.malformed_count, "ignored": s.ignored_lines, "error": s.error}
           for s in getattr(observed, "sources", [])]
print(json.dumps({"seconds": elapsed, "records": getattr(observed, "records", None), "sources": sources}))
"""

CHECK = """
import json, sys
from runbook.logs import parse_log
out = {}
for name, path in zip(sys.argv[1::2], sys.argv[2::2]):
    with open(path, "rb") as handle:
        head = b"".join(line for _, line in zip(range(int(CHECK_LINES)), handle))
    result = parse_log(head, path)
    out[name] = {"format": result.format, "lines": result.lines_total, "records": len(result.frame),
                 "malformed": result.malformed_count, "ignored": result.ignored_lines,
                 "example": str(result.malformed_examples[0]) if result.malformed_examples else None}
print(json.dumps(out))
"""
CHECK_LINES = 100_000  # lines of each generated file parse_log reads to check it


# --- running the contenders -------------------------------------------------------------------------


def run_process(argv: list[str], timeout: float = 3600) -> dict:
    """Run ``argv`` in a fresh process: wall seconds, peak RSS (MiB) of the largest process of its
    tree (``os.wait4``: the child and the descendants it waited for), exit code, stdout's last line."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    with tempfile.TemporaryFile() as errors:
        started = time.perf_counter()
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, env=env, cwd=ROOT)  # noqa: S603
        timer = threading.Timer(timeout, child.kill)  # bounded: a stuck contender is killed
        timer.start()
        try:
            output = child.stdout.read()
        finally:
            _, status, usage = os.wait4(child.pid, 0)  # this child's rusage (reaped descendants included)
            timer.cancel()
        wall = time.perf_counter() - started
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace").strip()
    code = os.waitstatus_to_exitcode(status)
    lines = output.decode("utf-8", "replace").strip().splitlines()
    result = {"wall": wall, "rss": usage.ru_maxrss / 1024, "code": code}
    if code != 0:
        result["error"] = (stderr.splitlines() or [f"exit code {code}"])[-1][:200]
    elif lines:
        try:
            result.update(json.loads(lines[-1]))
        except ValueError:
            pass
    return result


def python_script(body: str, *args: str) -> list[str]:
    return [sys.executable, "-c", body, *args]


def engine_script(engine: str, fmt: str) -> str:
    if engine == "duckdb":
        load, views = DUCKDB_FORMATS[fmt]
        constants = f"LOAD = {load!r}\nVIEWS = {views!r}\nAGGREGATES = {DUCKDB_AGGREGATES!r}\n"
        return ENGINE_PRELUDE + constants + ENGINE_DUCKDB + ENGINE_EPILOGUE
    constants = f"NODE_RE = {NODE_RE!r}\nNGINX_RE = {NGINX_RE!r}\nHAPROXY_RE = {HAPROXY_RE!r}\n"
    return ENGINE_PRELUDE + constants + ENGINE_POLARS + ENGINE_EPILOGUE


def shuffled(items: list, round_no: int) -> list:
    """Each round in an order of its own (seeded by the round: the same on every run). A rotation
    would keep each contender behind the same neighbour every round, and on this VM a process that
    starts as a big one exits pays more for its memory (the host takes freed pages back)."""
    order = list(items)
    random.Random(round_no).shuffle(order)
    return order


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float], fmt: str = ".2f") -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def empty_notebook(folder: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "empty.ipynb"
    nbformat.write(notebook, path)
    return path


def measure(files: dict[str, Path], rounds: int, work: Path) -> dict[tuple[str, str], list[dict]]:
    """Every contender on every file, ``rounds`` times, alternating; results per (format, contender)."""
    empty = empty_notebook(work)
    jobs: list[tuple[str, str, list[str]]] = [
        ("-", "papermill", [str(BIN / "papermill"), str(empty), str(work / "empty-out.ipynb"), "-k", "python3",
                            "--no-progress-bar"])
    ]
    for fmt, path in files.items():
        jobs += [
            (fmt, "ws-runbook run", [str(BIN / "ws-runbook"), "run", "-p", "close_logs", str(path), "--output-dir"]),
            (fmt, "duckdb", python_script(engine_script("duckdb", fmt), str(path), fmt)),
            (fmt, "polars", python_script(engine_script("polars", fmt), str(path), fmt)),
            (fmt, "parse + summarize", python_script(OURS, str(path))),
        ]
    results: dict[tuple[str, str], list[dict]] = {(fmt, name): [] for fmt, name, _ in jobs}
    for round_no in range(rounds):
        for fmt, name, argv in shuffled(jobs, round_no):
            if name == "ws-runbook run":
                out = work / f"report-{fmt}"
                shutil.rmtree(out, ignore_errors=True)
                result = run_process([*argv, str(out)])
                report = out / "report.html"
                result["report_mib"] = report.stat().st_size / 2**20 if report.exists() else None
                result["step_errors"] = _step_errors(out / "diagnosis.json")
                shutil.rmtree(out, ignore_errors=True)
            else:
                result = run_process(argv)
            results[(fmt, name)].append(result)
            print(f"  round {round_no + 1}/{rounds}: {fmt} {name}: {result['wall']:.1f} s"
                  + (f" (failed: {result['error']})" if "error" in result else ""), file=sys.stderr, flush=True)
    return results


def _bar(value: float, met: bool, fmt: str = ".2f") -> str:
    if value != value:  # NaN: the contender failed every round
        return "-"
    return f"{value:{fmt}} ({'met' if met else 'not met'})"


def _seconds(value: float) -> str:
    return "failed" if value != value else f"{value:.2f}"


def _mib(value: float) -> str:
    return "-" if value != value else f"{value:,.0f}"


def _step_errors(diagnosis: Path) -> list[str]:
    """The runbook steps that ended in an error (a run exits 0 when a step fails: it records it)."""
    try:
        steps = json.loads(diagnosis.read_text()).get("steps", [])
    except (OSError, ValueError):
        return ["no diagnosis.json"]
    return [f"{step.get('step')}: {step.get('detail', '')[:120]}" for step in steps if step.get("status") == "error"]


def _ok(runs: list[dict], key: str = "wall") -> list[float]:
    return [r[key] for r in runs if "error" not in r and r.get(key) is not None]


def print_tables(files: dict[str, Path], lines: dict[str, int], checks: dict, results: dict, rounds: int) -> None:
    papermill = median(_ok(results[("-", "papermill")]))
    print(f"\nEnd to end and parse + summarize, {rounds} round(s), medians; papermill on an empty notebook: "
          f"{spread(_ok(results[('-', 'papermill')]))} s\n")
    print("| format | lines | ws-runbook run s | fastest engine | baseline s (engine + papermill) | ratio (bar <= 1.5) "
          "| report.html MiB (bar < 6) | run peak RSS MiB | parse + summarize s | engine s | speed ratio (bar >= 0.8) "
          "| parse + summarize peak RSS MiB |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for fmt in files:
        run = results[(fmt, "ws-runbook run")]
        engines = {name: median(_ok(results[(fmt, name)], "seconds")) for name in ("duckdb", "polars")}
        fastest = min(engines, key=lambda name: engines[name] if engines[name] == engines[name] else float("inf"))
        engine_wall = median(_ok(results[(fmt, fastest)]))
        baseline = engine_wall + papermill
        ours = results[(fmt, "parse + summarize")]
        ours_s = median(_ok(ours, "seconds"))
        run_s = median(_ok(run))
        ratio, speed = run_s / baseline, engines[fastest] / ours_s
        report = median(_ok(run, "report_mib"))
        verdict = _bar(ratio, ratio <= 1.5)
        if any(r.get("step_errors") for r in run):  # the run was quick because a step failed
            verdict = f"{ratio:.2f} (a step failed: not comparable)"
        print(f"| {fmt} | {lines[fmt]:,} | {run_s:.1f} | {fastest} | {baseline:.1f} | {verdict} | "
              f"{_bar(report, report < 6, '.1f')} | {_mib(median(_ok(run, 'rss')))} | {_seconds(ours_s)} | "
              f"{engines[fastest]:.2f} | {_bar(speed, speed >= 0.8)} | {_mib(median(_ok(ours, 'rss')))} |")
    print("\nEvery contender, median [min-max] over the rounds (wall: the process from start to exit; "
          "inside: timed in the process, imports excluded)\n")
    print("| format | contender | wall s | inside s | peak RSS MiB | records | failed rounds |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for (fmt, name), runs in results.items():
        records = [r.get("records") for r in runs if r.get("records") is not None]
        failed = [r["error"] if "error" in r else f"step {r['step_errors'][0]}"
                  for r in runs if "error" in r or r.get("step_errors")]
        print(f"| {fmt} | {name} | {spread(_ok(runs))} | {spread(_ok(runs, 'seconds'))} | {spread(_ok(runs, 'rss'), ',.0f')} | "
              f"{f'{records[-1]:,}' if records else '-'} | {len(failed)}{': ' + failed[0] if failed else ''} |")
    print("\nGenerated files, checked: parse_log on the first "
          f"{CHECK_LINES:,} lines; then what observe_close_logs read of the whole file (last round)\n")
    print("| format | file MiB | check: detected as | lines | records | malformed | ignored "
          "| whole file: format | lines | malformed | ignored | records in the window |")
    print("|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for fmt, path in files.items():
        check = checks.get(fmt, {})
        last = next((r for r in reversed(results[(fmt, "parse + summarize")]) if "error" not in r), {})
        whole = (last.get("sources") or [{}])[0]
        print(f"| {fmt} | {path.stat().st_size / 2**20:,.0f} | {check.get('format')} | {check.get('lines', 0):,} | "
              f"{check.get('records', 0):,} | {check.get('malformed')} | {check.get('ignored') or 0:,} | "
              f"{whole.get('format', '-')} | {whole.get('lines') or 0:,} | {whole.get('malformed', '-')} | "
              f"{whole.get('ignored') or 0:,} | {last.get('records') or 0:,} |")


def big_run(gigabytes: float, folder: Path | None) -> None:
    """Write a ``gigabytes`` GB JSON-lines log and time observe_close_logs on it in a fresh process."""
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        where = Path(tmp)
        free = shutil.disk_usage(where).free
        if free < 2.5 * gigabytes * 1e9:
            print(f"\n--big-gb {gigabytes:g}: refused, {free / 1e9:.1f} GB free in {where.parent} and it needs "
                  f"{2.5 * gigabytes:.1f} GB (2.5x the log); free some space or give --big-dir")
            return
        path = where / "big-close-log.jsonl"
        started = time.perf_counter()
        made = run_process([sys.executable, __file__, "--generate-big", str(path), "--big-gb", str(gigabytes)])
        if "error" in made:
            print(f"\n--big-gb: generating the log failed: {made['error']}")
            return
        size, lines = path.stat().st_size, count_lines(path)
        print(f"\nBig log: {size / 1e9:.2f} GB, {lines:,} lines, written in {time.perf_counter() - started:.0f} s "
              f"(generator peak RSS {made['rss']:,.0f} MiB)")
        result = run_process(python_script(OURS, str(path)), timeout=6 * 3600)
        if "error" in result:
            print(f"observe_close_logs failed after {result['wall']:.0f} s (peak RSS {result['rss']:,.0f} MiB): "
                  f"{result['error']}")
            return
        seconds = result["seconds"]
        source = (result.get("sources") or [{}])[0]
        print("\n| log | lines | observe_close_logs s | lines/s | peak RSS MiB (bar < 2,048) | lines read | malformed "
              "| records in the window |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        print(f"| {size / 1e9:.2f} GB JSON lines | {lines:,} | {seconds:.1f} | {lines / seconds:,.0f} | "
              f"{result['rss']:,.0f} ({'met' if result['rss'] < 2048 else 'not met'}) | {source.get('lines') or 0:,} | "
              f"{source.get('malformed')} | {result.get('records') or 0:,} |")


def count_lines(path: Path) -> int:
    count = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines per generated file")
    parser.add_argument("--rounds", type=int, default=3, help=f"rounds of every contender (1-{MAX_ROUNDS})")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="comma-separated formats to measure (json,node,nginx,haproxy), or 'none'")
    parser.add_argument("--keep", type=Path, help="write the generated files here and keep them")
    parser.add_argument("--big-gb", type=float, help="also write a log of this many GB and time observe_close_logs on it")
    parser.add_argument("--big-dir", type=Path, help="where the big log goes (default: a temp dir), deleted afterwards")
    parser.add_argument("--generate-into", type=Path, help=argparse.SUPPRESS)  # the generator process
    parser.add_argument("--generate-big", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    formats = [] if args.formats == "none" else [name.strip() for name in args.formats.split(",") if name.strip()]
    if unknown := sorted(set(formats) - set(FORMATS)):
        parser.error(f"unknown format(s) {', '.join(unknown)}: choose among {', '.join(FORMATS)}")
    if not 1 <= args.rounds <= MAX_ROUNDS:
        parser.error(f"--rounds must be between 1 and {MAX_ROUNDS}")
    if args.big_gb is not None and not 0 < args.big_gb <= 100:
        parser.error("--big-gb must be more than 0 and at most 100")
    if args.generate_into:
        generate(args.generate_into, args.lines, formats)
        return
    if args.generate_big:
        generate_big(args.generate_big, args.big_gb)
        return

    print(f"{os.cpu_count()} CPUs; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start")
    if formats:
        with tempfile.TemporaryDirectory() as tmp:
            folder = args.keep or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            files = {name: folder / FORMATS[name] for name in formats}
            started = time.perf_counter()
            made = run_process([sys.executable, __file__, "--lines", str(args.lines), "--formats", ",".join(formats),
                                "--generate-into", str(folder)])
            if "error" in made:
                raise SystemExit(f"generating the logs failed: {made['error']}")
            lines = {name: count_lines(path) for name, path in files.items()}
            check = run_process(python_script(f"CHECK_LINES = {CHECK_LINES}\n" + CHECK,
                                              *[x for name, path in files.items() for x in (name, str(path))]))
            checks = {name: check.get(name, {}) for name in files}
            print(f"generated and checked in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
            with tempfile.TemporaryDirectory() as work:
                results = measure(files, args.rounds, Path(work))
            print_tables(files, lines, checks, results, args.rounds)
    if args.big_gb:
        big_run(args.big_gb, args.big_dir)
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end")


if __name__ == "__main__":
    main()
